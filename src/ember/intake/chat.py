"""Chat intake: `input_audio` parts become text through the speech engine before a mode sees them.

Each transcript replaces its audio part in the request and is reported back (the response's
`input_transcripts` extension) so the caller sees what was heard. Image parts are left for the vision
intake; `protocol.to_chat_request` refuses what no intake handled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ember.api.protocol import ChatCompletionRequest, InputAudioPart, TextPart
from ember.config import Settings
from ember.errors import InvalidAudio
from ember.intake.audio import decode_base64_audio
from ember.types import TranscribeOptions

if TYPE_CHECKING:
    from ember.pipeline import Pipeline


async def transcribe_audio_parts(
    body: ChatCompletionRequest, pipeline: Pipeline, settings: Settings
) -> list[dict[str, Any]]:
    """Replace every `input_audio` part by its transcript; return what was heard, per part."""
    heard: list[dict[str, Any]] = []
    for i, message in enumerate(body.messages):
        if not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            if not isinstance(part, InputAudioPart):
                continue
            where = f"messages.{i}.content.{j}"
            clip = await anyio.to_thread.run_sync(
                decode_base64_audio,
                part.input_audio.data,
                part.input_audio.format,
                settings.audio_max_bytes,
                settings.audio_max_seconds,
                where,
            )
            transcript = await pipeline.transcribe(clip, TranscribeOptions())
            message.content[j] = TextPart(type="text", text=transcript.text)
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


def _has_text(content: Any) -> bool:
    return (
        any(isinstance(p, TextPart) and p.text.strip() for p in content or [])
        if isinstance(content, list)
        else bool(content)
    )
