"""ember-auto, the planner, the step loop and the calculator on the scripted engine: exact arithmetic,
routes and their reasons, plans run in parallel, failures and timeouts as observations, budgets, and the
API fields (`route`, `citations`, `trace`). The real-model path is in test_auto_live.py."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember import registry
from ember.agents.calculator import CalculationError, calculate
from ember.agents.loop import RunBudget, Step, run_steps
from ember.agents.planner import offered, parse_plan, plan_schema
from ember.agents.program import run_program
from ember.agents.router import choose
from ember.agents.specialists import Budget, Context, Observation
from ember.api.app import create_app
from ember.config import Settings
from ember.engines.fake import FakeEngine
from ember.errors import EngineError
from ember.services import Services
from ember.types import ChatRequest, Message, Usage

from .conftest import make_settings, sse_events

GSM8K_LIKE = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
ARC_LIKE = "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. nitrogen\nD. helium"
MULTI_PART = "What is the capital of France? Also, what is 17 * 23?"


def plan(*steps: dict[str, Any]) -> str:
    return json.dumps({"steps": list(steps)})


def settings_with(tmp_path: Path, planner_replies: list[str], delay_s: float = 0.0) -> Settings:
    chat = {"engine": "fake", "model": "fake", "ctx_size": 4096, "options": {"replies": planner_replies}}
    fast = {"engine": "fake", "model": "fake", "ctx_size": 4096, "options": {"delay_s": delay_s}}
    return make_settings(tmp_path, chat=chat, chat_fast=fast)


def ask(client: TestClient, text: str, **extra: Any) -> Any:
    body = {"model": "ember-auto", "messages": [{"role": "user", "content": text}], **extra}
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def engine(client: TestClient, role: str) -> FakeEngine:
    found: FakeEngine = client.app.state.pipeline.engines.loaded()[role]  # type: ignore[attr-defined]
    return found


# --- the calculator ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "exact"),
    [
        ("1/3 + 1/6", "1/2"),
        ("12345 * 6789", "83810205"),
        ("2**100", "1267650600228229401496703205376"),
        ("0.1 + 0.2", "3/10"),
        ("15% * 80", "12"),
        ("1,234 * 2", "2468"),
        ("(1+2)*3^2", "27"),
        ("sqrt(8)", "2*sqrt(2)"),
    ],
)
def test_calculator_is_exact(expression: str, exact: str) -> None:
    assert calculate(expression).exact == exact


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('id')", "x + 1", "(10**1000)**1000", "2**99999", "1/0", "open('f')", "().__class__"],
)
def test_calculator_refuses_what_is_not_bounded_arithmetic(expression: str) -> None:
    with pytest.raises(CalculationError):
        calculate(expression)


# --- routing ----------------------------------------------------------------------------------------


def route_of(text: str, scopes: frozenset[str] | None = None) -> tuple[str, str | None]:
    registry.load_plugins()
    route = choose(ChatRequest("ember-auto", [Message("user", text)], scopes=scopes))
    return route.target, route.effort


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("What is 12345 * 6789?", "calculator"),
        ("(2+3)^2", "calculator"),
        (GSM8K_LIKE, "program"),
        (ARC_LIKE, "choice"),
        (MULTI_PART, "planner"),
        ("1. Draft a haiku about rain\n2. List three uses of vinegar", "planner"),
        ("Sort the following questions by topic.\n1. Who wrote Emma?\n2. What is DNA?", "ember-instant"),
        ("Extract the variables from each equation:\n1) y = 3x\n2) z = a + b", "ember-instant"),
        ("Tell me a fun fact about octopuses.", "ember-instant"),
        ("Write a short thank-you note to my neighbour.", "ember-instant"),
        ("I have chest pain and I can't catch my breath", "ember-health"),
        ("Tom buys 3 shirts at $12 each. How much does he spend?", "program"),
        ("Which organ helps people breathe?\nA. lungs\nB. liver\nC. skin", "choice"),
        ("Recommend a gift for my dad, he likes hiking", "ember-shopping"),
        ("A school ordered 30 boxes of 12 pencils and 25 were broken. Calculate the number left.", "program"),
        ("A shop sold 40 mugs at $6 each. Calculate the total cost of buying them all.", "program"),
        ("Find the best laptop under $500", "ember-shopping"),
    ],
)
def test_router_table(text: str, target: str) -> None:
    assert route_of(text)[0] == target


def test_high_effort_sends_tasks_to_work_out_to_contemplating() -> None:
    registry.load_plugins()
    for text, usual in ((GSM8K_LIKE, "program"), (ARC_LIKE, "choice"), ("Tell me about owls.", "ember-instant")):
        high = choose(ChatRequest("ember-auto", [Message("user", text)], reasoning_effort="high"))
        assert high.target == ("ember-instant" if usual == "ember-instant" else "ember-contemplating")
        assert route_of(text)[0] == usual  # without the ask, the cheap route


def test_router_stays_within_the_keys_scopes() -> None:
    assert route_of("What are the side effects of ibuprofen?")[0] == "ember-health"
    assert route_of("What are the side effects of ibuprofen?", frozenset({"chat"}))[0] == "ember-instant"


def test_auto_answers_arithmetic_exactly_without_a_model(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, ["unused"]))) as client:
        body = ask(client, "What is 98765432123 * 123456789?")
        assert str(98765432123 * 123456789) in body["choices"][0]["message"]["content"]
        assert body["route"]["target"] == "calculator"
        assert body["route"]["signals"]["rule"] == "arithmetic"
        loaded = client.app.state.pipeline.engines.loaded()  # type: ignore[attr-defined]
        assert {"chat", "chat-fast"} <= set(loaded)
        assert not any(getattr(e, "calls", None) for e in loaded.values())  # no model was asked
        metrics = client.get("/metrics").text
        assert 'ember_routes_total{mode="ember-auto",target="calculator"} 1.0' in metrics


def test_auto_reports_its_route_in_streams(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, ["unused"]))) as client:
        body = {"model": "ember-auto", "messages": [{"role": "user", "content": "Say hello."}], "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            events = sse_events(list(resp.iter_lines()))
        routes = [e["route"] for e in events if isinstance(e, dict) and "route" in e]
        assert routes == [{"target": "ember-instant", "reason": routes[0]["reason"], "signals": {"rule": "default"}}]
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:] if isinstance(e, dict))
        assert text == "You said: Say hello."


def test_word_problems_are_solved_by_running_the_models_program_exactly(tmp_path: Path) -> None:
    program = "```python\napril = 48\nmay = april / 2\nanswer = april + may\n```\nAnswer: answer"
    with TestClient(create_app(settings_with(tmp_path, [program]))) as client:
        body = ask(client, GSM8K_LIKE)
        assert body["route"]["target"] == "program"
        assert body["choices"][0]["message"]["content"].endswith("Answer: 72")
        assert body["citations"][0]["title"] == "april = 48\nmay = april / 2\nanswer = april + may"
        assert body["usage"]["completion_tokens"] > 0
        asked = engine(client, "chat").calls[0][0][0].content
        assert "variable named answer" in asked


def test_a_program_that_does_not_run_is_escalated_to_thinking(tmp_path: Path) -> None:
    fails = "import os\nanswer = os.getpid()"
    replies = [fails, fails, "no code", "first, halve 48\nAnswer: 72"]
    with TestClient(create_app(settings_with(tmp_path, replies))) as client:
        body = ask(client, GSM8K_LIKE)
        assert body["route"]["target"] == "ember-thinking"
        assert "the program failed" in body["route"]["reason"] and "import os" in body["route"]["reason"]
        message = body["choices"][0]["message"]
        assert message["content"] == "first, halve 48\nAnswer: 72"  # the checked attempt is the answer
        # thinking at low effort tries its own program (greedy: it fails the same way), a planned one, then prose
        reasoning = message["reasoning_content"]
        assert reasoning.count("did not run") == 2 and "Checked answer: 72 (1 of 1" in reasoning
        assert len(engine(client, "chat").calls) == 4  # the route's program, then three attempts
        assert body["usage"]["completion_tokens"] == 4 + 4 + 2 + 4  # the failed program's words count too


def test_multiple_choice_is_answered_directly_within_a_short_cap(tmp_path: Path) -> None:
    reply = "Answer: B\nPlants take in carbon dioxide for photosynthesis " + "and so on " * 40
    with TestClient(create_app(settings_with(tmp_path, [reply]))) as client:
        body = ask(client, ARC_LIKE, max_tokens=500)
        assert body["route"]["target"] == "choice"
        assert body["choices"][0]["message"]["content"].startswith("Answer: B")
        assert body["usage"]["completion_tokens"] == 64  # CHOICE_TOKENS caps the request's 500
        assert len(engine(client, "chat").calls) == 1


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ("eggs = 3 * 12\nanswer = eggs - 5", "31"),
        ("price = 2.5\ncount = 4\ntotal = price * count\ntotal -= 1\nprint(total)", "9"),
        ('"""docstring"""\nshare = 10 / 3\nprint("each gets", share)', "3.33333333333333"),
        ("a = 7\nanswer = int(a / 2) + max(1, 2)", "5"),
        ('a = 3\nprint(f"a is {a}:", a * 2)', "6"),
    ],
)
def test_programs_run_exactly(code: str, value: str) -> None:
    assert run_program(code).decimal == value


@pytest.mark.parametrize(
    "code",
    [
        "import os",
        "x = __import__('os')",
        "for i in range(3):\n    answer = i",
        "answer = 'text'",
        "x.y = 3",
        "def f():\n    return 1",
        "a, b = 1, 2",
        "answer = open('f').read()",
        "x = 1\n" * 41,
        "",
    ],
)
def test_programs_outside_the_allow_list_are_refused(code: str) -> None:
    with pytest.raises(CalculationError):
        run_program(code)


# --- the planner and the loop -----------------------------------------------------------------------


def test_multi_part_request_runs_its_steps_in_parallel_and_cites_them(tmp_path: Path) -> None:
    steps = plan(
        {"id": 1, "tool": "answer", "args": {"task": "capital of France in one word please"}, "after": []},
        {"id": 2, "tool": "answer", "args": {"task": "name a French cheese in one word"}, "after": []},
        {"id": 3, "tool": "calculator", "args": {"expression": "17 * 23"}, "after": []},
    )
    replies = [steps, "Paris [1]; Brie [2]; 391 [3]."]
    with TestClient(create_app(settings_with(tmp_path, replies, delay_s=0.1))) as client:
        body = ask(client, MULTI_PART, include_trace=True)
        assert body["route"]["target"] == "planner"
        assert [c["kind"] for c in body["citations"]] == ["step"] * 3
        assert [c["meta"]["ok"] for c in body["citations"]] == [True, True, True]
        calls = {t["agent"]: t for t in body["trace"] if t["phase"].startswith("call:")}
        assert calls[3]["text"] == "17 * 23 = 391"
        first, second = calls[1], calls[2]
        each = [first["ended_s"] - first["started_s"], second["ended_s"] - second["started_s"]]
        assert min(each) >= 0.5  # the fake answer takes ~9 words x 0.1 s
        assert second["started_s"] < first["ended_s"] and first["started_s"] < second["ended_s"]  # overlapping
        merge_prompt = engine(client, "chat").calls[-1][0][0].content
        assert "[3] calculator(17 * 23): 17 * 23 = 391" in merge_prompt
        assert body["usage"]["completion_tokens"] > 0


def test_an_unusable_plan_falls_back_to_one_answer_step(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, ["this is not json", "merged"]))) as client:
        body = ask(client, MULTI_PART, include_trace=True)
        planned = next(t for t in body["trace"] if t["phase"] == "plan")
        assert "replaced by one answer step" in planned["text"]
        assert json.loads(planned["answer"])[0]["tool"] == "answer"
        assert body["choices"][0]["message"]["content"] == "merged"


def test_plans_are_checked_against_their_schema() -> None:
    registry.load_plugins()
    tools = offered()
    schema = plan_schema(tools)
    assert {kind["properties"]["tool"]["const"] for kind in schema["properties"]["steps"]["items"]["anyOf"]} >= {
        "calculator",
        "answer",
        "reason",
    }
    with pytest.raises(ValueError, match="not valid"):
        parse_plan(plan({"id": 1, "tool": "rm -rf", "args": {"task": "x"}, "after": []}), tools)
    with pytest.raises(ValueError, match="not valid"):
        parse_plan(plan({"id": 1, "tool": "calculator", "args": {"task": "x"}, "after": []}), tools)
    loose = parse_plan(
        plan(
            {"id": 4, "tool": "answer", "args": {"task": "x"}, "after": [7, 4]},
            {"id": 4, "tool": "calculator", "args": {"expression": "1+1"}, "after": [4, 9]},
        ),
        tools,
    )  # small models number loosely: ids by position, impossible dependencies dropped
    assert [(s.id, s.tool, s.after) for s in loose] == [(1, "answer", ()), (2, "calculator", (1,))]


@dataclass(frozen=True)
class Scripted:
    """A test specialist: sleeps, then answers, raises an EngineError, or raises a bug."""

    name: str
    sleep_s: float = 0.0
    outcome: str = "ok"
    description: str = "test"
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    budget: Budget = field(default_factory=lambda: Budget(max_tokens=100, timeout_s=0.3))

    def available(self) -> bool:
        return True

    async def call(self, args: dict[str, Any], context: Context, max_tokens: int) -> Observation:
        await asyncio.sleep(self.sleep_s)
        if self.outcome == "engine error":
            raise EngineError("the engine fell over")
        if self.outcome == "bug":
            raise KeyError("our own bug")
        return Observation(f"{self.name} done", usage=Usage(10, 60))


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Context:
    registry.load_plugins()
    for s in (Scripted("fast"), Scripted("slow", sleep_s=5), Scripted("broken", outcome="engine error")):
        monkeypatch.setitem(registry.specialists._entries, s.name, s)
    monkeypatch.setitem(registry.specialists._entries, "buggy", Scripted("buggy", outcome="bug"))
    return Context(Services.open(make_settings(tmp_path)))


async def test_failures_and_timeouts_become_observations(scripted: Context) -> None:
    steps = [
        Step(1, "fast", {}),
        Step(2, "slow", {}),
        Step(3, "broken", {}),
        Step(4, "nope", {}),
        Step(5, "fast", {}, (3,)),
    ]
    run = await run_steps(steps, scripted, RunBudget())
    assert run.results[1].ok and run.results[1].text == "fast done"
    assert not run.results[2].ok and "timed out" in run.results[2].text
    assert run.results[2].ended_s < 1.0  # the specialist's 0.3 s budget, not its 5 s sleep
    assert not run.results[3].ok and "the engine fell over" in run.results[3].text
    assert not run.results[4].ok and "no specialist named 'nope'" in run.results[4].text
    assert not run.results[5].ok and "needed step 3, which failed" in run.results[5].text


async def test_our_own_bugs_are_not_swallowed(scripted: Context) -> None:
    with pytest.raises(BaseException) as info:
        await run_steps([Step(1, "buggy", {})], scripted, RunBudget())
    assert info.group_contains(KeyError) if isinstance(info.value, BaseExceptionGroup) else info.type is KeyError


async def test_budgets_stop_runaway_plans(scripted: Context) -> None:
    chain = [Step(i, "fast", {}, (i - 1,) if i > 1 else ()) for i in range(1, 7)]
    run = await run_steps(chain, scripted, RunBudget(max_steps=2))
    assert [run.results[i].ok for i in range(1, 7)] == [True, True, False, False, False, False]
    assert "step budget" in run.results[3].text
    run = await run_steps(chain, scripted, RunBudget(max_tokens=100))  # each call spends 60
    assert [run.results[i].ok for i in range(1, 4)] == [True, True, False]
    assert "token budget" in run.results[3].text
    run = await run_steps(chain, scripted, RunBudget(wall_s=0.0))
    assert all(not o.ok and "time budget" in o.text for o in run.results.values())
    cycle = [Step(1, "fast", {}, (2,)), Step(2, "fast", {}, (1,))]
    run = await run_steps(cycle, scripted, RunBudget())
    assert all("never run" in o.text for o in run.results.values())


async def test_a_sub_task_reads_the_conversations_image_descriptions(tmp_path: Path) -> None:
    """The planner's sub-tasks carry no images, but a mode behind one reads their descriptions beside its task."""
    registry.load_plugins()
    echo = {"engine": "fake", "model": "fake", "options": {"echo_prompt": True, "describe_images": True}}  # blind
    services = Services.open(make_settings(tmp_path, chat_fast=echo))
    seen = ("[image 1, described by a machine: a red car]",)
    try:
        answer = registry.specialists.get("answer")
        assert answer is not None
        told = await answer.call({"task": "What colour is the car?"}, Context(services, seen=seen), 200)
    finally:
        await services.aclose()
    assert "a red car" in told.text and "What colour is the car?" in told.text
