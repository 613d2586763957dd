"""Screenshots of the web UI for the README: `python scripts/screenshots.py [--url URL] [--model ROLE] [--out DIR]`.

Without `--url` it starts `ember serve` on a free loopback port in a temporary data directory, with one packaged
chat model (`--model`, default chat-fast) as both `chat-fast` and `chat`, and stops it afterwards. It drives
Debian's chromium (`--chromium`, default /usr/bin/chromium) with Playwright; no browser is downloaded.

Views, saved as PNGs in `--out` (default docs/screenshots): `chat.png` (an answer), `reasoning.png` (ember-thinking
with its reasoning opened), `privacy.png` (the privacy page) and `phone.png` (the chat on a phone-sized screen).
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
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
USER = "screenshots"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
ANSWER_MS = 240_000
CHAT_PROMPT = "Give three short facts about Paris as a bulleted list, with the key words in bold."
REASONING_PROMPT = "A train travels 120 km at 60 km/h, leaving at 3 pm. When does it arrive?"


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
    answer = page.locator("article.message.assistant").last
    expect(answer).to_have_attribute("data-finish", re.compile("stop|length"), timeout=ANSWER_MS)
    page.locator("#message").blur()  # no focus ring in the pictures


def shoot(browser: Browser, base: str, out: Path) -> None:
    context, page = new_page(browser, base)
    ask(page, "ember-instant", CHAT_PROMPT)
    page.screenshot(path=out / "chat.png")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an Ember server to use instead of starting one")
    parser.add_argument("--model", default="chat-fast", help="the packaged chat model to serve (without --url)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium)
        try:
            if args.url:
                shoot(browser, args.url.rstrip("/"), args.out)
            else:
                with ember_server(args.model) as base:
                    shoot(browser, base, args.out)
        finally:
            browser.close()
    for name in ("chat", "reasoning", "privacy", "phone"):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
