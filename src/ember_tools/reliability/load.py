"""`ember reliability load`: an open-model load test of streamed chat completions on loopback.

Requests arrive at a fixed rate (constant or Poisson gaps) whether or not earlier ones were answered,
each phase bounded by a request count and a duration, and every request by its own timeout, so a hung
server shows up as timeouts, never as a hung run. Three phases against one server, in one run:

    reference  one request at a time: the single-request TTFT and latency the load phase is reported
               against (a ratio stays meaningful on a shared, noisy machine where absolute times do not)
    load       --rate requests/s (default: one per reference latency)
    overload   --overload-rate requests/s (default 10x the load rate) for --overload-seconds: faster than
               the server can serve, to show its admission limit answering 503 `server_busy` at once

After each phase it waits for the server to hold no work (engine slots, admission places) and asks
/health. It starts `ember serve` with --model behind both chat roles, or targets --url (loopback only),
prints a table and writes JSON. A benchmark, not a test: it asserts nothing (tests/test_load.py does).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx

from ember_tools.reliability import server as srv

MODE = "ember-instant"
PROMPTS = (
    "Write a short poem about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List three uses for a paperclip.",
    "Describe a lighthouse at night.",
)
OVERLOAD_FACTOR = 10.0
OVERLOAD_MAX_REQUESTS = 2000
ARRIVALS: dict[str, Callable[[float, random.Random], float]] = {
    "constant": lambda rate, _: 1.0 / rate,
    "poisson": lambda rate, rng: rng.expovariate(rate),
}


@dataclass
class Outcome:
    """One request as the client saw it. `status` is None when no HTTP answer came (timeout, connection)."""

    phase: str
    scheduled_s: float  # when it was due, since its phase began
    sent_s: float  # when it was sent
    status: int | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    tokens: int = 0
    complete: bool = False  # 200, the stream ended with [DONE], no in-band error
    code: str | None = None  # the OpenAI error code, of an error answer or an in-band stream error
    error: str | None = None
    retry_after: str | None = None

    @property
    def busy(self) -> bool:
        return self.status == 503 and self.code == "server_busy"


@dataclass(frozen=True)
class Options:
    max_tokens: int = 32
    timeout_s: float = 60.0
    arrivals: str = "poisson"
    seed: int = 0
    reference_requests: int = 5
    rate: float | None = None
    requests: int = 200
    duration_s: float = 30.0
    overload_rate: float | None = None
    overload_s: float = 5.0


@dataclass
class Numbers:
    """Request numbers, unique in a run: each prompt differs, so no request reuses another's prompt cache."""

    counter: Iterator[int] = field(default_factory=itertools.count)

    def next(self) -> int:
        return next(self.counter)


def request_body(n: int, max_tokens: int) -> dict[str, Any]:
    return {
        "model": MODE,
        "messages": [{"role": "user", "content": f"[{n}] {PROMPTS[n % len(PROMPTS)]}"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "seed": n,
    }


def envelope_code(body: bytes) -> str | None:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(code) if code is not None else None


async def _read_stream(resp: httpx.Response, out: Outcome, t0: float) -> None:
    async for line in resp.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            out.complete = out.code is None
            return
        chunk = json.loads(data)
        if "error" in chunk:
            out.code = str(chunk["error"].get("code") or "in_band_error")
            out.error = str(chunk["error"].get("message", ""))[:200]
        choices = chunk.get("choices") or []
        if out.ttft_s is None and choices and (choices[0].get("delta") or {}).get("content"):
            out.ttft_s = time.perf_counter() - t0
        if isinstance(usage := chunk.get("usage"), dict):
            out.tokens = int(usage.get("completion_tokens", 0))
    out.error = "the stream ended without [DONE]"


async def one(client: httpx.AsyncClient, out: Outcome, n: int, opts: Options) -> Outcome:
    """Send request `n`, stream its answer, and fill in `out`; never raises for what the server does."""
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(opts.timeout_s):
            async with client.stream("POST", "/v1/chat/completions", json=request_body(n, opts.max_tokens)) as resp:
                out.status = resp.status_code
                out.retry_after = resp.headers.get("retry-after")
                if resp.status_code != 200:
                    out.code = envelope_code(await resp.aread())
                else:
                    await _read_stream(resp, out, t0)
    except TimeoutError:
        out.error = "timeout"
    except httpx.HTTPError as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:200]
    out.latency_s = time.perf_counter() - t0
    return out


async def open_loop(
    client: httpx.AsyncClient, phase: str, rate: float, limits: tuple[int, float], opts: Options, numbers: Numbers
) -> tuple[list[Outcome], float]:
    """Send at `rate` requests/s, not waiting for answers, until `limits` (count, seconds) is reached; then
    wait for every answer (each bounded by its timeout). Returns the outcomes and the seconds spent sending."""
    count, duration_s = limits
    rng = random.Random(opts.seed)
    gap = ARRIVALS[opts.arrivals]
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[Outcome]] = []
    due = 0.0
    while len(tasks) < count and due < duration_s:
        await asyncio.sleep(max(0.0, start + due - loop.time()))
        out = Outcome(phase, due, loop.time() - start)
        tasks.append(asyncio.create_task(one(client, out, numbers.next(), opts)))
        due += gap(rate, rng)
    sending_s = loop.time() - start
    return list(await asyncio.gather(*tasks)), sending_s


