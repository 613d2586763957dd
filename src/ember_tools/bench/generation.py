"""`ember bench engine`: llama.cpp called directly ("raw") versus the same model behind `ember serve`, once
with llama.cpp in Ember's process (`llama_cpp_inprocess`) and once in a child process (`llama_cpp`), and with
`--llama-server` on llama.cpp's own server built from source (`ember_tools.bench.llama_server`). When the
child runs that native server, `child-direct` calls the child's server without Ember in between.

Every phase's server runs from the start (idle ones take no CPU); after a warm-up request each, `--requests`
rounds follow in which every phase takes its turn, the order rotating from round to round, so that a slow
spell of the shared machine falls on all phases alike (separate runs of one phase after another differed by
more than the differences measured). Every phase sends the same fixed prompts (temperature 0, fixed seed) and
measures time to first token, single-stream decode speed and total throughput at 1, 2 and 4 concurrent
streams (medians over the rounds). Each prompt starts with a request number so llama.cpp's
prompt cache cannot reuse an earlier prompt: TTFT includes prompt processing. A turn-2 case then times
the first token of a conversation's next turn after ~1,500 tokens of history, with the history in the
prompt cache (warm) and without (cold) (`ember_tools.bench.history`). Last come `--pairs` passes of one
single-stream request per phase, phases alternating request by request, so that each pass compares phases
seconds apart; the comparisons with llama-server use the median of the passes' ratios. The results are
printed as a table of ratios to raw, which stay meaningful on a shared, noisy machine where absolute numbers
do not, with the CPU other processes took meanwhile, and written as JSON with machine details.
This is a benchmark, not a test: it asserts nothing and tunes nothing. It downloads and installs
nothing (a catalogue role's packages must be installed; its file is assembled if needed). The HTTP
client runs on the same machine as the server, so the api phase includes its cost."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
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
from ember_tools.bench.generation_report import CHILD, DIRECT, REFERENCE, SERVER, report
from ember_tools.reliability import server as loopback_server

PROMPT = "Write a story of about 200 words about a lighthouse keeper who finds a message in a bottle."
SEED = 42
STREAMS = (1, 2, 4)
MODE = "ember-instant"
PHASES = {"inprocess": "llama_cpp_inprocess", CHILD: "llama_cpp"}  # API phase: the engine it runs on
TIMEOUT = httpx.Timeout(600.0, connect=10.0)

Body = dict[str, Any]
OneRequest = Callable[[Body], Awaitable["Sample"]]
Runs = dict[str, list[float]]


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
    pairs: int


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


async def one_round(phase: str, one: OneRequest, opts: Options, numbers: Iterator[int], runs: Runs, r: int) -> None:
    """Round `r` of every measurement on one phase: TTFT, decode and total throughput at each stream count,
    then the turn-2 case, each appended to `runs`."""
    for streams in STREAMS:
        _progress(f"{phase}: {streams} stream(s), round {r + 1}/{opts.requests}")
        t0 = time.perf_counter()
        samples = await asyncio.gather(*(one(request_body(next(numbers), opts.max_tokens)) for _ in range(streams)))
        wall = max(s.end for s in samples) - t0
        runs[f"total_tps_{streams}"].append(sum(s.tokens for s in samples) / wall)
        if streams == 1:
            runs["ttft_s"].append(samples[0].ttft)
            runs["decode_tps"].append(samples[0].decode_tps)
    _progress(f"{phase}: turn 2 after a long history, round {r + 1}/{opts.requests}")
    warm = next(numbers)
    await one(history.first_turn(warm, SEED))
    sample = await one(history.second_turn(warm, SEED))
    runs["turn2_warm_ttft_s"].append(sample.ttft)
    runs["turn2_prompt_tokens"].append(sample.prompt_tokens)
    runs["turn2_cold_ttft_s"].append((await one(history.second_turn(next(numbers), SEED))).ttft)


async def one_pass(phase: str, one: OneRequest, opts: Options, numbers: Iterator[int], runs: Runs, p: int) -> None:
    """Pass `p` of the paired measurements: one single-stream request's TTFT and decode speed."""
    _progress(f"{phase}: paired request, pass {p + 1}/{opts.pairs}")
    sample = await one(request_body(next(numbers), opts.max_tokens))
    runs["paired_ttft_s"].append(sample.ttft)
    runs["paired_decode_tps"].append(sample.decode_tps)


