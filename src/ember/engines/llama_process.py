"""llama.cpp in a managed child process, the default engine (`llama_cpp`) of local GGUF roles.

The child runs llama.cpp's own HTTP server on the role's model, with the same slots, context, threads and
projector as the in-process engine, so llama.cpp's compute threads do not share a GIL and an event loop
with Ember (`llama_cpp_inprocess` is the in-process alternative). It is one of two servers
(`Settings.llama_server`): `llama-server` built natively from source (`ember.engines.llama_server`) when it
is in the cache and the setting is `auto`, which reads prompts faster; else xllamacpp's prebuilt server
(`ember.engines.llama_child`). This module starts it, waits for its `/health`, forwards each generation
over loopback HTTP to `OpenAICompatEngine` (the wire protocol lives there only; the stream read in bursts,
`ember.engines.pacing`), and restarts it when it
dies: the request in flight gets an `EngineUnavailable` (503) and the next one is served by a fresh
child. `close` stops it; a child whose parent is killed exits by itself (the kernel kills it: a parent-death
signal set before it runs; the xllamacpp child also watches its parent). llama.cpp keeps each slot's
prompt cache, and picks the slot whose cached prompt shares the longest prefix with a new request, so a
conversation's next turn reuses the earlier turns' work.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

import ember
from ember import registry
from ember.assets.assemble import resolve_model
from ember.config import EngineSpec, Settings
from ember.engines import llama_server, priority
from ember.engines.openai_compat import OpenAICompatEngine
from ember.engines.pacing import paced
from ember.errors import EngineUnavailable
from ember.types import Capabilities, Delta, GenerationParams, Message

log = logging.getLogger(__name__)

START_TIMEOUT_S = 300.0  # loading a model on a busy 2-core machine; a role may set `start_timeout_s`
HEALTH_POLL_S = 0.05
STOP_TIMEOUT_S = 10.0
EXIT_WAIT_S = 2.0  # how long a failed request waits to learn whether the child died
LOG_TAIL_LINES = 20
PORT_TRIES = 3  # a native child whose free port was taken before it bound is started again on another
BIND_FAILED = "couldn't bind HTTP server socket"  # what llama-server logs then, before it loads anything
# xllamacpp's llama.cpp is built with OpenMP (libgomp), and llama.cpp's threads meet at an OpenMP barrier
# after every operation of the graph, hundreds of times a token. libgomp spins 300,000 times there by
# default before it sleeps. With as many threads as cores, whenever anything else wants a core (Ember
# relaying tokens, a client, another child, other programs) the thread that waits burns the core its
# descheduled peer needs: on a 2-core machine two parallel 40-token answers on SmolLM2-135M took 12-57 s
# instead of 1-3 s while other programs ran, and 90 s (90 CPU seconds in the child) instead of 1.6 s
# beside two processes playing ping-pong on a socket (as a client polling Ember does). 1,000 spins
# (libgomp's own choice when it knows it has more threads than cores) cost ~3% of one stream's decode on
# an idle machine; 0 (sleep at once, OMP_WAIT_POLICY=passive) cost ~30%.
# The natively built llama-server links libgomp too (`ldd libggml-cpu.so`), so both children get it.
OPENMP_WAIT = {"GOMP_SPINCOUNT": "1000"}
NATIVE, WHEEL = "llama-server", "xllamacpp"  # the two servers a child runs
PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when the thread that started it ends
try:  # Linux's, looked up before any fork
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except AttributeError:  # a libc without prctl
    _prctl = None


@dataclass(frozen=True)
class Launch:
    """How to start one child: its command line, its environment, and its URL if known before it starts
    (None: the child prints it as `{"url": ...}` on stdout)."""

    kind: str
    args: list[str]
    env: dict[str, str]
    url: str | None = None


class Child:
    """One running llama.cpp child process: its URL, the tail of its log, and whether we stopped it."""

    def __init__(self, proc: asyncio.subprocess.Process, on_exit: Callable[[Child], None], launch: Launch) -> None:
        self.proc = proc
        self.kind = launch.kind
        self.url = launch.url or ""
        self.ready = False  # answered /health once: only then is an exit a crash to recover from
        self.stopping = False
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._tasks = [asyncio.create_task(self._drain_log()), asyncio.create_task(self._watch(on_exit))]

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def describe_exit(self) -> str:
        tail = " | ".join(self.log_tail)
        return f"exit code {self.proc.returncode}" + (f"; its last log lines: {tail}" if tail else "")

    async def _drain_log(self) -> None:
        assert self.proc.stderr is not None  # spawned with stderr=PIPE
        while line := await self.proc.stderr.readline():
            self.log_tail.append(line.decode(errors="replace").rstrip())

    async def _watch(self, on_exit: Callable[[Child], None]) -> None:
        await self.proc.wait()
        if self.ready and not self.stopping:
            on_exit(self)

    async def wait_exit(self, timeout_s: float) -> bool:
        """Whether the process has exited within `timeout_s` (its log drained)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.proc.wait()
                await self._tasks[0]
        return not self.alive

    async def stop(self) -> None:
        """End the process: close its stdin (the xllamacpp child exits on end of file) or send SIGTERM
        (llama-server shuts down on it), then kill it if it lingers."""
        self.stopping = True
        if self.alive:
            assert self.proc.stdin is not None  # spawned with stdin=PIPE
            self.proc.stdin.close()
            if self.kind == NATIVE:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()
            if not await self.wait_exit(STOP_TIMEOUT_S):
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def child_env() -> dict[str, str]:
    """This environment, with the directory Ember is imported from first on the child's PYTHONPATH, and
    OpenMP threads told to sleep soon at a barrier (`OPENMP_WAIT`) unless this environment says otherwise."""
    root = str(Path(ember.__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    wait = {} if {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & os.environ.keys() else OPENMP_WAIT
    return {**wait, **os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def server_kind(settings: Settings) -> str:
    """NATIVE if `settings.llama_server` is `auto` and llama-server is built in the cache, else WHEEL."""
    built = llama_server.binary(settings.cache_dir).is_file()
    return NATIVE if settings.llama_server == "auto" and built else WHEEL


def launch(kind: str, spec: EngineSpec, paths: dict[str, str], cache_dir: Path) -> Launch:
    """The command line of a `kind` child serving `spec` on the model file (and projector) in `paths`."""
    if kind == WHEEL:
        config = {"spec": spec.model_dump(mode="json"), **paths}
        return Launch(kind, [sys.executable, "-m", "ember.engines.llama_child", json.dumps(config)], child_env())
    server, port = llama_server.binary(cache_dir), llama_server.free_port()
    threads = spec.threads or os.cpu_count() or 1
    args = llama_server.command(
        server, paths["model"], threads, spec.ctx_size, spec.parallel, port, paths.get("mmproj")
    )
    if "verbosity" in spec.options:  # llama-server logs at its default level unless the role asks
        args += ["--log-verbosity", str(int(spec.options["verbosity"]))]
    env = {**child_env(), **llama_server.library_env(server)}
    return Launch(kind, args, env, f"http://{llama_server.LOOPBACK}:{port}")


def _prepared(parent: int, group_nice: str | None) -> Callable[[], None]:
    """A `preexec_fn` for a child in a session of its own: the kernel SIGKILLs it when the thread that started
    it (the event loop's thread of process `parent`) ends, as it does when that process is killed; and where
    the kernel shares CPU time between sessions (autogroup), its new session's group gets the parent's
    group's nice value (`group_nice`), so a child started by a low-priority job (an evaluation) stays low."""

    def preexec() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was set
            os._exit(1)
        if group_nice is not None:
            priority.set_group_nice(group_nice)

    return preexec


async def spawn(start: Launch, on_exit: Callable[[Child], None], timeout_s: float) -> Child:
    """Start a child as `start` says, and return it once it answers `/health`; EngineUnavailable if it exits
    or does not come up within `timeout_s`."""
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        *start.args, stdin=pipe, stdout=pipe if start.url is None else asyncio.subprocess.DEVNULL, stderr=pipe,
        env=start.env, start_new_session=True, preexec_fn=_prepared(os.getpid(), priority.group_nice()),
    )  # fmt: skip
    child = Child(proc, on_exit, start)
    try:
        async with asyncio.timeout(timeout_s):
            await _ready(child)
    except TimeoutError:
        await child.stop()
        raise EngineUnavailable(f"the llama.cpp process did not become healthy within {timeout_s:g} s") from None
    except BaseException:
        await child.stop()
        raise
    return child


async def _ready(child: Child) -> None:
    """Read the child's URL from its stdout unless known, then poll its `/health` until it answers 200."""
    if not child.url:
        assert child.proc.stdout is not None  # spawned with stdout=PIPE
        line = await child.proc.stdout.readline()
        if not line:
            await child.wait_exit(EXIT_WAIT_S)
            raise EngineUnavailable(f"the llama.cpp process exited before listening ({child.describe_exit()})")
        child.url = str(json.loads(line)["url"])
    async with httpx.AsyncClient(base_url=child.url, timeout=10.0) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health")).status_code == 200:
                    child.ready = True
                    return
            if not child.alive:
                await child.wait_exit(EXIT_WAIT_S)
                raise EngineUnavailable(f"the llama.cpp process exited while loading ({child.describe_exit()})")
            await asyncio.sleep(HEALTH_POLL_S)


class LlamaProcessEngine:
    """A GGUF model served by a llama.cpp child process with `spec.parallel` slots of `spec.ctx_size` tokens."""

    name = "llama_cpp"

    def __init__(self, spec: EngineSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.capabilities = Capabilities(
            image="mmproj" in spec.options, context_tokens=spec.ctx_size, parallel=spec.parallel
        )
        self.active = 0
        self.server: str | None = None  # NATIVE or WHEEL once a child was started
        self.child: Child | None = None
        self._remote: OpenAICompatEngine | None = None
        self._lock = asyncio.Lock()
        self._restarting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._running()

    async def _running(self) -> OpenAICompatEngine:
        """The client of a live child, starting one (again) if there is none."""
        async with self._lock:
            if self._remote is None or self.child is None or not self.child.alive:
                await self._replace()
            assert self._remote is not None  # _replace set it or raised
            return self._remote

    async def _replace(self) -> None:
        await self._discard()
        kind = server_kind(self.settings)
        self.child = await self._spawn(kind, await self._paths())
        self.server = kind
        log.info("llama.cpp for %r: %s started (pid %d)", self.spec.model, kind, self.child.proc.pid)
        remote_spec = self.spec.model_copy(
            update={"url": f"{self.child.url}/v1", "options": {"vision": self.capabilities.image}}
        )
        self._remote = OpenAICompatEngine(remote_spec, self.settings)
        await self._remote.start()

    async def _spawn(self, kind: str, paths: dict[str, str]) -> Child:
        """A healthy `kind` child; a native one whose free port another program took before it bound (it
        exits at once, before loading) is started again on another port, up to PORT_TRIES times."""
        timeout_s = float(self.spec.options.get("start_timeout_s", START_TIMEOUT_S))
        for _ in range(PORT_TRIES - 1):
            try:
                return await spawn(launch(kind, self.spec, paths, self.settings.cache_dir), self._crashed, timeout_s)
            except EngineUnavailable as exc:
                if BIND_FAILED not in exc.message:
                    raise
                log.warning("llama.cpp for %r: its port was taken before it listened; trying another", self.spec.model)
        return await spawn(launch(kind, self.spec, paths, self.settings.cache_dir), self._crashed, timeout_s)

    async def _paths(self) -> dict[str, str]:
        cache = self.settings.cache_dir
        paths = {"model": str(await asyncio.to_thread(resolve_model, self.spec.model, cache))}
        if (mmproj := self.spec.options.get("mmproj")) is not None:
            paths["mmproj"] = str(await asyncio.to_thread(resolve_model, str(mmproj), cache))
        return paths

    async def _discard(self) -> None:
        remote, self._remote = self._remote, None
        child, self.child = self.child, None
        if remote is not None:
            await remote.close()
        if child is not None:
            await child.stop()

    def _crashed(self, child: Child) -> None:
        """A child died on its own: log it and start a new one now, so the next request finds it ready."""
        log.warning("llama.cpp process for %r stopped (%s); restarting it", self.spec.model, child.describe_exit())
        if self._restarting is None or self._restarting.done():
            self._restarting = asyncio.create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await self._running()
        except Exception as exc:  # the next request tries again and reports the failure
            log.error("restarting llama.cpp for %r failed: %s", self.spec.model, exc)

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[Delta]:
        remote = await self._running()
        child = self.child
        self.active += 1
        try:
            async with contextlib.aclosing(remote.stream(messages, params)) as deltas:  # closing it cancels
                async for delta in paced(deltas):  # in bursts: fewer wake-ups on the child's cores
                    yield delta
        except EngineUnavailable as exc:
            if child is None or not await child.wait_exit(EXIT_WAIT_S):
                raise
            raise EngineUnavailable(
                f"the llama.cpp process for {self.spec.model!r} stopped during this request "
                f"({child.describe_exit()}); it is being restarted, try again"
            ) from exc
        finally:
            self.active -= 1

    async def close(self) -> None:
        if self._restarting is not None:
            self._restarting.cancel()
            await asyncio.gather(self._restarting, return_exceptions=True)
        async with self._lock:
            await self._discard()


registry.engines.add("llama_cpp", LlamaProcessEngine)
