"""The engines a server holds: one per model role, created from Settings through the registry.

Engines start lazily on first use (or all at once with `start`), are shared by every mode and request,
and are closed together. The pool also runs the health probe. It knows nothing of modes or HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from ember import registry
from ember.config import Settings
from ember.engines.base import Engine
from ember.errors import ConfigError
from ember.types import GenerationParams, Message

PROBE = [Message("user", "Say OK.")]


class EnginePool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engines: dict[str, Engine] = {}
        self._lock = asyncio.Lock()

    def _create(self, role: str) -> Engine:
        spec = self.settings.roles.get(role)
        if spec is None:
            raise ConfigError(f"no engine is configured for model role {role!r}")
        factory = registry.engines.get(spec.engine)
        if factory is None:
            known = ", ".join(registry.engines.names())
            raise ConfigError(f"role {role!r} names engine {spec.engine!r}; known engines: {known}")
        return factory(spec, self.settings)

    async def get(self, role: str) -> Engine:
        """The started engine for `role`, creating and starting it on first use."""
        async with self._lock:
            engine = self._engines.get(role)
            if engine is None:
                engine = self._engines[role] = self._create(role)
        await engine.start()
        return engine

    async def start(self, roles: Iterable[str]) -> None:
        for role in dict.fromkeys(roles):
            await self.get(role)

    def loaded(self) -> dict[str, Engine]:
        return dict(self._engines)

    async def close(self) -> None:
        engines, self._engines = self._engines, {}
        for engine in engines.values():
            await engine.close()

    async def probe(self, role: str, timeout_s: float) -> dict[str, object]:
        """Generate one token on `role`'s engine; report whether it worked and how long it took."""
        t0 = time.perf_counter()
        try:
            engine = await self.get(role)
            busy = engine.active  # generations in flight when asked, not counting the probe
            async with asyncio.timeout(timeout_s):
                async for _ in engine.stream(PROBE, GenerationParams(max_tokens=1, temperature=0.0)):
                    pass
        except Exception as exc:  # health reports any failure instead of raising it
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {
            "ok": True,
            "engine": engine.name,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
            "active": busy,
        }
