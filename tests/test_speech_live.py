"""Real speech recognition with the packaged whisper tiny.en: sentences spoken by espeak-ng (as wav, mp3
and webm) come back within a word-error bound; silence comes back empty; the official openai client's
transcription call and a chat request with an `input_audio` part work unmodified against `ember serve`;
and the CLI transcribes and chats from a file."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from ember import registry
from ember.config import Settings
from ember.engines.base import SpeechEngine
from ember.engines.pool import EnginePool
from ember.intake.audio import decode_audio
from ember.types import TranscribeOptions
from ember_tools.eval.speech import edit_distance, normalise

from .audio import SENTENCES, mp3, pcm_wav, silence, speak, webm
from .conftest import TINY, run_cli

WER_BOUND = 0.25  # tiny.en on espeak-ng's synthetic voice measured 0.08-0.12 over these sentences


def wer(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER of (reference, hypothesis) pairs."""
    refs = [normalise(ref) for ref, _ in pairs]
    return sum(edit_distance(r, normalise(h)) for r, (_, h) in zip(refs, pairs, strict=True)) / sum(map(len, refs))


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    folder = tmp_path_factory.mktemp("spoken")
    return [(text, speak(text, folder / f"{i}.wav").read_bytes()) for i, text in enumerate(SENTENCES)]


@pytest.fixture(scope="module")
def whisper(model_cache: Path) -> Iterator[Callable[[bytes, str], str]]:
    """Transcribe bytes with the real `asr` engine (tiny.en), as the server does."""
    import asyncio

    registry.load_plugins()
    pool = EnginePool(Settings(cache_dir=model_cache))
    loop = asyncio.new_event_loop()
    engine: SpeechEngine = loop.run_until_complete(pool.get_speech("asr"))

    def run(data: bytes, name: str) -> str:
        clip = decode_audio(data, name, 600)
        return loop.run_until_complete(engine.transcribe(clip, TranscribeOptions())).text

    yield run
    loop.run_until_complete(pool.close())
    loop.close()


@pytest.mark.parametrize(("fmt", "encode"), [("wav", lambda b: b), ("mp3", mp3), ("webm", webm)])
def test_spoken_sentences_come_back(
    whisper: Callable[[bytes, str], str], spoken: list[tuple[str, bytes]], fmt: str, encode: Callable[[bytes], bytes]
) -> None:
    pairs = [(text, whisper(encode(wav), f"s.{fmt}")) for text, wav in spoken]
    assert wer(pairs) <= WER_BOUND, pairs


def test_silence_and_quiet_noise_are_empty(whisper: Callable[[bytes, str], str]) -> None:
    assert whisper(silence(3.0), "silence.wav") == ""
    noise = np.random.default_rng(0).normal(0, 0.02, 3 * 16_000).astype(np.float32)
    assert whisper(pcm_wav(noise), "noise.wav") == ""


def oai(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0)


def test_openai_client_transcribes(live_server: str, spoken: list[tuple[str, bytes]]) -> None:
    text, wav = spoken[0]
    client = oai(live_server)
    result = client.audio.transcriptions.create(model="whisper-1", file=("fox.wav", wav))
    assert wer([(text, result.text)]) <= WER_BOUND
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=("fox.mp3", mp3(wav)), response_format="verbose_json", language="en"
    )
    assert verbose.language in {"en", "english"} and 1.5 < verbose.duration < 6
    assert verbose.segments and verbose.segments[0].end <= verbose.duration + 0.5
    srt = client.audio.transcriptions.create(model="whisper-1", file=("fox.webm", webm(wav)), response_format="srt")
    assert str(srt).startswith("1\n00:00:0")


def test_openai_client_chat_with_input_audio(live_server: str, spoken: list[tuple[str, bytes]]) -> None:
    text, wav = spoken[1]  # "What is the capital of France?"
    part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}
    raw = oai(live_server).chat.completions.with_raw_response.create(
        model="ember-instant", messages=[{"role": "user", "content": [part]}], max_tokens=24, temperature=0
    )
    resp = raw.parse()
    assert resp.choices[0].message.content and resp.choices[0].message.content.strip()
    heard = (resp.model_extra or {})["input_transcripts"]
    assert len(heard) == 1 and wer([(text, heard[0]["text"])]) <= 0.34
    stored = httpx.get(f"{live_server}/v1/conversations/{raw.headers['x-ember-conversation-id']}", timeout=10).json()
    assert stored["messages"][0]["content"] == heard[0]["text"]


def test_health_probes_the_speech_engine(live_server: str) -> None:
    asr = httpx.get(f"{live_server}/health", timeout=30).json()["engines"]["asr"]
    assert asr["ok"] is True and asr["engine"] == "faster_whisper"


def test_cli_transcribe(spoken: list[tuple[str, bytes]], tmp_path: Path, model_cache: Path) -> None:
    text, wav = spoken[2]
    (tmp_path / "q.mp3").write_bytes(mp3(wav))
    out = run_cli(["transcribe", str(tmp_path / "q.mp3")], "", {"EMBER_CACHE_DIR": str(model_cache)})
    assert out.returncode == 0, out.stderr
    assert wer([(text, out.stdout.strip())]) <= WER_BOUND
    subs = run_cli(
        ["transcribe", "--format", "vtt", str(tmp_path / "q.mp3")], "", {"EMBER_CACHE_DIR": str(model_cache)}
    )
    assert subs.stdout.startswith("WEBVTT\n\n00:00:00.000 --> ")


def test_cli_transcribe_bad_file_is_readable(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not audio")
    out = run_cli(["transcribe", str(tmp_path / "notes.txt")], "", {})
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "could not decode 'notes.txt'" in out.stderr


def test_cli_chat_with_audio_embedded(spoken: list[tuple[str, bytes]], tmp_path: Path, model_cache: Path) -> None:
    (tmp_path / "q.wav").write_bytes(spoken[1][1])
    env = {
        "EMBER_ROLES": json.dumps({"chat-fast": TINY}),
        "EMBER_DATA_DIR": str(tmp_path / "data"),
        "EMBER_CACHE_DIR": str(model_cache),
    }
    out = run_cli(["chat", "--audio", str(tmp_path / "q.wav")], "", env)
    assert out.returncode == 0, out.stderr
    first, *answer = out.stdout.splitlines()
    assert first.startswith("you (heard)> ") and "capital" in first.lower()
    assert "".join(answer).strip()


def test_cli_chat_with_audio_against_a_url(spoken: list[tuple[str, bytes]], live_server: str, tmp_path: Path) -> None:
    (tmp_path / "q.webm").write_bytes(webm(spoken[0][1]))
    out = run_cli(["chat", "--url", f"{live_server}/v1", "--audio", str(tmp_path / "q.webm")], "", {})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("you (heard)> ") and "fox" in out.stdout.lower()


def test_cli_chat_with_silent_audio_says_so(tmp_path: Path, live_server: str) -> None:
    (tmp_path / "quiet.wav").write_bytes(silence(2.0))
    out = run_cli(["chat", "--url", f"{live_server}/v1", "--audio", str(tmp_path / "quiet.wav")], "", {})
    assert out.returncode != 0 and "no speech was heard" in out.stderr and "Traceback" not in out.stderr


def test_language_the_model_lacks_is_400(live_server: str, spoken: list[tuple[str, bytes]]) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai(live_server).audio.transcriptions.create(model="whisper-1", file=("q.wav", spoken[0][1]), language="de")
    assert err.value.body["param"] == "language" and "English only" in err.value.body["message"]  # type: ignore[index]
