"""The web UI at `/` in a real browser (its files, headers and stream extensions: tests/test_web_api.py).

Browser tests drive Debian's chromium with Playwright (`executable_path` is the system binary; no browser
is ever downloaded, so PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 holds) against the session's `live_server`,
`ember serve` with the real SmolLM2-135M, and against a keyed server on the fake engine for the API key
field and a 429. The microphone is chromium's fake capture device playing a sentence espeak-ng spoke,
recorded by the page's own MediaRecorder code path and transcribed by the real Whisper tiny.en.
Every page fails its test on a script error or a Content-Security-Policy violation.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import (
    Browser,
    FilePayload,
    Route,
    expect,
)

from ember.api.app import create_app
from ember.config import Tier

from .conftest import make_settings, serve_in_thread
from .web_support import ANSWER_S, Tab, piece, sse

PNG = base64.b64decode(  # a 2x2 red PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


def test_markdown_is_rendered_and_html_escaped(tab: Tab) -> None:
    page = tab.open()
    source = "# Title\n**bold** and `<b>code</b>` <img src=x onerror=alert(1)>\n\n- one\n- [link](javascript:alert(1))"
    html = page.evaluate("(s) => import('/web/js/markdown.js').then((m) => m.renderMarkdown(s))", source)
    assert "<h3>Title</h3>" in html and "<strong>bold</strong>" in html
    assert "<code>&lt;b&gt;code&lt;/b&gt;</code>" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<li>[link](javascript:alert(1))</li>" in html and "<a " not in html


CITATIONS = [
    {
        "index": 1,
        "id": "p1",
        "title": "Steel kettle",
        "url": "https://example.org/p1",
        "source": "catalogue",
        "kind": "product",
        "meta": {"price": 12.5, "currency": "USD"},
    },
    {
        "index": 2,
        "id": "post9",
        "title": "Loved it",
        "url": "",
        "source": "posts",
        "kind": "post",
        "meta": {"author": "alice"},
    },
    {
        "index": 3,
        "id": "ICD-10-CM:I21.9",
        "title": "Acute myocardial infarction",
        "url": "javascript:alert(1)",
        "source": "ICD-10-CM",
        "kind": "source",
    },
]
STEP = {
    "agent": 1,
    "phase": "draft",
    "text": "7 has no divisors",
    "answer": "yes",
    "usage": {"completion_tokens": 9},
    "started_s": 0.0,
    "ended_s": 1.5,
}


def test_extensions_and_an_in_band_error_are_rendered(tab: Tab) -> None:
    """The page's handling of what a stream may carry, on scripted streams: citation cards (price, author,
    source; no link for a URL that is not http), the trace, ember-auto's route, and an error mid-answer."""
    page = tab.open()
    bodies = [
        sse(
            piece(route={"target": "ember-thinking", "reason": "several steps", "effort": "low"}),
            piece("Kettles [1], a review [2] and a code [3]."),
            piece(finish="stop", citations=CITATIONS, trace=[STEP]),
        ),
        sse(piece("Half an ans"), {"error": {"message": "the engine failed", "type": "server_error"}}),
    ]
    page.route(
        "**/v1/chat/completions", lambda route: route.fulfill(content_type="text/event-stream", body=bodies.pop(0))
    )
    tab.send("Which kettle?")
    answer = tab.answer()
    expect(answer.locator(".meta")).to_have_text("auto → thinking (low)")
    cards = answer.locator("ol.citations > li")
    expect(cards).to_have_count(3)
    expect(cards.nth(0)).to_have_attribute("data-kind", "product")
    expect(cards.nth(0).locator(".card-detail")).to_have_text(re.compile(r"^\$12\.50 · catalogue$"))
    assert cards.nth(0).locator("a").get_attribute("href") == "https://example.org/p1"
    expect(cards.nth(1).locator(".card-detail")).to_have_text("by alice")
    expect(cards.nth(2).locator(".card-detail")).to_have_text("ICD-10-CM")
    assert cards.nth(2).locator("a").count() == 0  # a javascript: URL never becomes a link
    expect(answer.locator("details.trace summary")).to_have_text("Agent trace (1 pass)")
    expect(answer.locator(".trace-head")).to_have_text("Agent 1 — draft · 1.5 s · 9 tokens")
    tab.send("And then?")
    broken = tab.answer()
    assert broken.get_attribute("data-finish") == "error"
    expect(broken.locator(".markdown")).to_have_text("Half an ans")  # what came is kept
    expect(broken.locator(".error-note")).to_have_text("the engine failed")
    expect(page.locator("#send")).to_be_visible()


