"""Voice intake around the engine, on the fake transcriber: the transcription endpoint's formats and
errors, `input_audio` in chat (transcripts returned and stored), and the upload size cap enforced before
the body is read. Real speech recognition is tested in test_speech_live.py."""

from __future__ import annotations

import base64
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app

from .audio import silence, tone, wav_header
from .conftest import make_settings, serve_in_thread, sse_events

HEARD = "what is the capital of France"
FAKE = {"chat_fast": {"engine": "fake", "model": "fake", "ctx_size": 256}}


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[TestClient]:
    """Caps of 64 KiB and 3 s, so that the limits are cheap to cross."""
    settings = make_settings(tmp_path, **FAKE).model_copy(
        update={"audio_max_bytes": 64 * 1024, "audio_max_seconds": 3.0}
    )
    with TestClient(create_app(settings)) as c:
        yield c


def transcribe(client: TestClient, data: bytes, name: str = "a.wav", **form: str) -> httpx.Response:
    return client.post("/v1/audio/transcriptions", files={"file": (name, data)}, data={"model": "whisper-1", **form})


def audio_part(data: bytes, fmt: str = "wav") -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt}}


def voice_chat(client: TestClient, *parts: dict[str, Any], **over: Any) -> httpx.Response:
    body = {"model": "ember-instant", "messages": [{"role": "user", "content": list(parts)}], **over}
    return client.post("/v1/chat/completions", json=body)


def assert_error(resp: httpx.Response, status: int, code: str, *words: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["type"] == "invalid_request_error"
    for word in words:
        assert word in err["message"]


def test_transcription_json_text_and_verbose(client: TestClient) -> None:
    assert transcribe(client, tone(1.0)).json() == {"text": HEARD}
    text = transcribe(client, tone(1.0), response_format="text")
    assert text.headers["content-type"].startswith("text/plain") and text.text == HEARD
    verbose = transcribe(client, tone(2.0), response_format="verbose_json", language="en").json()
    assert verbose["task"] == "transcribe" and verbose["language"] == "en" and verbose["duration"] == 2.0
    assert verbose["segments"] == [{"id": 0, "start": 0.0, "end": 2.0, "text": HEARD}]


def test_transcription_subtitles(client: TestClient) -> None:
    srt = transcribe(client, tone(1.5), response_format="srt").text
    assert srt == f"1\n00:00:00,000 --> 00:00:01,500\n{HEARD}\n"
    vtt = transcribe(client, tone(1.5), response_format="vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text == f"WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n{HEARD}\n"


def test_transcription_passes_options_to_the_engine(client: TestClient) -> None:
    transcribe(client, tone(1.0), language="de", prompt="Ember, Muse", temperature="0.2")
    engine = client.app.state.pipeline.engines.loaded()["asr"]  # type: ignore[attr-defined]
    clip, options = engine.clips[-1]
    assert (options.language, options.prompt, options.temperature) == ("de", "Ember, Muse", 0.2)
    assert clip.filename == "a.wav" and abs(clip.duration - 1.0) < 0.01


def test_silence_is_an_empty_transcript(client: TestClient) -> None:
    assert transcribe(client, silence(1.0)).json() == {"text": ""}
    assert transcribe(client, silence(1.0), response_format="srt").text == ""


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", ["empty"]),
        (b"this is not audio at all, just some text " * 20, ["could not decode"]),
        (wav_header(0, 1, 16), ["could not decode"]),  # sample rate 0
        (wav_header(16_000, 0, 16), ["could not decode"]),  # no channels
        (wav_header(16_000, 1, 16, fmt_tag=99), ["could not decode"]),  # unknown sample format
        (wav_header(16_000, 1, 16, data_len=0), ["no audio samples"]),
    ],
    ids=["empty", "text", "rate-0", "channels-0", "format-99", "no-samples"],
)
def test_bad_audio_is_400(client: TestClient, data: bytes, words: list[str]) -> None:
    assert_error(transcribe(client, data), 400, "invalid_audio", *words)


def test_too_long_is_400_naming_the_limit(small_client: TestClient) -> None:
    assert_error(transcribe(small_client, tone(5.0, rate=4000)), 400, "invalid_audio", "3 s")


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"model": "whisper-9"}, "model"),
        ({"response_format": "docx"}, "response_format"),
        ({"temperature": "7"}, "temperature"),
    ],
)
def test_bad_form_fields(client: TestClient, form: dict[str, str], param: str) -> None:
    resp = transcribe(client, tone(1.0), **form)
    assert resp.status_code in (400, 404), resp.text
    assert resp.json()["error"]["param"] == param


