"""The web UI's extras in a real browser: copy buttons on answers and their code blocks (read back from the
clipboard), the keyboard shortcuts and their dialog, each answer's details on hover (mode, route, tokens, time),
and memory proposals ("Remember this?": Save keeps the fact, used in a later conversation; No keeps nothing).
On the fake engine answering with its whole prompt, so the memory a request was given can be seen in its answer;
streams the page must render exactly are scripted."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ember.api.app import create_app

from .conftest import make_settings, serve_in_thread
from .web_support import Tab, piece, sse

ECHO = {"engine": "fake", "model": "fake", "options": {"echo_prompt": True}}
ANSWER = "Here is a snippet:\n\n```python\nprint('<b>hi</b>')\nx = 1\n```\n\nAnd **more**."
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 3,
    "total_tokens": 15,
    "completion_tokens_details": {"reasoning_tokens": 2},
}


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("extras"), chat_fast=ECHO, chat=ECHO)
    with serve_in_thread(create_app(settings)) as base:
        yield base


@pytest.fixture
def echo_tab(browser: Browser, echo_server: str) -> Iterator[Tab]:
    tab = Tab(browser, echo_server, user=f"extras-{uuid.uuid4().hex[:8]}")
    yield tab
    tab.close()


def scripted(page: Page, *chunks: dict[str, Any]) -> None:
    """Answer the page's next chat requests with `chunks`."""
    page.route(
        "**/v1/chat/completions", lambda route: route.fulfill(content_type="text/event-stream", body=sse(*chunks))
    )


def clipboard(page: Page) -> str:
    return str(page.evaluate("navigator.clipboard.readText()"))


def test_copy_buttons_copy_an_answer_and_its_code_as_written(echo_tab: Tab) -> None:
    echo_tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=echo_tab.base)
    page = echo_tab.open()
    scripted(page, piece(ANSWER[:25]), piece(ANSWER[25:], finish="stop"))
    echo_tab.send("Show me some code")
    answer = echo_tab.answer()
    code = answer.get_by_role("button", name="Copy this code")
    expect(code).to_have_count(1)
    code.click()
    expect(code).to_have_text("Copied")
    assert clipboard(page) == "print('<b>hi</b>')\nx = 1"  # the code, unescaped, without the fence
    whole = answer.get_by_role("button", name="Copy this answer")
    whole.click()
    expect(whole).to_have_text("Copied")
    assert clipboard(page) == ANSWER  # the raw Markdown
    expect(whole).to_have_text("Copy")  # for a moment only
    page.evaluate("""() => {  // a page served over plain http on a network has no clipboard API
        Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true});
        document.addEventListener('copy', (event) => {
            const box = event.target;
            window.copied = box.value.slice(box.selectionStart, box.selectionEnd);
        });
    }""")
    code.click()
    expect(code).to_have_text("Copied")
    assert page.evaluate("window.copied") == "print('<b>hi</b>')\nx = 1"
    expect(page.locator("textarea[aria-hidden=true]")).to_have_count(0)  # the helper box is gone again


def test_shortcuts_are_listed_in_a_dialog_and_work(echo_tab: Tab) -> None:
    page = echo_tab.open()
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    keys = dialog.locator(".shortcut-list dt")
    for shown in ("Enter", "Shift+Enter", "Esc", "/", "Ctrl+Shift+O", "?"):
        expect(keys.filter(has_text=re.compile(rf"^{re.escape(shown)}$")).first).to_be_visible()
    expect(dialog.locator("dd")).to_contain_text(["Send the message (in the message box)", "Start a new chat"])
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Shortcuts").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    box = page.locator("#message")
    page.keyboard.press("/")
    expect(box).to_be_focused()
    page.keyboard.type("Why? /")  # in the message box, "?" and "/" are typed
    expect(box).to_have_value("Why? /")
    expect(dialog).to_be_hidden()
    box.press("Enter")
    echo_tab.answer()
    expect(page.locator("#conversations button.conversation")).to_have_count(1)
    box.press("Control+Shift+O")  # works in the message box too
    expect(page.locator("article.message")).to_have_count(0)
    expect(page.locator("#welcome")).to_be_visible()
    expect(box).to_be_focused()
    echo_tab.send("A new one")
    echo_tab.answer()
    assert "conversation_id" not in echo_tab.sent[1]  # a new conversation


def test_escape_stops_an_answer(browser: Browser, tmp_path: Path) -> None:
    slow = {"engine": "fake", "model": "fake", "options": {"replies": ["word " * 400], "delay_s": 0.05}}
    with serve_in_thread(create_app(make_settings(tmp_path, chat_fast=slow))) as base:
        tab = Tab(browser, base)
        page = tab.open()
        page.select_option("#mode", "ember-instant")
        tab.send("Tell me a long story")
        answer = page.locator("article.message.assistant").last
        expect(answer.locator(".markdown")).to_contain_text("word")
        page.keyboard.press("Escape")
        expect(answer).to_have_attribute("data-finish", "stopped")
        expect(page.locator("#send")).to_be_visible()
        tab.close()


