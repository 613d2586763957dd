"""The bad input catalogue: what hostile or broken clients send, each answered with a 4xx in the OpenAI
envelope and a message a person understands, never a 500. Malformed JSON, wrong types, images and audio
that other test modules cover (test_api_errors, test_vision_intake, test_audio_api, test_keys) are not
repeated here; this adds what they miss."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.api.protocol import MAX_TOKENS_CAP
from ember.modes import auto as auto_module
from ember.policy.keys import KeyStore
from ember.serving import pipeline as pipeline_module

from .conftest import make_settings
from .test_store import _postgres_url

CHAT = "/v1/chat/completions"
USER = {"role": "user", "content": "Hello there"}
JSON = {"content-type": "application/json"}
FAKE = {"chat_fast": {"engine": "fake", "model": "fake", "ctx_size": 256}}


def body(**over: Any) -> dict[str, Any]:
    return {"model": "ember-instant", "messages": [USER], **over}


def refused(resp: httpx.Response, status: int, *words: str, param: str | None = None) -> dict[str, Any]:
    """The OpenAI envelope, its status, and the words a person needs to see in its message."""
    assert resp.status_code == status, resp.text[:500]
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    for word in words:
        assert word in err["message"], err["message"]
    if param is not None:
        assert err["param"] == param
    return dict(err)


def raw(client: TestClient, data: bytes) -> httpx.Response:
    return client.post(CHAT, content=data, headers=JSON)


# -- the body is not a JSON object of text ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", ["body is empty"]),
        (b"[1, 2, 3]", ["must be a JSON object"]),
        (b'"just a string"', ["must be a JSON object"]),
        (b"Hello, model!", ["could not parse the JSON"]),
    ],
    ids=["empty", "array", "string", "prose"],
)
def test_bodies_that_are_not_a_json_object(client: TestClient, data: bytes, words: list[str]) -> None:
    refused(raw(client, data), 400, *words)


def test_a_form_body_is_not_json(client: TestClient) -> None:
    resp = client.post(CHAT, data={"model": "ember-instant"})
    refused(resp, 400, "must be a JSON object")


@pytest.mark.parametrize(
    "data",
    [
        b'{"model": "ember-instant", "messages": [{"role": "user", "content": "caf\xe9"}]}',  # latin-1, not UTF-8
        b'{"model": "ember-instant", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    ],
    ids=["latin-1", "ff-fe"],
)
def test_invalid_utf8_is_400(client: TestClient, data: bytes) -> None:
    err = refused(raw(client, data), 400, "not valid UTF-8")
    assert err["code"] == "invalid_value"


@pytest.mark.parametrize(
    "data",
    [
        rb'{"model": "ember-instant", "messages": [{"role": "user", "content": "\ud800"}]}',
        rb'{"model": "ember-instant", "messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]}',
        b'{"model": "ember-instant", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',  # raw, in UTF-8
        rb'{"model": "\udc00", "messages": [{"role": "user", "content": "hi"}]}',
        rb'{"model": "ember-instant", "messages": [{"role": "user", "content": "hi"}], "x\ud800": 1}',
    ],
    ids=["content", "text-part", "raw-bytes", "model", "extra-key"],
)
def test_lone_surrogates_are_400_not_500(client: TestClient, data: bytes) -> None:
    """Python's JSON reader accepts them; the store and the engines cannot encode them (this was a 500)."""
    refused(raw(client, data), 400, "lone UTF-16 surrogate")


def test_nul_characters_are_400(client: TestClient) -> None:
    """PostgreSQL cannot store NUL in text: refused before anything is generated or stored."""
    refused(
        raw(client, rb'{"model": "ember-instant", "messages": [{"role": "user", "content": "a\u0000b"}]}'), 400, "NUL"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'ember.db'}"
    else:
        yield from _postgres_url()


def test_nul_characters_are_400_on_every_store(tmp_path: Path, db_url: str) -> None:
    """PostgreSQL cannot store or compare text holding NUL: a body, query or path value with one was a 500."""
    settings = make_settings(tmp_path, **FAKE).model_copy(update={"database_url": db_url})
    with TestClient(create_app(settings)) as c:
        assert c.post(CHAT, json=body(user="ana")).status_code == 200
        for resp in (
            c.post(CHAT, json=body(messages=[{"role": "user", "content": "a\x00b"}])),
            c.post(CHAT, json=body(user="a\x00")),
            c.get("/v1/conversations", params={"user": "a\x00b"}),
            c.get("/v1/me", params={"user": "\x00"}),
            c.get("/v1/conversations/conv%00x"),
        ):
            refused(resp, 400, "NUL")
        assert c.get("/v1/conversations", params={"user": "ana"}).json()["data"]


def test_real_text_that_looks_suspect_is_accepted(client: TestClient) -> None:
    """A surrogate pair is an emoji, and an escaped backslash before `ud800` is plain text."""
    resp = raw(
        client, rb'{"model": "ember-instant", "messages": [{"role": "user", "content": "\ud83d\ude00 \\ud800"}]}'
    )
    assert resp.status_code == 200, resp.text
    assert "\U0001f600 \\ud800" in resp.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("depth", [100_000, 2_000])
