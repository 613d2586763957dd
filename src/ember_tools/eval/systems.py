"""What the side-by-side evaluations share: a system's `Reply`, Ember's modes answering through the Pipeline
(`EmberSystem`), a record's cache key (the cache, digests and model fingerprints are `cache`'s) and asking
items' systems a few items at once (`in_turn`).

A cache record's key is `cache_key(system, item, body)`: the system's name, the item's id and a hash of the
system's fingerprint (its model files and the code that writes its prompts) with the request body, so a
changed model, prompt or request is asked again and an unchanged one never is. This module scores nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import click
from tqdm import tqdm

from ember import registry
from ember.api.protocol import ChatCompletionRequest, to_chat_request
from ember.config import Settings
from ember.errors import EmberError
from ember.serving.pipeline import Pipeline
from ember.types import Answer, ChatRequest, Delta, Message, Person, Usage
from ember_tools.eval.cache import Cache, digest, role_models

EVAL_USER = Person("", "eval")
T = TypeVar("T")
S = TypeVar("S")


@dataclass
class Reply:
    """What a system answered: its calls as (name, JSON arguments), its text, the sources it cited as
    (number, entry id), its cost, any error."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    error: str = ""
    citations: list[tuple[int, str]] = field(default_factory=list)


class System(Protocol):
    name: str
    fingerprint: str  # what its answers depend on besides the request: model file and prompt code

    async def ask(self, body: dict[str, Any]) -> Reply: ...


def parsed(mode: str, body: dict[str, Any]) -> ChatRequest:
    """`body` as the API layer parses and checks it for `mode`, with its messages as plain text turns."""
    request = to_chat_request(ChatCompletionRequest.model_validate({"model": mode, **body}), EVAL_USER)
    return replace(request, messages=[Message(m["role"], m["content"]) for m in body["messages"]])


async def answered(deltas: Callable[[], AsyncIterable[Delta]]) -> Reply:
    """The Reply of the stream `deltas()` makes: text, calls, citations, tokens and seconds, or the Ember
    error that ended it."""
    started = time.perf_counter()
    try:
        answer = await Answer.of(deltas())
    except EmberError as exc:
        return Reply(seconds=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
    usage = answer.usage or Usage()
    calls = [(c.name, c.arguments) for c in answer.tool_calls]
    citations = [(c.index, c.id) for c in answer.citations]
    seconds = time.perf_counter() - started
    return Reply(calls, answer.text, usage.prompt_tokens, usage.completion_tokens, seconds, "", citations)


class EmberSystem:
    """An Ember mode through the Pipeline, its request parsed and checked as the API layer does it; `code`:
    what else its answers depend on besides its roles' models and its mode's module (e.g. other modules'
    source); `name`: what records call it (the mode's name unless given)."""

    def __init__(
        self, mode: str, pipeline: Pipeline, settings: Settings, code: tuple[str, ...] = (), name: str | None = None
    ) -> None:
        self.name = name or mode
        self.pipeline = pipeline
        found = registry.modes.get(mode)
        if found is None:
            raise click.ClickException(f"no mode {mode!r}: {', '.join(registry.modes.names())}")
        self.mode_name, self.mode = mode, found
        source = inspect.getsource(sys.modules[type(found).__module__])
        self.fingerprint = digest(role_models(settings, found.roles), [source, *code])

    async def ask(self, body: dict[str, Any]) -> Reply:
        return await answered(lambda: self.pipeline.chat(parsed(self.mode_name, body), self.mode))


def cache_key(system: System, item: str, body: dict[str, Any]) -> str:
    return f"{system.name}|{item}|{digest(system.fingerprint, body)[:16]}"


async def in_turn(
    todo: list[tuple[T, list[S]]],
    answer: Callable[[T, S], Awaitable[dict[str, Any]]],
    cache: Cache,
    concurrency: int,
    desc: str,
) -> None:
    """Append to `cache` the record `answer(item, system)` returns for every item of `todo` and each of its
    systems: `concurrency` items at once, taken in order, each item's systems in turn. A failure stops every
    worker."""
    queue = deque(todo)
    with tqdm(total=sum(len(systems) for _, systems in todo), desc=desc, unit="answer") as bar:

        async def worker() -> None:
            while queue:
                item, systems = queue.popleft()
                for system in systems:
                    cache.add(await answer(item, system))
                    bar.update()

        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
