"""`GET /health` serves a cached probe of the engines (at most one real probe per MAX_AGE_S, shared by the
callers who ask while it runs); `GET /health/live` answers without touching any engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.api.readiness import MAX_AGE_S, HealthProbe
from ember.config import Tier

from .conftest import make_settings, serve_in_thread


def probes(app: Any) -> int:
    """How many one-token health probes chat-fast's fake engine has run."""
    fake = app.state.pipeline.engines.loaded()["chat-fast"]
    return sum(1 for _, params in fake.calls if params.max_tokens == 1)


def test_repeated_calls_within_max_age_probe_once(tmp_path: Path) -> None:
    assert 1 <= MAX_AGE_S <= 10
    with TestClient(create_app(make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f"}))) as client:
        answers = [client.get("/health") for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert all(a.json()["engines"] == answers[0].json()["engines"] for a in answers)
        assert probes(client.app) == 1
        assert 0 <= answers[-1].json()["age_s"] < MAX_AGE_S
        client.app.state.health.max_age_s = 0.0  # type: ignore[attr-defined]
        assert client.get("/health").status_code == 200
        assert probes(client.app) == 2  # an expired answer is probed again


def test_concurrent_callers_share_one_probe(tmp_path: Path) -> None:
    slow = {"engine": "fake", "model": "f", "options": {"delay_s": 1.0}}  # a one-token probe takes a second
    app = create_app(make_settings(tmp_path, chat_fast=slow))
    with serve_in_thread(app) as base:  # it waited for /health: one probe so far
        app.state.health.max_age_s = 0.5
        time.sleep(0.6)

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                return list(await asyncio.gather(*(client.get("/health") for _ in range(40))))

        t0 = time.monotonic()
        answers = asyncio.run(burst())
        elapsed = time.monotonic() - t0
        probed = probes(app)
    assert [a.status_code for a in answers] == [200] * 40
    assert probed == 2  # the one before, and one for all forty
    assert elapsed < 5, elapsed  # forty callers waited for one probe, not forty in a row


def test_liveness_answers_without_an_engine_or_a_key(tmp_path: Path) -> None:
    failing = {"engine": "fake", "model": "f", "options": {"fail_with": "down"}}
    settings = make_settings(tmp_path, chat_fast=failing).model_copy(
        update={"require_keys": True, "tiers": {"local": Tier()}}
    )
    with TestClient(create_app(settings)) as client:
        for _ in range(3):
            live = client.get("/health/live")
            assert live.status_code == 200 and live.json() == {"status": "ok"}
        assert client.app.state.pipeline.engines.loaded()["chat-fast"].calls == []  # type: ignore[attr-defined]
        health = client.get("/health")  # the engine check still fails as before, keyless
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert health.json()["engines"]["chat-fast"]["ok"] is False


async def test_a_caller_that_leaves_does_not_cancel_the_shared_probe() -> None:
    started = 0

    async def probe() -> dict[str, dict[str, object]]:
        nonlocal started
        started += 1
        await asyncio.sleep(0.2)
        return {"chat-fast": {"ok": True}}

    health = HealthProbe(probe)
    leaver = asyncio.create_task(health.report())
    stayer = asyncio.create_task(health.report())
    await asyncio.sleep(0.05)
    leaver.cancel()
    report = await stayer
    assert report.ok and started == 1
    assert (await health.report()) is report  # fresh: served from the cache
    await health.close()
