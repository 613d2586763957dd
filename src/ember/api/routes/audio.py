"""`POST /v1/audio/transcriptions`, compatible with OpenAI's: multipart `file`, `model`, `language`,
`prompt`, `response_format` (json, text, verbose_json, srt, vtt) and `temperature`.

Limits, admission and hearing are `ember.serving.transcription`'s: a transcription counts against the key's
requests per minute (its audio seconds are not tokens), and takes a place in the server's admission limit
while its audio is decoded and heard (503 `server_busy` when full)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ember.api.deps import AudioPrincipal, TranscriptionServingDep
from ember.api.wire import ERRORS, Transcription, VerboseTranscription
from ember.transcripts import subtitles, verbose_json
from ember.types import TranscribeOptions, Transcript

router = APIRouter(responses=ERRORS)
TEXT = {"schema": {"type": "string"}}
SUBTITLES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": TEXT, "text/vtt": TEXT}}}
Format = Literal["json", "text", "verbose_json", "srt", "vtt"]


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
    serving: TranscriptionServingDep,
    principal: AudioPrincipal,
    file: UploadFile,
    model: Annotated[str, Form()] = "whisper-1",
    language: Annotated[str | None, Form(min_length=2, max_length=8)] = None,
    prompt: Annotated[str | None, Form(max_length=2000)] = None,
    response_format: Annotated[Format, Form()] = "json",
    temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> Response:
    options = TranscribeOptions(language, prompt, temperature)
    transcript, headers = await serving.transcribe(principal, model, file, options)
    response = render(transcript, response_format)
    response.headers.update(headers)
    return response
