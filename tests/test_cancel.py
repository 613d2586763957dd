"""A client that leaves stops all the work done for it: on a real uvicorn with the scripted engine made slow,
a client that hangs up before its first token (streamed or not), or mid-stream, leaves every engine idle
and the admission limit empty within a second, whichever route ember-auto took (a program, a plan whose
sub-calls run in parallel, a multiple-choice answer, a mode) and for ember-thinking and ember-contemplating.
The same on the real SmolLM2-135M is in test_live_model.py."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from ember.api.app import create_app
from ember.engines.fake import FakeEngine

from .conftest import make_settings, post_raw, serve_in_thread, until

WORD_S = 3.0  # the scripted engine's pause before each word: a first token takes longer than the bound below
FREED_S = 1.0  # the bound: from the client leaving to every engine and the admission limit idle
STARTED_S = 15.0  # generous: how long the work may take to reach the engines before the client leaves
WORD_PROBLEM = "A baker makes 48 rolls and sells 17 of them. How many rolls are left?"
MULTI_PART = "Who wrote Hamlet? Also, why is the sky blue? And what is 17 * 23?"
CHOICE = "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. nitrogen\nD. helium"
# one "word" (no spaces), so the scripted planner writes it in one pause; two model sub-calls run in parallel
PLAN = json.dumps(
    {
        "steps": [
            {"id": 1, "tool": "answer", "args": {"task": "Hamlet?"}, "after": []},
            {"id": 2, "tool": "reason", "args": {"task": "sky?"}, "after": []},
            {"id": 3, "tool": "calculator", "args": {"expression": "17*23"}, "after": []},
        ]
    },
    separators=(",", ":"),
)
LONG = " ".join(f"w{i}" for i in range(40))


@dataclass(frozen=True)
class Case:
    """A request, and the work in flight (generations per engine role) that shows it is under way."""

    model: str
    text: str
    busy: dict[str, int]
    effort: str | None = None

    def body(self, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "stream": stream,
            "messages": [{"role": "user", "content": self.text}],
        }
        if self.effort:
            body["reasoning_effort"] = self.effort
        return body


CASES = {
    "auto-program": Case("ember-auto", WORD_PROBLEM, {"chat": 1}),
    "auto-planner": Case("ember-auto", MULTI_PART, {"chat": 1, "chat-fast": 1}),  # parallel sub-calls
    "auto-choice": Case("ember-auto", CHOICE, {"chat": 1}),
    "auto-contemplating": Case("ember-auto", WORD_PROBLEM, {"chat": 3}, effort="high"),
    "auto-instant": Case("ember-auto", "Tell me about lighthouses.", {"chat-fast": 1}),
    "thinking": Case("ember-thinking", "Why is the sky blue?", {"chat": 1}),
    "contemplating": Case("ember-contemplating", WORD_PROBLEM, {"chat": 3}),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    fake = {"engine": "fake", "model": "fake", "ctx_size": 4096, "parallel": 4}
    app = create_app(make_settings(tmp_path_factory.mktemp("cancel"), chat=fake, chat_fast=fake))
    with serve_in_thread(app) as base:  # its health check has started both engines
        yield base, app


def engines(app: FastAPI) -> dict[str, FakeEngine]:
    """The chat engines (the speech one does no work here)."""
    return {role: e for role, e in app.state.pipeline.engines.loaded().items() if isinstance(e, FakeEngine)}


def in_flight(app: FastAPI) -> dict[str, int]:
    """Generations per engine role, and the requests the admission limit holds (running or waiting)."""
    admission = app.state.admission
    return {**{role: e.active for role, e in engines(app).items()}, "admission": admission.running + admission.waiting}


def leave_and_time(app: FastAPI, sock: socket.socket) -> float:
    """Hang up; the seconds until no engine generates and the admission limit holds nothing."""
    sock.close()
    return until(lambda: not any(in_flight(app).values()), timeout_s=4 * WORD_S + 30)


@pytest.fixture
def slow(server: tuple[str, FastAPI]) -> Iterator[tuple[str, FastAPI]]:
    """The server's engines made slow and scripted for these tests, and quick again after."""
    base, app = server
    for role, engine in engines(app).items():
        engine.delay_s = WORD_S
        engine.script([PLAN, LONG] if role == "chat" else [LONG])
    yield base, app
    for engine in engines(app).values():
        engine.delay_s = 0.0


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "json"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_client_that_leaves_before_the_first_token_stops_every_sub_call(
    slow: tuple[str, FastAPI], name: str, stream: bool
) -> None:
    base, app = slow
    case = CASES[name]
    sock = post_raw(base, "/v1/chat/completions", case.body(stream))
    until(lambda: all(in_flight(app)[role] >= n for role, n in case.busy.items()), STARTED_S)
    took = leave_and_time(app, sock)
    assert took <= FREED_S, f"{name}: engines and admission freed {took:.2f} s after the client left"


@pytest.mark.parametrize("name", ["thinking", "contemplating", "auto-contemplating"])
def test_a_client_that_leaves_mid_stream_stops_every_sub_call(slow: tuple[str, FastAPI], name: str) -> None:
    """Thinking streams its reasoning, contemplating its agents' notes while the other agents still run."""
    base, app = slow
    for engine in engines(app).values():
        engine.delay_s = WORD_S / 30  # the first notes come within seconds, long before the answer
    sock = post_raw(base, "/v1/chat/completions", CASES[name].body(stream=True))
    sock.settimeout(STARTED_S)
    received = b""
    while b"data: " not in received:  # the headers come with the first delta: the answer has begun
        received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert any(in_flight(app).values())  # still working when the client leaves
    took = leave_and_time(app, sock)
    assert took <= FREED_S, f"{name}: engines and admission freed {took:.2f} s after the client left"


def test_a_client_that_leaves_while_waiting_for_admission_leaves_the_queue(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Its place in the waiting room was kept until its turn came (and the turn then spent on no one)."""
    fake = {"engine": "fake", "model": "fake", "ctx_size": 4096, "options": {"delay_s": WORD_S}}
    settings = make_settings(tmp_path_factory.mktemp("queue"), chat_fast=fake)
    app = create_app(settings.model_copy(update={"admission_running": 1, "admission_waiting": 1}))
    with serve_in_thread(app) as base:
        admission = app.state.admission
        first = post_raw(base, "/v1/chat/completions", CASES["auto-instant"].body(stream=False))
        until(lambda: admission.running == 1, STARTED_S)
        waiting = post_raw(base, "/v1/chat/completions", CASES["auto-instant"].body(stream=False))
        until(lambda: admission.waiting == 1, STARTED_S)
        waiting.close()
        assert until(lambda: admission.waiting == 0, timeout_s=WORD_S) <= FREED_S
        assert admission.running == 1  # the first is still answered
        first.close()
        until(lambda: not any(in_flight(app).values()), timeout_s=FREED_S + 5)
