"""Serving the Responses API on the chat path: a request's items become turns (the instructions first, then
the items of the responses `previous_id` continues, then its own) and `ChatServing` answers them exactly as
it answers a chat completion (mode, scopes, limits, admission, intake, pipeline); what the answer made is
stored as a response of the person, as their consent allows.

    started = await serving.start(spec, principal, stack)
    ... stream or read started.served ...
    stored = await serving.finish(started, output_items)   # before the client hears the response is done

Consent, as chat treats a conversation: with the person's `history` flag off (or the mode's own flag, e.g.
`health_storage` for ember-health, or that of the mode ember-auto routed to) nothing is stored and the
response says `store: false`; continuing a response (`previous_id`) is then refused (HistoryOff, 400). A
response that failed or was left by its client is not stored. The chain follows only the person's own
responses: another person's id, like one never issued, is NotFound. This module knows nothing of HTTP.
"""

from __future__ import annotations

import re
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio

from ember import registry
from ember.errors import EmberError, InvalidRequest, NotFound
from ember.intake.chat import Turn
from ember.modes.base import Mode
from ember.policy.keys import Principal
from ember.policy.privacy import refuse_previous_response
from ember.serving.base import Serving
from ember.serving.chat import ChatServing, Served
from ember.serving.pipeline import keeps
from ember.serving.response_items import status_of, turns_of, with_transcripts
from ember.store.consent import consent_of
from ember.store.responses import Item, ResponseStore, StoredResponse, new_response_id
from ember.types import ChatRequest, Person, Usage

_MESSAGES_PARAM = re.compile(r"^messages(?:\.(\d+))?(.*)$")


@dataclass
class ResponseSpec:
    """A Responses request in Ember's terms: the chat request (its messages come from the items), the
    request's own input items (normalised, with ids), its instructions, the response it continues, whether
    to store it, and `settings`: what the response shows of the request (stored with it)."""

    request: ChatRequest
    input: list[Item]
    instructions: str | None = None
    previous_id: str | None = None
    store: bool = True
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class StartedResponse:
    """A response whose answer has started: its id, when, the served answer, and whether it will be stored
    (`keep`: asked for, and the person's consent allows it)."""

    id: str
    created_at: float
    spec: ResponseSpec
    mode: Mode
    served: Served
    keep: bool
    item_of: list[int | None]  # a turn's index → the index of the request's own item it came from (or None)


class ResponsesServing(Serving):
    @property
    def responses(self) -> ResponseStore:
        return ResponseStore(self.pipeline.store.db)

    async def start(self, spec: ResponseSpec, principal: Principal, stack: AsyncExitStack) -> StartedResponse:
        """Check the request, replay what it continues, and start the answer through `ChatServing`."""
        request = spec.request
        mode = self.pipeline.mode(request.model)  # an unknown model is 404 before any response is looked up
        principal.require(mode.scope)
        consent = await anyio.to_thread.run_sync(consent_of, self.pipeline.store, request.user)
        allowed = keeps(mode, consent)
        if not allowed:
            refuse_previous_response(spec.previous_id, "history" if not consent.history else mode.consent or "")
        earlier = await self._chain(spec.previous_id, request)
        replayed = [item for response in earlier for item in (*response.input, *response.output)]
        turns, sources = turns_of([*replayed, *spec.input], first=len(replayed))
        head = [Turn("system", (spec.instructions,))] if spec.instructions else []
        if not turns or turns[-1].role == "assistant":
            raise InvalidRequest(
                "The input must end with a user, system or developer message or a function_call_output.",
                param="input",
            )
        item_of = [None] * len(head) + [s - len(replayed) if s >= len(replayed) else None for s in sources]
        request.keep_conversation = False  # a response is stored as one (below), not as a conversation
        response_id, created_at = new_response_id(), time.time()
        try:
            served = await ChatServing(self.pipeline, self.settings, self.limiter, self.admission).start(
                request, [*head, *turns], principal, stack
            )
        except EmberError as exc:  # intake and engines name chat's `messages`: name this request's `input`
            _renamed(exc, item_of)
            raise
        return StartedResponse(response_id, created_at, spec, mode, served, spec.store and allowed, item_of)

    async def get(self, response_id: str, person: Person) -> StoredResponse:
        """`person`'s stored response (NotFound if none of theirs has that id)."""
        return await anyio.to_thread.run_sync(self.responses.get, response_id, person)

    async def delete(self, response_id: str, person: Person) -> None:
        """Hard-delete `person`'s stored response (NotFound if none of theirs has that id)."""
        await anyio.to_thread.run_sync(self.responses.delete, response_id, person)

    async def _chain(self, previous_id: str | None, request: ChatRequest) -> list[StoredResponse]:
        if previous_id is None:
            return []
        try:
            return await anyio.to_thread.run_sync(self.responses.chain, previous_id, request.user)
        except NotFound as exc:
            exc.param = "previous_response_id"
            raise

    async def finish(self, started: StartedResponse, output: list[Item]) -> bool:
        """Store the finished response (its input with transcripts for audio, its output, settings and usage)
        if it is kept and the person's consent still allows it, for the mode that answered (ember-auto's
        route); whether it was stored. Shielded: a client that leaves now does not half-store it."""
        answer = started.served.answer
        if not started.keep:
            return False
        routed = registry.modes.get(answer.route.target) if answer.route is not None else None
        spec, person = started.spec, started.spec.request.user
        stored = StoredResponse(
            id=started.id,
            person=person,
            created_at=started.created_at,
            model=spec.request.model,
            previous_id=spec.previous_id,
            status=status_of(answer),
            input=with_transcripts(spec.input, started.served.heard, started.item_of),
            output=output,
            settings=spec.settings,
            usage=answer.usage or Usage(),
        )

        def save() -> bool:
            if not keeps(routed or started.mode, consent_of(self.pipeline.store, person)):
                return False
            self.responses.save(stored)
            return True

        with anyio.CancelScope(shield=True):
            kept = await anyio.to_thread.run_sync(save)
        return kept


def _renamed(exc: EmberError, item_of: list[int | None]) -> None:
    """A chat-shaped error parameter (`messages.3.content.1`, from intake or an engine) renamed as this
    request's (`input.2.content.1`; `input` when the turn is not one of its own items), in the message too."""
    match = _MESSAGES_PARAM.match(exc.param or "")
    if match is None:
        return
    turn, rest = match.groups()
    where = item_of[int(turn)] if turn is not None and int(turn) < len(item_of) else None
    param = f"input.{where}{rest}" if where is not None else "input"
    if exc.message.startswith(f"{exc.param}:"):
        exc.message = param + exc.message[len(match.group(0)) :]
    exc.param = param