def _rounded(values: dict[str, float | None], digits: int = 4) -> dict[str, float | None]:
    return {k: None if v is None else round(v, digits) for k, v in values.items()}


def summarise(outcomes: list[Outcome], sending_s: float) -> dict[str, Any]:
    """Counts, rates and percentiles of one phase. Failed: neither complete nor a deliberate 503."""
    ok = [o for o in outcomes if o.complete]
    busy = [o for o in outcomes if o.busy]
    failed = [o for o in outcomes if not o.complete and not o.busy]
    sent = len(outcomes)
    tokens = sum(o.tokens for o in ok)
    wall = max((o.sent_s + o.latency_s for o in outcomes), default=0.0)
    return {
        "sent": sent,
        "completed": len(ok),
        "busy_503": len(busy),
        "failed": len(failed),
        "timeouts": sum(o.error == "timeout" for o in outcomes),
        "error_rate": len(failed) / sent if sent else 0.0,
        "busy_rate": len(busy) / sent if sent else 0.0,
        "statuses": dict(Counter(str(o.status) for o in outcomes)),
        "failures": dict(Counter(o.code or o.error or f"status {o.status}" for o in failed)),
        "busy_with_retry_after": sum(o.retry_after is not None for o in busy),
        "offered_rate": sent / sending_s if sending_s > 0 else None,
        "client_lag_max_s": round(max((o.sent_s - o.scheduled_s for o in outcomes), default=0.0), 4),
        "ttft_s": _rounded(srv.percentiles([o.ttft_s for o in ok if o.ttft_s is not None])),
        "latency_s": _rounded(srv.percentiles([o.latency_s for o in ok])),
        "busy_latency_s": _rounded(srv.percentiles([o.latency_s for o in busy])),
        "tokens": tokens,
        "tokens_per_s": tokens / wall if wall > 0 else None,
        "seconds": round(wall, 3),
    }


async def _reference(client: httpx.AsyncClient, opts: Options, numbers: Numbers) -> dict[str, Any]:
    """A warm-up, then `reference_requests` one at a time; a click error if the server cannot answer."""
    warm = await one(client, Outcome("warm-up", 0.0, 0.0), numbers.next(), opts)
    if not warm.complete:
        raise click.ClickException(f"the warm-up request failed: {warm.status} {warm.code or warm.error}")
    t0 = time.perf_counter()
    outcomes = []
    for _ in range(opts.reference_requests):
        now = time.perf_counter() - t0
        outcomes.append(await one(client, Outcome("reference", now, now), numbers.next(), opts))
    result = summarise(outcomes, time.perf_counter() - t0)
    if not result["completed"]:
        raise click.ClickException("no reference request completed; nothing to compare the load against")
    return result


async def _phase(
    client: httpx.AsyncClient, name: str, rate: float, limits: tuple[int, float], opts: Options, numbers: Numbers
) -> dict[str, Any]:
    _progress(f"{name}: {rate:.2f} requests/s, at most {limits[0]} requests in {limits[1]:g}s")
    refused_before = srv.total(await srv.scrape(client), "ember_admission_refused_total")
    outcomes, sending_s = await open_loop(client, name, rate, limits, opts, numbers)
    result = summarise(outcomes, sending_s)
    result["rate"] = rate
    result["server_refused"] = srv.total(await srv.scrape(client), "ember_admission_refused_total") - refused_before
    result["after"] = await srv.settle(client)
    return result


def _limits(samples: srv.Samples) -> dict[str, float]:
    return {state: srv.total(samples, "ember_admission_limit", state=state) for state in ("running", "waiting")}


async def run(url: str, opts: Options) -> dict[str, Any]:
    """All three phases against the server at `url`; the numbers, ratios included."""
    numbers = Numbers()
    timeout = httpx.Timeout(opts.timeout_s, connect=10.0)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        _progress("reference: one request at a time")
        reference = await _reference(client, opts, numbers)
        ref_latency = float(reference["latency_s"]["p50"])
        rate = opts.rate or 1.0 / ref_latency
        load = await _phase(client, "load", rate, (opts.requests, opts.duration_s), opts, numbers)
        overload_rate = opts.overload_rate or OVERLOAD_FACTOR * rate
        overload_count = min(OVERLOAD_MAX_REQUESTS, math.ceil(overload_rate * opts.overload_s))
        overload = await _phase(client, "overload", overload_rate, (overload_count, opts.overload_s), opts, numbers)
        admission = _limits(await srv.scrape(client))
    ratios = {
        "load_p50_latency_over_reference": _ratio(load["latency_s"]["p50"], ref_latency),
        "load_p50_ttft_over_reference": _ratio(load["ttft_s"]["p50"], reference["ttft_s"]["p50"]),
    }
    phases = {"reference": reference, "load": load, "overload": overload}
    return {
        "url": url,
        "options": asdict(opts),
        "admission_limits": admission,
        "phases": phases,
        "ratios": ratios,
        "machine": srv.machine(),
    }


