"""ember-thinking and ember-contemplating on the scripted engine: phases, budgets, programs run in the
sandbox, attempts that stop when they agree, the weighted vote, waves and the synthesis, the trace,
concurrency of the agents, and the API fields that carry them. The strategies themselves:
test_strategies.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.config import Settings
from ember.engines.fake import FakeEngine
from ember.modes.reasoning import CONTEMPLATING_BUDGET, THINKING_BUDGET

from .conftest import make_settings, sse_events

THOUGHT = " ".join(f"step{i}" for i in range(1000))  # longer than the low budget allows
OPEN = "Why is the sky blue?"
SUM = "A shop packs 7 pens in each of 6 boxes. How many pens are there?"
CHOICE = "Which one is a mammal?\nA) shark\nB) whale\nC) trout"


def settings_with(tmp_path: Path, agents: int = 3, **options: Any) -> Settings:
    chat = {"engine": "fake", "model": "fake", "ctx_size": 4096, "parallel": 4, "options": options}
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake"}, chat=chat)
    return settings.model_copy(update={"contemplating_agents": agents})


def ask(client: TestClient, model: str, question: str = OPEN, **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": question}], **extra}
    return client.post("/v1/chat/completions", json=body)


def chat_engine(client: TestClient) -> FakeEngine:
    engine: FakeEngine = client.app.state.pipeline.engines.loaded()["chat"]  # type: ignore[attr-defined]
    return engine


def test_thinking_separates_reasoning_from_content_and_enforces_the_budget(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, replies=[THOUGHT, "Light scatters."]))) as client:
        resp = ask(client, "ember-thinking", reasoning_effort="low")
        assert resp.status_code == 200, resp.text
        message = resp.json()["choices"][0]["message"]
        calls = chat_engine(client).calls
    low = THINKING_BUDGET["low"]
    assert message["content"] == "Light scatters."
    assert message["reasoning_content"].split() == THOUGHT.split()[:low]
    usage = resp.json()["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == low
    assert usage["completion_tokens"] == low + 2
    (think_msgs, think_params), (answer_msgs, answer_params) = calls
    assert think_params.max_tokens == low
    assert "step by step" in think_msgs[0].content
    assert f"step{low - 1}" in answer_msgs[0].content and f"step{low} " not in answer_msgs[0].content  # cut, forced
    assert answer_params.max_tokens is None  # the answer phase keeps the request's own limits


def test_thinking_streams_reasoning_deltas_before_content(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, replies=["first think", "then answer"])
    with TestClient(create_app(settings)) as client:
        body = {"model": "ember-thinking", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            events = sse_events(list(resp.iter_lines()))
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    content = "".join(d.get("content", "") for d in deltas)
    assert (reasoning, content) == ("first think", "then answer")
    assert not any("reasoning_content" in d and d.get("content") for d in deltas)  # never mixed in one delta
    last_reasoning = max(i for i, d in enumerate(deltas) if d.get("reasoning_content"))
    assert all(not d.get("content") for d in deltas[: last_reasoning + 1])


def test_thinking_default_effort_is_medium(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, replies=[" ".join(THOUGHT.split()[:400]), "ok"]))) as client:
        usage = ask(client, "ember-thinking").json()["usage"]
        (_, think_params), _ = chat_engine(client).calls
    assert think_params.max_tokens == THINKING_BUDGET["medium"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 400  # stopped on its own, under the budget


def test_thinking_runs_a_program_it_writes_in_prose_reasoning(tmp_path: Path) -> None:
    thought = "Count them.\n```python\nanswer = 17 * 23\n```"
    with TestClient(create_app(settings_with(tmp_path, replies=[thought, "391"]))) as client:
        message = ask(client, "ember-thinking").json()["choices"][0]["message"]
        (_, _), (answer_msgs, _) = chat_engine(client).calls
    assert message["reasoning_content"].endswith("Result: answer = 391\n")
    assert "Result: answer = 391" in answer_msgs[0].content  # the answer phase saw the exact result


def test_thinking_checks_a_word_problem_with_a_second_program_and_stops_when_they_agree(tmp_path: Path) -> None:
    first = "```python\nboxes = 6\npens_per_box = 7\nanswer = boxes * pens_per_box\n```"
    second = "```python\n# 6 boxes of 7 pens\nanswer = 6 * 7\n```"
    with TestClient(create_app(settings_with(tmp_path, replies=[first, second, "unused"]))) as client:
        data = ask(client, "ember-thinking", SUM, seed=5).json()
        calls = chat_engine(client).calls
    message = data["choices"][0]["message"]
    code = "boxes = 6\npens_per_box = 7\nanswer = boxes * pens_per_box"
    assert message["content"] == f"Worked out exactly:\n\n```python\n{code}\n```\n\nAnswer: 42"  # the first
    reasoning = message["reasoning_content"]
    assert "Attempt 1 (program)" in reasoning and "Attempt 2 (program)" in reasoning  # a sampled second program
    assert reasoning.count("Result: answer = 42") == 2 and "Attempt 3" not in reasoning
    assert "Checked answer: 42 (2 of 2" in reasoning
    assert len(calls) == 2  # two attempts and no answer pass: the checked attempt is the answer
    assert (calls[0][1].temperature, calls[0][1].seed) == (0.0, 5)
    assert calls[1][1].temperature and calls[1][1].temperature > 0 and calls[1][1].seed == 6
    tokens = [len(r.split(" ")) for r in (first, second)]  # the scripted engine's tokens
    assert data["usage"]["completion_tokens"] == sum(tokens)
    assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == sum(tokens)  # no answer pass


def test_thinking_votes_when_its_attempts_disagree(tmp_path: Path) -> None:
    replies = ["```python\nanswer = 41\n```", "```python\nanswer = 42\n```", "```python\nanswer = 6 * 7\n```", "42"]
    with TestClient(create_app(settings_with(tmp_path, replies=replies))) as client:
        reasoning = ask(client, "ember-thinking", SUM).json()["choices"][0]["message"]["reasoning_content"]
    assert "Attempt 3 (program)" in reasoning and "Checked answer: 42 (2 of 3" in reasoning


def test_thinking_programs_run_in_the_sandbox_and_a_failure_is_an_observation(tmp_path: Path) -> None:
    imports = "```python\nimport os\nanswer = 1\n```"
    loops = "```python\nwhile True:\n    answer = 1\n```"
    replies = [imports, loops, "so 42 in all.\nAnswer: 42", "42"]
    with TestClient(create_app(settings_with(tmp_path, replies=replies))) as client:
        resp = ask(client, "ember-thinking", SUM, reasoning_effort="low")
    assert resp.status_code == 200, resp.text
    reasoning = resp.json()["choices"][0]["message"]["reasoning_content"]
    assert reasoning.count("Result: the program did not run (unsupported statement") == 2
    assert "Attempt 3 (prose)" in reasoning and "Checked answer: 42 (1 of 1" in reasoning  # low: on until one answers


def test_thinking_answers_multiple_choice_directly_and_checks_with_a_sampled_second_answer(tmp_path: Path) -> None:
    replies = ["Answer: B\nIt nurses its young.", "B. A whale is a mammal.", "B"]
    with TestClient(create_app(settings_with(tmp_path, replies=replies))) as client:
        message = ask(client, "ember-thinking", CHOICE).json()["choices"][0]["message"]
        calls = chat_engine(client).calls
    assert "Attempt 1 (direct)" in message["reasoning_content"] and "Attempt 2 (direct)" in message["reasoning_content"]
    assert "Checked answer: B (2 of 2" in message["reasoning_content"]  # "B." read as the letter it commits to
    assert all("directly" in messages[0].content for messages, _ in calls) and len(calls) == 2
    assert calls[0][1].temperature == 0.0 and calls[1][1].temperature  # the check is sampled


def test_reasoning_effort_is_validated(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path))) as client:
        resp = ask(client, "ember-thinking", reasoning_effort="extreme")
    assert resp.status_code == 400


def test_contemplating_stops_when_its_diverse_agents_agree_and_returns_the_trace(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, replies=["```python\nanswer = 6 * 7\n```\nAnswer: 42"])
    with TestClient(create_app(settings)) as client:
        resp = ask(client, "ember-contemplating", SUM, include_trace=True, seed=10)
        calls = chat_engine(client).calls
    data = resp.json()
    message = data["choices"][0]["message"]
    assert message["content"].startswith("Worked out exactly") and message["content"].endswith("Answer: 42")
    assert "3 more not run" in message["reasoning_content"]  # medium effort: the second wave was not needed
    assert "Vote: 42 (3 of 3 agents)" in message["reasoning_content"]
    trace = data["trace"]
    assert [(s["agent"], s["phase"]) for s in trace] == [(1, "program"), (2, "program, planned"), (3, "prose")]
    assert all(s["answer"] == "42" for s in trace)
    assert data["usage"]["completion_tokens"] == sum(s["usage"]["completion_tokens"] for s in trace)
    assert len(calls) == 3  # no synthesis pass after a vote
    assert [(p.seed, p.temperature) for _, p in calls] == [(10, 0.0), (11, 0.7), (12, 0.7)]


def test_contemplating_runs_another_wave_when_agents_disagree_and_weights_the_vote(tmp_path: Path) -> None:
    replies = ["```python\nanswer = 41\n```", "```python\nanswer = 42\n```", "Answer: 41"]
    with TestClient(create_app(settings_with(tmp_path, replies=replies))) as client:
        data = ask(client, "ember-contemplating", SUM, include_trace=True).json()
    assert len(data["trace"]) == 6  # two waves of three
    # 41 from two programs and two prose answers outweighs 42 from two planned programs
    assert "Vote: 41 (4 of 6 agents)" in data["choices"][0]["message"]["reasoning_content"]


def test_contemplating_synthesises_long_answers_and_hides_the_trace_unless_asked(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, agents=2, replies=["Paris is lovely in spring and autumn."])
    with TestClient(create_app(settings)) as client:
        data = ask(client, "ember-contemplating").json()
        traced = ask(client, "ember-contemplating", include_trace=True).json()
        calls = chat_engine(client).calls
    assert "trace" not in data
    assert data["choices"][0]["message"]["content"] == "Paris is lovely in spring and autumn."
    assert "merging 2 solutions" in data["choices"][0]["message"]["reasoning_content"]
    assert [s["phase"] for s in traced["trace"]][-1] == "aggregate"
    assert traced["trace"][-1]["agent"] is None
    assert "Solution 2:" in calls[2][0][0].content  # the synthesis pass saw both solutions


def test_contemplating_stays_within_its_total_budget(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, replies=[THOUGHT])
    with TestClient(create_app(settings)) as client:
        data = ask(client, "ember-contemplating", SUM, reasoning_effort="low", include_trace=True).json()
    per_pass = CONTEMPLATING_BUDGET["low"] // 4  # three agents in one wave, and room for a synthesis
    assert all(s["usage"]["completion_tokens"] <= per_pass for s in data["trace"])
    assert data["usage"]["completion_tokens"] <= CONTEMPLATING_BUDGET["low"]


def test_contemplating_agents_run_concurrently(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, replies=["one two three four five six seven. Answer: 7"], delay_s=0.03)
    with TestClient(create_app(settings)) as client:
        trace = ask(client, "ember-contemplating", include_trace=True).json()["trace"]
    spent = sum(s["ended_s"] - s["started_s"] for s in trace)
    wall = max(s["ended_s"] for s in trace) - min(s["started_s"] for s in trace)
    assert wall < 0.5 * spent  # three agents at once: about a third


def test_contemplating_agent_failure_is_an_error_envelope(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, fail_with="boom"))) as client:
        resp = ask(client, "ember-contemplating")
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "engine_error"


def test_reasoning_modes_are_listed(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path))) as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert {"ember-thinking", "ember-contemplating"} <= set(ids)