def summarize(runs: Runs) -> dict[str, Any]:
    """The medians of every measurement over its rounds, the 4/1-stream scaling and the turn-2 speed-up."""
    result: dict[str, Any] = {key: statistics.median(values) for key, values in runs.items()}
    result["scaling_4_over_1"] = result["total_tps_4"] / result["total_tps_1"]
    result["turn2_speedup"] = result["turn2_cold_ttft_s"] / result["turn2_warm_ttft_s"]
    result["runs"] = dict(runs)
    return result


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


async def _raw_async(server: Any, body: Body) -> Sample:
    return await asyncio.to_thread(_raw_one, server, body)


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


@dataclass
class CpuTally:
    """CPU jiffies summed over a phase's rounds: the machine's busy and total, the benchmark's processes',
    and the answering process's own (without its children)."""

    busy: int = 0
    total: int = 0
    ours: int = 0
    server: int | None = None

    @contextlib.contextmanager
    def counting(self, pids: Sequence[int], server_pid: int | None) -> Iterator[None]:
        before, server_before = _jiffies(pids), _jiffies([server_pid]) if server_pid else None
        yield
        after, server_after = _jiffies(pids), _jiffies([server_pid]) if server_pid else None
        if before is not None and after is not None:
            self.busy, self.total = self.busy + after[0] - before[0], self.total + after[1] - before[1]
            self.ours += after[2] - before[2]
        if server_before is not None and server_after is not None:
            self.server = (self.server or 0) + server_after[2] - server_before[2]

    def result(self) -> dict[str, float] | None:
        """Average cores used by this benchmark's processes and by every other process while it counted."""
        if self.total <= 0:
            return None
        cores = self.total / (os.cpu_count() or 1)
        use = {"benchmark_cores": self.ours / cores, "other_cores": max(self.busy - self.ours, 0) / cores}
        if self.server is not None:
            use["server_process_cores"] = self.server / cores
        return use


@dataclass(frozen=True)
class Target:
    """A phase's server: its URL (None: llama.cpp in this process, "raw") and the pid of the process that answers."""

    phase: str
    url: str | None
    pid: int


def start(
    stack: contextlib.ExitStack, opts: Options, server: Path | None, apis: Sequence[str]
) -> tuple[list[Target], Any]:
    """Every phase's server, all running at once (idle ones take no CPU): raw's xllamacpp server in this
    process, llama-server if built, and `ember serve` on each API engine; stopped when `stack` closes."""
    _progress(f"raw: loading {opts.path}")
    holder = [xlc.Server(_raw_params(opts))]

    def unload() -> None:
        holder.clear()  # the destructor joins llama.cpp's loop thread and frees the model
        gc.collect()

    stack.callback(unload)
    targets = [Target(REFERENCE, None, os.getpid())]
    if server is not None:
        _progress(f"llama-server: starting {server}")
        args = llama_server.command(
            server, opts.path, opts.threads, opts.ctx_size, opts.parallel, llama_server.free_port()
        )
        url, pid = stack.enter_context(llama_server.running(args))
        targets.append(Target(SERVER, url, pid))
    role = {"model": opts.path, "threads": opts.threads, "ctx_size": opts.ctx_size, "parallel": opts.parallel}
    idle = {"engine": "fake", "model": "fake"}  # the reasoning modes' role: unused here, so nothing to load
    for phase in apis:
        _progress(f"{phase}: starting `ember serve` (engine {PHASES[phase]}) and waiting for /health")
        running = stack.enter_context(
            loopback_server.serve({"chat-fast": role | {"engine": PHASES[phase]}, "chat": idle})
        )
        assert running.pid is not None  # it started the server
        targets.append(Target(phase, running.url, running.pid))
    return targets, holder[0]


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


