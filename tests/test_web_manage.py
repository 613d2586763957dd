"""The web UI's tools, history and memory in a real browser: tool calls (streamed and stored), conversation
search, rename, export and delete in the sidebar, a stored turn's image and voice parts, and memory and media
storage on the Privacy page."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import httpx
from PIL import Image as PILImage
from playwright.sync_api import Browser, Route, expect

from .web_support import Tab, calls, piece, sse


def test_stored_and_streamed_tool_calls_are_shown(browser: Browser, live_server: str) -> None:
    """A stored conversation with a call and a function's result shows both; a streamed call (id and name,
    then its arguments in pieces) is shown as name(arguments), with a note."""
    user = f"tools-{uuid.uuid4().hex[:8]}"
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    call = {**first, "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    del call["index"]
    body = {
        "model": "ember-instant",
        "user": user,
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "snow, -3 C"},
        ],
        "max_tokens": 8,
    }
    stored = httpx.post(f"{live_server}/v1/chat/completions", json=body, timeout=120)
    assert stored.status_code == 200, stored.text
    tab = Tab(browser, live_server, user=user)
    page = tab.open()
    page.locator("#conversations button.conversation").first.click()
    expect(page.locator("article.message.tool .tool-result")).to_have_text("snow, -3 C")
    expect(page.locator("article.message.assistant .tool-call").first).to_have_text('get_weather({"city": "Oslo"})')
    stream = sse(
        calls(first),
        calls({"index": 0, "function": {"arguments": '{"city": '}}),
        calls({"index": 0, "function": {"arguments": '"Paris"}'}}),
        piece(finish="tool_calls"),
    )
    page.route("**/v1/chat/completions", lambda route: route.fulfill(content_type="text/event-stream", body=stream))
    tab.send("And in Paris?")
    answer = tab.answer()
    assert answer.get_attribute("data-finish") == "tool_calls"
    expect(answer.locator(".tool-call")).to_have_text('get_weather({"city": "Paris"})')
    expect(answer.locator(".note")).to_contain_text("call a function")
    sent = tab.sent[-1]["messages"]
    assert sent[1]["tool_calls"] == [call] and sent[2]["tool_call_id"] == "call_1"  # the history keeps the calls
    tab.close()


def test_conversations_are_searched_renamed_exported_and_deleted(browser: Browser, live_server: str) -> None:
    user = f"manage-{uuid.uuid4().hex[:8]}"
    for text in ("Kayaks for rivers", "Bread at home"):
        turn = [{"role": "user", "content": text}]
        body = {"model": "ember-instant", "user": user, "messages": turn, "max_tokens": 4}
        assert httpx.post(f"{live_server}/v1/chat/completions", json=body, timeout=120).status_code == 200
    tab = Tab(browser, live_server, user=user)
    page = tab.open()
    items = page.locator("#conversations li.conversation-item")
    expect(items).to_have_count(2)
    page.locator("#conversation-search").fill("KAYAK")
    expect(items).to_have_count(1)
    expect(items.locator(".conversation-title")).to_have_text("Kayaks for rivers")
    page.once("dialog", lambda dialog: dialog.accept("River trip"))
    items.get_by_role("button", name="Rename “Kayaks for rivers”").click()
    page.locator("#conversation-search").fill("")
    expect(page.locator("#conversations .conversation-title").first).to_have_text("River trip")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export “River trip”").click()
    saved = Path(download.value.path()).read_text()
    assert saved.startswith("# River trip") and "Kayaks for rivers" in saved
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete “River trip”").click()
    expect(items).to_have_count(1)
    expect(items.locator(".conversation-title")).to_have_text("Bread at home")
    listed = httpx.get(f"{live_server}/v1/conversations", params={"user": user}).json()["data"]
    assert [c["title"] for c in listed] == ["Bread at home"]
    tab.close()


def test_memory_is_turned_on_shown_and_forgotten_on_the_privacy_page(tab: Tab) -> None:
    page = tab.open()
    user = page.evaluate("localStorage.getItem('ember.user')")
    page.get_by_role("link", name="Privacy").click()
    expect(page.locator("#memories-empty")).to_be_visible()
    memory = page.locator("input[data-flag=memory]")
    expect(memory).not_to_be_checked()
    memory.check()
    expect(page.locator("#privacy-status")).to_have_text("Saved: memory is on.")
    page.get_by_role("link", name="Chat").click()
    tab.send("Remember that my favourite colour is teal.")
    expect(tab.answer().locator(".markdown")).to_contain_text("Saved to your memory: “my favourite colour is teal”")
    page.get_by_role("link", name="Privacy").click()
    expect(page.locator("#memories li")).to_have_text(re.compile(r"^my favourite colour is teal\s+Forget$"))
    page.get_by_role("button", name="Forget “my favourite colour is teal”").click()
    expect(page.locator("#privacy-status")).to_have_text("Forgotten.")
    expect(page.locator("#memories li")).to_have_count(0)
    assert httpx.get(f"{tab.base}/v1/me/memories", params={"user": user}).json()["data"] == []


def test_media_storage_is_off_by_default_and_set_on_the_privacy_page(tab: Tab) -> None:
    page = tab.open()
    user = page.evaluate("localStorage.getItem('ember.user')")
    page.get_by_role("link", name="Privacy").click()
    media = page.locator("input[data-flag=media_storage]")
    expect(media).not_to_be_checked()
    expect(page.locator("label.switch", has=media)).to_contain_text("Turning it off deletes the stored images.")
    media.check()
    expect(page.locator("#privacy-status")).to_have_text("Saved: media storage is on.")
    assert httpx.get(f"{tab.base}/v1/me", params={"user": user}).json()["consent"]["media_storage"] is True
    media.uncheck()
    expect(page.locator("#privacy-status")).to_have_text("Saved: media storage is off.")
    assert httpx.get(f"{tab.base}/v1/me", params={"user": user}).json()["consent"]["media_storage"] is False


def test_a_stored_turns_images_and_voice_are_shown(browser: Browser, live_server: str) -> None:
    """A reopened conversation shows a kept image (fetched with the person's name), says why another is not
    kept, and gives a voice message's length (the conversation's parts stubbed: the API's are test_media's)."""
    user = f"media-{uuid.uuid4().hex[:8]}"
    body = {"model": "ember-instant", "user": user, "messages": [{"role": "user", "content": "Look"}], "max_tokens": 4}
    conversation = httpx.post(f"{live_server}/v1/chat/completions", json=body, timeout=120).headers[
        "x-ember-conversation-id"
    ]
    detail = httpx.get(f"{live_server}/v1/conversations/{conversation}", params={"user": user}).json()
    url = f"/v1/conversations/{conversation}/media/{'ab' * 32}"
    image = {"type": "image", "sha256": "ab" * 32, "mime": "image/png", "width": 8, "height": 8, "bytes": 80}
    detail["messages"][0]["parts"] = [
        {**image, "stored": True, "url": url, "description": "[Image 1]"},
        {**image, "stored": False, "not_stored": "too_large", "description": "[Image 2]"},
        {"type": "audio", "transcript": "Look", "language": "en", "duration": 1.5},
    ]
    png = io.BytesIO()
    PILImage.new("RGB", (8, 8), (0, 128, 0)).save(png, format="PNG")
    fetched: list[str] = []

    def media(route: Route) -> None:
        fetched.append(route.request.url)
        route.fulfill(content_type="image/png", body=png.getvalue())

    tab = Tab(browser, live_server, user=user)
    page = tab.open()
    page.route(re.compile(rf"/v1/conversations/{conversation}(\?|$)"), lambda route: route.fulfill(json=detail))
    page.route(re.compile(r"/media/(ab){32}"), media)
    page.locator("#conversations button.conversation").first.click()
    turn = page.locator("article.message.user")
    expect(turn.locator(".note")).to_have_text(
        ["Image not kept: too large (its description was kept).", "Voice message, 1.5 s."]
    )
    page.wait_for_function("document.querySelector('article.message.user img.thumb')?.naturalWidth === 8")
    assert fetched == [f"{live_server}{url}?user={user}"]
    tab.close()