def test_missing_file_is_400(client: TestClient) -> None:
    resp = client.post("/v1/audio/transcriptions", data={"model": "whisper-1"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "file"


def test_chat_answers_the_spoken_question_and_returns_the_transcript(client: TestClient) -> None:
    resp = voice_chat(client, audio_part(tone(1.0)))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["choices"][0]["message"]["content"] == f"You said: {HEARD}"
    assert data["input_transcripts"] == [{"message": 0, "part": 0, "text": HEARD, "language": "en", "duration": 1.0}]
    stored = client.get(f"/v1/conversations/{resp.headers['x-ember-conversation-id']}").json()
    assert stored["messages"][0]["content"] == HEARD


def test_chat_audio_with_text_joins_both(client: TestClient) -> None:
    resp = voice_chat(client, {"type": "text", "text": "Answer briefly."}, audio_part(tone(1.0)))
    assert resp.json()["choices"][0]["message"]["content"] == f"You said: Answer briefly.\n{HEARD}"


def test_streamed_chat_puts_transcripts_on_the_first_chunk(client: TestClient) -> None:
    body = {
        "model": "ember-instant",
        "stream": True,
        "messages": [{"role": "user", "content": [audio_part(tone(1.0))]}],
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        events = sse_events(list(resp.iter_lines()))
    assert events[0]["input_transcripts"][0]["text"] == HEARD
    assert all("input_transcripts" not in e for e in events[1:-1])
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == f"You said: {HEARD}"


def test_chat_silence_only_is_400(client: TestClient) -> None:
    assert_error(voice_chat(client, audio_part(silence(1.0))), 400, "invalid_audio", "no speech")


@pytest.mark.parametrize(
    ("part", "code", "words"),
    [
        (
            {"type": "input_audio", "input_audio": {"data": "@@not base64@@", "format": "wav"}},
            "invalid_audio",
            ["base64"],
        ),
        (audio_part(b"RIFF", "midi"), "invalid_audio", ["midi", "not supported"]),
        (audio_part(b"garbage bytes " * 10, "mp3"), "invalid_audio", ["could not decode"]),
        ({"type": "input_audio", "input_audio": {"format": "wav"}}, "invalid_value", ["data"]),
    ],
    ids=["base64", "format", "garbage", "no-data"],
)
def test_chat_bad_audio_part(client: TestClient, part: dict[str, Any], code: str, words: list[str]) -> None:
    assert_error(voice_chat(client, part), 400, code, *words)


def test_chat_unknown_model_fails_before_transcribing(client: TestClient) -> None:
    resp = voice_chat(client, audio_part(tone(1.0)), model="ember-nonexistent")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found"
    assert client.app.state.pipeline.engines.loaded()["asr"].clips == []  # type: ignore[attr-defined]


def test_oversized_upload_is_413(small_client: TestClient) -> None:
    resp = transcribe(small_client, bytes(200 * 1024))
    assert_error(resp, 413, "payload_too_large", "0.1 MB")


def test_oversized_audio_part_is_413(small_client: TestClient) -> None:
    resp = voice_chat(small_client, audio_part(bytes(200 * 1024)))
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"


def _read_reply(sock: socket.socket) -> bytes:
    """One whole HTTP response (head and Content-Length body)."""
    reply = b""
    while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < _length(reply):
        data = sock.recv(65536)
        if not data:
            break
        reply += data
    return reply


def _length(reply: bytes) -> int:
    for line in reply.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _raw_request(base: str, head: bytes, body: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        return _read_reply(sock)


def test_413_arrives_before_the_body_is_sent(tmp_path: Path) -> None:
    """Declare 100 MB, send 1 KB, and get the refusal while the rest is still unsent."""
    settings = make_settings(tmp_path, **FAKE).model_copy(update={"audio_max_bytes": 64 * 1024})
    with serve_in_thread(create_app(settings)) as base:
        head = (
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 104857600\r\n\r\n"
        )
        reply = _raw_request(base, head, b"--b\r\n" + bytes(1024))
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"payload_too_large" in reply


def test_chunked_upload_over_the_cap_is_refused_while_sending(tmp_path: Path) -> None:
    """A chunked upload with no Content-Length: the 413 comes once the cap is crossed, not at the end."""
    settings = make_settings(tmp_path, **FAKE).model_copy(update={"audio_max_bytes": 64 * 1024})
    with serve_in_thread(create_app(settings)) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
            )
            part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sent = 0
            while sent < 16 * 2**20 and not select.select([sock], [], [], 0.05)[0]:
                chunk = bytes(16 * 1024)
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            reply = _read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"payload_too_large" in reply
    assert 64 * 1024 < sent < 2 * 2**20  # refused soon after the cap, long before 16 MB
