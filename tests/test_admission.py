"""Admission control on a real uvicorn with the fake engine made slow: a full server answers 503 server_busy
with Retry-After at once while the admitted requests run on and finish; a client that leaves frees its
place; transcriptions share the limit; the counts show in /metrics; defaults come from the roles' slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ember.api.app import create_app
from ember.config import Settings
from ember.errors import ServerBusy
from ember.serving.admission import Admission
from ember_tools.reliability.server import Samples, parse_metrics, total

from .audio import tone
from .conftest import make_settings, serve_in_thread, sse_events

WORDS = 60
DELAY_S = 0.04  # an answer takes WORDS * DELAY_S = 2.4 s
LONG_WORDS = 1000  # 40 s: longer than any wait below, so only a disconnect can end it in time
FAST_503_S = 2.0  # generous: a refusal comes back long before an admitted answer ends


def slow_settings(tmp_path: Path, running: int, waiting: int, words: int) -> Settings:
    slow = {"engine": "fake", "model": "fake", "options": {"replies": [" ".join(["word"] * words)], "delay_s": DELAY_S}}
    settings = make_settings(tmp_path, chat_fast=slow)
    return settings.model_copy(update={"admission_running": running, "admission_waiting": waiting})


@pytest.fixture
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A server admitting (running, waiting) requests whose answers take `words` * DELAY_S seconds."""
    running, waiting, words = request.param
    with serve_in_thread(create_app(slow_settings(tmp_path, running, waiting, words))) as url:
        yield url


def chat_body(stream: bool) -> dict[str, Any]:
    return {"model": "ember-instant", "stream": stream, "messages": [{"role": "user", "content": "go"}]}


