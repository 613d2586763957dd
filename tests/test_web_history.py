"""Multimodal history in a real browser (README: Multimodal history): a photo sent from the web UI is described
by the packaged image readers (the real converted models), the description is stored with the turn, and a
later turn, written after the page was reloaded and the conversation reopened from the sidebar, is answered
from that stored description.

The follow-up comes after the reload on purpose: within one page the UI sends the whole branch again each
turn, the image's data URI included, and the server would describe it afresh. A reopened conversation holds
only the stored turns' text, so the stored description is the only way the model can know the photo.
On the fake engine, which cannot see (`describe_images`): `chat`, which ember-instant answers images with,
says one scripted line; `chat-fast`, which answers the text-only follow-up, echoes its whole prompt
(`echo_prompt`), so the page shows what the model was given."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, expect

from ember.api.app import create_app
from ember.config import Settings
from ember.vision.assets import VISION_DIR

from .conftest import make_settings, serve_in_thread
from .pictures import car_png
from .web_support import Tab

SEEN = "A red car, I think."  # the scripted answer to the photo
QUESTION = "What is in this photo?"
FOLLOW_UP = "What colour was the car in the photo?"


def blind(**options: Any) -> dict[str, Any]:
    return {"engine": "fake", "model": "fake", "ctx_size": 4096, "options": {"describe_images": True, **options}}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The fake engines, and the image readers' models that `make vision-models` verified in the default cache."""
    settings = make_settings(tmp_path, chat_fast=blind(echo_prompt=True), chat=blind(replies=[SEEN]))
    source = Settings().cache_dir / "models" / VISION_DIR
    if not (source / "centernet.onnx").is_file():
        pytest.fail(f"no vision models in {source}: run `make vision-models` (make test does)")
    shutil.copytree(source, settings.cache_dir / "models" / VISION_DIR)
    with serve_in_thread(create_app(settings)) as base:
        yield base


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_reopened_conversation_answers_from_the_stored_image_description(browser: Browser, server: str) -> None:
    user = f"history-{uuid.uuid4().hex[:8]}"
    who = {"user": user}
    assert httpx.patch(f"{server}/v1/me/consent", params=who, json={"media_storage": True}).status_code == 200
    tab = Tab(browser, server, user=user)
    page = tab.open()
    page.select_option("#mode", "ember-instant")
    page.set_input_files("#image-input", files=[FilePayload(name="car.png", mimeType="image/png", buffer=car_png())])
    expect(page.locator("#attachments li.chip-image")).to_have_count(1)
    tab.send(QUESTION)
    expect(tab.answer().locator(".markdown")).to_have_text(SEEN)
    assert tab.sent[0]["messages"][-1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")

    (row,) = httpx.get(f"{server}/v1/conversations", params=who).json()["data"]
    stored = httpx.get(f"{server}/v1/conversations/{row['id']}", params=who).json()["messages"]
    (part,) = stored[0]["parts"]
    description = part["description"]
    assert description.startswith("[Image 1, 320x200 pixels: guesses by automatic vision models, which can be wrong")
    assert "Colours:" in description and "red" in description.split("Colours:")[1]  # what the readers saw
    assert part["stored"] is True and stored[0]["image_descriptions"] == [description]

    page.reload()  # the page forgets the photo; the server kept it, and its description
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.locator("#conversations button.conversation").first.click()
    first = page.locator("article.message.user").first
    expect(first.locator(".text")).to_have_text(QUESTION)
    expect(page.locator("article.message.assistant .markdown")).to_have_text([SEEN])
    page.wait_for_function("document.querySelector('article.message.user img.thumb')?.naturalWidth === 320")

    tab.send(FOLLOW_UP)  # nothing attached
    answer = tab.answer()
    sent = tab.sent[-1]
    assert sent["conversation_id"] == row["id"]
    assert [m["content"] for m in sent["messages"]] == [QUESTION, SEEN, FOLLOW_UP]  # text only: no image resent
    shown = flat(answer.locator(".markdown").inner_text())  # the prompt the model was given, as the page shows it
    first_turn = shown[: shown.index(f"{QUESTION} assistant: {SEEN}")]
    assert first_turn.startswith("system: ") and "user: [Image 1" in first_turn
    assert flat(description) in first_turn, "the follow-up was not given the stored description of the photo"
    assert shown.endswith(f"user: {FOLLOW_UP}")
    tab.close()