def test_a_message_streams_in_and_the_conversation_is_listed(tab: Tab) -> None:
    page = tab.open()
    models = httpx.get(f"{tab.base}/v1/models").json()["data"]
    expect(page.locator("#mode option")).to_have_count(len([m for m in models if m["task"] == "chat"]))
    page.select_option("#mode", "ember-instant")
    # count the distinct lengths the answer's text goes through while it streams
    page.evaluate("""() => {
        window.lengths = new Set();
        new MutationObserver(() => {
            const body = document.querySelector('article.message.assistant:last-child .markdown');
            if (body) window.lengths.add(body.textContent.length);
        }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
    }""")
    box = page.locator("#message")
    box.fill("Write two sentences about the sea.")
    box.press("Shift+Enter")  # a new line, not a send
    box.press_sequentially("Thank you")
    assert box.input_value() == "Write two sentences about the sea.\nThank you" and tab.sent == []
    box.press("Enter")
    expect(page.locator("#stop")).to_be_visible()
    answer = tab.answer()
    assert answer.get_attribute("data-finish") in {"stop", "length"}
    expect(page.locator("#send")).to_be_visible()
    assert len(answer.locator(".markdown").inner_text().strip()) > 0
    assert len([n for n in page.evaluate("[...window.lengths]") if n > 0]) >= 2, "the answer did not stream"
    sent_text = page.locator("article.message.user .text").first.inner_text()
    assert sent_text == "Write two sentences about the sea.\nThank you"
    (body,) = tab.sent
    assert body["model"] == "ember-instant" and body["stream"] is True and "conversation_id" not in body
    item = page.locator("#conversations button.conversation")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Write two sentences about the sea.")
    expect(item).to_have_attribute("aria-current", "true")


def greedy(body: str | None) -> str:
    """A chat request body made deterministic: temperature 0 and a fixed seed."""
    return json.dumps({**json.loads(body or "{}"), "temperature": 0, "seed": 7})


def test_switching_mode_shows_reasoning_collapsed_and_the_trace(tab: Tab) -> None:
    page = tab.open()
    tab.send("Hello!")
    tab.answer()
    page.select_option("#mode", "ember-thinking")
    page.select_option("#effort", "low")
    # greedy decoding: sampled, the tiny model once ended its thinking at once (an answer with no reasoning)
    page.route("**/v1/chat/completions", lambda route: route.continue_(post_data=greedy(route.request.post_data)))
    tab.send("What is 2 + 3?")
    answer = tab.answer()
    _, second = tab.sent
    assert second["model"] == "ember-thinking" and second["reasoning_effort"] == "low"
    listed = page.locator("#conversations button.conversation")
    expect(listed).to_have_count(1)
    assert second["conversation_id"] == listed.get_attribute("data-id")
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    reasoning = answer.locator("details.reasoning")
    expect(reasoning).to_have_count(1)
    assert reasoning.get_attribute("open") is None  # collapsed
    expect(reasoning.locator("summary")).to_have_text(re.compile(r"Reasoning \(\d+ words\)"))
    reasoning.locator("summary").click()
    expect(reasoning.locator(".reasoning-body")).to_be_visible()
    assert reasoning.locator(".reasoning-body").inner_text().strip()
    page.select_option("#mode", "ember-contemplating")
    page.check("#trace-toggle")
    tab.send("Is 7 a prime number?")
    answer = tab.answer()
    assert tab.sent[-1]["include_trace"] is True and tab.sent[-1]["model"] == "ember-contemplating"
    expect(answer.locator("details.trace summary")).to_have_text(re.compile(r"Agent trace \(\d+ passes\)"))
    assert answer.locator("details.trace li.trace-step").count() >= 3  # two agents, then the aggregator


def test_an_attached_image_is_sent_as_a_data_uri_and_the_outcome_shown(tab: Tab) -> None:
    page = tab.open()
    page.select_option("#mode", "ember-instant")
    page.set_input_files("#image-input", files=[FilePayload(name="red.png", mimeType="image/png", buffer=PNG)])
    expect(page.locator("#attachments li.chip-image")).to_have_count(1)
    page.evaluate(  # drop a second image on the chat, as a person dragging a file would
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
            const zone = document.getElementById('chat-view');
            zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        base64.b64encode(PNG).decode(),
    )
    expect(page.locator("#attachments li.chip-image")).to_have_count(2)
    page.get_by_role("button", name="Remove dropped.png").click()
    expect(page.locator("#attachments li.chip-image")).to_have_count(1)
    tab.send("What colour is this picture?")
    parts = tab.sent[0]["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What colour is this picture?"}
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    expect(page.locator("#attachments li")).to_have_count(0)
    expect_outcome(tab, tab.sent[0])  # an answer, or an error while this server cannot read images
    broken = FilePayload(name="broken.png", mimeType="image/png", buffer=b"not a png at all")
    page.set_input_files("#image-input", files=[broken])
    tab.send("And this one?")
    assert expect_outcome(tab, tab.sent[1]) != 200  # never an answer: the server's refusal is shown


