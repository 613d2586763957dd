"""ember-thinking and ember-contemplating on the real SmolLM2-135M (`ember serve` in a subprocess, the
`chat` role on the tiny model with two slots and two contemplating agents): the official openai client
reads `reasoning_content` apart from `content`, streamed and not; a word problem's program runs in the
sandbox; the thinking budget holds; the agents really run at the same time."""

from __future__ import annotations

import time

import httpx
import openai

from ember.modes.reasoning import THINKING_BUDGET

LONG_TASK = [{"role": "user", "content": "Write a very long, detailed story about a lighthouse keeper and the sea."}]
SUM = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]
ANSWER_CAP = 24


def test_openai_client_reads_reasoning_apart_from_content(live_client: openai.OpenAI) -> None:
    resp = live_client.chat.completions.create(
        model="ember-thinking", messages=SUM, reasoning_effort="low", max_tokens=ANSWER_CAP, temperature=0, seed=1
    )
    message = resp.choices[0].message
    reasoning = (message.model_extra or {}).get("reasoning_content")
    assert isinstance(reasoning, str) and reasoning.strip()
    assert isinstance(message.content, str) and message.content.strip()
    assert "Attempt 1 (program)" in reasoning  # a word problem: a program first, run in the sandbox
    assert "Result: " in reasoning
    assert reasoning.strip() not in message.content  # the reasoning is never mixed into the answer
    assert resp.usage is not None and resp.usage.completion_tokens_details is not None
    thought = resp.usage.completion_tokens_details.reasoning_tokens
    assert thought is not None and 0 < thought <= THINKING_BUDGET["low"]
    assert thought <= resp.usage.completion_tokens <= thought + ANSWER_CAP  # equal when an attempt is the answer


def test_thinking_budget_cuts_long_reasoning_and_forces_the_answer(live_client: openai.OpenAI) -> None:
    stream = live_client.chat.completions.create(
        model="ember-thinking",
        messages=LONG_TASK,
        reasoning_effort="low",
        max_tokens=ANSWER_CAP,
        temperature=0,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    kinds: list[str] = []
    reasoning, content = [], []
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        piece = (delta.model_extra or {}).get("reasoning_content")
        assert not (piece and delta.content)  # each delta is one or the other
        if piece:
            kinds.append("r")
            reasoning.append(piece)
        if delta.content:
            kinds.append("c")
            content.append(delta.content)
    assert "".join(reasoning).strip() and "".join(content).strip()
    assert "".join(kinds).strip("r").strip("c") == ""  # all reasoning first, then all content
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == THINKING_BUDGET["low"]  # cut at the budget


def test_contemplating_agents_run_concurrently(live_server: str) -> None:
    body = {
        "model": "ember-contemplating",
        "messages": SUM,
        "max_tokens": 48,
        "seed": 3,
        "reasoning_effort": "low",  # one wave of agents
        "include_trace": True,
    }
    started = time.perf_counter()
    resp = httpx.post(f"{live_server}/v1/chat/completions", json=body, timeout=120)
    total_s = time.perf_counter() - started
    assert resp.status_code == 200, resp.text
    data = resp.json()
    agents = [s for s in data["trace"] if s["agent"] is not None]
    assert sorted({s["agent"] for s in agents}) == [1, 2]
    assert all(0 < s["usage"]["completion_tokens"] <= 48 for s in data["trace"])
    assert data["choices"][0]["message"]["content"].strip()
    per_agent = [sum(s["ended_s"] - s["started_s"] for s in agents if s["agent"] == a) for a in (1, 2)]
    span = max(s["ended_s"] for s in agents) - min(s["started_s"] for s in agents)
    assert span < 0.8 * sum(per_agent), (span, per_agent)  # overlapping, not one after the other
    aggregate = sum(s["ended_s"] - s["started_s"] for s in data["trace"] if s["agent"] is None)
    assert total_s < sum(per_agent) + aggregate + 1.0