async def metrics(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    return parse_metrics(resp.text)


async def until(client: httpx.AsyncClient, check: Callable[[Samples], bool], timeout_s: float = 10.0) -> Samples:
    """Poll /metrics until `check` holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        samples = await metrics(client)
        if check(samples):
            return samples
        await asyncio.sleep(0.02)
    raise AssertionError(f"/metrics never showed the expected state: {await metrics(client)}")


def state(samples: Samples, name: str) -> float:
    return total(samples, "ember_admission_requests", state=name)


async def streamed(client: httpx.AsyncClient) -> list[Any]:
    async with client.stream("POST", "/v1/chat/completions", json=chat_body(True)) as resp:
        assert resp.status_code == 200
        return sse_events([line async for line in resp.aiter_lines()])


async def running(client: httpx.AsyncClient, n: int) -> Samples:
    return await until(client, lambda s: state(s, "running") == n)


@pytest.mark.parametrize("base", [(2, 1, WORDS)], indirect=True)
async def test_a_full_server_answers_503_at_once_and_the_admitted_finish(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        first, second = asyncio.create_task(streamed(client)), asyncio.create_task(streamed(client))
        await running(client, 2)
        waiter = asyncio.create_task(client.post("/v1/chat/completions", json=chat_body(False)))
        await until(client, lambda s: state(s, "waiting") == 1)
        t0 = time.monotonic()
        refused = await client.post("/v1/chat/completions", json=chat_body(True))
        took = time.monotonic() - t0
        assert not first.done() and not second.done() and not waiter.done()  # still running while refused
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        error = refused.json()["error"]
        assert error["code"] == "server_busy" and error["type"] == "server_error"
        assert "busy" in error["message"] and error["param"] is None
        assert took < FAST_503_S
        for events in await asyncio.gather(first, second):
            assert events[-1] == "[DONE]"
            assert (
                "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"]).count("word")
                == WORDS
            )
        answered = await waiter  # admitted when one of the first two ended
        assert answered.status_code == 200 and answered.json()["usage"]["completion_tokens"] == WORDS
        samples = await until(client, lambda s: state(s, "running") == 0)
    assert state(samples, "waiting") == 0
    assert total(samples, "ember_admission_refused_total") == 1
    assert total(samples, "ember_admission_admitted_total") == 3
    assert total(samples, "ember_admission_limit", state="running") == 2
    assert total(samples, "ember_admission_limit", state="waiting") == 1
    assert total(samples, "ember_errors_total", code="server_busy") == 1
    assert total(samples, "ember_engine_active") == 0


async def leave_streaming(client: httpx.AsyncClient) -> None:
    async with client.stream("POST", "/v1/chat/completions", json=chat_body(True)) as resp:
        assert resp.status_code == 200
        async for _ in resp.aiter_lines():
            break  # one event, then the client closes the connection


async def leave_waiting_for_json(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/v1/chat/completions", json=chat_body(False), timeout=httpx.Timeout(30, read=0.5))


@pytest.mark.parametrize("base", [(1, 0, LONG_WORDS)], indirect=True)
@pytest.mark.parametrize("leave", [leave_streaming, leave_waiting_for_json])
async def test_a_client_that_leaves_frees_its_place(
    base: str, leave: Callable[[httpx.AsyncClient], Awaitable[None]]
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await leave(client)
        samples = await until(client, lambda s: state(s, "running") == 0)  # its answer would take 40 s
        assert total(samples, "ember_engine_active") == 0
        await leave_streaming(client)  # the one place is free again: admitted (200), not refused
        samples = await until(client, lambda s: state(s, "running") == 0)
    assert total(samples, "ember_admission_refused_total") == 0
    assert total(samples, "ember_admission_admitted_total") == 2
    assert total(samples, "ember_engine_active") == 0


@pytest.mark.parametrize("base", [(1, 0, WORDS)], indirect=True)
async def test_transcriptions_share_the_limit(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        chat = asyncio.create_task(streamed(client))
        await running(client, 1)
        files = {"file": ("a.wav", tone(0.5))}
        refused = await client.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "server_busy"
        assert refused.headers["retry-after"] == "1"
        assert (await chat)[-1] == "[DONE]"
        heard = await client.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
        assert heard.status_code == 200 and heard.json()["text"]


@pytest.mark.parametrize("base", [(1, 0, WORDS)], indirect=True)
async def test_a_refused_generation_frees_its_place(base: str) -> None:
    too_long = [{"role": "user", "content": "word " * 5000}]  # beyond the fake engine's 4096-token context
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for stream in (False, True, False):  # the second would be 503 server_busy if the first kept its place
            resp = await client.post("/v1/chat/completions", json={**chat_body(stream), "messages": too_long})
            assert resp.status_code == 400 and resp.json()["error"]["code"] == "context_length_exceeded"
        samples = await metrics(client)
    assert state(samples, "running") == 0
    assert total(samples, "ember_admission_admitted_total") == 3
    assert total(samples, "ember_admission_refused_total") == 0


async def test_a_request_cancelled_while_waiting_takes_no_place() -> None:
    admission = Admission(running=1, waiting=1)
    async with admission.hold():
        waiter = asyncio.create_task(admission.hold().__aenter__())
        for _ in range(10):  # a few turns of the loop: the waiter reaches the waiting room
            await asyncio.sleep(0)
        assert admission.waiting == 1
        with pytest.raises(ServerBusy):
            async with admission.hold():
                pass
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (admission.running, admission.waiting) == (1, 0)
    assert (admission.running, admission.waiting, admission.refused) == (0, 0, 1)
    async with admission.hold():  # the cancelled waiter left nothing behind
        assert admission.running == 1


def test_limits_default_to_the_roles_slots_and_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = {"engine": "fake", "model": "fake"}
    slots = {"chat_fast": 3, "chat": 2, "asr": 1, "embed": 2}
    settings = make_settings(tmp_path, **{role: {**fake, "parallel": n} for role, n in slots.items()})
    assert settings.admission_limits == (8, 8)  # every role's slots, and as many waiting
    assert settings.model_copy(update={"admission_waiting": 0}).admission_limits == (8, 0)
    monkeypatch.setenv("EMBER_ADMISSION_RUNNING", "5")
    monkeypatch.setenv("EMBER_ADMISSION_WAITING", "2")
    assert Settings(data_dir=tmp_path).admission_limits == (5, 2)