def expect_outcome(tab: Tab, body: dict[str, Any]) -> int:
    """What the server makes of `body` (asked directly), and that the page showed it: the answer, or the
    server's own error message with the turn marked as not sent. Returns the server's status."""
    page = tab.page
    expect(page.locator("#send")).to_be_visible(timeout=ANSWER_S)
    request = {k: v for k, v in body.items() if k != "conversation_id"} | {"stream": False}
    direct = httpx.post(f"{tab.base}/v1/chat/completions", json=request, timeout=120)
    user_turns = page.locator("article.message.user")
    if direct.status_code == 200:
        assert tab.answer().get_attribute("data-finish") in {"stop", "length"}
        assert "failed" not in (user_turns.last.get_attribute("class") or "")
    else:
        expect(page.locator("#error")).to_contain_text(direct.json()["error"]["message"])
        expect(user_turns.last).to_have_class(re.compile(r"\bfailed\b"))
        answered = page.locator("article.message.user:not(.failed)").count()
        expect(page.locator("article.message.assistant")).to_have_count(answered)  # none for a refused turn
    return direct.status_code


def test_a_recorded_voice_message_is_transcribed_and_answered(tab: Tab) -> None:
    tab.context.grant_permissions(["microphone"])
    page = tab.open()
    record = page.get_by_role("button", name="Record a voice message")
    record.click()
    expect(page.get_by_role("button", name="Stop recording")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(4500)  # the fake microphone plays the spoken question (about 2 s) in a loop
    page.get_by_role("button", name="Stop recording").click()
    expect(page.locator("#attachments li.chip-audio")).to_have_count(1)
    page.locator("#send").click()
    heard = page.locator("article.message.user .transcript")
    expect(heard).to_contain_text(re.compile(r"capital|france", re.IGNORECASE), timeout=ANSWER_S)
    answer = tab.answer()
    assert answer.get_attribute("data-finish") in {"stop", "length"}
    (part,) = tab.sent[0]["messages"][-1]["content"]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] in {"webm", "ogg"}
    assert len(base64.b64decode(part["input_audio"]["data"])) > 10_000  # seconds of Opus, not an empty clip


def engine_active(base: str, role: str) -> float:
    metrics = httpx.get(f"{base}/metrics").text
    match = re.search(rf'^ember_engine_active\{{role="{role}"\}} (\S+)$', metrics, re.MULTILINE)
    assert match, metrics
    return float(match.group(1))


def rewrite(**fields: Any) -> Callable[[Route], None]:
    """A route handler that lets the page's request through with `fields` set (sampling, length)."""

    def handler(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, **fields}))

    return handler


