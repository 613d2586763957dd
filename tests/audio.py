"""Test audio made on the spot: sentences spoken by espeak-ng, silence, tones, and re-encodings with PyAV."""

from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import pytest

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Please remind me to buy milk and bread tomorrow morning.",
)


def need_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    return exe


def speak(text: str, path: Path) -> Path:
    """`text` spoken by espeak-ng into a 22.05 kHz mono wav."""
    subprocess.run([need_espeak(), "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return path


def pcm_wav(samples: np.ndarray, rate: int = 16_000) -> bytes:
    """16-bit mono wav of float samples in [-1, 1]."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def silence(seconds: float, rate: int = 16_000) -> bytes:
    return pcm_wav(np.zeros(int(seconds * rate), dtype=np.float32), rate)


def tone(seconds: float, hz: float = 440.0, rate: int = 16_000) -> bytes:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return pcm_wav(0.5 * np.sin(2 * math.pi * hz * t), rate)


def wav_header(rate: int, channels: int, bits: int, fmt_tag: int = 1, data_len: int = 3200) -> bytes:
    """A RIFF/WAVE header with the given fields and `data_len` bytes of zero samples."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_len)
    return b"RIFF" + struct.pack("<I", len(body) + data_len) + body + bytes(data_len)


def transcode(wav: bytes, container: str, codec: str, rate: int) -> bytes:
    """Re-encode a wav into another container/codec (mp3, webm/opus, ogg/vorbis…) with PyAV."""
    out = io.BytesIO()
    with av.open(io.BytesIO(wav)) as src, av.open(out, "w", format=container) as dst:
        stream = dst.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for res in resampler.resample(frame):
                for packet in stream.encode(res):
                    dst.mux(packet)
        for res in resampler.resample(None):
            for packet in stream.encode(res):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()


def mp3(wav: bytes) -> bytes:
    return transcode(wav, "mp3", "libmp3lame", 22_050)


def webm(wav: bytes) -> bytes:
    return transcode(wav, "webm", "libopus", 48_000)
