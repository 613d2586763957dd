"""Chat intake: `input_audio` parts become text through the speech engine before a mode sees them, and
`image_url` parts are checked and decoded (`ember.intake.images`) and attached to their parts.

Each transcript replaces its audio part in the request and is reported back (the response's
`input_transcripts` extension) so the caller sees what was heard. Images are checked before any audio is
heard; what they show is left to the engines (`ember.vision`). `protocol.to_chat_request` refuses what no
intake handled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ember.api.protocol import ChatCompletionRequest, ImageURLPart, InputAudioPart, TextPart
from ember.config import Settings
from ember.errors import InvalidAudio, InvalidImage
from ember.intake.audio import decode_base64_audio
from ember.intake.images import decode_data_uri, fetch_image, refuse_url, url_kind
from ember.types import TranscribeOptions

if TYPE_CHECKING:
    from ember.pipeline import Pipeline

P = TypeVar("P", ImageURLPart, InputAudioPart)


def has_audio(body: ChatCompletionRequest) -> bool:
    """Whether any message holds an `input_audio` part (hearing it takes the `audio` scope)."""
    return bool(_parts(body, InputAudioPart))


async def transcribe_audio_parts(
    body: ChatCompletionRequest, pipeline: Pipeline, settings: Settings
) -> list[dict[str, Any]]:
    """Check every image part (see `read_image_parts`), then replace every `input_audio` part by its
    transcript; return what was heard, per part."""
    await read_image_parts(body, settings)
    parts = _parts(body, InputAudioPart)
    if len(parts) > settings.audio_max_count:
        raise InvalidAudio(
            f"at most {settings.audio_max_count} audio parts are accepted in one request", param="messages"
        )
    heard: list[dict[str, Any]] = []
    for (i, j), part in parts:
        clip = await anyio.to_thread.run_sync(
            decode_base64_audio,
            part.input_audio.data,
            part.input_audio.format,
            settings.audio_max_bytes,
            settings.audio_max_seconds,
            f"messages.{i}.content.{j}",
        )
        transcript = await pipeline.transcribe(clip, TranscribeOptions())
        body.messages[i].content[j] = TextPart(type="text", text=transcript.text)  # type: ignore[index]
        heard.append(
            {
                "message": i,
                "part": j,
                "text": transcript.text,
                "language": transcript.language,
                "duration": round(transcript.duration, 3),
            }
        )
    if heard and body.messages[-1].role == "user" and not _has_text(body.messages[-1].content):
        raise InvalidAudio("no speech was heard in the audio", param=f"messages.{len(body.messages) - 1}.content")
    return heard


async def read_image_parts(body: ChatCompletionRequest, settings: Settings) -> int:
    """Check and decode every `image_url` part and attach the image to it; return how many there were."""
    parts = _parts(body, ImageURLPart)
    if len(parts) > settings.image_max_count:
        raise InvalidImage(f"at most {settings.image_max_count} images are accepted in one request", param="messages")
    for (i, j), part in parts:
        where = f"messages.{i}.content.{j}"
        url = part.image_url.url
        kind = url_kind(url)
        if kind == "data":
            image = await anyio.to_thread.run_sync(
                decode_data_uri, url, settings.image_max_bytes, settings.image_max_pixels, where
            )
        elif kind == "http" and settings.allow_image_urls:
            image = await fetch_image(url, settings.image_max_bytes, settings.image_max_pixels, where)
        else:
            raise refuse_url(url, where)
        part.attach(image)
    return len(parts)


def _parts(body: ChatCompletionRequest, kind: type[P]) -> list[tuple[tuple[int, int], P]]:
    """Every content part of type `kind`, with its (message, part) position."""
    return [
        ((i, j), part)
        for i, message in enumerate(body.messages)
        if isinstance(message.content, list)
        for j, part in enumerate(message.content)
        if isinstance(part, kind)
    ]


def _has_text(content: Any) -> bool:
    return (
        any(isinstance(p, TextPart) and p.text.strip() for p in content or [])
        if isinstance(content, list)
        else bool(content)
    )