def test_deeply_nested_json_is_400(client: TestClient, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    resp = raw(client, b'{"model": "ember-instant", "messages": [{"role": "user", "content": ' + nested + b"}]}")
    refused(resp, 400, "nested too deeply")


def test_nesting_in_an_ignored_field_is_read_and_ignored(client: TestClient) -> None:
    nested = b"[" * 500 + b"]" * 500
    resp = raw(
        client, b'{"model": "ember-instant", "messages": [{"role": "user", "content": "hi"}], "x": ' + nested + b"}"
    )
    assert resp.status_code == 200, resp.text


# -- content parts ---------------------------------------------------------------------------------------


def part_request(client: TestClient, part: Any) -> httpx.Response:
    return client.post(CHAT, json=body(messages=[{"role": "user", "content": [part]}]))


def test_an_unknown_part_type_is_named_with_the_known_ones(client: TestClient) -> None:
    err = refused(part_request(client, {"type": "video_url", "video_url": {"url": "x"}}), 400, "'video_url'")
    assert err["param"] == "messages.0.content.0"
    for known in ("'text'", "'image_url'", "'input_audio'"):
        assert known in err["message"]


def test_an_endless_part_type_is_not_echoed_whole(client: TestClient) -> None:
    err = refused(part_request(client, {"type": "v" * 100_000}), 400, "unknown 'type'")
    assert len(err["message"]) < 400


def test_a_part_without_a_type_says_so(client: TestClient) -> None:
    refused(part_request(client, {"text": "hi"}), 400, "needs a 'type' field", param="messages.0.content.0")


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "text"}, "messages.0.content.0.text"),
        ({"type": "text", "text": 5}, "messages.0.content.0.text"),
        ({"type": "image_url", "image_url": {"url": 7}}, "messages.0.content.0.image_url.url"),
        (
            {"type": "image_url", "image_url": {"url": "data:,", "detail": "ultra"}},
            "messages.0.content.0.image_url.detail",
        ),
        ({"type": "input_audio", "input_audio": {"data": "", "format": 3}}, "messages.0.content.0.input_audio.format"),
        ("just text", "messages.0.content.0"),
    ],
)
def test_part_errors_name_the_field_as_the_client_wrote_it(client: TestClient, part: Any, param: str) -> None:
    """Not pydantic's internals (`content.list[tagged-union[TextPart,…]].0.text.text` was the param)."""
    err = refused(part_request(client, part), 400, f"'{param}'", param=param)
    assert "[" not in err["message"] and "tagged-union" not in err["param"]


def test_a_union_field_error_names_the_field(client: TestClient) -> None:
    refused(client.post(CHAT, json=body(stop=5)), 400, "'stop'", param="stop")  # was `stop.str`


def test_an_image_data_uri_with_an_endless_header_is_refused(client: TestClient) -> None:
    url = "data:image/png;" + "x" * 10_000 + ";base64,AAAA"
    err = refused(part_request(client, {"type": "image_url", "image_url": {"url": url}}), 400, "data:image/png;base64")
    assert err["code"] == "invalid_image" and len(err["message"]) < 300


def test_an_empty_image_is_refused(client: TestClient) -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}
    refused(part_request(client, part), 400, "image is empty", param="messages.0.content.0")


def test_empty_audio_in_chat_names_its_part(client: TestClient) -> None:
    """It named the upload field `file`, which a chat request does not have."""
    part = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    err = refused(part_request(client, part), 400, "messages.0.content.0", "empty", param="messages.0.content.0")
    assert err["code"] == "invalid_audio"


def test_too_many_audio_parts_are_refused_before_any_is_heard(client: TestClient) -> None:
    """Each part is under the size cap, but five would mean five transcriptions: refused before any is
    decoded (an empty part would otherwise fail first, as "empty")."""
    part = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    resp = client.post(CHAT, json=body(messages=[{"role": "user", "content": [part] * 5}]))
    err = refused(resp, 400, "at most 4 audio parts", param="messages")
    assert err["code"] == "invalid_audio"


def test_an_endless_audio_format_is_not_echoed_whole(client: TestClient) -> None:
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFF").decode(), "format": "w" * 100_000}}
    err = refused(part_request(client, part), 400, "not supported")
    assert len(err["message"]) < 400


# -- numbers and sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "param", "words"),
    [
        ({"max_tokens": 10**12}, "max_tokens", [f"{MAX_TOKENS_CAP}"]),
        ({"max_tokens": 1e300}, "max_tokens", [f"{MAX_TOKENS_CAP}"]),
        ({"max_completion_tokens": -(10**30)}, "max_completion_tokens", ["greater than or equal to 1"]),
        ({"max_tokens": 2.5}, "max_tokens", ["valid integer"]),
        ({"seed": 10**30}, "seed", ["less than or equal to"]),
        ({"n": 1000}, "n", ["less than or equal to 1"]),
        ({"conversation_id": "a\r\nSet-Cookie: x=1"}, "conversation_id", ["pattern"]),
        ({"conversation_id": "ünïcode"}, "conversation_id", ["pattern"]),
        ({"user": "u" * 5_000}, "user", ["at most 256"]),
    ],
)
def test_absurd_values_are_400(client: TestClient, over: dict[str, Any], param: str, words: list[str]) -> None:
    refused(client.post(CHAT, json=body(**over)), 400, f"'{param}'", *words, param=param)


