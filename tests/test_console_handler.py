"""The console's static files and the rendered docs, served by a real ``chronosdb serve``.

Checks what a browser and a cache rely on (content types, ETag → 304, Cache-Control, CSP), that
no request path can reach a file outside the served directories, and that /docs renders every
doc with working links. The pure pieces (path vetting, link rewriting) are also tested directly.
"""
from __future__ import annotations

import os
import re
import socket

import pytest

from chronosdb.console import ASSET_DIR
from chronosdb.server.handlers.console import (DocsSite, StaticTree, find_docs_dir, heading_slug,
                                               render_markdown, rewrite_link, safe_relative_path)
from serverproc import ROOT, ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("console") / "data")).start()
    yield s
    s.stop()


def get(server, path, headers=None):
    return server.request("GET", path, headers=headers, key=None)


def raw_get(server, target: str) -> tuple[int, bytes]:
    """Send the request line exactly as given (http.client would normalise some targets)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -- the console -------------------------------------------------------------------------------
def test_root_serves_the_page_without_a_key(server):
    status, h, body = get(server, "/")
    assert status == 200
    assert h["content-type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="/console/app.js">' in body
    assert h["cache-control"] == "no-cache"
    assert h["etag"].startswith('"')
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert get(server, "/console/")[2] == body


@pytest.mark.parametrize("name,ctype", [
    ("app.js", "text/javascript; charset=utf-8"),
    ("pages/query.js", "text/javascript; charset=utf-8"),
    ("console.css", "text/css; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
    ("index.html", "text/html; charset=utf-8"),
])
def test_assets_have_their_content_type_and_bytes(server, name, ctype):
    status, h, body = get(server, f"/console/{name}")
    assert status == 200
    assert h["content-type"] == ctype
    assert h["x-content-type-options"] == "nosniff"
    assert body == (ASSET_DIR / name).read_bytes()


def test_every_module_the_page_imports_is_served(server):
    """Each relative import in every served module resolves to a served file."""
    for path in ASSET_DIR.rglob("*.js"):
        rel = path.relative_to(ASSET_DIR).as_posix()
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"|import\("(\.{1,2}/[^"]+)"\)', path.read_text()):
            target = next(t for t in target if t)
            resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target))
            assert get(server, f"/console/{resolved}")[0] == 200, f"{rel} imports {target}"


def test_etag_revalidation_answers_304_without_a_body(server):
    status, h, body = get(server, "/console/app.js")
    etag = h["etag"]
    for inm in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        s2, h2, b2 = get(server, "/console/app.js", {"If-None-Match": inm})
        assert (s2, b2) == (304, b""), inm
        assert h2["etag"] == etag
    s3, _h3, b3 = get(server, "/console/app.js", {"If-None-Match": '"stale"'})
    assert (s3, b3) == (200, body)


@pytest.mark.parametrize("target", [
    "/console/../setup.py",
    "/console/../../etc/passwd",
    "/console/%2e%2e/server/app.py",
    "/console/%2E%2E%2F%2E%2E%2Fsetup.py",
    "/console/pages/../app.js",
    "/console/..%5c..%5csetup.py",
    "/console/%00app.js",
    "/console/__init__.py",
    "/console/.hidden.js",
    "/console//etc/passwd",
    "/console/nope.js",
    "/console/pages",
    "/docs/../setup",
    "/docs/%2e%2e/README",
    "/docs/..%2fREADME",
    "/docs/images/../../setup.png",
    "/docs/nope",
])
def test_no_path_leaves_the_served_directories(server, target):
    status, body = raw_get(server, target)
    assert status == 404, (target, body[:200])
    assert b'"error"' in body


def test_unknown_asset_is_a_json_404_naming_it(server):
    status, h, body = get(server, "/console/missing.css")
    assert status == 404 and h["content-type"] == "application/json"
    assert b"/console/missing.css" in body


def test_only_get_and_head(server):
    status, _h, body = server.request("POST", "/console/app.js", b"x", key=None)
    assert status == 405 and b"POST" in body
    status, h, body = server.request("HEAD", "/console/app.js", key=None)
    assert status == 200 and body == b"" and h["etag"]


def test_safe_relative_path_is_pure_and_strict():
    ok = (".js", ".css")
    assert safe_relative_path("app.js", ok) == "app.js"
    assert safe_relative_path("pages/query.js", ok) == "pages/query.js"
    for bad in ("../app.js", "pages/../app.js", "%2e%2e/app.js", "a//b.js", "/abs.js", "x\\y.js",
                ".x.js", "app.py", "app.js%00", "", "pages/"):
        assert safe_relative_path(bad, ok) is None, bad


def test_static_tree_refuses_symlinks_out_of_its_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.js").write_text("secret")
    (root / "ok.js").write_text("ok")
    os.symlink(tmp_path / "secret.js", root / "link.js")
    tree = StaticTree(root)
    assert tree.get("ok.js").body == b"ok"
    assert tree.get("link.js") is None
    (root / "ok.js").write_text("changed, longer")  # picked up without a restart
    assert tree.get("ok.js").body == b"changed, longer"


# -- the docs ----------------------------------------------------------------------------------
def test_docs_are_found_in_the_checkout():
    assert find_docs_dir() == __import__("pathlib").Path(ROOT, "docs").resolve()


def test_docs_front_page_lists_every_doc(server):
    status, h, body = get(server, "/docs")
    assert status == 200 and h["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    docs = os.path.join(ROOT, "docs")
    names = [f[:-3] for f in os.listdir(docs) if f.endswith(".md")]
    names += ["format/" + f[:-3] for f in os.listdir(os.path.join(docs, "format")) if f.endswith(".md")]
    for name in names:
        assert f'href="/docs/{name}"' in page, name
    assert "/console/docs.css" in page


def test_every_doc_renders_and_its_doc_links_resolve(server):
    status, _h, body = get(server, "/docs/architecture")
    assert status == 200
    links = set()
    for name in re.findall(r'href="/docs/([^"#]+)"', body.decode()):
        links.add(name)
    assert "format/wal" in links
    for name in sorted(links):
        s, _h, b = get(server, f"/docs/{name}")
        assert s == 200, name
        # no link in the rendered page still points at a .md file
        assert not re.search(r'href="[^"]+\.md(#[^"]*)?"', b.decode()), name


def test_docs_answer_304_on_a_matching_etag(server):
    _s, h, _b = get(server, "/docs/format/wal")
    s2, _h2, b2 = get(server, "/docs/format/wal", {"If-None-Match": h["etag"]})
    assert (s2, b2) == (304, b"")
    assert get(server, "/docs/format/wal.md")[0] == 200  # the .md spelling works too


def test_docs_images_are_served(server):
    images = sorted(f for f in os.listdir(os.path.join(ROOT, "docs", "images")) if f.endswith(".png"))
    assert images, "docs/images holds the console screenshots"
    status, h, body = get(server, f"/docs/images/{images[0]}")
    assert status == 200 and h["content-type"] == "image/png" and body.startswith(b"\x89PNG")


def test_rewrite_link():
    assert rewrite_link("auth.md", "architecture") == "/docs/auth"
    assert rewrite_link("auth.md#the-model", "architecture") == "/docs/auth#the-model"
    assert rewrite_link("wal.md", "format/segment") == "/docs/format/wal"
    assert rewrite_link("../auth.md", "format/segment") == "/docs/auth"
    assert rewrite_link("images/query.png", "console") == "/docs/images/query.png"
    assert rewrite_link("../chronosdb/server/app.py", "architecture") is None
    for kept in ("https://example.com/x.md", "#local", "/query", "mailto:a@b"):
        assert rewrite_link(kept, "architecture") == kept


def test_render_markdown_rewrites_links_adds_anchors_and_escapes_html():
    html = render_markdown("# Title\n## The model\nsee [wal](format/wal.md#records), "
                           "![shot](images/a.png), [src](../setup.py)\n\n<script>x</script>\n\n"
                           "| a | b |\n|---|---|\n| 1 | 2 |\n", "console")
    assert '<h2 id="the-model">' in html
    assert 'href="/docs/format/wal#records"' in html
    assert 'src="/docs/images/a.png"' in html
    assert 'class="outside-docs"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<table>" in html
    assert heading_slug("Errors, and why!") == "errors-and-why"


def test_docs_site_works_from_an_installed_copy(tmp_path):
    """The layout an installed package has (chronosdb/_docs): same pages, same links."""
    (tmp_path / "format").mkdir()
    (tmp_path / "architecture.md").write_text("# Arch\n[wal](format/wal.md)\n")
    (tmp_path / "format" / "wal.md").write_text("# WAL\n[back](../architecture.md)\n")
    site = DocsSite(tmp_path)
    assert site.pages() == [("architecture", "Arch"), ("format/wal", "WAL")]
    page = site.render_page("format/wal")
    assert 'href="/docs/architecture"' in page and "<title>WAL · ChronosDB docs</title>" in page
    assert site.render_page("nope") is None
