"""End to end on the real SmolLM2-135M: `ember serve` in a subprocess, the official openai client, the
remote engine against a live Ember, cancellation freeing llama.cpp slots (also when the client leaves before
the first token of ember-auto or ember-thinking), and the CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.types import Person
from ember_tools.reliability.server import in_flight, parse_metrics, total

from .conftest import TINY, make_settings, post_raw, run_cli, sse_events, until

LONG_STORY = [{"role": "user", "content": "Write a very long story about a lighthouse keeper and the sea."}]


def active(base: str) -> int:
    """chat-fast's generations in flight now (from /metrics: /health's answer may be a few seconds old)."""
    samples = parse_metrics(httpx.get(f"{base}/metrics", timeout=30).text)
    return int(total(samples, "ember_engine_active", role="chat-fast"))


def test_openai_client_non_streamed(live_client: openai.OpenAI) -> None:
    resp = live_client.chat.completions.create(
        model="ember-instant",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    choice = resp.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in {"stop", "length"}
    assert resp.usage is not None and 0 < resp.usage.completion_tokens <= 16
    assert resp.usage.prompt_tokens > 5


def test_openai_client_streamed_and_stored(live_server: str, live_client: openai.OpenAI) -> None:
    raw = live_client.chat.completions.with_raw_response.create(
        model="ember-instant",
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
        user="stream-tester",
    )
    cid = raw.headers["x-ember-conversation-id"]
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 24
    conv = httpx.get(f"{live_server}/v1/conversations/{cid}", params={"user": "stream-tester"}).json()
    assert conv["messages"][-1]["content"] == text  # what the live_client received is what was stored
    assert conv["messages"][-1]["usage"]["completion_tokens"] == chunks[-1].usage.completion_tokens


def test_openai_client_sees_errors(live_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        live_client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        live_client.chat.completions.create(
            model="ember-instant", messages=[{"role": "user", "content": "hello " * 3000}]
        )
    assert too_long.value.code == "context_length_exceeded"
    assert "context" in str(too_long.value)


def test_stream_disconnect_frees_the_engine_within_a_second(live_server: str) -> None:
    body = {"model": "ember-instant", "messages": LONG_STORY, "max_tokens": 1500, "stream": True}
    with httpx.stream("POST", f"{live_server}/v1/chat/completions", json=body, timeout=60) as resp:
        lines = resp.iter_lines()
        for _ in range(12):
            next(lines)
        assert active(live_server) == 1  # generating while we read
    t0 = time.monotonic()
    while active(live_server) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert time.monotonic() - t0 <= 1.0


def test_non_streamed_disconnect_frees_the_engine(live_server: str) -> None:
    body = {"model": "ember-instant", "messages": LONG_STORY, "max_tokens": 1500}

    def give_up() -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{live_server}/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=2.0))

    thread = threading.Thread(target=give_up)
    thread.start()
    seen_busy = False
    while thread.is_alive() and not seen_busy:
        seen_busy = active(live_server) == 1
    thread.join()
    assert seen_busy  # it was generating while the client waited
    t0 = time.monotonic()
    while active(live_server) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert time.monotonic() - t0 <= 1.0


def held(base: str) -> dict[str, float]:
    """Engine slots in use and admission places held, from /metrics."""
    return in_flight(parse_metrics(httpx.get(f"{base}/metrics", timeout=30).text))


def leave_once_generating(base: str, body: dict[str, Any], before_first_token: bool) -> None:
    """Send `body` and hang up as soon as an engine works on it; with `before_first_token`, check that not a
    byte of the answer (not even its headers) had come."""
    sock = post_raw(base, "/v1/chat/completions", body)
    until(lambda: held(base)["engine_active"] >= 1, timeout_s=60, every_s=0.02)
    if before_first_token:
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)
    sock.close()


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "json"])
@pytest.mark.parametrize(
    ("model", "text", "first_token"),
    [
        ("ember-auto", "What is the capital of France? Also, what is 17 * 23?", False),  # plan, steps, merge
        ("ember-thinking", "Why is the sky blue? Explain it in detail.", True),  # may have begun to stream
    ],
    ids=["auto-planner", "thinking"],
)
def test_a_client_that_leaves_early_frees_every_engine_within_a_second(
    live_server: str, model: str, text: str, first_token: bool, stream: bool
) -> None:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}], "seed": 1}
    # llama.cpp cannot stop a prompt's prefill (xllamacpp's only stop is the answer to a token's callback): a
    # client that leaves then frees its admission place at once and the engine when the prefill ends. That run
    # leaves the prompt in the slot's cache, so the second one leaves while tokens are generated.
    leave_once_generating(live_server, body, before_first_token=not first_token)
    admission_freed = until(lambda: held(live_server)["admission_running"] == 0, timeout_s=60, every_s=0.02)
    assert admission_freed <= 1.0, f"{model}: the admission place was freed {admission_freed:.2f} s after"
    until(lambda: not any(held(live_server).values()), timeout_s=120, every_s=0.05)
    leave_once_generating(live_server, body, before_first_token=not first_token)
    took = until(lambda: not any(held(live_server).values()), timeout_s=60, every_s=0.02)
    assert took <= 1.0, f"{model}: engines and admission freed {took:.2f} s after the client left"


def test_health_generates_a_token(live_server: str) -> None:
    data = httpx.get(f"{live_server}/health", timeout=30).json()
    engine = data["engines"]["chat-fast"]
    assert data["status"] == "ok" and engine["ok"] is True and engine["engine"] == "llama_cpp"
    assert engine["latency_ms"] > 0
    assert engine["server"] == "xllamacpp"  # `auto`, and the test model cache holds no built llama-server


def test_remote_engine_against_a_live_ember(live_server: str, tmp_path: Path) -> None:
    remote = {"engine": "openai", "model": "ember-instant", "url": f"{live_server}/v1"}
    with TestClient(create_app(make_settings(tmp_path, chat_fast=remote))) as front:
        resp = front.post(
            "/v1/chat/completions",
            json={"model": "ember-instant", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"].strip()
        assert resp.json()["usage"]["completion_tokens"] > 0
        with front.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "ember-instant",
                "stream": True,
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 6,
            },
        ) as streamed:
            events = sse_events(list(streamed.iter_lines()))
        assert events[-1] == "[DONE]"
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"]).strip()
        too_long = front.post(
            "/v1/chat/completions",
            json={"model": "ember-instant", "messages": [{"role": "user", "content": "hello " * 3000}]},
        )
        assert too_long.status_code == 400
        assert too_long.json()["error"]["code"] == "context_length_exceeded"


def test_remote_engine_unreachable_is_503(tmp_path: Path) -> None:
    from .conftest import free_port

    remote = {"engine": "openai", "model": "x", "url": f"http://127.0.0.1:{free_port()}/v1"}
    with TestClient(create_app(make_settings(tmp_path, chat_fast=remote))) as front:
        resp = front.post(
            "/v1/chat/completions", json={"model": "ember-instant", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "engine_unavailable"
        assert front.get("/health").status_code == 503


def test_cli_chat_against_a_url(live_server: str) -> None:
    out = run_cli(["chat", "--url", f"{live_server}/v1"], "Say hi.\n/exit\n", {})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_cli_chat_embedded_stores_history(tmp_path: Path, model_cache: Path) -> None:
    env = {
        "EMBER_ROLES": json.dumps({"chat-fast": TINY}),
        "EMBER_DATA_DIR": str(tmp_path / "data"),
        "EMBER_CACHE_DIR": str(model_cache),
    }
    out = run_cli(["chat", "--user", "cli-user"], "Hello!\nAnd again?\n", env)
    assert out.returncode == 0, out.stderr
    from ember.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'data' / 'ember.db'}")
    try:
        convs = store.list_conversations(Person("", "cli-user"))
        assert len(convs) == 1  # both turns went into one conversation
        messages: list[dict[str, Any]] = store.get_conversation(convs[0]["id"], Person("", "cli-user"))["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
        assert [m["content"] for m in messages[::2]] == ["Hello!", "And again?"]
        at = 0  # each stored reply was printed, in turn (a sampled reply may be short, even empty)
        for reply in messages[1::2]:
            at = out.stdout.index(reply["content"].strip(), at) + len(reply["content"].strip())
    finally:
        store.close()


def test_cli_reports_bad_config_readably(tmp_path: Path) -> None:
    out = run_cli(
        ["chat"],
        "hi\n",
        {
            "EMBER_ROLES": json.dumps({"chat-fast": {"engine": "llama_cpp", "model": "/no/such.gguf"}}),
            "EMBER_DATA_DIR": str(tmp_path),
        },
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "/no/such.gguf" in out.stderr


def test_sampling_controls_reach_the_engine(live_client: openai.OpenAI) -> None:
    counting = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    stopped = live_client.chat.completions.create(
        model="ember-instant", messages=counting, max_tokens=60, temperature=0, stop=["7"]
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert "7" not in (stopped.choices[0].message.content or "")
    poem = [{"role": "user", "content": "Write a short poem about rain."}]
    first, second, other = (
        live_client.chat.completions.create(
            model="ember-instant", messages=poem, max_tokens=30, temperature=1.0, seed=s
        )
        for s in (11, 11, 12)
    )
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content


def test_concurrent_requests_share_the_engine(live_server: str) -> None:
    body = {"model": "ember-instant", "messages": LONG_STORY, "max_tokens": 40, "temperature": 0}
    results: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(httpx.post(f"{live_server}/v1/chat/completions", json=body, timeout=120))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, active(live_server))
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200]
    assert all(r.json()["usage"]["completion_tokens"] == 40 for r in results)
    assert peak == 2  # both generated at once in the engine's two slots
