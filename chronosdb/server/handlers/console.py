"""The web console (``/``, ``/console/...``) and the rendered docs (``/docs``, ``/docs/...``).

Console: ``/`` and ``/console/`` answer ``index.html``; ``/console/<path>`` answers a file from
the ``chronosdb.console`` package directory. The page itself needs no key (it asks for one);
everything it then fetches (``/query``, ``/api/keys``, ``/metrics``, ``/stream``) does.

Docs: ``/docs`` and ``/docs/<name>`` render ``<docs>/<name>.md`` to HTML with markdown-it-py
inside a page with a sidebar of every doc; relative links between docs (``foo.md#x``) become
``/docs/foo#x`` and images come from ``/docs/images/...``. The docs directory is found in the
source checkout (``<repo>/docs``) or, for an installed package, in ``chronosdb/_docs`` (copied
there at build time).

Both are small static trees, so files are read once and kept in memory, keyed by their mtime
and size (an edited file is picked up at once). Every answer carries an ETag (a hash of the
body) and ``Cache-Control: no-cache``: the browser keeps its copy but asks every time, and an
unchanged file costs a 304 with no body. That keeps the page, its modules and the server in
step after an upgrade without versioned file names, which would need a build step.

Paths are checked before any file is touched: percent-decoding first, then every segment must be
a plain name (no ``..``, ``.``, empty, hidden or backslash segments) with an allowed extension,
and the resolved path must still lie inside the served directory (symlinks included).
"""
from __future__ import annotations

import hashlib
import html
import os
import posixpath
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import chronosdb
from chronosdb.console import ASSET_DIR
from chronosdb.server.http.messages import HttpError, Response

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".json": "application/json",
}
DOC_IMAGE_EXTENSIONS = (".png", ".svg", ".jpg", ".gif")

