"""`ember-thinking`: the `chat` model reasons first, within a budget, with an exact calculator at hand, then
answers.

Two phases on the `chat` role's engine, both streamed; the first as `Delta(reasoning=...)`, never as content:
1. Thinking. A task with a checkable answer (`ember.agents.strategies.shape_of`: a word problem with numbers,
   or a multiple-choice question) is solved in attempts, one after another, by its plan (`strategies.PLANS`):
   a word problem by a program the sandboxed calculator runs exactly (its result is shown in the reasoning;
   while none reaches an answer, a planned program, then prose), a multiple-choice question by naming an
   option directly; the first attempt greedy, the checks repeat the strategy that answered, sampled
   (self-consistency, `strategies.next_strategy`). Attempts stop as soon as enough agree
   (`THINKING_ATTEMPTS[effort]`: low 1, medium 2 of at most 3, high 3 of at most 5) or the effort's
   `THINKING_BUDGET` is spent; the vote (`strategies.vote`) picks the checked answer. Any other request
   is thought through in prose, in one pass capped at the budget; a program it writes is run too.
2. Answering. With a checked answer, the first attempt that gave it is the answer (a program shown with its
   exact result); the 1.5B model, asked to restate a checked answer, solved the task again in prose instead
   (measured on the evaluation's first items). Otherwise the conversation plus the reasoning, asked for the
   final answer under the request's own `max_tokens`, `stop` and sampling; with functions offered, the
   reasoning weighs them and the answer is a call or text, as `ember.calling` writes it.
The last delta's usage is the sum of both phases, the thinking phase's completion tokens (every attempt's,
the one shown as the answer too: no token was written for the answer itself) as `reasoning_tokens`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from ember import registry
from ember.agents.loop import server_calls_for
from ember.agents.strategies import (
    PLANS,
    Attempt,
    Shape,
    goes_on,
    next_strategy,
    observe,
    shape_of,
    solve,
    spent,
    vote,
)
from ember.calling import as_text, call_or_answer, describe, offers_tools
from ember.engines.base import Engine
from ember.engines.passes import with_system
from ember.modes.base import Mode
from ember.modes.reasoning import THINKING_ATTEMPTS, THINKING_BUDGET, effort_of
from ember.policy.memory import with_memories
from ember.services import Services
from ember.types import Answer, ChatRequest, Delta, GenerationParams, Usage

THINK_PROMPT = (
    "You are Ember. Before anyone answers the user's last message, think it through step by step: "
    "restate what is asked, work out the facts and any calculation, and check the result. "
    "For a calculation, write a ```python block of plain arithmetic (one assignment a line, the result in a "
    "variable named answer): it is run exactly and its result shown. "
    "Write only this reasoning, not a polished answer."
)
TOOLS_NOTE = (
    "\n\nThese functions can be called after your reasoning (name, what it does, JSON Schema of its "
    "arguments):\n{tools}\nWork out whether one of them does what the user asks, and with which arguments."
)
ANSWER_PROMPT = (
    "You are Ember, a helpful, concise assistant. Below is your own step-by-step reasoning about the "
    "user's last message. Use it to give the final answer directly; do not repeat the reasoning.\n\n"
    "Reasoning:\n{reasoning}"
)
COMPUTES = re.compile(r"```(?:python|py)?\s*\n(?:.*\n)*?\s*answer\s*=")  # a calculation THINK_PROMPT asks for
SEPARATOR = "\n"
CHECKED = "Checked answer: {answer} ({agreeing} of {answered} attempts that reached an answer agree)"


@dataclass
class Thought:
    """What the thinking phase leaves for the answer: the attempt with the checked answer, or else the reasoning
    the answer pass reads; and its cost."""

    text: str = ""
    usage: Usage = field(default_factory=Usage)
    checked: Attempt | None = None  # the attempt that gave the checked answer, which is then the answer


@dataclass(frozen=True)
class ThinkingMode(Mode):
    name: str = "ember-thinking"
    description: str = (
        "Reasons within a budget set by reasoning_effort: runs programs exactly, checks an answer a second way, "
        "then answers."
    )
    roles: tuple[str, ...] = ("chat",)
    tools: bool = True
    memory: bool = True

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        engine = await services.engines.get(self.roles[0])
        messages = with_memories(as_text(request.messages), request.memories)  # earlier calls and results as text
        request = replace(request, messages=messages)
        thought = Thought()
        shape = "open" if offers_tools(request.params) else shape_of(request)
        thinking = think(engine, request, thought) if shape == "open" else attempts(engine, request, shape, thought)
        async for piece in thinking:
            yield Delta(reasoning=piece)
        if thought.checked is not None:  # the checked attempt is the answer: no pass to restate (or redo) it
            yield Delta(content=thought.checked.shown, finish_reason="stop", usage=thought.usage)
            return
        prompt = ANSWER_PROMPT.format(reasoning=thought.text.strip() or "(none)")
        async for delta in call_or_answer(
            engine,
            with_system(request.messages, prompt),
            request.params,
            services.embedders,
            server_calls_for(request, services),
        ):
            if delta.usage is not None:
                delta.usage = thought.usage + delta.usage
            yield delta


async def attempts(engine: Engine, request: ChatRequest, shape: Shape, thought: Thought) -> AsyncIterator[str]:
    """Solve in attempts until enough agree, the effort's attempts are used (an attempt more while none has
    reached an answer, as long as the plan has another strategy) or its budget is spent; stream each."""
    effort = effort_of(request)
    plan, (most, quorum), left = PLANS[shape], THINKING_ATTEMPTS[effort], THINKING_BUDGET[effort]
    done: list[Attempt] = []
    while goes_on(done, plan, most, quorum, left):
        attempt = Attempt(len(done), next_strategy(plan, done))
        yield f"{SEPARATOR if done else ''}Attempt {attempt.index + 1} ({attempt.strategy.name}):\n"
        async for piece in solve(engine, request.messages, attempt, left, request.params.seed):
            yield piece
        done.append(attempt)
        left -= attempt.usage.completion_tokens
    verdict = vote(done)
    if verdict.answer is None:
        closing = "No attempt reached a checkable answer."
        thought.text = "\n\n".join(a.trace for a in done) + f"\n{closing}"
    else:
        closing = CHECKED.format(answer=verdict.answer, agreeing=verdict.agreeing, answered=verdict.answered)
        thought.checked = next(a for a in done if a.answer == verdict.answer)
    thought.usage = spent(done)
    yield f"\n{closing}\n"


async def think(engine: Engine, request: ChatRequest, thought: Thought) -> AsyncIterator[str]:
    """Reason in prose in one pass of at most the effort's budget; run the program it writes for a
    calculation (a fenced block that sets `answer`), if any."""
    params = GenerationParams(
        max_tokens=THINKING_BUDGET[effort_of(request)],
        temperature=request.params.temperature,
        top_p=request.params.top_p,
        seed=request.params.seed,
    )
    prompt = THINK_PROMPT
    if offers_tools(request.params):
        prompt += TOOLS_NOTE.format(tools=describe(request.params.tools))
    written = Answer()
    async for delta in engine.stream(with_system(request.messages, prompt), params):
        written.add(delta)
        if piece := delta.reasoning + delta.content:
            yield piece
    thought.text = written.thought + written.text
    used = written.usage or Usage()
    thought.usage = Usage(used.prompt_tokens, used.completion_tokens, used.completion_tokens)
    if COMPUTES.search(thought.text):
        observation = f"\n{observe(thought.text)[1]}\n"
        thought.text += observation
        yield observation


registry.modes.add("ember-thinking", ThinkingMode())