def _ratio(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else round(value / reference, 3)


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _s(value: float | None, scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value * scale)


def table(result: dict[str, Any]) -> str:
    """The printed report: one row per phase, then the ratio and the overload verdict lines."""
    head = (
        f"{'phase':<10}{'sent':>6}{'ok':>6}{'503':>6}{'fail':>6}{'err %':>7}"
        f"{'TTFT p50/p90/p99 (s)':>24}{'latency p50/p90/p99 (s)':>26}{'503 p50/max (ms)':>18}"
    )
    lines = [head]
    for name, p in result["phases"].items():
        t, lat, b = p["ttft_s"], p["latency_s"], p["busy_latency_s"]
        lines.append(
            f"{name:<10}{p['sent']:>6}{p['completed']:>6}{p['busy_503']:>6}{p['failed']:>6}"
            f"{100 * p['error_rate']:>7.1f}"
            f"{' / '.join(_s(t[k]) for k in ('p50', 'p90', 'p99')):>24}"
            f"{' / '.join(_s(lat[k]) for k in ('p50', 'p90', 'p99')):>26}"
            f"{_s(b['p50'], 1000, '{:.0f}') + ' / ' + _s(b['max'], 1000, '{:.0f}'):>18}"
        )
    ref, load, over = (result["phases"][k] for k in ("reference", "load", "overload"))
    r = result["ratios"]
    lines += [
        "",
        f"reference (one request at a time): TTFT {_s(ref['ttft_s']['p50'])} s, "
        f"latency {_s(ref['latency_s']['p50'])} s",
        f"load at {load['rate']:.2f} req/s: p50 latency {_s(r['load_p50_latency_over_reference'], fmt='{:.2f}')}x "
        f"the reference, p50 TTFT {_s(r['load_p50_ttft_over_reference'], fmt='{:.2f}')}x",
        f"overload at {over['rate']:.2f} req/s: {over['busy_503']} of {over['sent']} answered 503 server_busy "
        f"(max {_s(over['busy_latency_s']['max'], 1000, '{:.0f}')} ms, {over['busy_with_retry_after']} with "
        f"Retry-After), {over['timeouts']} timed out; afterwards the server held "
        f"{sum(over['after']['held'].values()):g} requests after {over['after']['settled_s']} s, "
        f"/health {over['after']['health_status']} {over['after']['health']}",
        f"admission limits: {result['admission_limits']['running']:g} running + "
        f"{result['admission_limits']['waiting']:g} waiting",
    ]
    return "\n".join(lines)


@click.command("load")
@click.option("--url", default=None, help="a running server on loopback (default: start one)")
@click.option("--model", default="chat-tiny", show_default=True, help="catalogue role or GGUF for a started server")
@click.option("--parallel", type=click.IntRange(1, 64), default=2, show_default=True, help="its llama.cpp slots")
@click.option("--ctx-size", type=click.IntRange(min=256), default=1024, show_default=True, help="tokens per slot")
@click.option("--max-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0.01), default=None, help="load arrivals/s (default 1/ref latency)")
@click.option("--requests", type=click.IntRange(min=1), default=200, show_default=True, help="load phase at most")
@click.option("--duration", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="load seconds")
@click.option("--overload-rate", type=click.FloatRange(min=0.01), default=None, help="default: 10x the load rate")
@click.option("--overload-seconds", type=click.FloatRange(min=0.1), default=5.0, show_default=True)
@click.option("--arrivals", type=click.Choice(sorted(ARRIVALS)), default="poisson", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True, help="per request, s")
@click.option("--reference-requests", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench-results/load.json"))
def load(
    url: str | None,
    model: str,
    parallel: int,
    ctx_size: int,
    max_tokens: int,
    rate: float | None,
    requests: int,
    duration: float,
    overload_rate: float | None,
    overload_seconds: float,
    arrivals: str,
    timeout: float,
    reference_requests: int,
    seed: int,
    out: Path,
) -> None:
    """Open-model load on loopback: TTFT and latency percentiles, errors, and fast 503s when overloaded."""
    opts = Options(
        max_tokens,
        timeout,
        arrivals,
        seed,
        reference_requests,
        rate,
        requests,
        duration,
        overload_rate,
        overload_seconds,
    )
    started = time.time()
    if url is not None:
        result = asyncio.run(run(srv.require_loopback(url), opts))
    else:
        _progress(f"starting `ember serve` with {model} ({parallel} slots) and waiting for /health")
        with srv.serve(srv.chat_roles(model, parallel, ctx_size)) as server:
            result = asyncio.run(run(server.url, opts))
        result["server"] = {"model": model, "parallel": parallel, "ctx_size": ctx_size}
    result |= {"started": started, "seconds": round(time.time() - started, 1)}
    click.echo(table(result))
    srv.write_json(out, result)
    click.echo(f"\nwrote {out}")
