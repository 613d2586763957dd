"""The chat API's behaviour around the engine, on the scripted fake engine: SSE shape, usage, history,
models, health and cancellation on disconnect."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from ember.api.app import create_app

from .conftest import make_settings, serve_in_thread, sse_events


def chat(client: TestClient, text: str, **over: Any) -> Any:
    return client.post(
        "/v1/chat/completions", json={"model": "ember-instant", "messages": [{"role": "user", "content": text}], **over}
    )


def test_non_streamed_answer_has_openai_shape(client: TestClient) -> None:
    resp = chat(client, "ping pong", max_tokens=50)
    assert resp.status_code == 200
    data = resp.json()
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
    assert data["model"] == "ember-instant"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "You said: ping pong"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] == 4
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + 4


def test_max_tokens_truncates_with_length(client: TestClient) -> None:
    data = chat(client, "one two three four five", max_completion_tokens=3).json()
    assert data["choices"][0]["message"]["content"] == "You said: one"
    assert data["choices"][0]["finish_reason"] == "length"


def test_stream_is_sse_with_role_first_done_last_and_usage(client: TestClient) -> None:
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "ember-instant",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "a b"}],
        },
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(list(resp.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "You said: a b"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_stream_without_include_usage_has_no_usage_chunk(client: TestClient) -> None:
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "ember-instant",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    ) as resp:
        events = sse_events(list(resp.iter_lines()))
    assert all("usage" not in e for e in events[:-1])


def test_exchange_is_stored_and_read_back_per_user(client: TestClient) -> None:
    resp = chat(client, "remember me", user="alice")
    cid = resp.headers["x-ember-conversation-id"]
    convs = client.get("/v1/conversations", params={"user": "alice"}).json()["data"]
    assert [c["id"] for c in convs] == [cid]
    assert convs[0]["title"] == "remember me"
    conv = client.get(f"/v1/conversations/{cid}", params={"user": "alice"}).json()
    assert [(m["role"], m["content"]) for m in conv["messages"]] == [
        ("user", "remember me"),
        ("assistant", "You said: remember me"),
    ]
    answer = conv["messages"][-1]
    assert answer["finish_reason"] == "stop" and answer["usage"]["completion_tokens"] == 4
    assert client.get("/v1/conversations", params={"user": "bob"}).json()["data"] == []
    assert client.get(f"/v1/conversations/{cid}", params={"user": "bob"}).status_code == 404


def test_continuing_a_conversation_appends_new_turns(client: TestClient) -> None:
    first = chat(client, "hi", user="carol")
    cid = first.headers["x-ember-conversation-id"]
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]},
        {"role": "user", "content": "again"},
    ]
    resp = client.post(
        "/v1/chat/completions",
        json={"model": "ember-instant", "messages": history, "user": "carol", "conversation_id": cid},
    )
    assert resp.headers["x-ember-conversation-id"] == cid
    msgs = client.get(f"/v1/conversations/{cid}", params={"user": "carol"}).json()["messages"]
    assert [m["content"] for m in msgs] == ["hi", "You said: hi", "again", "You said: again"]
    other = client.post(
        "/v1/chat/completions",
        json={"model": "ember-instant", "messages": history, "user": "mallory", "conversation_id": cid},
    )
    assert other.status_code == 404


def test_continuing_with_only_the_new_turn_keeps_and_shows_every_turn(client: TestClient) -> None:
    """`conversation_id` with just the new message: the stored turns come first, for the model and the store
    (the new turn was lost and the model saw no history)."""
    cid = chat(client, "my name is Zed", user="dana").headers["x-ember-conversation-id"]
    body = {"model": "ember-instant", "user": "dana", "conversation_id": cid}
    second = client.post("/v1/chat/completions", json={**body, "messages": [{"role": "user", "content": "who am I?"}]})
    assert second.status_code == 200 and second.headers["x-ember-conversation-id"] == cid
    engine = client.app.state.pipeline.engines.loaded()["chat-fast"]  # type: ignore[attr-defined]
    seen = [(m.role, m.content) for m in engine.calls[-1][0]]
    turns = [("user", "my name is Zed"), ("assistant", "You said: my name is Zed"), ("user", "who am I?")]
    assert seen[-3:] == turns
    stored = client.get(f"/v1/conversations/{cid}", params={"user": "dana"}).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [*turns, ("assistant", "You said: who am I?")]
    assert second.json()["usage"]["prompt_tokens"] > chat(client, "who am I?").json()["usage"]["prompt_tokens"]


def test_models_lists_the_modes(client: TestClient) -> None:
    data = client.get("/v1/models").json()
    assert data["object"] == "list"
    assert "ember-instant" in [m["id"] for m in data["data"]]
    assert client.get("/v1/models/ember-instant").json()["id"] == "ember-instant"


def test_health_exercises_the_engine(client: TestClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    engine = resp.json()["engines"]["chat-fast"]
    assert engine["ok"] is True and engine["engine"] == "fake"
    fake = client.app.state.pipeline.engines.loaded()["chat-fast"]  # type: ignore[attr-defined]
    assert fake.calls and fake.calls[-1][1].max_tokens == 1


def test_client_disconnect_stops_generation(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(400))
    settings = make_settings(
        tmp_path, chat_fast={"engine": "fake", "model": "f", "options": {"replies": [words], "delay_s": 0.02}}
    )
    app = create_app(settings)
    with serve_in_thread(app) as base:
        engine = app.state.pipeline.engines.loaded()["chat-fast"]
        with httpx.stream(
            "POST",
            f"{base}/v1/chat/completions",
            json={"model": "ember-instant", "stream": True, "messages": [{"role": "user", "content": "go"}]},
        ) as resp:
            cid = resp.headers["x-ember-conversation-id"]
            lines = resp.iter_lines()
            for _ in range(10):
                next(lines)
            assert engine.active == 1  # still generating while the client reads
        t0 = time.monotonic()
        while engine.active and time.monotonic() - t0 < 2:
            time.sleep(0.01)
        assert engine.active == 0
        assert time.monotonic() - t0 <= 1.0
        stored = httpx.get(f"{base}/v1/conversations/{cid}").json()["messages"][-1]
        assert stored["finish_reason"] == "cancelled"
        assert 0 < len(stored["content"].split()) < 400


def test_crisis_resources_come_before_any_mode_answer(client: TestClient) -> None:
    text = chat(client, "I want to kill myself").json()["choices"][0]["message"]["content"]
    assert text.startswith("**This may be an emergency.**") and "988" in text
    assert text.endswith("You said: I want to kill myself")  # the mode still answers, after the notice
    assert chat(client, "I killed it at the gym today").json()["choices"][0]["message"]["content"] == (
        "You said: I killed it at the gym today"
    )
