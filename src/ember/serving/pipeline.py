"""The pipeline: open a request (its conversation: whose it is and its stored turns), run the mode it
names with the server's `Services`, stream the answer and store the exchange as the person's consent
allows; and speech to text for intake and transcription.

Keys, limits and intake come before this (`ember.serving.chat`, or the CLI). The pipeline does not know
about HTTP or SSE, nor about metrics: it reports what it did to an optional `PipelineObserver`. An
answer's end reaches the caller only after its exchange is committed (see `Pipeline.chat`): a client told
an answer is complete can always find it stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Protocol

import anyio

from ember import registry
from ember.engines.pool import EnginePool
from ember.errors import EmberError, InvalidRequest, ModelNotFound, shown
from ember.intake.audio import AudioClip
from ember.medical.triage import crisis_notice
from ember.modes.base import Mode
from ember.policy import memory
from ember.policy.privacy import keeping, refuse_continuing
from ember.services import Services
from ember.serving.titles import Titles
from ember.store.consent import Consent, consent_of
from ember.store.sql import SqlStore, StoredAnswer, new_conversation_id
from ember.types import (
    Answer,
    ChatRequest,
    Delta,
    Message,
    Route,
    TranscribeOptions,
    Transcript,
    Usage,
    last_user_text,
)
from ember.vision.prompt import described

log = logging.getLogger(__name__)


class PipelineObserver(Protocol):
    """Told what the pipeline did (for metrics). Calls are quick and never raise."""

    def chat_done(self, mode: str, usage: Usage | None, first_token_s: float | None, total_s: float) -> None:
        """A generation ended (finished, failed or cancelled); `first_token_s` is None if no token came."""

    def transcribed(self, role: str, audio_s: float) -> None:
        """A clip of `audio_s` seconds was transcribed on `role`."""

    def routed(self, mode: str, route: Route) -> None:
        """`mode` (ember-auto) sent a request along `route`."""


def keeps(mode: Mode, consent: Consent) -> bool:
    """Whether this person's exchange with this mode may be stored: history on, and the mode's own
    consent flag (e.g. `health_storage` for ember-health) on if it declares one."""
    return consent.history and (mode.consent is None or consent.given(mode.consent))


def with_history(stored: list[Message], new: list[Message]) -> list[Message]:
    """The whole conversation: the stored turns, then the new ones (or `new` itself when it already begins
    with every stored turn, compared by role and text). A resent turn without its images (the web UI sends a
    reopened conversation's turns as text) keeps the stored descriptions of the images it carried."""
    resent = [(m.role, m.content, m.tool_calls) for m in new[: len(stored)]]
    if resent != [(m.role, m.content, m.tool_calls) for m in stored]:
        return [*stored, *new]
    resent_turns = zip(stored, new[: len(stored)], strict=True)
    kept = [m if m.images or m.descriptions else replace(m, descriptions=s.descriptions) for s, m in resent_turns]
    return [*kept, *new[len(stored) :]]


class Pipeline:
    def __init__(
        self, services: Services, observer: PipelineObserver | None = None, titles: Titles | None = None
    ) -> None:
        """`titles`: who writes a new conversation's title after its first exchange (None: it keeps its first
        message, cut short)."""
        self.services = services
        self.observer = observer
        self.titles = titles

    @property
    def engines(self) -> EnginePool:
        return self.services.engines

    @property
    def store(self) -> SqlStore:
        return self.services.store

    @staticmethod
    def mode(name: str) -> Mode:
        mode = registry.modes.get(name)
        if mode is None:
            raise ModelNotFound(
                f"The model {shown(name)} does not exist. Available: {', '.join(registry.modes.names())}",
                param="model",
            )
        return mode

    @staticmethod
    def modes_for(scopes: frozenset[str]) -> list[str] | None:
        """The modes a key with `scopes` may use, or None when it may use every one."""
        allowed = [mode.name for mode in registry.modes if mode.scope in scopes]
        return None if len(allowed) == len(registry.modes.names()) else allowed

    async def open(self, request: ChatRequest, mode: Mode) -> str:
        """Check the request can be served, fix its conversation id and put the conversation's stored turns
        before the new ones (before any generation); returns the id.

        Conversation ids are issued here: continuing one that is not this person's (another's, or one never
        issued) is NotFound. `messages` are the turns to add; messages that begin with every stored turn
        (clients that resend the whole conversation) are taken as they are. With the person's `history`
        consent (or the mode's own consent flag) off, nothing will be stored: the id stays None and "" is
        returned, and a request that names a conversation to continue is refused (HistoryOff, 400). A
        request that does not keep a conversation (`keep_conversation` False: the Responses API stores its
        own) opens none either. The stored turns are the active branch's, or with `request.replace` those
        before that turn (the new ones then go beside it, as a new branch); `request.anchor` says where the
        new turns go. `mode` is the mode `request.model` names."""
        request.opened = True
        consent = await anyio.to_thread.run_sync(consent_of, self.store, request.user)  # read once per request
        if consent.memory:
            await anyio.to_thread.run_sync(memory.prepare, self.store, request, consent, mode.memory, mode.consent)
        if not request.keep_conversation:
            return ""
        if not keeps(mode, consent):
            refuse_continuing(request.conversation_id, (mode.consent or "") if consent.history else "history")
            return ""
        if request.conversation_id is None:
            request.conversation_id = new_conversation_id()
            return request.conversation_id
        stored, request.anchor = await anyio.to_thread.run_sync(
            self.store.history, request.conversation_id, request.user, request.replace
        )
        request.messages = with_history(stored, request.messages)
        if not request.messages or request.messages[-1].role == "assistant":
            raise InvalidRequest(
                "the conversation would end with an answer: send a message to answer", param="messages"
            )
        return request.conversation_id

    async def transcribe(self, clip: AudioClip, options: TranscribeOptions, role: str = "asr") -> Transcript:
        """Speech to text on the speech engine serving `role`."""
        engine = await self.engines.get_speech(role)
        transcript = await engine.transcribe(clip, options)
        if self.observer is not None:
            self.observer.transcribed(role, transcript.duration)
        return transcript

    async def chat(self, request: ChatRequest, mode: Mode) -> AsyncGenerator[Delta, None]:
        """Stream the answer. The end of it (the delta with `finish_reason`, and any after it) is held back
        until the exchange is committed to the store, so a client that was told the answer is complete
        finds it stored, even if the server dies a moment later. If the answer fails or the client leaves
        first, what was generated is stored as `cancelled`. `mode` is the mode `request.model` names."""
        if not request.opened:
            await self.open(request, mode)
        if any(m.images for m in request.messages):
            request.messages = await self._described(request, mode)
        answer = Answer()
        held: list[Delta] = []  # the end of the answer, yielded once the exchange is stored
        committing = False
        started = time.perf_counter()
        first_token_s: float | None = None
        try:
            async for delta in self._answer(mode, request):
                answer.add(delta)
                if delta.route is not None and self.observer is not None:
                    self.observer.routed(request.model, delta.route)
                if first_token_s is None and answer.pieces:
                    first_token_s = time.perf_counter() - started
                if answer.finish_reason is not None:
                    held.append(delta)
                else:
                    yield delta
            committing = True
            await self._store(request, mode, answer)
            for delta in held:
                yield delta
        finally:
            if self.observer is not None:
                self.observer.chat_done(request.model, answer.usage, first_token_s, time.perf_counter() - started)
            if not committing:
                await self._store(request, mode, answer)

    async def _store(self, request: ChatRequest, mode: Mode, answer: Answer) -> None:
        """Store what was generated (an answer with no end is `cancelled`), shielded from cancellation."""
        if (answer.text or answer.finish_reason) and request.conversation_id is not None:
            finish = answer.finish_reason or "cancelled"
            stored = StoredAnswer(answer.text, answer.thought, finish, answer.usage, answer.tool_calls)
            routed = registry.modes.get(answer.route.target) if answer.route is not None else None
            with anyio.CancelScope(shield=True):
                await self._save(request, routed or mode, stored)

    async def _answer(self, mode: Mode, request: ChatRequest) -> AsyncGenerator[Delta, None]:
        """The mode's answer, preceded by crisis resources when the person speaks of suicide or an overdose
        (unless the mode triages itself, as ember-health does) and followed, once it is whole, by the memory
        proposal the request carries (`request.proposed`), on a delta of its own."""
        last = last_user_text(request.messages)
        # in a worker thread: the rules take seconds over a 5 MB message, and must not stall every other request
        notice = "" if mode.triages else await anyio.to_thread.run_sync(crisis_notice, last)
        if request.remembered is not None:
            yield Delta(content=f"Saved to your memory: “{request.remembered}”\n\n")
        if notice:
            yield Delta(content=notice + "\n\n")
            request = replace(request, crisis_shown=True)  # ember-auto may route to a mode that triages
        async for delta in mode.run(request, self.services):
            yield delta
        if request.proposed is not None:
            yield Delta(memory_proposal=request.proposed)

    async def _described(self, request: ChatRequest, mode: Mode) -> list[Message]:
        """The messages with their images described: always when one of `mode`'s models cannot see, and when
        the exchange is stored, so that later turns know the images (the images themselves are stored only with
        the person's `media_storage` consent).
        A description only for storing that cannot be made (the image readers are not set up) is left out."""
        blind = await self._blind(mode)
        if not (blind or request.conversation_id):
            return request.messages
        try:
            return await described(request.messages, self.services.settings)
        except EmberError as exc:
            if blind:
                raise
            log.warning("images kept undescribed in the stored turns: %s", type(exc).__name__)
            return request.messages

    async def _blind(self, mode: Mode) -> bool:
        """Whether one of `mode`'s roles runs a model that cannot see (it reads image descriptions)."""
        for role in mode.roles:
            if not (await self.engines.get(role)).capabilities.image:
                return True
        return False

    async def _save(self, request: ChatRequest, mode: Mode, answer: StoredAnswer) -> None:
        """Store the exchange, unless the person turned history off while it was generated, or `mode` (the
        one the request was routed to, for ember-auto) keeps only with a consent the person has not given;
        its images as the person's consent then says (`media_storage`); then ask for a title if the exchange began
        the conversation."""

        def save(conversation_id: str) -> bool:
            consent = consent_of(self.store, request.user)
            if not keeps(mode, consent):
                return False
            return self.store.save_exchange(
                conversation_id=conversation_id,
                user=request.user,
                mode=request.model,
                prompt=request.messages,
                answer=answer,
                keeping=keeping(consent, self.services.settings),
                anchor=request.anchor,
            )

        assert request.conversation_id is not None
        began = await anyio.to_thread.run_sync(save, request.conversation_id)
        if began and self.titles is not None:
            self.titles.write_for(request.conversation_id, last_user_text(request.messages), answer.content)
