"""`ember bench engine`: llama.cpp called directly ("raw") versus the same model behind `ember serve`, once
with llama.cpp in Ember's process (`llama_cpp_inprocess`) and once in a child process (`llama_cpp`), and with
`--llama-server` on llama.cpp's own server built from source (`ember_tools.bench.llama_server`).

Every phase sends the same fixed prompts (temperature 0, fixed seed) and measures time to first token,
single-stream decode speed and total throughput at 1, 2 and 4 concurrent streams (median over
`--requests`), after one warm-up request. Each prompt starts with a request number so llama.cpp's
prompt cache cannot reuse an earlier prompt: TTFT includes prompt processing. A turn-2 case then times
the first token of a conversation's next turn after ~1,500 tokens of history, with the history in the
prompt cache (warm) and without (cold) (`ember_tools.bench.history`). The results are printed as a table of
ratios to raw, which stay meaningful on a shared, noisy machine where absolute numbers do not, with the
CPU other processes took meanwhile, and written as JSON with machine details.
This is a benchmark, not a test: it asserts nothing and tunes nothing. It downloads and installs
nothing (a catalogue role's packages must be installed; its file is assembled if needed). The HTTP
client runs on the same machine as the server, so the api phase includes its cost."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
import xllamacpp as xlc
from pydantic import ValidationError

from ember.assets.assemble import resolve_model
from ember.config import EngineSpec, Settings
from ember.engines.llama_params import server_params
from ember.modes.instant import SYSTEM_PROMPT
from ember_tools.bench import history, llama_server
from ember_tools.bench.generation_report import report
from ember_tools.reliability import server as loopback_server

PROMPT = "Write a story of about 200 words about a lighthouse keeper who finds a message in a bottle."
SEED = 42
STREAMS = (1, 2, 4)
MODE = "ember-instant"
PHASES = {"inprocess": "llama_cpp_inprocess", "child": "llama_cpp"}  # API phase: the engine it runs on

Body = dict[str, Any]
OneRequest = Callable[[Body], Awaitable["Sample"]]


class BenchError(click.ClickException):
    """The benchmark could not run (server did not start, an engine error, no tokens)."""


@dataclass(frozen=True)
class Options:
    model: str
    path: str
    threads: int
    ctx_size: int
    parallel: int
    max_tokens: int
    requests: int


@dataclass(frozen=True)
class Sample:
    """One streamed request: perf_counter times of start, first and last content token, end."""

    start: float
    first: float
    last: float
    end: float
    tokens: int
    prompt_tokens: int

    @property
    def ttft(self) -> float:
        return self.first - self.start

    @property
    def decode_tps(self) -> float:
        return (self.tokens - 1) / max(self.last - self.first, 1e-9)


@dataclass
class _Clock:
    start: float = field(default_factory=time.perf_counter)
    first: float | None = None
    last: float | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None

    def see(self, chunk: dict[str, Any]) -> None:
        now = time.perf_counter()
        if "error" in chunk:
            self.error = json.dumps(chunk["error"])[:500]
        choices = chunk.get("choices") or []
        if choices and (choices[0].get("delta") or {}).get("content"):
            self.first = now if self.first is None else self.first
            self.last = now
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.tokens = int(usage.get("completion_tokens", 0))
            self.prompt_tokens = int(usage.get("prompt_tokens", 0))

    def sample(self) -> Sample:
        if self.error is not None:
            raise BenchError(f"the engine reported an error: {self.error}")
        if self.first is None or self.last is None or self.tokens < 2:
            raise BenchError(f"a request produced {self.tokens} token(s) and no usable stream; cannot time it")
        return Sample(self.start, self.first, self.last, time.perf_counter(), self.tokens, self.prompt_tokens)


def request_body(n: int, max_tokens: int) -> Body:
    """The fixed request, made unique by `n` at the very start so no prompt cache can be reused."""
    return {
        "messages": [
            {"role": "system", "content": f"[request {n:04d}] {SYSTEM_PROMPT}"},
            {"role": "user", "content": PROMPT},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "seed": SEED,
    }


def _progress(message: str) -> None:
    click.echo(message, err=True)


async def measure(phase: str, one: OneRequest, opts: Options) -> dict[str, Any]:
    """Warm up, then the medians of TTFT, decode speed and total throughput at each stream count."""
    numbers = itertools.count(1)
    _progress(f"{phase}: warm-up")
    await one(request_body(0, opts.max_tokens))
    runs: dict[str, list[float]] = {"ttft_s": [], "decode_tps": []}
    for streams in STREAMS:
        key = f"total_tps_{streams}"
        runs[key] = []
        for i in range(opts.requests):
            _progress(f"{phase}: {streams} stream(s), round {i + 1}/{opts.requests}")
            t0 = time.perf_counter()
            samples = await asyncio.gather(*(one(request_body(next(numbers), opts.max_tokens)) for _ in range(streams)))
            wall = max(s.end for s in samples) - t0
            runs[key].append(sum(s.tokens for s in samples) / wall)
            if streams == 1:
                runs["ttft_s"].append(samples[0].ttft)
                runs["decode_tps"].append(samples[0].decode_tps)
    runs |= await turn_two(phase, one, opts, numbers)
    result: dict[str, Any] = {key: statistics.median(values) for key, values in runs.items()}
    result["scaling_4_over_1"] = result["total_tps_4"] / result["total_tps_1"]
    result["turn2_speedup"] = result["turn2_cold_ttft_s"] / result["turn2_warm_ttft_s"]
    result["runs"] = runs
    return result


async def turn_two(phase: str, one: OneRequest, opts: Options, numbers: Iterator[int]) -> dict[str, list[float]]:
    """TTFT of a next turn after ~1,500 tokens of history: after its first turn (warm), and as a conversation
    never seen before (cold); one of each per round."""
    runs: dict[str, list[float]] = {"turn2_warm_ttft_s": [], "turn2_cold_ttft_s": [], "turn2_prompt_tokens": []}
    for i in range(opts.requests):
        _progress(f"{phase}: turn 2 after a long history, round {i + 1}/{opts.requests}")
        warm = next(numbers)
        await one(history.first_turn(warm, SEED))
        sample = await one(history.second_turn(warm, SEED))
        runs["turn2_warm_ttft_s"].append(sample.ttft)
        runs["turn2_prompt_tokens"].append(sample.prompt_tokens)
        runs["turn2_cold_ttft_s"].append((await one(history.second_turn(next(numbers), SEED))).ttft)
    return runs


def _raw_params(opts: Options) -> Any:
    spec = EngineSpec(model=opts.model, threads=opts.threads, ctx_size=opts.ctx_size, parallel=opts.parallel)
    return server_params(spec, opts.path)


def _raw_one(server: Any, body: Body) -> Sample:
    clock = _Clock()

    def on_chunk(chunk: dict[str, Any]) -> bool:
        clock.see(chunk)
        return False

    try:
        server.handle_chat_completions(body, on_chunk)
    except Exception as exc:  # the C++ layer raises plain RuntimeErrors
        raise BenchError(f"llama.cpp failed: {exc}") from exc
    return clock.sample()


def _jiffies(pids: Sequence[int]) -> tuple[int, int, int] | None:
    """Machine busy and total CPU jiffies (/proc/stat), and the busy jiffies of `pids`; None off Linux."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        ours = 0
        for pid in pids:
            after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ours += int(after_name[11]) + int(after_name[12])  # utime and stime, all threads
    except (OSError, ValueError, IndexError):
        return None
    total = sum(fields)
    return total - fields[3] - fields[4], total, ours


