"""`/health`'s engine check, cached: at most one real probe every MAX_AGE_S seconds however many callers ask,
and callers who ask while a probe runs wait for that one instead of starting their own.

    health = HealthProbe(probe)      # probe(): {role: {"ok": bool, ...}} (EnginePool.probe per role)
    report = await health.report()   # the last report if fresh, else the running probe's, else a new one

A probe is a real (small) generation on every engine, so an unauthenticated `/health` polled by many
clients must not turn into as many generations. The probe runs as a task of its own: a caller that leaves
does not cancel it for the others. This module knows nothing of HTTP or of which roles exist.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_AGE_S = 5.0  # a report is served this long after its probe ended before another probe runs

Probe = Callable[[], Awaitable[dict[str, dict[str, object]]]]


@dataclass(frozen=True)
class Report:
    engines: dict[str, dict[str, object]]  # role: the probe's answer ("ok", latency or error, ...)
    ended: float  # time.monotonic() when the probe ended

    @property
    def ok(self) -> bool:
        return all(engine.get("ok") for engine in self.engines.values())

    def age_s(self) -> float:
        return time.monotonic() - self.ended


class HealthProbe:
    """The last report, served while fresh; one shared probe in flight at most."""

    def __init__(self, probe: Probe, max_age_s: float = MAX_AGE_S) -> None:
        self.probe = probe
        self.max_age_s = max_age_s
        self.last: Report | None = None
        self._running: asyncio.Task[Report] | None = None

    async def report(self) -> Report:
        if self.last is not None and self.last.age_s() < self.max_age_s:
            return self.last
        if self._running is None:
            self._running = asyncio.create_task(self._probe())
        return await asyncio.shield(self._running)  # a caller that leaves leaves the probe running

    async def _probe(self) -> Report:
        try:
            engines = await self.probe()
            self.last = Report(engines, time.monotonic())
            return self.last
        finally:
            self._running = None

    async def close(self) -> None:
        """Cancel a probe still running (at shutdown, before the engines close)."""
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
