"""`ember bench recs`: the recommender at MovieLens-100k size (1,682 items, 943 people, 100,000 events) in a
throw-away SQLite file: event ingest rate through the store and through `POST /v1/events`, fit time, and
recommendation latency p50 / p99 for people with history, without and with a text query.

Latency is measured on `Recommender.recommend` (consent look-up, the person's events, scoring, reasons),
after one warm-up call, one request at a time; the HTTP layer is not included there. Each is reported as
wall time and as the calling thread's CPU time, with the machine's load average: on a shared machine the
wall-time tail is mostly waiting for a core. This is a
benchmark: it asserts nothing. It downloads nothing (MovieLens comes with `recbole`, MiniLM with its
packages).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ember.config import Settings
from ember.engines.embeddings import Embedders
from ember.shopping import movielens
from ember.shopping.demo import load_movielens
from ember.shopping.recommender import Ask
from ember.shopping.service import Shop
from ember.store.sql import SqlStore
from ember.types import Person

API_BATCH = 1_000
API_EVENTS = 20_000
QUERIES = ("a funny animated film for kids", "dark crime thriller", "romantic comedy", "space science fiction")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _latency(call: Callable[[], object], rounds: int) -> dict[str, float]:
    """Wall time and this thread's CPU time per call (the CPU time is what a busy machine cannot inflate)."""
    call()  # warm-up
    wall, cpu = [], []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.thread_time()
        call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    return {
        "p50_ms": round(percentile(wall, 50), 2),
        "p99_ms": round(percentile(wall, 99), 2),
        "mean_ms": round(statistics.fmean(wall), 2),
        "cpu_p50_ms": round(percentile(cpu, 50), 2),
        "cpu_p99_ms": round(percentile(cpu, 99), 2),
        "requests": rounds,
    }


def _api_ingest(settings: Settings, events: list[dict[str, Any]]) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from ember.api.app import create_app

    with TestClient(create_app(settings.model_copy(update={"load_on_start": False}))) as client:
        started = time.perf_counter()
        for start in range(0, len(events), API_BATCH):
            resp = client.post("/v1/events", json={"events": events[start : start + API_BATCH]})
            resp.raise_for_status()
        seconds = time.perf_counter() - started
    return {"events": len(events), "seconds": round(seconds, 2), "events_per_s": round(len(events) / seconds)}


def run(rounds: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), cache_dir=Settings().cache_dir)
        shop = Shop(SqlStore(settings.db_url), Embedders(settings.cache_dir))
        try:
            started = time.perf_counter()
            reports, _ = load_movielens(shop)
            load_s = time.perf_counter() - started
            events = reports[1].accepted
            started = time.perf_counter()
            shop.recommender.refresh()
            fit_s = time.perf_counter() - started
            rng = random.Random(seed)
            people = [Person("", f"{movielens.ID_PREFIX}{rng.randint(1, 943)}") for _ in range(rounds)]
            plain = iter(people * 2)
            asked = iter(people * 2)
            result = {
                "items": len(shop.recommender.snapshot().items),
                "events": events,
                "store_ingest": {"seconds_with_catalogue": round(load_s, 2), "events_per_s": round(events / load_s)},
                "first_fit_s_with_embeddings": round(fit_s, 2),
                "recommend": _latency(lambda: shop.recommender.recommend(next(plain), Ask(k=10)), rounds),
                "recommend_with_query": _latency(
                    lambda: shop.recommender.recommend(next(asked), Ask(text=rng.choice(QUERIES), k=10)), rounds
                ),
            }
        finally:
            shop.store.close()
        fresh = list(movielens.event_rows(movielens.load_ratings()))[:API_EVENTS]
        result["api_ingest"] = _api_ingest(settings, fresh)
    return {**result, "cores": os.cpu_count(), "load_average_1min_after": round(os.getloadavg()[0], 2)}


@click.command("recs")
@click.option("--rounds", type=click.IntRange(min=10), default=500, show_default=True, help="requests per latency")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench-results/recs.json"))
def recs(rounds: int, seed: int, out: Path) -> None:
    """Recommendation latency (p50/p99) and event ingest rate at MovieLens-100k size."""
    result = run(rounds, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps(result, indent=2))
