"""Chat intake: a request's turns as sent (`Turn`: text, spoken and image parts in order) become the
`Message`s modes read. Every image part is checked and decoded (`ember.intake.images`) before any audio is
heard; then every spoken part is decoded and transcribed, and its transcript takes its place in the text.
What was heard is returned (the response's `input_transcripts` extension) so the caller sees it, and kept on
its message (`Message.heard`) for the store. What the images show is the pipeline's to describe
(`ember.vision`). This module knows nothing of the wire format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from ember.config import Settings
from ember.errors import InvalidAudio, InvalidImage, UnsupportedContent
from ember.intake.audio import AudioClip, decode_base64_audio
from ember.intake.images import decode_data_uri, fetch_image, refuse_url, url_kind
from ember.types import Heard, Image, Message, Role, ToolCall, Transcript


@dataclass(frozen=True)
class Spoken:
    """An `input_audio` part, not heard yet: base64 `data` in `format` (wav, mp3, …)."""

    data: str = field(repr=False)
    format: str


@dataclass(frozen=True)
class ImageRef:
    """An `image_url` part: a data URI, or an http(s) URL where the server allows fetching."""

    url: str = field(repr=False)


Part = str | Spoken | ImageRef


@dataclass(frozen=True)
class Turn:
    """One message as sent: its role and its parts (text as str) in order; an assistant turn's tool calls, a
    tool turn's call id."""

    role: Role
    parts: tuple[Part, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass
class Taken:
    """The turns as modes read them, and what was heard in each spoken part."""

    messages: list[Message]
    heard: list[dict[str, Any]]


Transcribe = Callable[[AudioClip], Awaitable[Transcript]]


def parts_of(turns: list[Turn], kind: type[Part]) -> list[tuple[tuple[int, int], Any]]:
    """Every part of type `kind`, with its (message, part) position."""
    return [((i, j), p) for i, t in enumerate(turns) for j, p in enumerate(t.parts) if isinstance(p, kind)]


def has_audio(turns: list[Turn]) -> bool:
    """Whether any turn holds a spoken part (hearing it takes the `audio` scope)."""
    return bool(parts_of(turns, Spoken))


def text_chars(turns: list[Turn]) -> int:
    """The length of the turns' text (audio is not heard yet)."""
    return sum(len(p) for t in turns for p in t.parts if isinstance(p, str))


async def take(turns: list[Turn], transcribe: Transcribe, settings: Settings) -> Taken:
    """Check and decode the images, then hear the spoken parts: the messages, and what was heard."""
    images = await read_images(turns, settings)
    heard = await _hear(turns, transcribe, settings)
    said = {where: Heard(entry["text"], entry["language"], entry["duration"]) for where, entry in heard.items()}
    messages = [_message(i, turn, said, images) for i, turn in enumerate(turns)]
    if heard and turns[-1].role == "user" and not messages[-1].content.strip():
        raise InvalidAudio("no speech was heard in the audio", param=f"messages.{len(turns) - 1}.content")
    return Taken(messages, list(heard.values()))


async def read_images(turns: list[Turn], settings: Settings) -> dict[tuple[int, int], Image]:
    """Every image part checked and decoded, by position."""
    parts = parts_of(turns, ImageRef)
    if len(parts) > settings.image_max_count:
        raise InvalidImage(f"at most {settings.image_max_count} images are accepted in one request", param="messages")
    images: dict[tuple[int, int], Image] = {}
    for (i, j), part in parts:
        where = f"messages.{i}.content.{j}"
        kind = url_kind(part.url)
        if turns[i].role != "user":
            raise UnsupportedContent(
                f"messages[{i}] has a 'image_url' part that this server cannot read here", param=f"messages.{i}.content"
            )
        if kind == "data":
            images[i, j] = await anyio.to_thread.run_sync(
                decode_data_uri, part.url, settings.image_max_bytes, settings.image_max_pixels, where
            )
        elif kind == "http" and settings.allow_image_urls:
            images[i, j] = await fetch_image(part.url, settings.image_max_bytes, settings.image_max_pixels, where)
        else:
            raise refuse_url(part.url, where)
    return images


async def _hear(turns: list[Turn], transcribe: Transcribe, settings: Settings) -> dict[tuple[int, int], dict[str, Any]]:
    parts = parts_of(turns, Spoken)
    if len(parts) > settings.audio_max_count:
        raise InvalidAudio(
            f"at most {settings.audio_max_count} audio parts are accepted in one request", param="messages"
        )
    heard: dict[tuple[int, int], dict[str, Any]] = {}
    for (i, j), part in parts:
        limits = (settings.audio_max_bytes, settings.audio_max_seconds, f"messages.{i}.content.{j}")
        clip = await anyio.to_thread.run_sync(decode_base64_audio, part.data, part.format, *limits)
        transcript = await transcribe(clip)
        heard[i, j] = {
            "message": i,
            "part": j,
            "text": transcript.text,
            "language": transcript.language,
            "duration": round(transcript.duration, 3),
        }
    return heard


def _message(i: int, turn: Turn, said: dict[tuple[int, int], Heard], images: dict[tuple[int, int], Image]) -> Message:
    texts = [
        p if isinstance(p, str) else said[i, j].text for j, p in enumerate(turn.parts) if not isinstance(p, ImageRef)
    ]
    found = tuple(images[i, j] for j, p in enumerate(turn.parts) if isinstance(p, ImageRef))
    heard = tuple(said[i, j] for j, p in enumerate(turn.parts) if isinstance(p, Spoken))
    return Message(
        turn.role,
        "\n".join(texts),
        found,
        tool_calls=turn.tool_calls,
        tool_call_id=turn.tool_call_id,
        heard=heard,
    )
