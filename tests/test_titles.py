"""Conversation titles written by a model after the first exchange: on the fake engine (a role of its own, so
no answer's scripted reply is taken), cleaned of labels and quotes, never over a title the person set, only
once per conversation, failures logged without text; and by the real SmolLM2-135M on `ember serve`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.engines.fake import FakeEngine
from ember.serving.titles import cleaned
from ember.store.sql import TITLE_CHARS

from .conftest import ember_on, make_settings, until

QUESTION = "Où camper en hiver près de Grenoble ?"


def titled_client(tmp_path: Path, **writer: Any) -> TestClient:
    """The API with titles on, written by a fake `writer` role with these options; answers by chat-fast."""
    settings = make_settings(
        tmp_path,
        chat_fast={"engine": "fake", "model": "fake"},
        writer={"engine": "fake", "model": "fake", "options": writer},
    )
    return TestClient(create_app(settings.model_copy(update={"titles": True, "title_role": "writer"})))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with titled_client(tmp_path, replies=['Title: "Camper en hiver."']) as c:
        yield c


def writer(client: TestClient) -> FakeEngine:
    found: FakeEngine = client.app.state.pipeline.engines.loaded()["writer"]  # type: ignore[attr-defined]
    return found


def say(client: TestClient, user: str, text: str, conversation: str | None = None) -> str:
    body: dict[str, Any] = {"model": "ember-instant", "user": user, "messages": [{"role": "user", "content": text}]}
    if conversation:
        body["conversation_id"] = conversation
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.headers["x-ember-conversation-id"]


def title(client: TestClient, user: str) -> str:
    (row,) = client.get("/v1/conversations", params={"user": user}).json()["data"]
    return str(row["title"])


def test_the_model_titles_a_new_conversation_once(client: TestClient) -> None:
    cid = say(client, "zoe", QUESTION)
    until(lambda: title(client, "zoe") == "Camper en hiver", 10)
    (prompt, params), *_ = writer(client).calls
    assert QUESTION in prompt[-1].content and "You said: " + QUESTION in prompt[-1].content  # both turns
    assert "language" in prompt[0].content and params.max_tokens is not None and params.max_tokens <= 32
    say(client, "zoe", "Et en été ?", cid)
    say(client, "zoe", "Merci", cid)
    assert len(writer(client).calls) == 1  # later exchanges keep the title


def test_a_title_the_person_set_is_never_replaced(tmp_path: Path) -> None:
    with titled_client(tmp_path, replies=["Camper en hiver"], delay_s=0.3) as client:
        cid = say(client, "ivy", QUESTION)
        renamed = client.patch(f"/v1/conversations/{cid}", params={"user": "ivy"}, json={"title": "Mon voyage"})
        assert renamed.status_code == 200
        until(lambda: len(writer(client).calls) == 1 and writer(client).active == 0, 10)
        store = client.app.state.services.store  # type: ignore[attr-defined]
        until(lambda: store.write_title(cid, "x") is False, 5)  # the model's title found the person's
        assert title(client, "ivy") == "Mon voyage"


def test_a_title_that_cannot_be_written_leaves_the_first_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ember")
    with titled_client(tmp_path, fail_with="writer down") as client:
        say(client, "max", QUESTION)
        until(lambda: any("title could not be written" in r.getMessage() for r in caplog.records), 10)
        assert title(client, "max") == QUESTION
        say(client, "max", "second conversation")  # the worker keeps going after a failure
        until(lambda: len(writer(client).calls) == 2, 10)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "EngineError" in logged and "camper" not in logged.lower() and "second conversation" not in logged


def test_titles_are_off_when_turned_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake"})
    with TestClient(create_app(settings)) as client:
        assert client.app.state.pipeline.titles is None  # type: ignore[attr-defined]
        say(client, "off", QUESTION)
        assert title(client, "off") == QUESTION


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('Title: "Camper en hiver."', "Camper en hiver"),
        ("**Winter camping near Grenoble**\nThis conversation is about…", "Winter camping near Grenoble"),
        ("\n\n« Voyage à Lyon »", "Voyage à Lyon"),
        ("# Titel: Zelten   im  Winter", "Zelten im Winter"),
        ("word " * 40, ("word " * 16).strip()),
        ('""', ""),
        ("", ""),
    ],
)
def test_a_reply_is_cleaned_into_a_title(reply: str, expected: str) -> None:
    assert cleaned(reply) == expected and len(cleaned(reply)) <= TITLE_CHARS


def test_the_tiny_model_writes_a_title_on_a_live_server(tmp_path: Path, model_cache: Path) -> None:
    """`ember serve` with titles on (the default; chat-fast is SmolLM2-135M here): the first exchange's title
    is the model's, a short line, not the first message cut short."""
    with ember_on(tmp_path, model_cache, EMBER_TITLES="true") as base:
        body = {"model": "ember-instant", "user": "tiny", "max_tokens": 16, "temperature": 0}
        first = "Give me three ideas for a rainy weekend with children at home."
        sent = httpx.post(
            f"{base}/v1/chat/completions", json={**body, "messages": [{"role": "user", "content": first}]}, timeout=120
        )
        assert sent.status_code == 200, sent.text

        def listed() -> str:
            (row,) = httpx.get(f"{base}/v1/conversations", params={"user": "tiny"}).json()["data"]
            return str(row["title"])

        until(lambda: listed() != first[:TITLE_CHARS], 90, every_s=0.5)
        written = listed()
        assert 0 < len(written) <= TITLE_CHARS and "\n" not in written and written == cleaned(written)
