"""`ember-health`: triage first, then an answer grounded in the health knowledge index, with sources.

Order of the answer: (1) if red-flag triage fires, the emergency instruction, before anything else;
(2) if the question asks for an individual dose, the fixed refusal; (3) the fast model's answer, given the
top knowledge entries as numbered sources and told not to diagnose or dose; (4) a numbered source list
and a short disclaimer. The last delta carries the structured citations. Storage is the pipeline's
business: this mode declares `consent = "health_storage"`, so nothing is kept unless the person opted in,
and `scope = "health"`, so an API key needs that scope to use it.
The knowledge index and the triage embedder load once, on first use; this mode never builds the index.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from ember import registry
from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE
from ember.engines.embeddings import Embedder
from ember.engines.pool import EnginePool
from ember.errors import AssetMissing
from ember.health.knowledge import Hit, KnowledgeIndex, index_dir
from ember.health.triage import ALWAYS, DOSE_REFUSAL, Triager, asks_for_dose
from ember.types import ChatRequest, Citation, Delta, Message, last_user_text

SOURCES_SHOWN = 4
SYSTEM_PROMPT = (
    "You are Ember's health assistant. Give clear, general health information in plain words. "
    "Use the numbered sources below when they are relevant and cite them like [1]. "
    "Never state a definitive diagnosis; say what it could be and what a clinician would check. "
    "Never give an individual medication dose. Say when to see a doctor. Be brief."
)
DISCLAIMER = "General information, not medical advice: a clinician who can examine you should guide your care."
CITED = re.compile(r"\[(\d{1,2})\]")


@dataclass
class _Tools:
    index: KnowledgeIndex
    triager: Triager


def load_tools(cache_dir: Path) -> _Tools:
    """Open the built knowledge index and the triage embedder (blocking; call from a thread)."""
    embed_dir = ensure_asset(CATALOGUE["embed"], cache_dir)
    directory = index_dir(cache_dir, embed_dir)
    if not (directory / "vectors.npy").is_file():
        raise AssetMissing(f"the health knowledge index is not built: run `ember health build` (it writes {directory})")
    embedder = Embedder(embed_dir)
    return _Tools(KnowledgeIndex(directory, embedder), Triager(embedder))


def sources_prompt(hits: list[Hit]) -> str:
    lines = [f"[{i}] {h.entry.title} ({h.entry.source}): {h.entry.text}" for i, h in enumerate(hits, start=1)]
    return "Sources:\n" + "\n".join(lines)


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
    return f"\n\nSources:\n{listed}\n\n_{DISCLAIMER}_"


@dataclass
class HealthMode:
    name: str = "ember-health"
    description: str = (
        "Health information with red-flag triage first, grounded in cited sources; kept only with consent."
    )
    roles: tuple[str, ...] = ("chat-fast",)
    consent: str = "health_storage"
    scope: str = "health"
    triages: bool = True  # the pipeline adds no crisis notice of its own
    _tools: _Tools | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # not tied to an event loop

    def _load_once(self, cache_dir: Path) -> _Tools:
        with self._lock:
            tools = self._tools or load_tools(cache_dir)
            self._tools = tools
            return tools

    async def tools(self, engines: EnginePool) -> _Tools:
        if self._tools is not None:
            return self._tools
        return await asyncio.to_thread(self._load_once, engines.settings.cache_dir)

    def tools_now(self) -> _Tools:
        """The loaded tools (after a first request); for inspection."""
        if self._tools is None:
            raise RuntimeError("ember-health has not loaded its tools yet")
        return self._tools

    async def run(self, request: ChatRequest, engines: EnginePool) -> AsyncIterator[Delta]:
        question = last_user_text(request.messages)
        tools = await self.tools(engines)
        found = await asyncio.to_thread(tools.triager, question)
        if request.crisis_shown:  # ember-auto routed here after the pipeline's crisis resources
            found = found.without(ALWAYS)
        if found.urgent:
            yield Delta(content=found.message() + "\n\n")
        if asks_for_dose(question):
            yield Delta(content=DOSE_REFUSAL + "\n\n")
        hits = await asyncio.to_thread(tools.index.search, question, SOURCES_SHOWN)
        system = Message("system", f"{SYSTEM_PROMPT}\n\n{sources_prompt(hits)}")
        messages = [system, *(m for m in request.messages if m.role != "system")]
        engine = await engines.get(self.roles[0])
        answer: list[str] = []
        last = Delta()
        async for delta in engine.stream(messages, request.params):
            if delta.finish_reason or delta.usage:
                last = delta
            if delta.content or delta.reasoning:
                answer.append(delta.content)
                yield Delta(content=delta.content, reasoning=delta.reasoning)
        citations = citations_for("".join(answer), hits)
        yield Delta(content=closing(citations), finish_reason=last.finish_reason, usage=last.usage, citations=citations)


registry.modes.add("ember-health", HealthMode())
