"""Screenshots of the web UI for the README and docs/ui.md:
`python scripts/screenshots.py [--url URL] [--model ROLE] [--out DIR] [--only chat|extras ...]`.

Without `--url` it starts `ember serve` on a free loopback port in a temporary data directory, with one packaged
chat model (`--model`, default chat-fast) as both `chat-fast` and `chat`, and stops it afterwards. It drives
Debian's chromium (`--chromium`, default /usr/bin/chromium) with Playwright; no browser is downloaded.

Views, saved as PNGs in `--out` (default docs/screenshots), in three groups (`--only` picks some; default all):
`chat`: `chat.png` (an answer), `branches.png` (that answer regenerated: its second version of two),
`reasoning.png` (ember-thinking with its reasoning opened), `privacy.png` (the privacy page) and `phone.png` (the
chat on a phone-sized screen); `extras`: `details.png` (an answer with a code block, its Copy buttons and, under
the pointer, its details), `memory.png` ("Remember this?" under an answer; the screenshots' person has their
memory consent turned on) and `shortcuts.png` (the keyboard shortcuts dialog); `history`: `history.png` (a
photo of a car, drawn here, asked about; the conversation reopened after a reload, and a follow-up about the
photo answered from its stored description, with `media_storage` on so the reopened turn shows the kept image).
Answers come from a real model, so each run's text differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, ViewportSize, expect, sync_playwright
from tests.pictures import car_png  # run as `python -m scripts.screenshots` from the checkout

ROOT = Path(__file__).resolve().parent.parent
USER = "screenshots"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
ANSWER_MS = 240_000
CHAT_PROMPT = "Give three short facts about Paris as a bulleted list, with the key words in bold."
REASONING_PROMPT = "A train travels 120 km at 60 km/h, leaving at 3 pm. When does it arrive?"
CODE_PROMPT = "Write a short Python function that reverses a string, in a code block, then one sentence about it."
MEMORY_PROMPT = "I'm vegetarian. What could I cook tonight? Give three short ideas."
PHOTO_PROMPT = "In one sentence: what is in this photo?"
FOLLOW_UP_PROMPT = "In one sentence: what colour was the car in the photo?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ember serve exited with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=30).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{base} did not become healthy in {timeout_s:.0f} s")


@contextmanager
def ember_server(model: str) -> Iterator[str]:
    """`ember serve` with `model` as chat-fast and chat, in a temporary data directory; yields its URL."""
    spec = {"engine": "llama_cpp", "model": model, "ctx_size": 2048, "parallel": 2}
    with tempfile.TemporaryDirectory(prefix="ember-screenshots-") as data:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EMBER_")},
            "EMBER_ROLES": json.dumps({"chat-fast": spec, "chat": spec}),
            "EMBER_CONTEMPLATING_AGENTS": "2",
            "EMBER_DATA_DIR": data,
            "EMBER_PORT": str(port),
        }
        with (Path(data) / "server.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "ember.cli", "serve"], env=env, stdout=log, stderr=log)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_healthy(base, proc)
                yield base
            finally:
                proc.terminate()
                proc.wait(30)


def new_page(browser: Browser, base: str, *, phone: bool = False) -> tuple[BrowserContext, Page]:
    """A fresh light-themed page on the chat, as the screenshots' person, at desktop or phone size."""
    context = browser.new_context(
        color_scheme="light",
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
    )
    context.add_init_script(f"localStorage.setItem('ember.user', {json.dumps(USER)})")
    page = context.new_page()
    page.goto(base + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return context, page


def ask(page: Page, mode: str, text: str, effort: str = "") -> None:
    page.select_option("#mode", mode)
    page.select_option("#effort", effort)
    page.locator("#message").fill(text)
    page.locator("#message").press("Enter")
    answered(page)


def answered(page: Page) -> None:
    """Wait for the last answer to end."""
    answer = page.locator("article.message.assistant").last
    expect(answer).to_have_attribute("data-finish", re.compile("stop|length"), timeout=ANSWER_MS)
    page.locator("#message").blur()  # no focus ring in the pictures


def shoot_chat(browser: Browser, base: str, out: Path) -> list[str]:
    """The README's views: an answer, its second version, reasoning, the privacy page, the phone layout."""
    context, page = new_page(browser, base)
    ask(page, "ember-instant", CHAT_PROMPT)
    page.screenshot(path=out / "chat.png")
    page.get_by_role("button", name="Regenerate this answer").click()
    expect(page.locator(".branch-count")).to_have_text("2/2", timeout=ANSWER_MS)
    answered(page)
    page.screenshot(path=out / "branches.png")
    page.get_by_role("button", name="New chat").click()
    ask(page, "ember-thinking", REASONING_PROMPT, effort="low")
    page.locator("details.reasoning summary").last.click()
    page.locator("article.message.assistant").last.scroll_into_view_if_needed()
    page.screenshot(path=out / "reasoning.png")
    page.get_by_role("link", name="Privacy").click()
    expect(page.locator("#privacy-person")).to_have_text(USER)
    page.screenshot(path=out / "privacy.png")
    context.close()
    context, page = new_page(browser, base, phone=True)
    page.get_by_role("button", name="Show conversations").click()
    page.locator("#conversations button.conversation").last.click()  # the first conversation: the chat answer
    expect(page.locator("article.message.assistant")).to_have_count(1)
    expect(page.locator("#sidebar")).to_be_hidden()  # slid away again
    page.screenshot(path=out / "phone.png")
    context.close()
    return ["chat", "branches", "reasoning", "privacy", "phone"]


def shoot_extras(browser: Browser, base: str, out: Path) -> list[str]:
    """docs/ui.md's views: an answer's Copy buttons and details, a memory proposal, the shortcuts dialog."""
    consent = httpx.patch(f"{base}/v1/me/consent", params={"user": USER}, json={"memory": True}, timeout=30)
    consent.raise_for_status()
    context, page = new_page(browser, base)
    ask(page, "ember-instant", CODE_PROMPT)
    answer = page.locator("article.message.assistant").last
    answer.hover()
    expect(answer.locator(".answer-details")).to_be_visible()
    page.screenshot(path=out / "details.png")
    page.get_by_role("button", name="New chat").click()
    ask(page, "ember-instant", MEMORY_PROMPT)
    proposal = page.get_by_role("group", name="Memory proposal")
    expect(proposal).to_be_visible()
    proposal.scroll_into_view_if_needed()
    page.screenshot(path=out / "memory.png")
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    page.screenshot(path=out / "shortcuts.png")
    context.close()
    return ["details", "memory", "shortcuts"]


def shoot_history(browser: Browser, base: str, out: Path) -> list[str]:
    """A photo asked about, the page reloaded and the conversation reopened, then a follow-up without it."""
    consent = httpx.patch(f"{base}/v1/me/consent", params={"user": USER}, json={"media_storage": True}, timeout=30)
    consent.raise_for_status()
    context, page = new_page(browser, base)
    page.set_input_files("#image-input", files=[FilePayload(name="car.png", mimeType="image/png", buffer=car_png())])
    expect(page.locator("#attachments li.chip-image")).to_have_count(1)
    ask(page, "ember-instant", PHOTO_PROMPT)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.locator("#conversations button.conversation").first.click()  # the newest: this one
    page.wait_for_function("document.querySelector('article.message.user img.thumb')?.naturalWidth > 0")
    page.locator("#message").fill(FOLLOW_UP_PROMPT)  # nothing attached: the page holds only the turns' text
    page.locator("#message").press("Enter")
    expect(page.locator("article.message.assistant")).to_have_count(2)  # taken, not refused
    answered(page)
    page.screenshot(path=out / "history.png")
    context.close()
    return ["history"]


VIEWS = {"chat": shoot_chat, "extras": shoot_extras, "history": shoot_history}


def shoot(browser: Browser, base: str, out: Path, groups: list[str]) -> list[str]:
    return [name for group in groups for name in VIEWS[group](browser, base, out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an Ember server to use instead of starting one")
    parser.add_argument("--model", default="chat-fast", help="the packaged chat model to serve (without --url)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--only", nargs="+", choices=list(VIEWS), default=list(VIEWS), help="the groups of views")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium)
        try:
            if args.url:
                names = shoot(browser, args.url.rstrip("/"), args.out, args.only)
            else:
                with ember_server(args.model) as base:
                    names = shoot(browser, base, args.out, args.only)
        finally:
            browser.close()
    for name in names:
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