def _cpu_use(before: tuple[int, int, int] | None, pids: Sequence[int]) -> dict[str, float] | None:
    """Average cores used since `before` by `pids` (this benchmark) and by every other process."""
    after = _jiffies(pids)
    if before is None or after is None or after[1] <= before[1]:
        return None
    cores = (after[1] - before[1]) / (os.cpu_count() or 1)
    busy, ours = after[0] - before[0], after[2] - before[2]
    return {"benchmark_cores": ours / cores, "other_cores": max(busy - ours, 0) / cores}


def run_raw(opts: Options) -> dict[str, Any]:
    """llama.cpp in this process; each stream is a thread calling `handle_chat_completions`."""
    _progress(f"raw: loading {opts.path}")
    holder = [xlc.Server(_raw_params(opts))]

    async def one(body: Body) -> Sample:
        return await asyncio.to_thread(_raw_one, holder[0], body)

    try:
        before = _jiffies([os.getpid()])
        result = asyncio.run(measure("raw", one, opts))
        result["cpu"] = _cpu_use(before, [os.getpid()])
        return result
    finally:
        holder.clear()  # the destructor joins llama.cpp's loop thread and frees the model
        gc.collect()


@contextlib.contextmanager
def serve(opts: Options, engine: str) -> Iterator[tuple[str, int]]:
    """`ember serve` in a subprocess with one chat-fast role on the benchmarked model, run by `engine`;
    yields URL, pid."""
    role = {"engine": engine, "model": opts.path, "threads": opts.threads}
    role |= {"ctx_size": opts.ctx_size, "parallel": opts.parallel}
    idle = {"engine": "fake", "model": "fake"}  # the reasoning modes' role: unused here, so nothing to load
    with loopback_server.serve({"chat-fast": role, "chat": idle}) as running:
        assert running.pid is not None  # it started the server
        yield running.url, running.pid