# The console only talks to its own origin; inline style attributes are set by the chart and
# the completion popup. Framing is refused (the console holds an admin key).
CONSOLE_CSP = ("default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    etag: str
    content_type: str


def safe_relative_path(raw: str, allowed_extensions) -> str | None:
    """The URL path ``raw`` (below the route prefix) as a safe relative file path, or None.

    Pure: percent-decodes, then refuses anything that could leave the directory or reach a file
    that is not meant to be served (hidden files, ``__init__.py``, other extensions)."""
    path = unquote(raw)
    if "\x00" in path or "\\" in path:
        return None
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", "..") or part.startswith("."):
            return None
    if not path.endswith(tuple(allowed_extensions)):
        return None
    return "/".join(parts)


class StaticTree:
    """Files below one directory, read on first use and re-read when their mtime/size change."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, tuple[tuple[int, int], StaticFile]] = {}
        self._lock = threading.Lock()

    def get(self, rel: str) -> StaticFile | None:
        """The file at the (already vetted) relative path, or None when there is none."""
        full = (self.root / rel)
        try:
            real = full.resolve(strict=True)
            real.relative_to(self.root.resolve())  # ValueError if a symlink leads outside
            st = real.stat()
        except (OSError, ValueError):
            return None
        if not real.is_file():
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get(rel)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        body = real.read_bytes()
        f = StaticFile(body, etag_of(body), CONTENT_TYPES[real.suffix])
        with self._lock:
            self._cache[rel] = (stamp, f)
        return f


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in tags or ("W/" + etag) in tags


def conditional_response(req, body: bytes, etag: str, content_type: str,
                         extra_headers=()) -> Response:
    """200 with the body, or 304 without it when the client already holds this ETag."""
    headers = [("ETag", etag), ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
               *extra_headers]
    if _etag_matches(req.headers.get("if-none-match"), etag):
        return Response(304, b"", None, headers)
    return Response(200, b"" if req.method == "HEAD" else body, content_type, headers)


def _require_get(req) -> None:
    if req.method not in ("GET", "HEAD"):
        raise HttpError(405, f"{req.method} is not allowed on {req.path} (GET or HEAD)")


# -- the console ---------------------------------------------------------------------------------
CONSOLE_FILES = StaticTree(ASSET_DIR)


async def handle_console(server, req) -> Response:
    _require_get(req)
    path = req.path
    if path in ("/", "/console", "/console/"):
        rel = "index.html"
    else:
        rel = safe_relative_path(path[len("/console/"):], CONTENT_TYPES)
        if rel is None:
            return Response.error(404, f"no such console asset: {path}")
    f = CONSOLE_FILES.get(rel)
    if f is None:
        return Response.error(404, f"no such console asset: {path}")
    extra = [("Content-Security-Policy", CONSOLE_CSP)] if rel.endswith(".html") else []
    return conditional_response(req, f.body, f.etag, f.content_type, extra)


# -- the docs ------------------------------------------------------------------------------------
def find_docs_dir() -> Path | None:
    """``<repo>/docs`` in a source checkout, else the copy shipped in the package."""
    pkg = Path(chronosdb.__file__).resolve().parent
    for candidate in (pkg.parent / "docs", pkg / "_docs"):
        if (candidate / "architecture.md").is_file():
            return candidate
    return None


def heading_slug(text: str) -> str:
    """GitHub-style anchor: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return s.replace(" ", "-")


def rewrite_link(href: str, page: str) -> str | None:
    """Where a link in doc ``page`` (e.g. ``format/wal``) should point on the served site.

    Absolute URLs and in-page anchors are kept; ``x.md#a`` relative to the page becomes
    ``/docs/x#a``; other files inside docs/ (images) become ``/docs/<path>``. A link that leaves
    docs/ (source files) has no page here: None."""
    if not href or href.startswith(("#", "/", "mailto:")) or re.match(r"^[a-z][a-z0-9+.-]*:", href):
        return href
    target, _, fragment = href.partition("#")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
    if resolved.startswith("..") or resolved.startswith("/"):
        return None
    if resolved.endswith(".md"):
        resolved = resolved[:-3]
        if resolved == "README" or resolved == "index":
            resolved = ""
    return "/docs/" + resolved + ("#" + fragment if fragment else "")


def _markdown():
    from markdown_it import MarkdownIt  # imported on first use: the server starts without it

    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}) \
        .enable("table").enable("strikethrough")


def render_markdown(text: str, page: str) -> str:
    """The HTML body for one doc. Raw HTML in the Markdown is escaped (``html: False``)."""
    md = _markdown()
    tokens = md.parse(text)
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and i + 1 < len(tokens):
            slug = heading_slug(tokens[i + 1].content)
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            tok.attrSet("id", slug if n == 0 else f"{slug}-{n}")
        for child in tok.children or ():
            if child.type == "link_open":
                new = rewrite_link(child.attrGet("href") or "", page)
                if new is None:
                    child.attrSet("href", "#")
                    child.attrSet("class", "outside-docs")
                    child.attrSet("title", "a file outside docs/ (see the repository)")
                else:
                    child.attrSet("href", new)
            elif child.type == "image":
                new = rewrite_link(child.attrGet("src") or "", page)
                if new is not None:
                    child.attrSet("src", new)
    return md.renderer.render(tokens, md.options, {})


def doc_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip().replace("`", "")  # the sidebar shows plain text
    return fallback


