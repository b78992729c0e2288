"""The user guide in docs/ stays true to the repository it describes.

* every relative link in docs/**/*.md names an existing file, and its #anchor an existing
  heading of that file (GitHub's heading slugs, which the docs are written against);
* every endpoint http-api.md names is routed by chronosdb/server/app.py, and every route is
  named there;
* the README's two set-up commands appear verbatim in quickstart.md.

Markdown is read with markdown-it-py (the parser the console renders docs with), so links and
headings inside code blocks are not mistaken for real ones.
"""
from __future__ import annotations

import os
import re
import unicodedata
from urllib.parse import unquote, urlsplit

import pytest

markdown_it = pytest.importorskip("markdown_it")

from chronosdb.server.app import PREFIX_ROUTES, ROUTES  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
MD = markdown_it.MarkdownIt("commonmark").enable("table")


def doc_files() -> list[str]:
    out = []
    for base, _dirs, files in os.walk(DOCS):
        out += [os.path.join(base, f) for f in files if f.endswith(".md")]
    return sorted(out)


def _inline_text(token) -> str:
    return "".join(c.content for c in token.children or () if c.type in ("text", "code_inline"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = "".join(ch for ch in text
                   if ch in "-_ " or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def anchors_of(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        tokens = MD.parse(f.read())
    seen: dict[str, int] = {}
    out = set()
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            base = slug(_inline_text(tokens[i + 1]))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")   # GitHub numbers repeated headings
    return out


def links_of(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        tokens = MD.parse(f.read())
    out = []
    for tok in tokens:
        for child in tok.children or ():
            if child.type == "link_open":
                out.append(child.attrGet("href"))
            elif child.type == "image":
                out.append(child.attrGet("src"))
    return out


def test_the_guide_has_its_pages():
    for name in ("index.md", "quickstart.md", "concepts.md", "operations.md", "http-api.md",
                 "influxql.md"):
        assert os.path.isfile(os.path.join(DOCS, name)), name


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, DOCS))
def test_relative_links_resolve(path):
    broken = []
    for href in links_of(path):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith("mailto:"):
            continue  # external: not checked here (no network in tests)
        target = path if not parts.path else os.path.normpath(
            os.path.join(os.path.dirname(path), unquote(parts.path)))
        if not os.path.exists(target):
            broken.append(f"{href}: no such file {os.path.relpath(target, ROOT)}")
            continue
        if parts.fragment and target.endswith(".md") and os.path.isfile(target):
            if unquote(parts.fragment) not in anchors_of(target):
                broken.append(f"{href}: no heading with anchor #{parts.fragment} in "
                              f"{os.path.relpath(target, ROOT)}")
    assert not broken, f"{os.path.relpath(path, ROOT)}:\n  " + "\n  ".join(broken)


def test_slugs_follow_github():
    assert slug("`GET|HEAD /ping`") == "gethead-ping"
    assert slug("`GET /` and `GET /docs`: the console and the guide") == \
        "get--and-get-docs-the-console-and-the-guide"
    assert slug("Differences from InfluxDB 1.6.7") == "differences-from-influxdb-167"
    assert slug("SELECT ... INTO") == "select--into"
    assert slug("snake_case stays") == "snake_case-stays"


# `METHOD /path` or `METHOD|METHOD /path` in backticks (in headings, tables, prose).
ENDPOINT_RE = re.compile(r"`((?:GET|HEAD|POST|PUT|PATCH|DELETE)(?:\|(?:GET|HEAD|POST|PUT|PATCH|DELETE))*)"
                         r"`?(?:/`?(?:GET|HEAD|POST|DELETE)`?)*\s+(/[^\s`?\[]*)")


def _routed(path: str) -> bool:
    if path in ROUTES or path == "/api/keys":   # the router maps /api/keys itself
        return True
    return any(path.startswith(prefix) and len(path) > len(prefix) for prefix, _h in PREFIX_ROUTES)


def _endpoints_in_http_api() -> set[str]:
    with open(os.path.join(DOCS, "http-api.md"), encoding="utf-8") as f:
        text = f.read()
    return {m.group(2) for m in ENDPOINT_RE.finditer(text)}


def test_every_endpoint_in_http_api_is_routed():
    named = _endpoints_in_http_api()
    assert len(named) >= 10, f"the endpoint pattern found too few endpoints: {sorted(named)}"
    unrouted = sorted(p for p in named if not _routed(p))
    assert not unrouted, f"http-api.md names endpoints the server does not route: {unrouted}"


def test_every_route_is_in_http_api():
    named = _endpoints_in_http_api()
    missing = [r for r in ROUTES if r not in named]
    missing += [p for p, _h in PREFIX_ROUTES if not any(n.startswith(p) for n in named)]
    assert not missing, f"routes http-api.md does not describe: {missing}"


def _readme_setup_commands() -> list[str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        tokens = MD.parse(f.read())
    commands, in_setup = [], False
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            in_setup = "two commands" in tokens[i + 1].content.lower()
        elif in_setup and tok.type == "fence":
            commands.append(tok.content.strip())
    return commands


def test_quickstart_has_the_readme_commands_verbatim():
    commands = _readme_setup_commands()
    assert len(commands) == 2, f"README's set-up section should hold two commands, found {commands}"
    with open(os.path.join(DOCS, "quickstart.md"), encoding="utf-8") as f:
        quickstart = f.read()
    for cmd in commands:
        assert cmd in quickstart, f"quickstart.md lacks the README command {cmd!r}"


def _operations_text() -> str:
    with open(os.path.join(DOCS, "operations.md"), encoding="utf-8") as f:
        return f.read()


def test_operations_config_example_is_a_valid_config(tmp_path):
    from chronosdb.server.config import ServerConfig

    fences = [t.content for t in MD.parse(_operations_text()) if t.type == "fence" and t.info == "toml"]
    assert fences, "operations.md should show a TOML configuration"
    path = tmp_path / "chronosdb.toml"
    path.write_text(fences[0])
    ServerConfig.from_sources(None, str(path))  # raises ConfigError naming a wrong key or value


def test_operations_documents_every_setting_and_serve_flag():
    import inspect

    from chronosdb.cli.main import build_parser
    from chronosdb.server import config

    text = _operations_text()
    # The TOML keys the config accepts: the `known` set in ServerConfig._apply.
    known = re.search(r"known = \{([^}]*)\}", inspect.getsource(config.ServerConfig._apply))
    keys = re.findall(r'"([a-z-]+)"', known.group(1))
    assert len(keys) >= 10
    missing = [k for k in keys if f"`{k}`" not in text and f"`{k} =" not in text]
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    flags = [opt for a in serve._actions for opt in a.option_strings if opt.startswith("--") and opt != "--help"]
    missing += [f for f in flags if f"`{f}" not in text]
    assert not missing, f"operations.md does not document: {missing}"
