"""Conversation titles written by a model. A conversation is stored with its first message, cut short, as its
title; once its first exchange is stored, the fast model (`Settings.title_role`) writes a short title in the
person's language in the background, and it replaces the cut one unless the person renamed the conversation
meanwhile (a title a person sets is never replaced: `SqlStore.write_title`).

One worker writes the titles one at a time from a bounded queue (`Titles.keep_writing`, for the app's
lifespan); when the queue is full a conversation keeps its cut title. A title that cannot be written (the
engine fails) is logged by the error's type only: neither titles nor messages are logged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import anyio
from sqlalchemy.exc import SQLAlchemyError

from ember.engines.passes import complete
from ember.errors import EmberError
from ember.services import Services
from ember.store.sql import TITLE_CHARS
from ember.types import GenerationParams, Message

log = logging.getLogger(__name__)

QUEUED = 32  # conversations waiting for a title at most
SAMPLE_CHARS = 600  # of the first message, and of the answer, that the model reads
TITLE_TOKENS = 24
INSTRUCTION = (
    "Write a title for the conversation below: at most six words, in the language the user wrote in. "
    "Reply with the title only."
)
_LABEL = re.compile(r"^\s*(?:title|titre|titel|título|titolo)\s*:\s*", re.IGNORECASE)
_WRAPPING = "\"'“”\u2018\u2019«»„`*#_ \t"  # quotes, Markdown marks, spaces


@dataclass(frozen=True)
class FirstExchange:
    conversation_id: str
    question: str
    answer: str


def cleaned(text: str) -> str:
    """A model's reply as a title: its first line without a "Title:" label, quotes, Markdown marks or a
    closing full stop, on one line, cut at a word to fit `TITLE_CHARS` ('' if nothing is left)."""
    line = next((line for line in text.splitlines() if line.strip(_WRAPPING)), "")
    title = " ".join(_LABEL.sub("", line.strip(_WRAPPING)).split()).strip(_WRAPPING).rstrip(".:;,").strip(_WRAPPING)
    if len(title) > TITLE_CHARS:
        title = title[:TITLE_CHARS].rsplit(" ", 1)[0]
    return title


class Titles:
    """Writes the titles of new conversations with the `title_role` model, in the background."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._send, self._receive = anyio.create_memory_object_stream[FirstExchange](QUEUED)

    def write_for(self, conversation_id: str, question: str, answer: str) -> None:
        """Ask for a title for a conversation whose first exchange was just stored (returns at once)."""
        try:
            self._send.send_nowait(FirstExchange(conversation_id, question[:SAMPLE_CHARS], answer[:SAMPLE_CHARS]))
        except anyio.WouldBlock:
            log.warning("titles: %d conversations wait already; this one keeps its first message as title", QUEUED)

    async def keep_writing(self) -> None:
        """Write the titles asked for, one at a time, until cancelled."""
        async with self._receive:
            async for exchange in self._receive:
                try:
                    await self.write(exchange)
                except (EmberError, SQLAlchemyError) as exc:
                    log.warning("titles: a title could not be written (%s)", type(exc).__name__)

    async def write(self, exchange: FirstExchange) -> bool:
        """Write one conversation's title; returns whether it replaced the cut one."""
        engine = await self.services.engines.get(self.services.settings.title_role)
        prompt = f"User: {exchange.question}\n\nAssistant: {exchange.answer}"
        messages = [Message("system", INSTRUCTION), Message("user", prompt)]
        reply = await complete(engine, messages, GenerationParams(max_tokens=TITLE_TOKENS, temperature=0.0))
        title = cleaned(reply.text)
        if not title:
            return False
        return await anyio.to_thread.run_sync(self.services.store.write_title, exchange.conversation_id, title)
