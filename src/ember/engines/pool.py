"""The engines a server holds: one per model role, created from Settings through the registry.

A role's `task` says which registry builds it: chat roles come from `registry.engines`, speech roles
from `registry.speech_engines`, embedding roles from `registry.embedding_engines` (given the server's
shared `Embedders`). Engines start lazily on first use (or all at once with `start`; chat and speech roles),
are shared by every mode and request, and are closed together. The pool also runs the health probes of
chat and speech roles. It knows nothing of modes or HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import numpy as np

from ember import registry
from ember.config import Settings, Task
from ember.engines.base import EmbeddingEngine, Engine, SpeechEngine
from ember.engines.embeddings import Embedders
from ember.errors import ConfigError
from ember.intake.audio import SAMPLE_RATE, AudioClip
from ember.types import GenerationParams, Message, TranscribeOptions

PROBE = [Message("user", "Say OK.")]
SILENCE = AudioClip(b"", "probe.wav", np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
E = TypeVar("E")


class EnginePool:
    def __init__(self, settings: Settings, embedders: Embedders | None = None) -> None:
        """`embedders`: the sentence embedders the server shares (a new set on `settings.cache_dir` if None)."""
        self.settings = settings
        self.embedders = embedders or Embedders(settings.cache_dir)
        self._engines: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    def _create(self, role: str, kinds: registry.Registry[Callable[..., E]], task: Task, *extra: object) -> E:
        spec = self.settings.roles.get(role)
        if spec is None:
            raise ConfigError(f"no engine is configured for model role {role!r}")
        if spec.task != task:
            raise ConfigError(f"role {role!r} is a {spec.task} role, not a {task} role")
        factory = kinds.get(spec.engine)
        if factory is None:
            known = ", ".join(kinds.names())
            raise ConfigError(f"role {role!r} names engine {spec.engine!r}, which is no {kinds.kind}; known: {known}")
        return factory(spec, self.settings, *extra)

    async def _get(self, role: str, kinds: registry.Registry[Callable[..., E]], task: Task, *extra: object) -> E:
        async with self._lock:
            engine: Any = self._engines.get(role)
            if engine is None:
                engine = self._engines[role] = self._create(role, kinds, task, *extra)
        await engine.start()
        return engine  # type: ignore[no-any-return]

    async def get(self, role: str) -> Engine:
        """The started chat engine for `role`, creating and starting it on first use."""
        return await self._get(role, registry.engines, "chat")

    async def get_speech(self, role: str) -> SpeechEngine:
        """The started speech engine for `role`."""
        return await self._get(role, registry.speech_engines, "speech")

    async def get_embedding(self, role: str) -> EmbeddingEngine:
        """The started embedding engine for `role`."""
        return await self._get(role, registry.embedding_engines, "embedding", self.embedders)

    def is_speech(self, role: str) -> bool:
        spec = self.settings.roles.get(role)
        return spec is not None and spec.task == "speech"

    def roles(self, task: Task) -> list[str]:
        """The configured roles of `task`, in the settings' order."""
        return [role for role, spec in self.settings.roles.items() if spec.task == task]

    def speech_roles(self) -> list[str]:
        """The configured roles served by a speech engine."""
        return self.roles("speech")

    async def start(self, roles: Iterable[str]) -> None:
        """Create and start the engines of `roles` (chat or speech) now rather than on first use."""
        for role in dict.fromkeys(roles):
            await (self.get_speech(role) if self.is_speech(role) else self.get(role))

    def loaded(self) -> dict[str, Any]:
        return dict(self._engines)

    async def close(self) -> None:
        engines, self._engines = self._engines, {}
        for engine in engines.values():
            await engine.close()

    async def probe(self, role: str, timeout_s: float) -> dict[str, object]:
        """Exercise `role`'s engine (one token, or half a second of silence); report whether it worked and how
        long it took."""
        if self.is_speech(role):
            return await self._probe_speech(role, timeout_s)
        return await self._probe_chat(role, timeout_s)

    async def _probe_chat(self, role: str, timeout_s: float) -> dict[str, object]:
        servers: list[str] = []  # which llama.cpp server runs it, if one does

        async def run(engine: Engine) -> None:
            async for _ in engine.stream(PROBE, GenerationParams(max_tokens=1, temperature=0.0)):
                pass
            if engine.server:
                servers.append(engine.server)

        result = await _timed(self.get(role), run, timeout_s)
        if result["ok"] and servers:
            result["server"] = servers[0]
        return result

    async def _probe_speech(self, role: str, timeout_s: float) -> dict[str, object]:

        async def run(engine: SpeechEngine) -> None:
            await engine.transcribe(SILENCE, TranscribeOptions())

        return await _timed(self.get_speech(role), run, timeout_s)


async def _timed(getting: Awaitable[E], run: Callable[[E], Awaitable[None]], timeout_s: float) -> dict[str, object]:
    t0 = time.perf_counter()
    try:
        engine: Any = await getting
        busy = engine.active  # work in flight when asked, not counting the probe
        async with asyncio.timeout(timeout_s):
            await run(engine)
    except Exception as exc:  # health reports any failure instead of raising it
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "ok": True,
        "engine": engine.name,
        "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
        "active": busy,
    }
