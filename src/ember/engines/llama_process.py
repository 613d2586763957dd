"""llama.cpp in a managed child process, the default engine (`llama_cpp`) of local GGUF roles.

The child (`ember.engines.llama_child`) runs llama.cpp's own HTTP server on the role's model, with the
same slots, context, threads and projector as the in-process engine, so llama.cpp's compute threads do
not share a GIL and an event loop with Ember (`llama_cpp_inprocess` is the in-process alternative). This
module starts it, waits for its `/health`, forwards each generation over loopback HTTP to
`OpenAICompatEngine` (the wire protocol lives there only), and restarts it when it
dies: the request in flight gets an `EngineUnavailable` (503) and the next one is served by a fresh
child. `close` stops it; a child whose parent is killed exits by itself. llama.cpp keeps each slot's
prompt cache, and picks the slot whose cached prompt shares the longest prefix with a new request, so a
conversation's next turn reuses the earlier turns' work.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import httpx

import ember
from ember import registry
from ember.assets.assemble import resolve_model
from ember.config import EngineSpec, Settings
from ember.engines.openai_compat import OpenAICompatEngine
from ember.errors import EngineUnavailable
from ember.types import Capabilities, Delta, GenerationParams, Message

log = logging.getLogger(__name__)

START_TIMEOUT_S = 300.0  # loading a model on a busy 2-core machine; a role may set `start_timeout_s`
HEALTH_POLL_S = 0.05
STOP_TIMEOUT_S = 10.0
EXIT_WAIT_S = 2.0  # how long a failed request waits to learn whether the child died
LOG_TAIL_LINES = 20
# xllamacpp's llama.cpp is built with OpenMP (libgomp), and llama.cpp's threads meet at an OpenMP barrier
# after every operation of the graph, hundreds of times a token. libgomp spins 300,000 times there by
# default before it sleeps. With as many threads as cores, whenever anything else wants a core (Ember
# relaying tokens, a client, another child, other programs) the thread that waits burns the core its
# descheduled peer needs: on a 2-core machine two parallel 40-token answers on SmolLM2-135M took 12-57 s
# instead of 1-3 s while other programs ran, and 90 s (90 CPU seconds in the child) instead of 1.6 s
# beside two processes playing ping-pong on a socket (as a client polling Ember does). 1,000 spins
# (libgomp's own choice when it knows it has more threads than cores) cost ~3% of one stream's decode on
# an idle machine; 0 (sleep at once, OMP_WAIT_POLICY=passive) cost ~30%.
OPENMP_WAIT = {"GOMP_SPINCOUNT": "1000"}


class Child:
    """One running llama.cpp child process: its URL, the tail of its log, and whether we stopped it."""

    def __init__(self, proc: asyncio.subprocess.Process, on_exit: Callable[[Child], None]) -> None:
        self.proc = proc
        self.url = ""
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
        """End the process: close its stdin (it exits on end of file), then kill it if it lingers."""
        self.stopping = True
        if self.alive:
            assert self.proc.stdin is not None  # spawned with stdin=PIPE
            self.proc.stdin.close()
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


async def spawn(config: Mapping[str, object], on_exit: Callable[[Child], None], timeout_s: float) -> Child:
    """Start a child with `config`, and return it once it answers `/health`; EngineUnavailable if it exits
    or does not come up within `timeout_s`."""
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ember.engines.llama_child", json.dumps(config),
        stdin=pipe, stdout=pipe, stderr=pipe, env=child_env(), start_new_session=True,
    )  # fmt: skip
    child = Child(proc, on_exit)
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
    """Read the child's URL from its stdout, then poll its `/health` until it answers 200."""
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
        config = {"spec": self.spec.model_dump(mode="json"), **await self._paths()}
        timeout_s = float(self.spec.options.get("start_timeout_s", START_TIMEOUT_S))
        self.child = await spawn(config, self._crashed, timeout_s)
        remote_spec = self.spec.model_copy(
            update={"url": f"{self.child.url}/v1", "options": {"vision": self.capabilities.image}}
        )
        self._remote = OpenAICompatEngine(remote_spec, self.settings)
        await self._remote.start()

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
                async for delta in deltas:
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
