"""Serving one chat request, whatever its wire format: the mode is resolved once; the key's scopes (the
mode's, and `audio` for spoken parts) and its rate limits are checked before any audio is heard; the request
takes a place in the server's admission limit; intake checks the images and hears the audio; the pipeline
opens the conversation and starts the answer, whose first delta is awaited so that errors the engine finds
(a prompt beyond the context) are reported before anything is sent.

    served = await serving.start(request, turns, principal, stack)
    served.first, served.deltas        # stream them, or: answer = await served.rest()

Everything the request holds (its concurrent-streams slot, its admission place, the answer's stream) is
pushed on the caller's `stack`, which the caller closes once the answer is over, however it ended; the
answer's weighted tokens are debited then. This module knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio

from ember.errors import InvalidRequest
from ember.intake.audio import AudioClip
from ember.intake.chat import Turn, has_audio, take, text_chars
from ember.policy.keys import Principal
from ember.policy.limits import Meter, estimate_tokens
from ember.serving.base import Serving
from ember.types import Answer, ChatRequest, Delta, TranscribeOptions, Transcript


@dataclass
class Served:
    """A started answer: what was heard, the response headers (the conversation id, when the
    exchange is kept, and the key's quota), the first delta (None: an empty answer), the rest, and
    `answer`: every delta read so far, folded (by the meter that counts them)."""

    heard: list[dict[str, Any]]
    headers: dict[str, str]
    first: Delta | None
    deltas: AsyncGenerator[Delta, None]
    answer: Answer

    async def rest(self) -> Answer:
        """The whole answer, the first delta included."""
        async for _ in self.deltas:
            pass
        return self.answer


class ChatServing(Serving):
    async def start(
        self, request: ChatRequest, turns: list[Turn], principal: Principal, stack: AsyncExitStack
    ) -> Served:
        """Check, admit, take in and start `request` (its messages come from `turns`) for `principal`."""
        mode = self.pipeline.mode(request.model)  # an unknown model fails before any limit is spent
        principal.require(mode.scope)
        if not mode.tools and (request.params.tools or any(t.tool_calls or t.role == "tool" for t in turns)):
            raise InvalidRequest(
                f"{mode.name} does not call tools; use ember-instant, ember-thinking or ember-auto", param="tools"
            )
        if has_audio(turns):
            principal.require("audio")  # speech to text is the audio scope's, in chat as in transcriptions
        meter = Meter(estimate_tokens(text_chars(turns)), mode.cost_weight)
        quota = await self.limiter.check(principal, meter.estimated)
        await stack.enter_async_context(self.limiter.stream(principal))
        stack.push_async_callback(self._debit, principal, meter)
        await stack.enter_async_context(self.admission.hold())
        taken = await take(turns, self._transcribe, self.settings)
        request.messages, request.scopes = taken.messages, principal.scopes
        conversation_id = await self.pipeline.open(request, mode)
        deltas = meter.watch(self.pipeline.chat(request, mode))
        stack.push_async_callback(deltas.aclose)
        first = await anext(deltas, None)
        stored = {"x-ember-conversation-id": conversation_id} if conversation_id else {}  # none: not kept
        return Served(taken.heard, {**stored, **quota.headers()}, first, deltas, meter.answer)

    async def _transcribe(self, clip: AudioClip) -> Transcript:
        return await self.pipeline.transcribe(clip, TranscribeOptions())

    async def _debit(self, principal: Principal, meter: Meter) -> None:
        with anyio.CancelScope(shield=True):
            await self.limiter.debit(principal, meter.tokens)