class DocsSite:
    """The docs directory as a small site: page list, rendered pages (cached by mtime)."""

    def __init__(self, root: Path):
        self.root = root
        self.files = StaticTree(root)  # images and other non-Markdown files
        self._cache: dict[str, tuple[tuple[int, int], str, str]] = {}
        self._titles: dict[str, tuple[tuple[int, int], str]] = {}
        self._lock = threading.Lock()

    def pages(self) -> list[tuple[str, str]]:
        """(page name, title) for every doc: top-level docs first, then each subdirectory."""
        out = []
        for path in sorted(self.root.rglob("*.md"), key=lambda p: (len(p.relative_to(self.root).parts), str(p))):
            rel = path.relative_to(self.root).as_posix()[:-3]
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            out.append((rel, self._title(rel, path)))
        return out

    def _title(self, page: str, path: Path) -> str:
        """The doc's title for the sidebar, without rendering it (cached with the page)."""
        with self._lock:
            hit = self._titles.get(page)
        try:
            st = path.stat()
        except OSError:
            return page
        stamp = (st.st_mtime_ns, st.st_size)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        title = doc_title(path.read_text(encoding="utf-8"), page)
        with self._lock:
            self._titles[page] = (stamp, title)
        return title

    def _load(self, page: str) -> tuple[str, str] | None:
        """(title, body html) of ``page``, or None when there is no such doc."""
        path = self.root / (page + ".md")
        try:
            real = path.resolve(strict=True)
            real.relative_to(self.root.resolve())
            st = real.stat()
        except (OSError, ValueError):
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get(page)
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        text = real.read_text(encoding="utf-8")
        title, body = doc_title(text, page), render_markdown(text, page)
        with self._lock:
            self._cache[page] = (stamp, title, body)
        return title, body

    def render_page(self, page: str) -> str | None:
        loaded = self._load(page)
        if loaded is None:
            return None
        title, body = loaded
        nav = []
        group = None
        for name, t in self.pages():
            g = name.rsplit("/", 1)[0] if "/" in name else ""
            if g != group:
                if group is not None:
                    nav.append("</ul>")
                nav.append(f"<h3>{html.escape(g or 'Docs')}</h3><ul>")
                group = g
            cls = ' class="current"' if name == page else ""
            nav.append(f'<li><a{cls} href="/docs/{html.escape(name)}">{html.escape(t)}</a></li>')
        if group is not None:
            nav.append("</ul>")
        return DOC_TEMPLATE.format(title=html.escape(title), nav="".join(nav), body=body,
                                   version=html.escape(chronosdb.__version__))


DOC_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · ChronosDB docs</title>
<link rel="icon" href="/console/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console/docs.css">
</head><body>
<nav class="docs-nav"><a class="brand" href="/">ChronosDB <small>{version}</small></a>
<a class="back" href="/">← console</a>{nav}</nav>
<main class="doc">{body}</main>
</body></html>
"""

DOCS_CSP = "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
_docs_site: DocsSite | None = None


def docs_site() -> DocsSite | None:
    global _docs_site
    if _docs_site is None:
        root = find_docs_dir()
        if root is not None:
            _docs_site = DocsSite(root)
    return _docs_site


async def handle_docs(server, req) -> Response:
    _require_get(req)
    site = docs_site()
    if site is None:
        return Response.error(404, "the docs are not installed with this server")
    rest = req.path[len("/docs"):].strip("/")
    if unquote(rest).endswith(DOC_IMAGE_EXTENSIONS):
        rel = safe_relative_path(rest, DOC_IMAGE_EXTENSIONS)
        f = site.files.get(rel) if rel is not None else None
        if f is None:
            return Response.error(404, f"no such docs file: {req.path}")
        return conditional_response(req, f.body, f.etag, f.content_type)
    page = rest[:-3] if rest.endswith(".md") else rest
    if not page:  # the docs' front page: a README if there is one, else the architecture
        page = next((p for p in ("index", "README", "architecture") if (site.root / f"{p}.md").is_file()),
                    "architecture")
    rel = safe_relative_path(page + ".md", (".md",))
    text = await server.run_blocking(site.render_page, rel[:-3]) if rel is not None else None
    if text is None:
        return Response.error(404, f"no such doc: {req.path}")
    body = text.encode()
    return conditional_response(req, body, etag_of(body), "text/html; charset=utf-8",
                                [("Content-Security-Policy", DOCS_CSP)])
