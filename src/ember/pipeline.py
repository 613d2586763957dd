"""handle(request): route to the mode the request names, stream its answer, store the exchange;
and speech to text for intake and the transcription endpoint.

Intake (validation) happens before this, in the API or CLI; policy (keys, limits, consent) will sit
between intake and routing. The pipeline does not know about HTTP or SSE.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import anyio

from ember import registry
from ember.engines.pool import EnginePool
from ember.errors import ModelNotFound, NotFound
from ember.intake.audio import AudioClip
from ember.modes.base import Mode
from ember.store.sql import SqlStore, StoredAnswer, new_conversation_id
from ember.types import ChatRequest, Delta, TranscribeOptions, Transcript, Usage

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, engines: EnginePool, store: SqlStore) -> None:
        self.engines = engines
        self.store = store

    @staticmethod
    def mode(name: str) -> Mode:
        mode = registry.modes.get(name)
        if mode is None:
            raise ModelNotFound(
                f"The model {name!r} does not exist. Available: {', '.join(registry.modes.names())}",
                param="model",
            )
        return mode

    async def open(self, request: ChatRequest) -> str:
        """Check the request can be served and fix its conversation id (before any generation)."""
        self.mode(request.model)
        if request.conversation_id is None:
            request.conversation_id = new_conversation_id()
            return request.conversation_id
        owner = await anyio.to_thread.run_sync(self.store.owner_of, request.conversation_id)
        if owner is not None and owner != request.user:
            raise NotFound(f"conversation {request.conversation_id!r} not found", param="conversation_id")
        return request.conversation_id

    async def transcribe(self, clip: AudioClip, options: TranscribeOptions, role: str = "asr") -> Transcript:
        """Speech to text on the speech engine serving `role`."""
        engine = await self.engines.get_speech(role)
        return await engine.transcribe(clip, options)

    async def chat(self, request: ChatRequest) -> AsyncGenerator[Delta, None]:
        """Stream the answer. The exchange is stored when the stream ends, even if the client left."""
        mode = self.mode(request.model)
        if request.conversation_id is None:
            await self.open(request)
        content: list[str] = []
        reasoning: list[str] = []
        finish: str | None = None
        usage: Usage | None = None
        try:
            async for delta in mode.run(request, self.engines):
                content.append(delta.content)
                reasoning.append(delta.reasoning)
                finish = delta.finish_reason or finish
                usage = delta.usage or usage
                yield delta
        finally:
            if any(content) or finish:
                answer = StoredAnswer("".join(content), "".join(reasoning), finish or "cancelled", usage)
                with anyio.CancelScope(shield=True):
                    await self._save(request, answer)

    async def _save(self, request: ChatRequest, answer: StoredAnswer) -> None:
        assert request.conversation_id is not None
        await anyio.to_thread.run_sync(
            lambda: self.store.save_exchange(
                conversation_id=request.conversation_id or "",
                user=request.user,
                mode=request.model,
                prompt=request.messages,
                answer=answer,
            )
        )
