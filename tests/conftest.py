"""Shared fixtures: Settings in tmp_path, apps on the fake engine, and live servers on the real tiny model."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.config import EngineSpec, Settings
from ember.types import Person

from .web_support import CHROMIUM, Tab

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

TINY = {"engine": "llama_cpp", "model": "chat-tiny", "ctx_size": 1024, "parallel": 2}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("EMBER_") and key not in {"EMBER_REQUIRE_POSTGRES", "EMBER_REQUIRE_REDIS"}:
            monkeypatch.delenv(key)


def who(label: str) -> Person:
    """A person from how the API shows one: `owner/user` (`owner/` for a key's owner itself), or a local name."""
    tenant, slash, name = label.partition("/")
    return Person(tenant, name) if slash else Person("", label)


def make_settings(tmp_path: Path, **roles: dict[str, Any]) -> Settings:
    """Settings in tmp_path; speech runs on the fake transcriber and the reasoning modes' `chat` role on the
    fake engine unless a test names an `asr` or `chat` role. No titles are written (a title would take one of
    a scripted engine's replies): tests of titles turn them on."""
    roles.setdefault("asr", {"engine": "fake", "model": "fake"})
    roles.setdefault("chat", {"engine": "fake", "model": "fake"})
    specs = {role.replace("_", "-"): EngineSpec(**spec) for role, spec in roles.items()}
    cache = tmp_path / "cache"  # no health index: ember-health answers without sources, and builds none here
    return Settings(data_dir=tmp_path / "data", cache_dir=cache, roles=specs, build_health_index=False, titles=False)


@pytest.fixture
def fake_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake", "ctx_size": 256})


@pytest.fixture
def client(fake_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fake_settings)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, timeout_s: float = 90.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=10).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base} did not become healthy in {timeout_s}s")


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Run `app` under a real uvicorn on a free loopback port; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, 60)
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@contextmanager
def ember_on(data: Path, model_cache: Path, **env: str) -> Iterator[str]:
    """`ember serve` in a subprocess with the real SmolLM2-135M as chat-fast and chat, its data (SQLite) in
    `data`, no health index build, no titles written (a title is one more generation beside the test's own;
    `EMBER_TITLES=true` in `env` turns them on) and `env`'s extra settings; yields the base URL, stops it
    afterwards."""
    port = free_port()
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EMBER_")},
        "EMBER_ROLES": json.dumps({"chat-fast": TINY, "chat": TINY}),
        "EMBER_BUILD_HEALTH_INDEX": "false",  # the model cache has no health index: no build beside the model
        "EMBER_TITLES": "false",
        "EMBER_DATA_DIR": str(data),
        "EMBER_CACHE_DIR": str(model_cache),
        "EMBER_PORT": str(port),
        **env,
    }
    with (data / f"server-{port}.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ember.cli", "serve"], env=full, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, 120, proc)
            yield base
        finally:
            proc.terminate()
            proc.wait(30)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[str]:
    """`ember serve` with the real SmolLM2-135M as chat-fast and as chat (the reasoning modes, with two
    contemplating agents on its two slots); yields the base URL."""
    with ember_on(tmp_path_factory.mktemp("live-data"), model_cache, EMBER_CONTEMPLATING_AGENTS="2") as base:
        yield base


def post_raw(base: str, path: str, body: dict[str, Any]) -> socket.socket:
    """POST JSON `body` to a loopback server on a raw connection and read nothing: a client that can hang up
    (close the socket) at any moment, even before any response header comes."""
    url = httpx.URL(base)
    assert url.host == "127.0.0.1" and url.port is not None
    sock = socket.create_connection((url.host, url.port))
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    sock.sendall(head.encode() + payload)
    return sock


def until(check: Callable[[], bool], timeout_s: float, every_s: float = 0.01) -> float:
    """Seconds until `check()` holds (polled every `every_s`); AssertionError after `timeout_s`."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"not reached in {timeout_s} s")
        time.sleep(every_s)
    return time.monotonic() - t0


def sse_events(lines: list[str]) -> list[Any]:
    """Parse `data:` lines of an SSE body into JSON objects (and the literal "[DONE]")."""
    out: list[Any] = []
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def run_cli(args: list[str], stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`ember ARGS` in a subprocess with only `env`'s EMBER_* settings; stdin given, output captured."""
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}, **env}
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=180,
    )


def oai(base: str) -> openai.OpenAI:
    """The official openai client on the Ember at `base`, without retries."""
    return openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0)


@pytest.fixture
def live_client(live_server: str) -> Iterator[openai.OpenAI]:
    """The official client on the shared live server, its connections closed afterwards."""
    with oai(live_server) as opened:
        yield opened


# -- the browser tests' fixtures (tests/web_support.py has the Tab they drive) --------------------------------

SPOKEN = "What is the capital of France?"


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: run `make debs` (scripts/debian-packages.sh espeak-ng)"
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    subprocess.run([espeak, "-s", "140", "-w", str(path), SPOKEN], check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, speech_wav: Path) -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make debs` (scripts/debian-packages.sh chromium)"
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--use-fake-ui-for-media-stream",  # allow the microphone without asking
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={speech_wav}",
        ],
    )
    yield browser
    browser.close()


@pytest.fixture
def tab(browser: Browser, live_server: str) -> Iterator[Tab]:
    tab = Tab(browser, live_server, user=f"web-{uuid.uuid4().hex[:8]}")
    yield tab
    tab.close()
