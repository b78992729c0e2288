"""The server: the only layer with sockets. ``app.Server`` is its composition root."""