async def _api_one(client: httpx.AsyncClient, body: Body) -> Sample:
    clock = _Clock()
    async with client.stream("POST", "/v1/chat/completions", json={"model": MODE, **body}) as resp:
        if resp.status_code != 200:
            text = (await resp.aread()).decode(errors="replace")[:500]
            raise BenchError(f"POST /v1/chat/completions returned {resp.status_code}: {text}")
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                break
            clock.see(json.loads(data))
    return clock.sample()


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux; just `pid` elsewhere)."""
    found, todo = [], [pid]
    while todo:
        found.append(current := todo.pop())
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def run_api(opts: Options, phase: str, engine: str) -> dict[str, Any]:
    """The same model behind `ember serve` on `engine`, streamed over HTTP (SSE) with an async httpx client."""
    _progress(f"{phase}: starting `ember serve` (engine {engine}) and waiting for /health")
    with serve(opts, engine) as (url, pid):
        return _over_http(opts, phase, url, pid)


def run_llama_server(opts: Options, server: Path) -> dict[str, Any]:
    """The same model on llama.cpp's own `llama-server`, the same requests over HTTP."""
    _progress(f"llama-server: starting {server}")
    args = llama_server.command(server, opts.path, opts.threads, opts.ctx_size, opts.parallel, llama_server.free_port())
    with llama_server.running(args) as (url, pid):
        return _over_http(opts, "llama-server", url, pid)


def _over_http(opts: Options, phase: str, url: str, pid: int) -> dict[str, Any]:
    """`measure` over HTTP against the server at `url` (process `pid` and its children count as its CPU)."""

    async def main() -> dict[str, Any]:
        timeout = httpx.Timeout(600.0, connect=10.0)
        async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
            return await measure(phase, lambda body: _api_one(client, body), opts)

    pids = [os.getpid(), *_descendants(pid)]  # this HTTP client, the server and its llama.cpp child
    before = _jiffies(pids)
    result = asyncio.run(main())
    result["cpu"] = _cpu_use(before, pids)
    return result


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "xllamacpp": importlib.metadata.version("xllamacpp"),
    }


def _options(model: str, threads: int | None, ctx_size: int, parallel: int, max_tokens: int, requests: int) -> Options:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from exc
    path = resolve_model(model, settings.cache_dir, progress=True).resolve()
    cores = threads or os.cpu_count() or 1
    return Options(model, str(path), cores, ctx_size, parallel, max_tokens, requests)


@click.command()
@click.option("--model", default="chat-fast", show_default=True, help="catalogue role or GGUF path")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all cores)")
@click.option("--ctx-size", type=click.IntRange(min=256), default=4096, show_default=True, help="tokens per slot")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True, help="llama.cpp slots")
@click.option("--max-tokens", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--requests", type=click.IntRange(min=1), default=3, show_default=True, help="rounds per measurement")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench-results/engine.json"))
@click.option(
    "--llama-server", "with_server", is_flag=True, help="also llama.cpp's own llama-server (built once from source)"
)
def engine(
    model: str,
    threads: int | None,
    ctx_size: int,
    parallel: int,
    max_tokens: int,
    requests: int,
    out: Path,
    with_server: bool,
) -> None:
    """llama.cpp called directly vs. through `ember serve` (in-process and child-process engines), and with
    --llama-server llama.cpp's own server: TTFT, decode and multi-stream throughput, and a next turn's TTFT
    with and without the prompt cache."""
    opts = _options(model, threads, ctx_size, parallel, max_tokens, requests)
    server = llama_server.built(Settings().cache_dir) if with_server else None
    load_before = os.getloadavg()
    started = time.time()
    phases = {"raw": run_raw(opts)}
    if server is not None:
        phases["llama-server"] = run_llama_server(opts, server)
    phases |= {phase: run_api(opts, phase, engine) for phase, engine in PHASES.items()}
    table, summary = report(phases)
    click.echo(
        f"\nmodel {opts.model} ({opts.path}), threads {opts.threads}, ctx {opts.ctx_size} x {opts.parallel} slots, "
        f"max_tokens {opts.max_tokens}, median of {opts.requests}\n"
    )
    click.echo(table)
    machine = {**machine_info(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    result = {"started": started, "seconds": time.time() - started, "machine": machine, "settings": asdict(opts)}
    result |= {"prompt": {"system": SYSTEM_PROMPT, "user": PROMPT, "seed": SEED}, **phases, **summary}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"\nload average before/after: {load_before[0]:.2f} / {machine['loadavg_after'][0]:.2f}; wrote {out}")
