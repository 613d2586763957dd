"""What the browser tests share: the system chromium, a `Tab` that records a page's chat requests and fails on
script errors or CSP violations, and helpers that script a server-sent-event stream."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect

CHROMIUM = Path("/usr/bin/chromium")
ANSWER_S = 120_000  # ms: the longest a tiny-model answer may take on a busy 2-core machine


class Tab:
    """One page in a fresh browser context, with the chat requests it sent and the problems it logged."""

    def __init__(self, browser: Browser, base: str, *, user: str | None = None, **context: Any) -> None:
        self.base = base
        self.context = browser.new_context(accept_downloads=True, **context)
        if user is not None:  # the person's name, as the settings dialog would have stored it
            self.context.add_init_script(f"localStorage.setItem('ember.user', {json.dumps(user)})")
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.sent: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.page.on("request", self._request)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.problems.append(f"script error: {err}"))

    def _request(self, request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/chat/completions"):
            self.sent.append(json.loads(request.post_data or "{}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:  # HTTP errors are tested
            self.problems.append(message.text)

    def open(self, fragment: str = "") -> Page:
        self.page.goto(self.base + "/" + fragment)
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        return self.page

    def send(self, text: str) -> None:
        self.page.locator("#message").fill(text)
        self.page.locator("#message").press("Enter")

    def answer(self) -> Any:
        """The last answer, once it is over."""
        answer = self.page.locator("article.message.assistant").last
        expect(answer).to_have_attribute("data-finish", re.compile(r".+"), timeout=ANSWER_S)
        return answer

    def close(self) -> None:
        self.context.close()
        assert self.problems == [], self.problems


def sse(*chunks: dict[str, Any]) -> str:
    """An SSE body as the server streams it: `chat.completion.chunk` objects, then [DONE]."""
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "ember-auto"}
    return "".join(f"data: {json.dumps({**base, **chunk})}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


def piece(content: str = "", finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {"content": content} if content else {}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}


def calls(*pieces: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """A chunk carrying streamed tool-call pieces."""
    return {"choices": [{"index": 0, "delta": {"tool_calls": list(pieces)}, "finish_reason": finish, "logprobs": None}]}
