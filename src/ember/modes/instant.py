"""`ember-instant`: the fast model answers directly, with no reasoning step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from ember import registry
from ember.engines.pool import EnginePool
from ember.types import ChatRequest, Delta, Message

SYSTEM_PROMPT = "You are Ember, a helpful, concise assistant."


@dataclass(frozen=True)
class InstantMode:
    name: str = "ember-instant"
    description: str = "Quick answers from the fast model; no reasoning step."
    roles: tuple[str, ...] = ("chat-fast",)

    async def run(self, request: ChatRequest, engines: EnginePool) -> AsyncIterator[Delta]:
        engine = await engines.get(self.roles[0])
        messages = request.messages
        if not any(m.role == "system" for m in messages):
            messages = [Message("system", SYSTEM_PROMPT), *messages]
        async for delta in engine.stream(messages, request.params):
            yield delta


registry.modes.add("ember-instant", InstantMode())
