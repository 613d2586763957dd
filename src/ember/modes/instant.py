"""`ember-instant`: the fast model answers directly, with no reasoning step.

A request with images goes to the `chat` role (the larger model) instead, when the fast model cannot see
and that role is configured: images then reach the model as the image readers' text description, and
the 0.5B model too often ignores what the description says (photo questions: 68.1% with it, 80.9% with the
1.5B; docs/vision.md). A fast role with native vision keeps its images. Offered functions are called as
`ember.calling` does it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from ember import registry
from ember.agents.loop import server_calls_for
from ember.calling import call_or_answer
from ember.modes.base import Mode
from ember.policy.memory import with_memories
from ember.services import Services
from ember.types import ChatRequest, Delta, Message

SYSTEM_PROMPT = "You are Ember, a helpful, concise assistant."
IMAGE_ROLE = "chat"


@dataclass(frozen=True)
class InstantMode(Mode):
    name: str = "ember-instant"
    description: str = "Quick answers from the fast model; no reasoning step."
    roles: tuple[str, ...] = ("chat-fast",)
    tools: bool = True
    memory: bool = True

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        engines = services.engines
        engine = await engines.get(self.roles[0])
        described = any(m.images for m in request.messages) and not engine.capabilities.image
        if described and IMAGE_ROLE in engines.settings.roles:
            engine = await engines.get(IMAGE_ROLE)
        messages = request.messages
        if not any(m.role == "system" for m in messages):
            messages = [Message("system", SYSTEM_PROMPT), *messages]
        messages = with_memories(messages, request.memories)
        async for delta in call_or_answer(
            engine, messages, request.params, services.embedders, server_calls_for(request, services)
        ):
            yield delta


registry.modes.add("ember-instant", InstantMode())
