"""`ember reliability soak`: mixed traffic for --minutes against an `ember serve` it starts, watching for
hangs, an untruthful /health, memory growth and leaked engine slots.

--concurrency clients each loop until the time (or --requests) is up, picking at random, by weight:

    stream        a streamed chat completion, read to its end
    complete      a non-streamed chat completion
    stream_cut    a streamed one the client leaves after a random number of events
    complete_cut  a non-streamed one the client gives up on after a random fraction of a second
    models        GET /v1/models
    health        GET /health, which must answer 200 "ok" throughout (the engines keep working)

Every request has a timeout, so a hang is counted, never waited on. The server's resident memory (VmRSS
from /proc/<pid>/status, Linux) is sampled every --sample-every requests; growth is reported per 1,000
requests after a warm-up (the first fifth of the run), from the end points and from a least-squares fit;
it is judged against the goal only over at least MIN_JUDGED_REQUESTS requests.
When traffic stops it waits for the server to hold no work: engine slots in use (`ember_engine_active`)
and admission places must return to 0. It prints a table and writes JSON; it asserts nothing
(tests/test_load.py runs a short soak and does).
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx

from ember_tools.reliability import server as srv
from ember_tools.reliability.load import MODE, PROMPTS

WARMUP_FRACTION = 0.2
GOAL_MIB_PER_REQUEST = 0.1
MIN_JUDGED_REQUESTS = 1000  # after the warm-up: fewer, and allocator and cache warm-up swamp any leak
CUT_AFTER_S = (0.05, 0.5)  # a non-streamed request's client gives up within this
CUT_AFTER_EVENTS = 12  # a streamed request's client leaves after at most this many events


@dataclass(frozen=True)
class Options:
    minutes: float = 20.0
    requests: int = 100_000
    concurrency: int = 4
    max_tokens: int = 48
    timeout_s: float = 120.0
    sample_every: int = 100
    seed: int = 0


@dataclass(frozen=True)
class Result:
    """One request's fate: ok (as its action expects), busy (503 server_busy), or a failure in words."""

    ok: bool
    latency_s: float
    busy: bool = False
    failure: str | None = None


Action = Callable[[httpx.AsyncClient, random.Random, Options], Awaitable[tuple[bool, str | None]]]


def _chat(rng: random.Random, opts: Options, stream: bool) -> dict[str, Any]:
    return {
        "model": MODE,
        "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
        "max_tokens": rng.randint(1, opts.max_tokens),
        "stream": stream,
    }


class Busy(Exception):
    """The server answered 503 server_busy: its admission limit was full (deliberate, not a failure)."""


def _check(resp: httpx.Response, body: bytes | None = None) -> None:
    if resp.status_code == 503 and b'"server_busy"' in (body if body is not None else resp.content):
        raise Busy


async def stream(client: httpx.AsyncClient, rng: random.Random, opts: Options) -> tuple[bool, str | None]:
    async with client.stream("POST", "/v1/chat/completions", json=_chat(rng, opts, True)) as resp:
        if resp.status_code != 200:
            _check(resp, await resp.aread())
            return False, f"status {resp.status_code}"
        events = [line.removeprefix("data:").strip() async for line in resp.aiter_lines() if line.startswith("data:")]
    if any("error" in json.loads(e) for e in events if e != "[DONE]"):
        return False, "in-band error"
    return (bool(events) and events[-1] == "[DONE]"), "no [DONE]"


async def stream_cut(client: httpx.AsyncClient, rng: random.Random, opts: Options) -> tuple[bool, str | None]:
    leave_after = rng.randint(0, CUT_AFTER_EVENTS)
    async with client.stream("POST", "/v1/chat/completions", json=_chat(rng, opts, True)) as resp:
        if resp.status_code != 200:
            _check(resp, await resp.aread())
            return False, f"status {resp.status_code}"
        seen = 0
        async for _ in resp.aiter_lines():
            seen += 1
            if seen > leave_after:
                break  # leaving the block closes the connection mid-stream
    return True, None


async def complete(client: httpx.AsyncClient, rng: random.Random, opts: Options) -> tuple[bool, str | None]:
    resp = await client.post("/v1/chat/completions", json=_chat(rng, opts, False))
    _check(resp)
    ok = resp.status_code == 200 and isinstance(resp.json()["choices"][0]["message"]["content"], str)
    return ok, f"status {resp.status_code}"


async def complete_cut(client: httpx.AsyncClient, rng: random.Random, opts: Options) -> tuple[bool, str | None]:
    give_up = httpx.Timeout(opts.timeout_s, read=rng.uniform(*CUT_AFTER_S))
    try:
        resp = await client.post("/v1/chat/completions", json=_chat(rng, opts, False), timeout=give_up)
    except httpx.ReadTimeout:
        return True, None  # the client left, as intended
    _check(resp)
    return resp.status_code == 200, f"status {resp.status_code}"


