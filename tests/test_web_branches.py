"""Branches in a real browser: regenerating the last answer and editing a message (in place) add versions,
shown as "1/2" between arrows that switch between them, and what is shown is kept by the server. On the fake
engine with scripted answers, so every version can be told apart, and once on the real tiny model."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Locator, expect

from ember.api.app import create_app

from .conftest import make_settings, serve_in_thread
from .web_support import Tab

REPLIES = ["Answer one", "Answer two", "Answer three", "Answer four"]


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[str, FastAPI]]:
    app = create_app(make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake"}))
    with serve_in_thread(app) as base:
        app.state.pipeline.engines.loaded()["chat-fast"].script(REPLIES)  # after the health probe's turn
        yield base, app


def count(turn: Locator) -> Locator:
    return turn.locator(".branch-count")


def test_regenerate_and_edit_make_versions_to_switch_between(browser: Browser, scripted: tuple[str, FastAPI]) -> None:
    base, _ = scripted
    user = f"branches-{uuid.uuid4().hex[:8]}"
    tab = Tab(browser, base, user=user)
    page = tab.open()
    page.select_option("#mode", "ember-instant")
    for text in ("Where should we camp?", "And in winter?"):
        tab.send(text)
        tab.answer()
    answers, questions = page.locator("article.message.assistant"), page.locator("article.message.user")
    expect(answers.last.locator(".markdown")).to_have_text("Answer two")
    expect(page.get_by_role("button", name="Regenerate this answer")).to_have_count(1)  # the last answer's only
    expect(page.get_by_role("button", name="Edit this message")).to_have_count(2)
    expect(page.locator(".branch-count")).to_have_count(0)

    answers.last.get_by_role("button", name="Regenerate this answer").click()
    expect(answers.last.locator(".markdown")).to_have_text("Answer three")
    expect(count(answers.last)).to_have_text("2/2")
    assert tab.sent[-1]["messages"] == [] and tab.sent[-1]["replace"] == 3
    answers.last.get_by_role("button", name="Previous version").click()
    expect(answers.last.locator(".markdown")).to_have_text("Answer two")
    expect(count(answers.last)).to_have_text("1/2")

    questions.nth(1).get_by_role("button", name="Edit this message").click()
    box = questions.nth(1).get_by_role("textbox", name="Edit your message")
    expect(box).to_have_value("And in winter?")
    box.fill("And in spring?")
    box.press("Enter")
    expect(answers.last.locator(".markdown")).to_have_text("Answer four")
    expect(questions.nth(1).locator(".text")).to_have_text("And in spring?")
    expect(count(questions.nth(1))).to_have_text("2/2")
    expect(answers).to_have_count(2)  # the old branch's answer is not shown
    assert tab.sent[-1]["messages"] == [{"role": "user", "content": "And in spring?"}] and tab.sent[-1]["replace"] == 2

    questions.nth(1).get_by_role("button", name="Previous version").click()
    expect(questions.nth(1).locator(".text")).to_have_text("And in winter?")
    expect(answers.last.locator(".markdown")).to_have_text("Answer three")  # the branch's newest answer
    expect(count(answers.last)).to_have_text("2/2")

    page.reload()  # the branch shown is the server's
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.locator("#conversations button.conversation").first.click()
    expect(questions.nth(1).locator(".text")).to_have_text("And in winter?")
    expect(count(questions.nth(1))).to_have_text("1/2")
    (row,) = httpx.get(f"{base}/v1/conversations", params={"user": user}).json()["data"]
    stored = httpx.get(f"{base}/v1/conversations/{row['id']}", params={"user": user}).json()["messages"]
    assert [(m["content"], m["siblings"]) for m in stored] == [
        ("Where should we camp?", [0]),
        ("Answer one", [1]),
        ("And in winter?", [2, 5]),
        ("Answer three", [3, 4]),
    ]
    tab.close()


def test_an_edit_can_be_cancelled_and_a_refused_one_restores_the_branch(
    browser: Browser, scripted: tuple[str, FastAPI]
) -> None:
    base, _ = scripted
    tab = Tab(browser, base, user=f"cancel-{uuid.uuid4().hex[:8]}")
    page = tab.open()
    page.select_option("#mode", "ember-instant")
    tab.send("Hello there")
    tab.answer()
    question = page.locator("article.message.user").first
    question.get_by_role("button", name="Edit this message").click()
    question.get_by_role("textbox", name="Edit your message").press("Escape")
    expect(question.locator(".text")).to_have_text("Hello there")
    expect(question.locator("form")).to_have_count(0)
    assert len(tab.sent) == 1
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(
            status=404,
            content_type="application/json",
            body=json.dumps(
                {"error": {"message": "not found", "type": "invalid_request_error", "param": None, "code": None}}
            ),
        ),
    )
    question.get_by_role("button", name="Edit this message").click()
    question.get_by_role("textbox", name="Edit your message").fill("Changed")
    question.get_by_role("button", name="Send").click()
    expect(page.locator("#error")).to_contain_text("not found")
    expect(page.locator("article.message.user .text")).to_have_text(["Hello there"])  # the stored branch again
    expect(page.locator("article.message.assistant .markdown")).to_have_text(["Answer one"])
    tab.close()


def test_versions_on_the_real_model(browser: Browser, live_server: str) -> None:
    """The same clicks on the real SmolLM2-135M: its own answers, so the test reads the counts and what the
    server kept, not the words."""
    user = f"branches-live-{uuid.uuid4().hex[:8]}"
    tab = Tab(browser, live_server, user=user)
    page = tab.open()
    page.select_option("#mode", "ember-instant")
    tab.send("Name a fruit.")
    tab.answer()
    answers, questions = page.locator("article.message.assistant"), page.locator("article.message.user")
    answers.last.get_by_role("button", name="Regenerate this answer").click()
    expect(count(answers.last)).to_have_text("2/2", timeout=120_000)
    tab.answer()
    answers.last.get_by_role("button", name="Previous version").click()
    expect(count(answers.last)).to_have_text("1/2")
    questions.first.get_by_role("button", name="Edit this message").click()
    box = questions.first.get_by_role("textbox", name="Edit your message")
    box.fill("Name a vegetable.")
    box.press("Enter")
    expect(count(questions.first)).to_have_text("2/2", timeout=120_000)
    tab.answer()
    expect(questions.first.locator(".text")).to_have_text("Name a vegetable.")
    (row,) = httpx.get(f"{live_server}/v1/conversations", params={"user": user}).json()["data"]
    stored = httpx.get(f"{live_server}/v1/conversations/{row['id']}", params={"user": user}).json()["messages"]
    assert stored[0]["content"] == "Name a vegetable." and len(stored[0]["siblings"]) == 2
    assert len(stored) == 2 and stored[1]["content"] == answers.last.locator(".markdown").inner_text().strip()
    tab.close()