def test_an_answers_details_show_on_hover(echo_tab: Tab) -> None:
    page = echo_tab.open()
    route = {"target": "ember-thinking", "reason": "several steps", "effort": "low", "signals": {}}
    scripted(page, piece(route=route), piece("Four."), piece(finish="stop"), {"choices": [], "usage": USAGE})
    echo_tab.send("What is 2 + 2?")
    answer = echo_tab.answer()
    details = answer.locator(".answer-details")
    page.mouse.move(0, 0)
    expect(details).to_be_hidden()
    answer.hover()
    expect(details).to_be_visible()
    expect(details).to_have_text(
        re.compile(
            r"^mode ember-auto · route thinking \(low\): several steps · 12 tokens in, 3 out \(2 reasoning\)"
            r" · \d+\.\d s, first token \d+\.\d\d s$"
        )
    )
    page.mouse.move(0, 0)
    expect(details).to_be_hidden()
    page.unroute("**/v1/chat/completions")
    page.select_option("#mode", "ember-instant")
    echo_tab.send("Hello")
    live = echo_tab.answer()
    live.hover()
    expect(live.locator(".answer-details")).to_have_text(
        re.compile(r"^mode ember-instant · \d+ tokens in, \d+ out · \d+\.\d s, first token \d+\.\d\d s$")
    )
    page.reload()  # a stored answer: its tokens, no time
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.locator("#conversations button.conversation").first.click()
    stored = page.locator("article.message.assistant").last
    stored.hover()
    expect(stored.locator(".answer-details")).to_have_text(re.compile(r"^mode ember-instant · \d+ tokens in, \d+ out$"))


def memories(tab: Tab, user: str) -> list[str]:
    return [m["text"] for m in httpx.get(f"{tab.base}/v1/me/memories", params={"user": user}).json()["data"]]


def test_a_proposed_memory_is_saved_and_used_or_declined(echo_tab: Tab) -> None:
    page = echo_tab.open()
    user = page.evaluate("localStorage.getItem('ember.user')")
    saves: list[str] = []
    page.on("request", lambda r: saves.append(r.url) if r.method == "POST" and "/v1/me/memories" in r.url else None)
    echo_tab.send("I'm vegetarian.")
    expect(echo_tab.answer().locator(".proposal")).to_have_count(0)  # memory is off: nothing is proposed
    page.get_by_role("link", name="Privacy").click()
    page.locator("input[data-flag=memory]").check()
    expect(page.locator("#privacy-status")).to_have_text("Saved: memory is on.")
    page.get_by_role("link", name="Back to the chat").click()
    echo_tab.send("I'm vegetarian, what should I cook tonight?")
    answer = echo_tab.answer()
    proposal = answer.get_by_role("group", name="Memory proposal")
    expect(proposal).to_contain_text("Remember this? “I'm vegetarian”")
    assert memories(echo_tab, user) == []  # only proposed
    proposal.get_by_role("button", name="Save").click()
    expect(answer.locator(".proposal")).to_have_text("Saved to your memory: “I'm vegetarian”")
    assert memories(echo_tab, user) == ["I'm vegetarian"]
    page.get_by_role("link", name="Privacy").click()
    expect(page.locator("#memories li")).to_have_text(re.compile(r"^I'm vegetarian\s+Forget$"))
    page.get_by_role("link", name="Back to the chat").click()
    page.get_by_role("button", name="New chat").click()
    echo_tab.send("What should I cook tonight?")
    later = echo_tab.answer()  # the fake engine answers with the prompt it was given: the memory is in it
    assert "conversation_id" not in echo_tab.sent[-1]
    expect(later.locator(".markdown")).to_contain_text("from your memory")
    expect(later.locator(".markdown li", has_text="I'm vegetarian")).to_have_count(1)
    expect(later.locator(".proposal")).to_have_count(0)
    echo_tab.send("I live in Lyon.")
    declined = echo_tab.answer()
    declined.get_by_role("group", name="Memory proposal").get_by_role("button", name="No").click()
    expect(declined.locator(".proposal")).to_have_count(0)
    assert memories(echo_tab, user) == ["I'm vegetarian"] and len(saves) == 1
    page.get_by_role("link", name="Privacy").click()
    page.get_by_role("button", name="Forget “I'm vegetarian”").click()
    expect(page.locator("#privacy-status")).to_have_text("Forgotten.")
    page.get_by_role("link", name="Back to the chat").click()
    page.get_by_role("button", name="New chat").click()
    echo_tab.send("What should I cook tomorrow?")
    forgotten = echo_tab.answer()  # the prompt it was given no longer holds the fact
    expect(forgotten.locator(".markdown")).to_contain_text("What should I cook tomorrow?")
    expect(forgotten.locator(".markdown")).not_to_contain_text("vegetarian")
    assert memories(echo_tab, user) == []
