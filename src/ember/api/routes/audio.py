"""`POST /v1/audio/transcriptions`, compatible with OpenAI's: multipart `file`, `model`, `language`,
`prompt`, `response_format` (json, text, verbose_json, srt, vtt) and `temperature`.

A transcription counts against the key's requests per minute (its audio seconds are not tokens), and takes
a place in the server's admission limit while its audio is decoded and heard (503 `server_busy` when full)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ember.api.deps import AdmissionDep, AudioPrincipal, LimiterDep, PipelineDep, SettingsDep
from ember.api.wire import ERRORS, Transcription, VerboseTranscription
from ember.engines.pool import EnginePool
from ember.errors import ModelNotFound, PayloadTooLarge, shown
from ember.intake.audio import decode_audio
from ember.transcripts import subtitles, verbose_json
from ember.types import TranscribeOptions, Transcript

router = APIRouter(responses=ERRORS)
TEXT = {"schema": {"type": "string"}}
SUBTITLES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": TEXT, "text/vtt": TEXT}}}
ALIASES = {"whisper-1": "asr"}  # what OpenAI clients send by default
Format = Literal["json", "text", "verbose_json", "srt", "vtt"]


def speech_role(model: str, pool: EnginePool) -> str:
    """The configured speech role a request's `model` names (OpenAI's `whisper-1` means `asr`)."""
    role = ALIASES.get(model, model)
    if not pool.is_speech(role):
        known = ", ".join(["whisper-1", *pool.speech_roles()])
        raise ModelNotFound(f"The speech model {shown(model)} does not exist. Available: {known}", param="model")
    return role


def render(transcript: Transcript, fmt: Format) -> Response:
    if fmt == "json":
        return JSONResponse(Transcription(text=transcript.text).wire())
    if fmt == "verbose_json":
        return JSONResponse(verbose_json(transcript))
    if fmt == "text":
        return PlainTextResponse(transcript.text)
    return PlainTextResponse(subtitles(transcript, fmt), media_type="text/vtt" if fmt == "vtt" else "text/plain")


@router.post("/v1/audio/transcriptions", response_model=Transcription | VerboseTranscription, responses=SUBTITLES)
async def transcriptions(
    pipeline: PipelineDep,
    settings: SettingsDep,
    principal: AudioPrincipal,
    limiter: LimiterDep,
    admission: AdmissionDep,
    file: UploadFile,
    model: Annotated[str, Form()] = "whisper-1",
    language: Annotated[str | None, Form(min_length=2, max_length=8)] = None,
    prompt: Annotated[str | None, Form(max_length=2000)] = None,
    response_format: Annotated[Format, Form()] = "json",
    temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> Response:
    role = speech_role(model, pipeline.engines)
    quota = await limiter.check(principal)
    data = await file.read(settings.audio_max_bytes + 1)
    if len(data) > settings.audio_max_bytes:
        raise PayloadTooLarge(f"the audio file is larger than {settings.audio_max_bytes / 2**20:.0f} MB", param="file")
    name = file.filename or "audio"
    async with admission.hold():
        clip = await anyio.to_thread.run_sync(decode_audio, data, name, settings.audio_max_seconds)
        transcript = await pipeline.transcribe(clip, TranscribeOptions(language, prompt, temperature), role)
    response = render(transcript, response_format)
    response.headers.update(quota.headers())
    return response