def test_stop_cancels_the_generation(tab: Tab) -> None:
    page = tab.open()
    page.select_option("#mode", "ember-instant")
    # greedy sampling: the tiny model's story is the same every run, and runs on until the context is full
    page.route("**/v1/chat/completions", rewrite(temperature=0, seed=1))
    tab.send("Write a long story about a dragon who learns to bake bread.")
    answer = page.locator("article.message.assistant").last
    expect(answer.locator(".markdown")).not_to_have_text("", timeout=ANSWER_S)
    page.get_by_role("button", name="Stop").click()
    expect(answer).to_have_attribute("data-finish", "stopped")
    expect(answer.locator(".note")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    stopped = answer.locator(".markdown").inner_text()
    page.wait_for_timeout(1500)
    assert answer.locator(".markdown").inner_text() == stopped  # it stopped growing
    deadline = time.monotonic() + 10
    while engine_active(tab.base, "chat-fast") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert engine_active(tab.base, "chat-fast") == 0  # the server freed the engine
    page.unroute("**/v1/chat/completions")
    page.route("**/v1/chat/completions", rewrite(max_tokens=16))  # a short one
    tab.send("Thanks!")  # the page is ready for the next message, in the same conversation
    assert [m["role"] for m in tab.sent[-1]["messages"]] == ["user", "assistant", "user"]  # the cut answer kept
    assert tab.answer().get_attribute("data-finish") in {"stop", "length"}


def test_privacy_page_changes_consent_exports_and_deletes(tab: Tab) -> None:
    page = tab.open()
    tab.send("Remember that my favourite colour is teal.")
    tab.answer()
    user = page.evaluate("localStorage.getItem('ember.user')")
    page.get_by_role("link", name="Privacy").click()
    expect(page.locator("#privacy-view")).to_be_visible()
    expect(page.locator("#privacy-person")).to_have_text(user)
    history = page.locator("input[data-flag=history]")
    personalisation = page.locator("input[data-flag=personalisation]")
    expect(history).to_be_checked()
    expect(personalisation).not_to_be_checked()
    personalisation.check()
    expect(page.locator("#privacy-status")).to_have_text("Saved: personalisation is on.")
    assert httpx.get(f"{tab.base}/v1/me", params={"user": user}).json()["consent"]["personalisation"] is True
    with page.expect_download() as download:
        page.get_by_role("button", name="Export my data").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["id"] == user and exported["consent"][user]["personalisation"] is True
    (conversation,) = exported["conversations"]
    assert conversation["messages"][0]["content"] == "Remember that my favourite colour is teal."
    page.get_by_role("button", name="Delete my data").click()
    page.get_by_role("button", name="Yes, delete everything").click()
    expect(page.locator("#privacy-status")).to_have_text("Deleted: 2 messages, 1 conversation, 1 consent record.")
    expect(personalisation).not_to_be_checked()  # the defaults apply again
    assert httpx.get(f"{tab.base}/v1/conversations", params={"user": user}).json()["data"] == []
    expect(page.locator("#conversations-empty")).to_be_visible()


def test_phone_width_keeps_everything_reachable(browser: Browser, live_server: str) -> None:
    tab = Tab(browser, live_server, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = tab.open()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
        expect(page.locator("#sidebar")).to_be_hidden()
        menu = page.get_by_role("button", name="Show conversations")
        menu.click()
        expect(page.locator("#sidebar")).to_be_visible()
        expect(menu).to_have_attribute("aria-expanded", "true")
        menu.press("Escape")
        expect(page.locator("#sidebar")).to_be_hidden()
        for control in ("#message", "#send", "#record", "#attach", "#mode"):
            box = page.locator(control).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, control
    finally:
        tab.close()


# --- keys and rate limits (a keyed server on the fake engine) ---


def test_api_key_field_and_a_429_with_its_retry_time(browser: Browser, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake"}).model_copy(
        update={"require_keys": True, "tiers": {"local": Tier(), "tiny": Tier(requests_per_minute=1)}}
    )
    app = create_app(settings)
    with serve_in_thread(app) as base:
        secret, _ = app.state.keys.create("web-test", ("chat",), "tiny")
        tab = Tab(browser, base)
        try:
            page = tab.page
            page.goto(base + "/")
            expect(page.locator("#error")).to_contain_text("needs a valid API key")
            expect(page.locator("#settings")).to_be_visible()  # opened for the key
            page.get_by_label("API key", exact=True).fill(secret)
            page.get_by_role("button", name="Save").click()
            expect(page.locator("#mode option")).not_to_have_count(0)
            assert page.evaluate("localStorage.getItem('ember.apiKey')") == secret
            tab.send("hello")
            expect(tab.answer().locator(".markdown")).to_have_text("You said: hello")
            with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")) as refused:
                tab.send("again")
            retry = int(refused.value.headers["retry-after"])
            assert refused.value.status == 429 and 0 < retry <= 60
            expect(page.locator("#error")).to_contain_text(f"Rate limit reached: you can send again in {retry} s.")
            expect(page.locator("#error")).to_contain_text("requests per minute")  # the server's own words
            expect(page.locator("article.message.user.failed")).to_have_count(1)
        finally:
            tab.close()


# --- the API reference (a server on the fake engine) ---


def test_api_reference_renders_from_this_server_under_the_csp(browser: Browser, tmp_path: Path) -> None:
    """Swagger UI at /docs draws every route from /openapi.json with only this server's files: no script
    error, no CSP violation, no request to another origin."""
    with serve_in_thread(create_app(make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f"}))) as base:
        tab = Tab(browser, base)
        elsewhere: list[str] = []
        tab.page.on("request", lambda r: None if r.url.startswith(base + "/") else elsewhere.append(r.url))
        try:
            tab.page.goto(base + "/docs")
            chat = tab.page.locator(".opblock-summary-path", has_text="/v1/chat/completions")
            expect(chat.first).to_be_visible()
            chat.first.click()  # an operation opens, with its request body's schema
            expect(tab.page.locator(".opblock-body").first).to_be_visible()
            assert tab.page.locator(".opblock").count() >= 10
            assert elsewhere == []
        finally:
            tab.close()
