"""Serving one transcription, whatever its wire format: the speech role the request's model names, the
key's request limit (audio seconds are not tokens), the upload read within the size cap, and a place in
the server's admission limit while the audio is decoded and heard (ServerBusy when full). The caller has
checked the `audio` scope. This module knows nothing of HTTP.
"""

from __future__ import annotations

from typing import Protocol

import anyio

from ember.errors import ModelNotFound, PayloadTooLarge, shown
from ember.intake.audio import decode_audio
from ember.policy.keys import Principal
from ember.serving.base import Serving
from ember.types import TranscribeOptions, Transcript

ALIASES = {"whisper-1": "asr"}  # what OpenAI clients send by default


class Upload(Protocol):
    """An uploaded file: its name, if the client gave one, and its bytes."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


class TranscriptionServing(Serving):
    def role(self, model: str) -> str:
        """The configured speech role `model` names (OpenAI's `whisper-1` means `asr`); ModelNotFound if none."""
        pool = self.pipeline.engines
        role = ALIASES.get(model, model)
        if not pool.is_speech(role):
            known = ", ".join(["whisper-1", *pool.speech_roles()])
            raise ModelNotFound(f"The speech model {shown(model)} does not exist. Available: {known}", param="model")
        return role

    async def transcribe(
        self, principal: Principal, model: str, upload: Upload, options: TranscribeOptions
    ) -> tuple[Transcript, dict[str, str]]:
        """What `upload` says, and the response headers (the key's quota)."""
        role = self.role(model)
        quota = await self.limiter.check(principal)
        cap = self.settings.audio_max_bytes
        data = await upload.read(cap + 1)
        if len(data) > cap:
            raise PayloadTooLarge(f"the audio file is larger than {cap / 2**20:.0f} MB", param="file")
        async with self.admission.hold():
            limits = (upload.filename or "audio", self.settings.audio_max_seconds)
            clip = await anyio.to_thread.run_sync(decode_audio, data, *limits)
            transcript = await self.pipeline.transcribe(clip, options, role)
        return transcript, quota.headers()
