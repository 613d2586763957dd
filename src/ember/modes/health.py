"""`ember-health`: triage first, then an answer grounded in the health knowledge index, with sources.

Order of the answer: (1) if red-flag triage fires, the emergency instruction, before anything else;
(2) if the question asks for an individual dose, the fixed refusal; (3) the `chat` model's answer (the larger one;
a multiple-choice question is answered in one short pass, "Answer: <letter>" and why, as ember-auto's choice
route answers), given the
top knowledge entries as numbered sources and told not to diagnose or dose; (4) a numbered source list
and a short disclaimer. The last delta carries the structured citations. Until the index is built (a server
builds a missing one in the background: `ember.medical.service`), the answer has no sources and its end
says so instead of listing them; triage and the dose refusal work the same. The index is searched with the
last question (after the one before it when it is a short follow-up) and the start of the descriptions of
the images it carries (machine guesses, which the model also reads as such). Storage is the pipeline's
business: this mode declares `consent = "health_storage"`, so nothing is kept unless the person opted in,
and `scope = "health"`, so an API key needs that scope to use it. This mode never builds the index.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from ember import registry
from ember.agents.router import options_in
from ember.medical.knowledge import Hit
from ember.medical.triage import ALWAYS, DOSE_REFUSAL, asks_for_dose
from ember.modes.base import Mode
from ember.policy.memory import with_memories
from ember.services import Services
from ember.types import Answer, ChatRequest, Citation, Delta, Message, last_user_text

SOURCES_SHOWN = 4
SYSTEM_PROMPT = (
    "You are Ember's health assistant. Give clear, general health information in plain words. "
    "{sources}Never state a definitive diagnosis; say what it could be and what a clinician would check. "
    "Never give an individual medication dose. Say when to see a doctor. Be brief."
)
USE_SOURCES = "Use the numbered sources below when they are relevant and cite them like [1]. "
# After the sources, where a small model still reads it: on 6 questions of the grounded evaluation's dev slice,
# 0 answers cited a source by number without it, 5 with it.
CITE_EACH = (
    "\n\nEnd every sentence that uses a source with that source's number in square brackets, like this: <sentence> [2]."
)
CHOICE_PROMPT = (
    'This is a multiple-choice question: start with a line of the form "Answer: <letter>", then say why in one '
    "or two sentences. "
)
CHOICE_TOKENS = 96  # one pass: the option and a reason, as ember-auto's choice route answers
DISCLAIMER = "General information, not medical advice: a clinician who can examine you should guide your care."
PREPARING = "Ember is still preparing its health sources"
UNAVAILABLE = "Ember's health sources are not available"
CITED = re.compile(r"\[(\d{1,2})\]")
SOURCES_HEADING = "\n\nSources:\n"  # between the model's answer and the list of the sources it cites


FOLLOW_UP_WORDS = 8
DESCRIBED_CHARS = 300  # of an attached image's description, in what the index is searched with


def search_text(messages: list[Message]) -> str:
    """What the knowledge index is searched with: the last question; after an earlier one when it is a short
    follow-up ("and for children?"); and the start of the descriptions of the images it carries."""
    asked = [m for m in messages if m.role == "user"]
    if not asked:
        return ""
    last = asked[-1]
    parts = [last.content]
    if len(asked) > 1 and len(last.content.split()) <= FOLLOW_UP_WORDS:
        parts.insert(0, asked[-2].content)
    parts += [d[:DESCRIBED_CHARS] for d in last.descriptions]
    return "\n".join(p for p in parts if p.strip())


def sources_prompt(hits: list[Hit]) -> str:
    lines = [f"[{i}] {h.entry.title} ({h.entry.source}): {h.entry.text}" for i, h in enumerate(hits, start=1)]
    return "Sources:\n" + "\n".join(lines) + CITE_EACH


def system_message(hits: list[Hit], choice: bool = False) -> Message:
    """The model's instructions: to cite the numbered sources that follow them when there are `hits` (the
    same words without sources otherwise), and to answer a multiple-choice question in one short pass."""
    prompt = (CHOICE_PROMPT if choice else "") + SYSTEM_PROMPT.format(sources=USE_SOURCES if hits else "")
    return Message("system", f"{prompt}\n\n{sources_prompt(hits)}" if hits else prompt)


def citations_for(answer: str, hits: list[Hit]) -> tuple[Citation, ...]:
    """The sources the answer cites by number; all sources shown if it cites none."""
    numbers = [int(n) for n in CITED.findall(answer) if 1 <= int(n) <= len(hits)]
    chosen = list(dict.fromkeys(numbers)) or list(range(1, len(hits) + 1))
    return tuple(
        Citation(n, hits[n - 1].entry.id, hits[n - 1].entry.title, hits[n - 1].entry.url, hits[n - 1].entry.source)
        for n in chosen
    )


def closing(citations: tuple[Citation, ...]) -> str:
    listed = "\n".join(f"[{c.index}] {c.title} ({c.source}) {c.url}" for c in citations)
    return f"{SOURCES_HEADING}{listed}\n\n_{DISCLAIMER}_"


def no_sources_note(status: dict[str, Any]) -> str:
    """The end of an answer given without the knowledge index: why it cites nothing, then the disclaimer."""
    if status["building"]:
        done = f" ({100 * status['done'] // status['total']}% done)" if status["total"] else ""
        why = f"{PREPARING}{done}, so this answer cites none; ask again in a few minutes for one with sources."
    else:
        why = f"{UNAVAILABLE} (an operator can run `ember health build`), so this answer cites none."
    return f"\n\n_{why}_\n\n_{DISCLAIMER}_"


@dataclass
class HealthMode(Mode):
    name: str = "ember-health"
    description: str = (
        "Health information with red-flag triage first, grounded in cited sources; kept only with consent."
    )
    roles: tuple[str, ...] = ("chat",)  # the larger model: the mode where answers matter most
    consent: str | None = "health_storage"
    memory: bool = True  # given the person's facts only with health_storage on too
    scope: str = "health"
    triages: bool = True  # the pipeline adds no crisis notice of its own

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        question = last_user_text(request.messages)
        knowledge = services.knowledge
        triager = await knowledge.triager()
        found = await asyncio.to_thread(triager, question)
        if request.crisis_shown:  # ember-auto routed here after the pipeline's crisis resources
            found = found.without(ALWAYS)
        if found.urgent:
            yield Delta(content=found.message() + "\n\n")
        if asks_for_dose(question):
            yield Delta(content=DOSE_REFUSAL + "\n\n")
        index = await knowledge.index()
        query = search_text(request.messages)
        hits = await asyncio.to_thread(index.search, query, SOURCES_SHOWN) if index is not None else []
        choice = options_in(question) >= 2
        system = system_message(hits, choice)
        messages = with_memories([system, *(m for m in request.messages if m.role != "system")], request.memories)
        params = request.params
        if choice:
            params = replace(params, max_tokens=min(params.max_tokens or CHOICE_TOKENS, CHOICE_TOKENS))
        engine = await services.engines.get(self.roles[0])
        answer = Answer()
        async for delta in engine.stream(messages, params):
            if answer.add(delta).content or delta.reasoning:
                yield Delta(content=delta.content, reasoning=delta.reasoning)
        end = Delta(finish_reason=answer.finish_reason, usage=answer.usage)
        if index is None:
            end.content = no_sources_note(knowledge.status())
            yield end
            return
        end.citations = citations_for(answer.text, hits)
        end.content = closing(end.citations)
        yield end


registry.modes.add("ember-health", HealthMode())