async def models(client: httpx.AsyncClient, rng: random.Random, opts: Options) -> tuple[bool, str | None]:
    resp = await client.get("/v1/models")
    return resp.status_code == 200 and bool(resp.json()["data"]), f"status {resp.status_code}"


async def health(client: httpx.AsyncClient, rng: random.Random, opts: Options) -> tuple[bool, str | None]:
    resp = await client.get("/health")
    ok = resp.status_code == 200 and resp.json().get("status") == "ok"
    return ok, f"/health {resp.status_code}: {resp.text[:200]}"


ACTIONS: dict[str, tuple[Action, int]] = {
    "stream": (stream, 35),
    "complete": (complete, 20),
    "stream_cut": (stream_cut, 15),
    "complete_cut": (complete_cut, 10),
    "models": (models, 10),
    "health": (health, 10),
}


async def attempt(action: Action, client: httpx.AsyncClient, rng: random.Random, opts: Options) -> Result:
    """Run one action under its timeout; whatever happens becomes a Result."""
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(opts.timeout_s):
            ok, why = await action(client, rng, opts)
    except Busy:
        return Result(False, time.perf_counter() - t0, busy=True)
    except TimeoutError:
        return Result(False, time.perf_counter() - t0, failure="timeout")
    except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
        return Result(False, time.perf_counter() - t0, failure=f"{type(exc).__name__}: {exc}"[:200])
    return Result(ok, time.perf_counter() - t0, failure=None if ok else why)


def rss_kib(pid: int) -> int | None:
    """The process's resident set size in KiB (Linux /proc), None where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Soak:
    """The run's tallies, shared by the clients (one event loop: no locks needed)."""

    pid: int
    opts: Options
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    done: int = 0
    results: dict[str, list[Result]] = field(default_factory=lambda: defaultdict(list))
    samples: list[dict[str, Any]] = field(default_factory=list)

    def sample(self, client_held: dict[str, float] | None = None) -> None:
        row = {
            "requests": self.done,
            "seconds": round(time.monotonic() - self.started, 2),
            "rss_kib": rss_kib(self.pid),
        }
        self.samples.append(row | (client_held or {}))


async def client_loop(soak: Soak, client: httpx.AsyncClient, rng: random.Random, deadline: float) -> None:
    names = list(ACTIONS)
    weights = [ACTIONS[n][1] for n in names]
    while time.monotonic() < deadline and soak.sent < soak.opts.requests:
        name = rng.choices(names, weights)[0]
        soak.sent += 1  # counted when sent, so the clients never send more than --requests together
        soak.results[name].append(await attempt(ACTIONS[name][0], client, rng, soak.opts))
        soak.done += 1
        if soak.done % soak.opts.sample_every == 0:
            soak.sample(srv.in_flight(await srv.scrape(client)))


