"""A remote OpenAI-compatible server over httpx: how a role runs on vLLM, SGLang, llama-server or Ollama.

Three engines share one connection set-up: chat (`/chat/completions`, streamed), speech
(`/audio/transcriptions`, e.g. a faster-whisper or vLLM Whisper server, or another Ember) and embeddings
(`/embeddings`: vectors as the server makes them, float, `dimensions` passed on for it to judge).
`spec.url` is the server's base URL including `/v1`; `spec.model` is the remote model name.
Leaving the stream early closes the HTTP connection, which those servers treat as a cancellation.
A chat role with `options = { vision = true }` sends images as `image_url` parts (a remote VLM, e.g. vLLM
serving Qwen2.5-VL); without it the model reads the images' text descriptions (made by the pipeline). Tools
are passed through for the server to call (`options = { tools = false }`: Ember writes the calls instead,
`ember.calling`, e.g. for a llama-server whose model has no tool template).
This module knows the wire protocol only; it keeps no state between requests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import numpy as np

from ember import registry
from ember.config import EngineSpec, Settings
from ember.engines.base import Embeddings, delta_from_chunk, error_from_payload, openai_body
from ember.engines.embeddings import Embedders
from ember.errors import ConfigError, EngineError, EngineUnavailable
from ember.intake.audio import AudioClip
from ember.types import Capabilities, Delta, GenerationParams, Message, Segment, TranscribeOptions, Transcript


class _Remote:
    name = "openai"

    def __init__(self, spec: EngineSpec, settings: Settings) -> None:
        if not spec.url:
            raise ConfigError(f"the openai engine for model {spec.model!r} needs a url (e.g. http://host:8000/v1)")
        self.spec = spec
        self.settings = settings
        self.active = 0
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.spec.api_key}"} if self.spec.api_key else {}
            self._client = httpx.AsyncClient(
                base_url=str(self.spec.url).rstrip("/") + "/",
                headers=headers,
                timeout=httpx.Timeout(self.spec.timeout_s, connect=10.0),
                limits=httpx.Limits(max_connections=self.spec.parallel * 4),
            )

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise EngineUnavailable(f"engine for {self.spec.model!r} is not started")
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class OpenAICompatEngine(_Remote):
    server: str | None = None  # a server Ember does not manage

    def __init__(self, spec: EngineSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        vision = spec.options.get("vision") is True
        tools = spec.options.get("tools", True) is not False  # the server calls tools itself (vLLM, SGLang)
        self.capabilities = Capabilities(
            image=vision, tools=tools, context_tokens=spec.ctx_size, parallel=spec.parallel
        )

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncGenerator[Delta, None]:
        client = self.client()
        body = {"model": self.spec.model, **openai_body(messages, params, self.capabilities.image)}
        self.active += 1
        try:
            async with client.stream("POST", "chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise error_from_payload(response.status_code, _json_or_text(await response.aread()))
                async for delta in _deltas(response):
                    yield delta
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"remote engine at {self.spec.url} is unreachable: {exc}") from exc
        finally:
            self.active -= 1


class OpenAITranscriber(_Remote):
    async def transcribe(self, clip: AudioClip, options: TranscribeOptions) -> Transcript:
        form = {"model": self.spec.model, "response_format": "verbose_json"}
        extra = {"language": options.language, "prompt": options.prompt, "temperature": options.temperature}
        form |= {k: str(v) for k, v in extra.items() if v is not None}
        self.active += 1
        try:
            response = await self.client().post(
                "audio/transcriptions", data=form, files={"file": (clip.filename, clip.data)}
            )
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"remote speech engine at {self.spec.url} is unreachable: {exc}") from exc
        finally:
            self.active -= 1
        body = _json_or_text(response.content)
        if response.status_code != 200 or not isinstance(body, dict):
            raise error_from_payload(response.status_code, body)
        segments = tuple(
            Segment(float(s.get("start", 0)), float(s.get("end", 0)), str(s.get("text", "")).strip())
            for s in body.get("segments") or []
        )
        duration = float(body.get("duration") or clip.duration)
        return Transcript(str(body.get("text", "")).strip(), str(body.get("language", "")), duration, segments)


class OpenAIEmbedder(_Remote):
    async def embed(self, texts: list[str], dimensions: int | None) -> Embeddings:
        body: dict[str, object] = {"model": self.spec.model, "input": texts, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        self.active += 1
        try:
            response = await self.client().post("embeddings", json=body)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"remote embedding engine at {self.spec.url} is unreachable: {exc}") from exc
        finally:
            self.active -= 1
        payload = _json_or_text(response.content)
        if response.status_code != 200 or not isinstance(payload, dict):
            raise error_from_payload(response.status_code, payload)
        return _embeddings(payload, len(texts))


def _embedder(spec: EngineSpec, settings: Settings, _: Embedders) -> OpenAIEmbedder:
    return OpenAIEmbedder(spec, settings)


def _embeddings(payload: dict[str, Any], count: int) -> Embeddings:
    """The vectors of an OpenAI `list` of embeddings, in input order, and its prompt tokens (0 if not said)."""
    data: Any = payload.get("data")
    try:
        rows = sorted(data, key=lambda item: int(item["index"]))
        vectors = np.asarray([item["embedding"] for item in rows], dtype=np.float32)
    except (TypeError, KeyError, ValueError) as exc:
        raise EngineError(f"remote embedding engine sent a malformed list ({type(exc).__name__})") from exc
    if vectors.ndim != 2 or len(vectors) != count:
        raise EngineError(f"remote embedding engine sent vectors of shape {vectors.shape} for {count} inputs")
    usage = payload.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return Embeddings(vectors, tokens if isinstance(tokens, int) else 0)


async def _deltas(response: httpx.Response) -> AsyncIterator[Delta]:
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        chunk = _json_or_text(data.encode())
        if not isinstance(chunk, dict):
            raise EngineError(f"remote engine sent a malformed chunk ({len(data)} characters, not a JSON object)")
        if "error" in chunk:
            raise error_from_payload(500, chunk)
        if (delta := delta_from_chunk(chunk)) is not None:
            yield delta


def _json_or_text(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


registry.engines.add("openai", OpenAICompatEngine)
registry.speech_engines.add("openai", OpenAITranscriber)
registry.embedding_engines.add("openai", _embedder)