def _direct(targets: list[Target]) -> list[Target]:
    """The llama-server the child phase's `ember serve` runs, as a phase of its own called without Ember in
    between (so that Ember's relay is measured on one server); none if that child is not a native
    llama-server (xllamacpp's child chooses its port inside)."""
    for t in targets:
        if t.phase != CHILD:
            continue
        for pid in _descendants(t.pid)[1:]:
            with contextlib.suppress(OSError):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
                if os.path.basename(args[0]) == "llama-server" and "--port" in args:
                    return [Target(DIRECT, f"http://127.0.0.1:{args[args.index('--port') + 1]}", pid)]
    return []


async def measure(targets: list[Target], raw: Any, opts: Options) -> dict[str, dict[str, Any]]:
    """Warm every phase up, then `opts.requests` rounds in which each phase takes its turn, the order rotating
    from round to round, so that a slow spell of a shared machine falls on every phase alike."""
    async with contextlib.AsyncExitStack() as stack:

        async def sender(t: Target) -> OneRequest:
            if t.url is None:
                return functools.partial(_raw_async, raw)
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=t.url, timeout=TIMEOUT))
            return functools.partial(_api_one, client)

        ones = {t.phase: await sender(t) for t in targets}
        for t in targets:
            _progress(f"{t.phase}: warm-up")
            await ones[t.phase](request_body(0, opts.max_tokens))
        for t in _direct(targets):  # the child phase's own server, now started by its warm-up
            ones[t.phase] = await sender(t)
            targets = [*targets, t]
        runs: dict[str, Runs] = {t.phase: collections.defaultdict(list) for t in targets}
        cpu = {t.phase: CpuTally() for t in targets}
        numbers = itertools.count(1)
        for step, count in ((one_round, opts.requests), (one_pass, opts.pairs)):
            for r in range(count):
                for t in targets[r % len(targets) :] + targets[: r % len(targets)]:
                    # the client is this process (and raw's server); an API phase's server counts with its children
                    pids = [os.getpid()] if t.url is None else [os.getpid(), *_descendants(t.pid)]
                    with cpu[t.phase].counting(pids, None if t.url is None else t.pid):
                        await step(t.phase, ones[t.phase], opts, numbers, runs[t.phase], r)
    return {t.phase: summarize(runs[t.phase]) | {"cpu": cpu[t.phase].result()} for t in targets}


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


def _options(
    model: str, threads: int | None, ctx_size: int, parallel: int, max_tokens: int, requests: int, pairs: int
) -> Options:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from exc
    path = resolve_model(model, settings.cache_dir, progress=True).resolve()
    cores = threads or os.cpu_count() or 1
    return Options(model, str(path), cores, ctx_size, parallel, max_tokens, requests, pairs)


@click.command()
@click.option("--model", default="chat-fast", show_default=True, help="catalogue role or GGUF path")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads (default: all cores)")
@click.option("--ctx-size", type=click.IntRange(min=256), default=4096, show_default=True, help="tokens per slot")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True, help="llama.cpp slots")
@click.option("--max-tokens", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--requests", type=click.IntRange(min=1), default=3, show_default=True, help="rounds per measurement")
@click.option(
    "--pairs", type=click.IntRange(min=0), default=10, show_default=True, help="passes of one request per phase"
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench-results/engine.json"))
@click.option(
    "--llama-server", "with_server", is_flag=True, help="also llama.cpp's own llama-server (built once from source)"
)
@click.option(
    "--api",
    "apis",
    type=click.Choice(list(PHASES)),
    multiple=True,
    help="which engines behind `ember serve` to measure (repeatable; default: all)",
)
def engine(
    model: str,
    threads: int | None,
    ctx_size: int,
    parallel: int,
    max_tokens: int,
    requests: int,
    pairs: int,
    out: Path,
    with_server: bool,
    apis: tuple[str, ...],
) -> None:
    """llama.cpp called directly vs. through `ember serve` (in-process and child-process engines), and with
    --llama-server llama.cpp's own server: TTFT, decode and multi-stream throughput, and a next turn's TTFT
    with and without the prompt cache."""
    opts = _options(model, threads, ctx_size, parallel, max_tokens, requests, pairs)
    server = llama_server.built(Settings().cache_dir) if with_server else None
    load_before = os.getloadavg()
    started = time.time()
    with contextlib.ExitStack() as stack:
        targets, raw = start(stack, opts, server, [phase for phase in PHASES if phase in (apis or PHASES)])
        phases = asyncio.run(measure(targets, raw, opts))
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
