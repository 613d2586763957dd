"""Logs never hold message content, query strings, API keys or audio: a real uvicorn serving chat (JSON and
streamed), speech, refusals, export and erasure, with every logger at DEBUG."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import httpx
import pytest

from ember.api.app import create_app

from .audio import tone
from .conftest import make_settings
from .test_privacy import FAKE, chat, make_key, serve


def log_everything(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    names = {"", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "httpx", "httpcore", "sqlalchemy"}
    names |= {"sqlalchemy.engine", "sqlalchemy.pool", "multipart", "python_multipart", "asyncio", "ember"}
    names |= set(logging.root.manager.loggerDict)
    for name in names:
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "disabled", False)
        caplog.set_level(logging.DEBUG, logger=name)


def test_logs_hold_no_content_keys_or_audio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard = "zanzibar quokka heard aloud"
    fake_asr = {"engine": "fake", "model": "fake", "options": {"text": heard}}
    settings = make_settings(tmp_path, asr=fake_asr, **FAKE).model_copy(update={"require_keys": True})
    key = make_key(settings, "logco", ("chat", "audio", "admin"))
    secrets = ["pelican marmalade sentence", "obsidian walrus reply", "ultraviolet tapir", heard, key, key[-20:]]
    audio = tone(1.0, hz=523.0)
    audio_b64 = base64.b64encode(audio).decode()
    log_everything(caplog, monkeypatch)

    with serve(create_app(settings)) as base, httpx.Client(base_url=base, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {key}"
        assert chat(http, secrets[0], user="lou").status_code == 200
        streamed = chat(http, secrets[1], stream=True, mystery_field=secrets[2])
        assert "walrus" in streamed.text  # streamed word by word
        voice = {"type": "input_audio", "input_audio": {"data": audio_b64, "format": "wav"}}
        spoken = http.post(
            "/v1/chat/completions",
            json={"model": "ember-instant", "messages": [{"role": "user", "content": [voice]}]},
        )
        assert heard in spoken.text
        assert http.post("/v1/audio/transcriptions", files={"file": ("a.wav", audio)}).json() == {"text": heard}
        assert chat(http, secrets[2] + " " + "word " * 300).status_code == 400  # beyond the context
        assert http.get("/v1/me/export").status_code == 200
        assert http.delete("/v1/me", params={"user": "lou"}).status_code == 200

    logged = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "POST /v1/chat/completions" in logged and "/v1/audio/transcriptions" in logged  # logs were captured
    assert "INSERT INTO messages" in logged  # SQL was logged, without its parameters
    for secret in secrets:
        assert secret not in logged
    for i in range(0, len(audio_b64) - 40, 997):  # no run of the audio, base64 or raw
        assert audio_b64[i : i + 40] not in logged
    assert repr(audio[1000:1040])[2:-1] not in logged
