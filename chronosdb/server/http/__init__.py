"""HTTP/1.1 over asyncio: httptools parses, our protocol handles framing, limits and routing."""
