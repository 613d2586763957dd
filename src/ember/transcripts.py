"""A Transcript written out as OpenAI's transcription formats: `verbose_json`'s body and SRT or WebVTT
subtitles. Shared by the audio route and `ember transcribe`; it knows nothing of HTTP."""

from __future__ import annotations

from typing import Any, Literal

from ember.types import Transcript


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def subtitles(transcript: Transcript, kind: Literal["srt", "vtt"]) -> str:
    """The segments as numbered SRT cues, or as a WebVTT document."""
    sep = "," if kind == "srt" else "."
    cues = [
        (f"{i}\n" if kind == "srt" else "") + f"{_stamp(s.start, sep)} --> {_stamp(s.end, sep)}\n{s.text}\n"
        for i, s in enumerate(transcript.segments, start=1)
    ]
    return ("WEBVTT\n\n" if kind == "vtt" else "") + "\n".join(cues)


def verbose_json(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's `verbose_json` body: text, language, duration and timed segments (times to the millisecond)."""
    return {
        "task": "transcribe",
        "language": transcript.language,
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": [
            {"id": i, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
            for i, s in enumerate(transcript.segments)
        ],
    }
