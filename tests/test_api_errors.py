"""Every refused request gets the OpenAI error envelope with the right status, type, code and param."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember import registry
from ember.api.app import create_app
from ember.config import Settings
from ember.errors import EngineError
from ember.modes.base import Mode
from ember.services import Services
from ember.types import ChatRequest, Delta

from .conftest import make_settings

USER = {"role": "user", "content": "Hello there"}


def body(**over: Any) -> dict[str, Any]:
    return {"model": "ember-instant", "messages": [USER], **over}


def assert_envelope(resp: Any, status: int, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == type_
    assert err["code"] == code
    assert err["message"] and isinstance(err["message"], str)
    if param is not None:
        assert err["param"] == param
    return dict(err)


def test_malformed_json_is_400(client: TestClient) -> None:
    resp = client.post(
        "/v1/chat/completions",
        content=b'{"model": "ember-instant", "messages": [',
        headers={"content-type": "application/json"},
    )
    err = assert_envelope(resp, 400, "invalid_request_error", "invalid_value")
    assert "JSON" in err["message"]


def test_json_without_content_type_is_read(client: TestClient) -> None:
    resp = client.post(
        "/v1/chat/completions", content=b'{"model": "ember-instant", "messages": [{"role": "user", "content": "hi"}]}'
    )
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ([1, 2], None),
        ({"messages": [USER]}, "model"),
        (body(messages="hello"), "messages"),
        (body(messages=[]), "messages"),
        (body(max_tokens="5"), "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens=-3), "max_tokens"),
        (body(max_completion_tokens=1.5), "max_completion_tokens"),
        (body(temperature="hot"), "temperature"),
        (body(temperature=7), "temperature"),
        (body(top_p=0), "top_p"),
        (body(stream="yes"), "stream"),
        (body(seed="x"), "seed"),
        (body(n=2), "n"),
        (body(messages=[{"role": "robot", "content": "x"}]), "messages.0.role"),
        (body(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
        (body(messages=[{"role": "user", "content": [{"type": "video", "video": "x"}]}]), "messages.0.content"),
    ],
)
def test_wrong_types_are_400_naming_the_field(client: TestClient, payload: Any, param: str | None) -> None:
    resp = client.post("/v1/chat/completions", json=payload)
    err = assert_envelope(resp, 400, "invalid_request_error", "invalid_value")
    if param is not None:
        assert err["param"] is not None and err["param"].startswith(param)


def test_stop_sequences_limited(client: TestClient) -> None:
    resp = client.post("/v1/chat/completions", json=body(stop=["a", "b", "c", "d", "e"]))
    assert_envelope(resp, 400, "invalid_request_error", "invalid_value", "stop")


def test_last_message_from_assistant_is_400(client: TestClient) -> None:
    resp = client.post("/v1/chat/completions", json=body(messages=[USER, {"role": "assistant", "content": "x"}]))
    assert_envelope(resp, 400, "invalid_request_error", "invalid_value", "messages")


def test_image_part_that_is_not_an_image_is_400(client: TestClient) -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    resp = client.post("/v1/chat/completions", json=body(messages=[{"role": "user", "content": [part]}]))
    err = assert_envelope(resp, 400, "invalid_request_error", "invalid_image", "messages.0.content.0")
    assert "not a JPEG, PNG, WebP or GIF" in err["message"]


def test_unknown_model_is_404(client: TestClient) -> None:
    resp = client.post("/v1/chat/completions", json=body(model="gpt-17"))
    err = assert_envelope(resp, 404, "invalid_request_error", "model_not_found", "model")
    assert "gpt-17" in err["message"] and "ember-instant" in err["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_beyond_context_is_400(client: TestClient, stream: bool) -> None:
    long = {"role": "user", "content": "word " * 400}
    resp = client.post("/v1/chat/completions", json=body(messages=[long], stream=stream))
    assert_envelope(resp, 400, "invalid_request_error", "context_length_exceeded", "messages")


def test_unknown_fields_are_accepted_and_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ember.api.routes.chat"):
        resp = client.post("/v1/chat/completions", json=body(frequency_penalty=0.5, my_extension={"a": 1}))
    assert resp.status_code == 200, resp.text
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "frequency_penalty" in logged and "my_extension" in logged
    assert "Hello there" not in logged  # field names only, never content


def test_unknown_field_names_are_logged_escaped_short_and_few(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "x\n2030-01-01 WARNING admin key created\r\x1b[2J"
    extras = {forged: 1, "y" * 5000: 2, **{f"z_{i:03}": i for i in range(100)}}
    with caplog.at_level(logging.INFO, logger="ember.api.routes.chat"):
        resp = client.post("/v1/chat/completions", json=body(**extras))
    assert resp.status_code == 200, resp.text
    [logged] = [r.getMessage() for r in caplog.records if "unknown request fields" in r.getMessage()]
    assert "\n" not in logged and "\r" not in logged and "\x1b" not in logged  # no forged line, no terminal codes
    assert "\\n2030-01-01" in logged and "\\x1b[2J" in logged  # the name is still there, escaped
    assert len(logged) < 2000 and "y" * 200 not in logged  # each name cut short, the list too
    assert "z_000" in logged and "z_099" not in logged and "more" in logged


def test_engine_failure_is_a_server_error_envelope(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f", "options": {"fail_with": "boom"}})
    with TestClient(create_app(settings)) as c:
        resp = c.post("/v1/chat/completions", json=body())
        assert_envelope(resp, 502, "server_error", "engine_error")
        health = c.get("/health")
        assert health.status_code == 503
        assert health.json()["engines"]["chat-fast"]["ok"] is False


@dataclass(frozen=True)
class BreaksMidAnswer(Mode):
    """A mode whose engine fails once its answer has begun."""

    name: str = "ember-breaks"
    description: str = "answers a word, then its engine fails"
    roles: tuple[str, ...] = ("chat-fast",)

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        yield Delta(content="partial")
        raise EngineError("the engine failed mid-answer")


def test_engine_failure_mid_answer_is_a_server_error_envelope(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a bare 500: the error raised while a non-streamed answer is collected keeps its own type."""
    monkeypatch.setitem(registry.modes._entries, "ember-breaks", BreaksMidAnswer())
    resp = client.post("/v1/chat/completions", json=body(model="ember-breaks"))
    assert "mid-answer" in assert_envelope(resp, 502, "server_error", "engine_error")["message"]


def test_unknown_route_and_method_use_the_envelope(client: TestClient) -> None:
    assert_envelope(client.get("/v1/nothing-here"), 404, "invalid_request_error", "not_found")
    assert_envelope(client.get("/v1/chat/completions"), 405, "invalid_request_error", "method_not_allowed")


def test_unknown_model_id_in_models_route(client: TestClient) -> None:
    assert_envelope(client.get("/v1/models/nope"), 404, "invalid_request_error", "model_not_found")


def test_misconfigured_engine_name_is_reported(tmp_path: Any) -> None:
    settings: Settings = make_settings(tmp_path, chat_fast={"engine": "warp-drive", "model": "x"})
    settings.load_on_start = False
    with TestClient(create_app(settings)) as c:
        resp = c.post("/v1/chat/completions", json=body())
        err = assert_envelope(resp, 500, "server_error", "invalid_config")
        assert "warp-drive" in err["message"] and "llama_cpp" in err["message"]
