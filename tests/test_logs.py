"""What Ember's logs hold: request paths without their query strings (the access log of a real `ember serve`),
and no request content or engine text in its own lines (unexpected errors, engine failures)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import ember
from ember.api.app import create_app

from .conftest import free_port, make_settings, serve_in_thread, wait_healthy

FAKE = {"engine": "fake", "model": "fake"}
PERSON = "patient-jane-doe"
SECRET = "HIV test kit"


def test_ember_serve_access_log_has_paths_without_query_strings(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EMBER_")},
        "EMBER_ROLES": json.dumps({"chat-fast": FAKE, "chat": FAKE, "asr": FAKE}),
        "EMBER_DATA_DIR": str(tmp_path / "data"),
        "EMBER_CACHE_DIR": str(tmp_path / "cache"),
        "EMBER_PORT": str(port),
        "PYTHONPATH": os.pathsep.join([str(Path(ember.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ember.cli", "serve"], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
        try:
            wait_healthy(base, 60, proc)
            assert httpx.get(f"{base}/v1/conversations", params={"user": PERSON, "q": SECRET}).status_code == 200
            assert httpx.get(f"{base}/v1/recommendations?user={PERSON}&q=HIV%20test%20kit&k=0").status_code == 400
            assert httpx.get(f"{base}/nowhere?q={SECRET}").status_code == 404
        finally:
            proc.terminate()
            proc.wait(30)
    text = (tmp_path / "server.log").read_text()
    assert '"GET /v1/conversations HTTP/1.1" 200' in text, text  # the access log is on, with the path
    assert '"GET /v1/recommendations HTTP/1.1" 400' in text and '"GET /nowhere HTTP/1.1" 404' in text
    assert PERSON not in text and "HIV" not in text and "?" not in text


def test_uvicorn_access_records_lose_their_query_string(tmp_path: Path) -> None:
    """The filter on the record itself, as uvicorn's access logger makes it (any handler then sees the path)."""
    create_app(make_settings(tmp_path, chat_fast=FAKE))
    access = logging.getLogger("uvicorn.access")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/me?user={PERSON}", "1.1", 200)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    [record] = seen
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/me HTTP/1.1" 200'
    assert isinstance(record.args, tuple) and len(record.args) == 5  # uvicorn's own formatter unpacks five


def test_an_unexpected_error_logs_its_traceback_without_its_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(tmp_path, chat_fast=FAKE))

    @app.get("/boom")
    async def boom() -> None:
        try:
            raise KeyError(PERSON)
        except KeyError as exc:
            raise ValueError(f"cannot file {SECRET!r} for {PERSON}") from exc

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        resp = client.get("/boom")
    assert resp.status_code == 500 and resp.json()["error"]["type"] == "server_error"
    assert "ValueError" in caplog.text and "KeyError" in caplog.text  # the chain's types
    assert "test_logs.py" in caplog.text and "in boom" in caplog.text  # and where they were raised
    assert PERSON not in caplog.text and "HIV" not in caplog.text


def test_the_server_logs_an_unexpected_error_without_its_message(tmp_path: Path) -> None:
    """Starlette re-raises an error after its handler answered, for the server to log: uvicorn's record of
    it loses the message too (it would quote what the request carried)."""
    app = create_app(make_settings(tmp_path, chat_fast=FAKE))

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError(f"cannot file {SECRET!r} for {PERSON}")

    seen: list[str] = []
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit = lambda record: seen.append(handler.format(record))  # type: ignore[method-assign]
    server_log = logging.getLogger("uvicorn.error")
    try:
        with serve_in_thread(app) as base:
            server_log.addHandler(handler)
            assert httpx.get(f"{base}/boom?user={PERSON}").status_code == 500
    finally:  # the server logs the error just after it sent the 500: listen until it has stopped
        server_log.removeHandler(handler)
    logged = "\n".join(seen)
    assert "Exception in ASGI application" in logged and "ValueError" in logged and "in boom" in logged
    assert PERSON not in logged and "HIV" not in logged


def test_an_engine_failure_is_logged_on_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    failing = {**FAKE, "options": {"fail_with": "bad\n2030-01-01 INFO forged line" + "x" * 5000}}
    with TestClient(create_app(make_settings(tmp_path, chat_fast=failing))) as client, caplog.at_level(logging.ERROR):
        resp = client.post(
            "/v1/chat/completions", json={"model": "ember-instant", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert resp.status_code == 502
    [line] = [r.getMessage() for r in caplog.records if r.name == "ember.api.errors"]
    assert line.startswith("EngineError: bad\\n2030-01-01") and "\n" not in line and len(line) < 1000
