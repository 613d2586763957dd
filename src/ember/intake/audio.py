"""Decode uploaded audio (wav, mp3, ogg, webm, m4a, flac…) to 16 kHz mono float32 with PyAV, within caps.

Refuses, with a message a person understands: empty input, input that is not audio, audio longer than
the duration cap (checked from the container's header first, then while decoding, so a long file is
never decoded whole). The byte-size cap is enforced earlier, before the upload is read (see
`ember.api.body_limit`). This module does not transcribe.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from ember.errors import InvalidAudio, PayloadTooLarge, shown

SAMPLE_RATE = 16_000
FORMATS = ("wav", "mp3", "ogg", "webm", "m4a", "mp4", "flac", "opus", "aac", "mpeg", "mpga", "oga")


@dataclass(frozen=True)
class AudioClip:
    """Audio as sent (for remote engines) and as decoded (for local ones)."""

    data: bytes
    filename: str
    samples: npt.NDArray[np.float32]

    @property
    def duration(self) -> float:
        return float(self.samples.size) / SAMPLE_RATE


def _too_long(seconds: float, max_seconds: float) -> InvalidAudio:
    return InvalidAudio(f"the audio is {seconds:.0f} s long; the limit is {max_seconds:.0f} s", param="file")


def decode_audio(data: bytes, filename: str, max_seconds: float) -> AudioClip:
    """Decode `data` (any container PyAV reads) or raise InvalidAudio."""
    if not data:
        raise InvalidAudio("the audio file is empty", param="file")
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidAudio(f"{filename!r} has no audio stream", param="file")
            if container.duration is not None and container.duration / av.time_base > max_seconds + 1:
                raise _too_long(container.duration / av.time_base, max_seconds)
            samples = _decode(container, int(max_seconds * SAMPLE_RATE))
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise InvalidAudio(
            f"could not decode {filename!r} as audio ({detail}); send wav, mp3, ogg, webm, m4a or flac",
            param="file",
        ) from exc
    if samples.size == 0:
        raise InvalidAudio(f"{filename!r} contains no audio samples", param="file")
    return AudioClip(data, filename, samples)


def load_audio(path: Path, max_seconds: float) -> AudioClip:
    """Read and decode an audio file from disk (the CLI's way in)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidAudio(f"cannot read {path}: {exc.strerror}", param="file") from exc
    return decode_audio(data, path.name, max_seconds)


def _decode(container: av.container.InputContainer, max_samples: int) -> npt.NDArray[np.float32]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[npt.NDArray[Any]] = []
    total = 0
    for frame in container.decode(audio=0):
        for out in resampler.resample(frame):
            chunk = out.to_ndarray().reshape(-1)
            total += chunk.size
            if total > max_samples + SAMPLE_RATE:
                raise _too_long(total / SAMPLE_RATE, max_samples / SAMPLE_RATE)
            chunks.append(chunk)
    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return (np.concatenate(chunks).astype(np.float32) / 32768.0).astype(np.float32)


def decode_base64_audio(data: str, fmt: str, max_bytes: int, max_seconds: float, where: str) -> AudioClip:
    """An `input_audio` part: base64 `data` in `fmt`; size-checked before decoding the audio."""
    if fmt.lower() not in FORMATS:
        raise InvalidAudio(
            f"{where}: audio format {shown(fmt)} is not supported; use one of {', '.join(FORMATS)}", param=where
        )
    if len(data) * 3 // 4 > max_bytes:
        raise PayloadTooLarge(f"{where}: the audio is larger than {max_bytes // 2**20} MB", param=where)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidAudio(f"{where}: the audio data is not valid base64", param=where) from exc
    try:
        return decode_audio(raw, f"audio.{fmt.lower()}", max_seconds)
    except InvalidAudio as exc:  # name the part, not an upload's `file`
        raise InvalidAudio(f"{where}: {exc.message}", param=where) from exc