async def run(url: str, pid: int, opts: Options) -> dict[str, Any]:
    soak = Soak(pid, opts)
    timeout = httpx.Timeout(opts.timeout_s, connect=10.0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        soak.sample()
        deadline = soak.started + opts.minutes * 60
        rngs = [random.Random(opts.seed * 1000 + i) for i in range(opts.concurrency)]
        await asyncio.gather(*(client_loop(soak, client, rng, deadline) for rng in rngs))
        traffic_s = time.monotonic() - soak.started
        after = await srv.settle(client)
        soak.sample(after["held"])
    kinds = {name: _kind(results) for name, results in sorted(soak.results.items())}
    return {
        "url": url,
        "options": asdict(opts),
        "traffic_s": round(traffic_s, 1),
        "requests": sum(k["sent"] for k in kinds.values()),
        "kinds": kinds,
        "health_failures": kinds.get("health", {}).get("failed", 0),
        "timeouts": sum(k["timeouts"] for k in kinds.values()),
        "after": after,
        "leaked": {k: v for k, v in after["held"].items() if v},
        "memory": memory_growth(soak.samples, traffic_s),
        "samples": soak.samples,
        "machine": srv.machine(),
    }


def _kind(results: list[Result]) -> dict[str, Any]:
    failures = [r for r in results if not r.ok and not r.busy]
    latencies = srv.percentiles([r.latency_s for r in results if r.ok])
    return {
        "sent": len(results),
        "ok": sum(r.ok for r in results),
        "busy_503": sum(r.busy for r in results),
        "failed": len(failures),
        "timeouts": sum(r.failure == "timeout" for r in results),
        "failures": dict(Counter(r.failure for r in failures).most_common(5)),
        "latency_s": {k: None if v is None else round(v, 4) for k, v in latencies.items()},
    }


def memory_growth(samples: list[dict[str, Any]], traffic_s: float) -> dict[str, Any]:
    """RSS growth after the warm-up, in MiB per 1,000 requests: end to end, and a least-squares slope."""
    rows = [s for s in samples if s["rss_kib"] is not None]
    steady = [s for s in rows if s["seconds"] >= WARMUP_FRACTION * traffic_s]
    out: dict[str, Any] = {
        "rss_start_mib": round(rows[0]["rss_kib"] / 1024, 1) if rows else None,
        "rss_end_mib": round(rows[-1]["rss_kib"] / 1024, 1) if rows else None,
        "warmup_requests": steady[0]["requests"] if steady else None,
        "per_1000_mib": None,
        "slope_per_1000_mib": None,
    }
    if len(steady) < 2 or steady[-1]["requests"] == steady[0]["requests"]:
        return out  # too short a run to tell
    first, last = steady[0], steady[-1]
    out["per_1000_mib"] = round(
        (last["rss_kib"] - first["rss_kib"]) / 1024 / (last["requests"] - first["requests"]) * 1000, 3
    )
    xs, ys = [s["requests"] for s in steady], [s["rss_kib"] / 1024 for s in steady]
    if len(set(xs)) > 1:
        out["slope_per_1000_mib"] = round(statistics.linear_regression(xs, ys).slope * 1000, 3)
    worst = max(v for v in (out["per_1000_mib"], out["slope_per_1000_mib"]) if v is not None) / 1000
    out["goal_mib_per_request"] = GOAL_MIB_PER_REQUEST
    judged = last["requests"] - first["requests"] >= MIN_JUDGED_REQUESTS
    out["goal_met"] = worst < GOAL_MIB_PER_REQUEST if judged else None
    return out


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(result: dict[str, Any]) -> str:
    lines = [f"{'kind':<14}{'sent':>8}{'ok':>8}{'503':>6}{'failed':>8}{'timeouts':>10}{'p50 (s)':>10}{'p99 (s)':>10}"]
    for name, k in result["kinds"].items():
        lat = k["latency_s"]
        lines.append(
            f"{name:<14}{k['sent']:>8}{k['ok']:>8}{k['busy_503']:>6}{k['failed']:>8}{k['timeouts']:>10}"
            f"{_mib(lat['p50']):>10}{_mib(lat['p99']):>10}"
        )
    m, after = result["memory"], result["after"]
    verdict = {True: "PASS", False: "MISS"}.get(m.get("goal_met"), f"not judged: < {MIN_JUDGED_REQUESTS} requests")
    lines += [
        "",
        f"{result['requests']} requests in {result['traffic_s']} s; timeouts (hangs): {result['timeouts']}; "
        f"/health failures: {result['health_failures']}",
        f"RSS: {m['rss_start_mib']} MiB at start, {m['rss_end_mib']} MiB at the end; after a warm-up of "
        f"{m['warmup_requests']} requests: {_mib(m['per_1000_mib'])} MiB per 1,000 requests end to end, "
        f"{_mib(m['slope_per_1000_mib'])} MiB per 1,000 by a linear fit "
        f"(goal < {GOAL_MIB_PER_REQUEST} MiB per request: {verdict})",
        f"after traffic: held {after['held']} (settled in {after['settled_s']} s); "
        f"leaked: {result['leaked'] or 'none'}; "
        f"/health {after['health_status']} {after['health']}",
    ]
    return "\n".join(lines)


@click.command("soak")
@click.option("--minutes", type=click.FloatRange(min=0.05), default=20.0, show_default=True, help="traffic time")
@click.option("--requests", type=click.IntRange(min=1), default=100_000, show_default=True, help="at most")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True, help="clients at once")
@click.option("--model", default="chat-tiny", show_default=True, help="catalogue role or GGUF behind the chat roles")
@click.option("--parallel", type=click.IntRange(1, 64), default=2, show_default=True, help="its llama.cpp slots")
@click.option("--ctx-size", type=click.IntRange(min=256), default=1024, show_default=True, help="tokens per slot")
@click.option("--max-tokens", type=click.IntRange(min=1), default=48, show_default=True, help="each answer at most")
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True, help="per request, s")
@click.option("--sample-every", type=click.IntRange(min=1), default=100, show_default=True, help="requests per RSS")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench-results/soak.json"))
def soak(
    minutes: float,
    requests: int,
    concurrency: int,
    model: str,
    parallel: int,
    ctx_size: int,
    max_tokens: int,
    timeout: float,
    sample_every: int,
    seed: int,
    out: Path,
) -> None:
    """Mixed traffic with client disconnects: hangs, /health, RSS growth per 1,000 requests, leaked slots."""
    opts = Options(minutes, requests, concurrency, max_tokens, timeout, sample_every, seed)
    started = time.time()
    click.echo(f"starting `ember serve` with {model} ({parallel} slots) and waiting for /health", err=True)
    with srv.serve(srv.chat_roles(model, parallel, ctx_size)) as server:
        assert server.pid is not None
        click.echo(f"soak: {minutes:g} min of mixed traffic from {concurrency} clients", err=True)
        result = asyncio.run(run(server.url, server.pid, opts))
    result |= {"server": {"model": model, "parallel": parallel, "ctx_size": ctx_size}}
    result |= {"started": started, "seconds": round(time.time() - started, 1)}
    click.echo(table(result))
    srv.write_json(out, result)
    click.echo(f"\nwrote {out}")