def test_a_whole_number_written_as_a_float_is_an_integer(client: TestClient) -> None:
    """JSON has one number type, and the schema says integer: schemathesis sent 5.0 and got a 400."""
    resp = client.post(CHAT, json=body(max_tokens=2.0, n=1.0, seed=7.0))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["finish_reason"] == "length"


def test_a_conversation_id_the_server_never_issued_is_404(client: TestClient) -> None:
    """Conversation ids are issued by the server (a chosen one could be claimed first by another tenant, or
    collide with theirs); the issued one comes back in `x-ember-conversation-id` and continues it."""
    refused(client.post(CHAT, json=body(conversation_id="my-chat_1.2:3")), 404, "not found", param="conversation_id")
    issued = client.post(CHAT, json=body()).headers["x-ember-conversation-id"]
    again = client.post(CHAT, json=body(conversation_id=issued))
    assert again.status_code == 200 and again.headers["x-ember-conversation-id"] == issued


def test_a_5mb_message_is_refused_clearly(client: TestClient) -> None:
    words = client.post(CHAT, json=body(messages=[{"role": "user", "content": "word " * 1_000_000}]))
    refused(words, 400, "exceeds the available context", param="messages")


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_text_rules_do_not_run_on_the_event_loop(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The crisis rules took ~9 s and ember-auto's router 1.5 s over a 5 MB message on the event loop,
    stalling every other request meanwhile."""
    on_loop: list[tuple[str, bool]] = []
    choose = auto_module.choose

    def notice(text: str) -> str:
        on_loop.append(("crisis", _on_loop()))
        return ""

    def route(request: Any) -> Any:
        on_loop.append(("router", _on_loop()))
        return choose(request)

    monkeypatch.setattr(pipeline_module, "crisis_notice", notice)
    monkeypatch.setattr(auto_module, "choose", route)
    assert client.post(CHAT, json=body(model="ember-auto")).status_code == 200
    assert on_loop == [("crisis", False), ("router", False)]


def test_a_5mb_model_name_is_not_echoed_back(client: TestClient) -> None:
    err = refused(client.post(CHAT, json=body(model="m" * 5_000_000)), 404, "does not exist", param="model")
    assert len(err["message"]) < 500 and "ember-instant" in err["message"]


def test_a_body_over_the_limit_is_413_before_it_is_read(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **FAKE).model_copy(update={"audio_max_bytes": 2**16, "image_max_bytes": 2**16})
    with TestClient(create_app(settings)) as c:
        resp = c.post(CHAT, json=body(messages=[{"role": "user", "content": "x" * 5_000_000}]))
    err = refused(resp, 413, "larger than the limit")
    assert err["code"] == "payload_too_large"


# -- keys ------------------------------------------------------------------------------------------------


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, **FAKE).model_copy(update={"require_keys": True})
    with TestClient(create_app(settings)) as c:
        yield c


def _key(client: TestClient) -> tuple[KeyStore, str]:
    keys: KeyStore = client.app.state.keys  # type: ignore[attr-defined]
    return keys, keys.create("acme", ("chat", "audio"), "local")[0]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "ember-abc"},  # no scheme
        {"x-api-key": ""},
    ],
    ids=["none", "empty-bearer", "basic", "no-scheme", "empty-x-api-key"],
)
def test_missing_keys_are_401_everywhere(keyed: TestClient, headers: dict[str, str]) -> None:
    for resp in (
        keyed.post(CHAT, json=body(), headers=headers),
        keyed.post(CHAT, json=body(stream=True), headers=headers),
        keyed.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")}, headers=headers),
        keyed.get("/v1/me", headers=headers),
    ):
        err = refused(resp, 401, "Authorization: Bearer")
        assert err["code"] == "invalid_api_key"


def test_a_key_with_bytes_outside_ascii_is_401(keyed: TestClient) -> None:
    resp = keyed.post(CHAT, json=body(), headers={"Authorization": b"Bearer ember-\xff\xfe"})  # type: ignore[dict-item]
    refused(resp, 401, "Incorrect API key")


def test_a_revoked_key_is_401_for_streams_and_uploads_too(keyed: TestClient) -> None:
    keys, key = _key(keyed)
    auth = {"Authorization": f"Bearer {key}"}
    assert keyed.post(CHAT, json=body(stream=True), headers=auth).status_code == 200
    keys.revoke(keys.list("acme")[0]["id"])
    for resp in (
        keyed.post(CHAT, json=body(stream=True), headers=auth),
        keyed.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")}, headers=auth),
    ):
        err = refused(resp, 401, "Incorrect API key")  # as for a key that never existed
        assert err["code"] == "invalid_api_key"
