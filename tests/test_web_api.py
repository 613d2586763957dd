"""The web UI's server side: the page and its files with their security headers, the API reference at /docs
under the same headers, the assets' rules (local, no inline code, small, packaged), and the stream extensions
the page renders (citations and the agent trace arriving after the finish), and docs/ui.md's feature table naming
only tests that exist. The pages themselves, in a browser: tests/test_web.py."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ember import registry
from ember.api.routes.web import WEB_DIR
from ember.modes.base import Mode
from ember.services import Services
from ember.types import ChatRequest, Citation, Delta, TraceStep, Usage

from .conftest import sse_events

ROOT = Path(__file__).resolve().parent.parent


def test_page_and_files_are_served_with_a_strict_csp(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/web/js/main.js"></script>' in page.text
    script = client.get("/web/js/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["content-security-policy"] == csp
    missing = client.get("/web/js/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_api_reference_is_served_from_here_with_the_csp(client: TestClient) -> None:
    """/docs is Swagger UI from a Python package's files, under the web UI's CSP: the key the page keeps
    in localStorage shares this origin, so nothing on it may load a script from elsewhere."""
    csp = client.get("/").headers["content-security-policy"]
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == csp and page.headers["x-content-type-options"] == "nosniff"
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page.text)
    assert any(link.endswith(".js") for link in links) and any(link.endswith(".css") for link in links)
    for link in links:
        assert link.startswith("/") and not link.startswith("//"), f"{link} is not on this server"
        asset = client.get(link)
        assert asset.status_code == 200, link
        assert asset.headers["content-security-policy"] == csp
    assert "<script>" not in page.text and not re.search(r"\s(?:on[a-z]+|style)\s*=", page.text)
    assert client.get("/openapi.json").json()["info"]["title"] == "Ember"
    for gone in ("/redoc", "/docs/oauth2-redirect"):  # ReDoc needs inline styles; no OAuth flow here
        assert client.get(gone).status_code == 404


def test_the_ui_comparison_names_only_tests_that_exist() -> None:
    """docs/ui.md's feature table: each of Ember's cells is "no" or names its tests, and each test it names is
    defined in that file."""
    text = (ROOT / "docs" / "ui.md").read_text()
    table = text[text.index("| feature | Ember |") :].split("\n\n")[0].splitlines()[2:]
    assert len(table) >= 16
    for row in table:
        ember = row.split(" | ")[1]
        assert ember.startswith("no") or "tested by `tests/" in ember, row
    named = re.findall(r"`(tests/\w+\.py)::(test_\w+)`", text)
    assert len(named) >= 15
    for path, test in named:
        assert re.search(rf"^def {test}\(", (ROOT / path).read_text(), re.MULTILINE), f"{path}::{test} is gone"


def test_assets_are_local_handler_free_small_and_packaged() -> None:
    files = sorted(p for p in WEB_DIR.rglob("*") if p.is_file())
    html = (WEB_DIR / "index.html").read_text()
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handlers break the CSP"
    assert not re.search(r"\sstyle\s*=", html) and "<style" not in html
    assert all(" src=" in tag for tag in re.findall(r"<script[^>]*>", html)), "inline scripts break the CSP"
    external = re.compile(r"""(?:src|href|url\(|from|import\()\s*=?\s*["']?(?:https?:)?//""")
    for path in files:
        text = path.read_text()
        assert not external.search(text), f"{path.name} loads something from elsewhere"
        if path.suffix == ".js":
            assert len(text.splitlines()) <= 500, f"{path.name} is over 500 lines"
            assert "eval(" not in text and "new Function" not in text
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ember.api"]
    for path in files:
        relative = path.relative_to(WEB_DIR.parent).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), f"{relative} is not package data"


class LateExtrasMode(Mode):
    """Answers, then sends its citations and trace on a usage-only last delta, as ember-contemplating's
    synthesis does on an engine that reports usage in a chunk of its own."""

    name = "ember-late-extras"
    description = "test mode"
    roles = ("chat-fast",)

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        yield Delta(content="done", finish_reason="stop")
        step = TraceStep(None, "aggregate", "done", None, Usage(1, 1), 0.0, 0.5)
        citation = Citation(1, "p1", "Kettle", "https://example.org/kettle", "shop", "product", {"price": 20})
        yield Delta(usage=Usage(3, 1), citations=(citation,), trace=(step,))


def test_a_stream_carries_citations_and_trace_sent_after_the_finish(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.modes._entries, LateExtrasMode.name, LateExtrasMode())
    body = {
        "model": LateExtrasMode.name,
        "stream": True,
        "include_trace": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        events = sse_events(list(reply.iter_lines()))
    (late,) = [e for e in events if isinstance(e, dict) and "trace" in e]
    assert late["citations"][0]["meta"] == {"price": 20} and late["trace"][0]["phase"] == "aggregate"
    assert events[-1] == "[DONE]"
