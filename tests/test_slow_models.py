"""The larger packaged models (slow: `make test-slow`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE

from .conftest import make_settings

pytestmark = pytest.mark.slow


def test_instant_mode_on_the_fast_model_answers_correctly(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "llama_cpp", "model": "chat-fast", "parallel": 1})
    settings.cache_dir = Path.home() / ".cache" / "ember"
    with TestClient(create_app(settings)) as client:
        resp = client.post(
            "/v1/chat/completions",
            json={
                "model": "ember-instant",
                "messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                "max_tokens": 10,
                "temperature": 0,
            },
        )
    assert resp.status_code == 200, resp.text
    assert "Paris" in resp.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("role", ["chat-fast", "chat"])
def test_chunked_models_assemble_and_verify(role: str, tmp_path: Path) -> None:
    asset = CATALOGUE[role]
    path = ensure_asset(asset, tmp_path)
    assert path.stat().st_size == asset.size
    assert path.parent == tmp_path / "models"


def test_multilingual_base_transcribes_spoken_english_and_german(tmp_path: Path) -> None:
    """asr-base from its two packages: English within the WER bound, and a German sentence in German."""
    from ember_tools.eval.speech import edit_distance, normalise

    from .audio import SENTENCES, speak

    base = {"task": "speech", "engine": "faster_whisper", "model": "asr-base"}
    settings = make_settings(tmp_path, asr_base=base, chat_fast={"engine": "fake", "model": "fake"})
    settings.cache_dir = Path.home() / ".cache" / "ember"
    english = speak(SENTENCES[2], tmp_path / "en.wav").read_bytes()
    german = tmp_path / "de.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(german), "Guten Morgen, wie geht es dir heute?"], check=True)
    with TestClient(create_app(settings)) as client:
        en = client.post("/v1/audio/transcriptions", files={"file": ("en.wav", english)}, data={"model": "asr-base"})
        de = client.post(
            "/v1/audio/transcriptions",
            files={"file": ("de.wav", german.read_bytes())},
            data={"model": "asr-base", "response_format": "verbose_json"},
        )
    ref = normalise(SENTENCES[2])
    assert edit_distance(ref, normalise(en.json()["text"])) / len(ref) <= 0.25, en.text
    assert de.json()["language"] == "de" and "morgen" in de.json()["text"].lower(), de.text
