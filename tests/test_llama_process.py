"""The llama.cpp child-process engine on the real SmolLM2-135M, with each of its two servers (the natively
built llama-server and xllamacpp's): streaming, parallel slots, the prompt cache across turns, a crash
mid-request and the restart after it, closing, a child outliving no parent, and which server `auto` picks.

The native server must be built (`make llama-server`, as `make test` does first): without it these tests
fail rather than skip, so the native path is never left untested unnoticed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ember import registry
from ember.assets.assemble import resolve_model
from ember.config import EngineSpec, Settings
from ember.engines import llama_server
from ember.engines.base import openai_body
from ember.engines.llama_process import NATIVE, WHEEL, LlamaProcessEngine, child_env, server_kind
from ember.engines.pool import EnginePool
from ember.errors import EngineUnavailable
from ember.types import Delta, GenerationParams, Message

from .conftest import TINY
from .test_background import groups_can_be_niced

ENGINE = "llama_cpp"
HELLO = [Message("user", "Say hello.")]
LONG = [Message("user", "Write a very long story about a lighthouse keeper and the sea.")]
GONE_WAIT_S = 60.0  # generous: a deadline for "eventually", not a speed requirement
COUNT_TOKENS = 900


def tiny_settings(cache: Path, kind: str = WHEEL) -> Settings:
    """Settings with one `chat-tiny` role on the child-process engine, its model assembled into `cache`, on
    the `kind` server: WHEEL with `llama_server = "never"`, NATIVE with `auto` and a cache directory holding
    (a link to) the llama-server that `make llama-server` built in the default cache."""
    if kind == WHEEL:
        spec = EngineSpec(**{**TINY, "engine": ENGINE})
        return Settings(cache_dir=cache, data_dir=cache / "data", roles={"chat-tiny": spec}, llama_server="never")
    built = llama_server.binary(Settings().cache_dir)
    assert built.is_file(), f"llama-server is not built ({built} is missing): run `make llama-server` first"
    native = cache / "native"
    if not (native / "llama-server").exists():
        native.mkdir(exist_ok=True)
        (native / "llama-server").symlink_to(built.parent.parent, target_is_directory=True)
    spec = EngineSpec(**{**TINY, "engine": ENGINE, "model": str(resolve_model(str(TINY["model"]), cache))})
    return Settings(cache_dir=native, data_dir=cache / "data", roles={"chat-tiny": spec}, llama_server="auto")


@pytest.fixture(params=[NATIVE, WHEEL])
async def engine(model_cache: Path, request: pytest.FixtureRequest) -> AsyncIterator[LlamaProcessEngine]:
    registry.load_plugins()
    settings = tiny_settings(model_cache, request.param)
    factory = registry.engines.get(ENGINE)
    assert factory is LlamaProcessEngine
    eng = LlamaProcessEngine(settings.roles["chat-tiny"], settings)
    await eng.start()
    assert eng.server == request.param and eng.child is not None
    assert (os.path.basename(executable(eng.child.proc.pid)) == "llama-server") == (eng.server == NATIVE)
    yield eng
    await eng.close()


def executable(pid: int) -> str:
    """The program file process `pid` runs."""
    return os.readlink(f"/proc/{pid}/exe")


async def collect(eng: LlamaProcessEngine, messages: list[Message], max_tokens: int) -> list[Delta]:
    return [d async for d in eng.stream(messages, GenerationParams(max_tokens=max_tokens, temperature=0.0))]


def gone(pid: int) -> bool:
    """Whether process `pid` has exited (reaped, or a zombie nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + GONE_WAIT_S
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return gone(pid)


async def test_streams_a_chat_from_a_child_process(engine: LlamaProcessEngine) -> None:
    assert engine.child is not None and engine.child.proc.pid != os.getpid()
    deltas = await collect(engine, HELLO, 12)
    text = "".join(d.content for d in deltas)
    assert text.strip()
    assert len([d for d in deltas if d.content]) > 1  # streamed piece by piece
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["length"]
    usage = [d.usage for d in deltas if d.usage]
    assert usage and usage[-1].completion_tokens == 12 and usage[-1].prompt_tokens > 5
    assert engine.active == 0


async def test_parallel_requests_share_the_child(engine: LlamaProcessEngine) -> None:
    seen: list[int] = []

    async def one(prompt: str) -> str:
        parts = []
        async for d in engine.stream([Message("user", prompt)], GenerationParams(max_tokens=24, temperature=0.0)):
            seen.append(engine.active)
            parts.append(d.content)
        return "".join(parts)

    answers = await asyncio.gather(one("Name a colour."), one("Name an animal."))
    assert all(a.strip() for a in answers)
    assert max(seen) == 2  # both were in flight at once
    assert engine.active == 0


async def test_leaving_a_stream_stops_the_generation_in_the_child(engine: LlamaProcessEngine) -> None:
    """Closing the stream closes the HTTP request, and llama.cpp stops that slot long before `max_tokens`."""
    assert engine.child is not None
    counting = [Message("user", "Count from 1 to 1000, separated by commas.")]
    stream = engine.stream(counting, GenerationParams(max_tokens=COUNT_TOKENS, temperature=0.0))
    async with httpx.AsyncClient(base_url=engine.child.url, timeout=60) as client:
        got = [await anext(stream) for _ in range(3)]
        assert await decoded(client)  # generating now
        await stream.aclose()
        seen = [0]
        deadline = time.monotonic() + GONE_WAIT_S
        while (busy := await decoded(client)) and time.monotonic() < deadline:
            seen += busy
    assert len(got) == 3 and not busy and engine.active == 0
    assert max(seen) < COUNT_TOKENS // 2  # stopped soon after we left, not at the end of the count


async def decoded(client: httpx.AsyncClient) -> list[int]:
    """Tokens generated so far by each slot that is generating now (from llama.cpp's /slots)."""
    slots = (await client.get("/slots")).json()
    return [t["n_decoded"] for s in slots if s["is_processing"] for t in s.get("next_token", [])]


PING_PONG = """
import os, socket
a, b = socket.socketpair()
if os.fork() == 0:
    a.close()
    while message := b.recv(64):
        b.sendall(message)
    os._exit(0)
b.close()
while True:
    a.sendall(b"x" * 64)
    if not a.recv(64):
        break
"""


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def environ(pid: int) -> dict[str, str]:
    """The environment process `pid` started with."""
    pairs = (v.decode().partition("=") for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if v)
    return {name: value for name, _, value in pairs}


async def cpu_per_token(engine: LlamaProcessEngine) -> float:
    """The child's CPU seconds per generated token over two parallel 40-token answers."""
    assert engine.child is not None
    before = cpu_seconds(engine.child.proc.pid)
    answers = await asyncio.gather(*(collect(engine, LONG, 40) for _ in range(2)))
    tokens = sum(u.completion_tokens for deltas in answers for u in [d.usage for d in deltas] if u)
    assert tokens == 80
    return (cpu_seconds(engine.child.proc.pid) - before) / tokens


async def test_the_child_does_not_spin_while_others_want_the_cores(engine: LlamaProcessEngine) -> None:
    """llama.cpp's threads meet at an OpenMP barrier hundreds of times a token; with libgomp's default
    300,000 spins there, processes that keep waking up (here pairs playing ping-pong on a socket, in the
    suite a client polling Ember's /metrics) left a thread spinning on the core its peer needed: two
    40-token answers took 90 s and 1.1 CPU seconds a token instead of 1.5 s and 0.02. The child's CPU
    per token is the measure, as it does not depend on how much of the machine other programs take."""
    assert engine.child is not None
    assert {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & environ(engine.child.proc.pid).keys()
    await collect(engine, HELLO, 4)  # warm
    alone = await cpu_per_token(engine)
    n_pairs = max(1, (os.cpu_count() or 2) // 2)
    pairs = [await asyncio.create_subprocess_exec(sys.executable, "-c", PING_PONG) for _ in range(n_pairs)]
    try:
        crowded = [await cpu_per_token(engine) for _ in range(2)]
    finally:
        for pair in pairs:
            pair.kill()  # its forked half reads the end of the socket and exits
            await pair.wait()
    assert max(crowded) < 3 * alone, f"CPU s/token alone {alone:.4f}, beside busy processes {crowded}"


async def test_the_next_turn_reuses_the_prompt_cache(engine: LlamaProcessEngine) -> None:
    """Ember's request body leaves llama.cpp's prompt cache on: turn 2 starts from turn 1's cached tokens."""
    assert engine.child is not None
    messages = [Message("system", "You are a patient tutor. " * 10), Message("user", "What is a noun?")]
    cached: list[int] = []
    # llama.cpp closes the connection after a streamed answer without a `Connection: close`: a keep-alive pool
    # would send turn 2 on it at once, racing that close ("Server disconnected without sending a response")
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=engine.child.url, timeout=300, limits=fresh) as client:
        for follow_up in ("Give an example.", ""):
            body = openai_body(messages, GenerationParams(max_tokens=8, temperature=0.0))
            lines = (await client.post("/v1/chat/completions", json=body)).text.splitlines()
            chunks = [json.loads(line[5:]) for line in lines if line.startswith("data:") and "[DONE]" not in line]
            reply = "".join((c["choices"] or [{}])[0].get("delta", {}).get("content") or "" for c in chunks)
            cached.append(chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"])
            messages += [Message("assistant", reply), Message("user", follow_up)]
    assert cached[0] == 0
    assert cached[1] > 60  # the system prompt and the first exchange


async def test_a_killed_child_fails_the_request_in_flight_and_is_restarted(engine: LlamaProcessEngine) -> None:
    assert engine.child is not None
    first_pid = engine.child.proc.pid
    stream = engine.stream(LONG, GenerationParams(max_tokens=400, temperature=0.0))
    with pytest.raises(EngineUnavailable, match="stopped during this request") as caught:
        async for _ in stream:
            os.kill(first_pid, signal.SIGKILL)
    assert caught.value.status == 503 and "SIGKILL" not in caught.value.message
    assert "exit code -9" in caught.value.message
    deltas = await collect(engine, HELLO, 8)
    assert "".join(d.content for d in deltas).strip()
    assert engine.child is not None and engine.child.proc.pid != first_pid and gone(first_pid)


async def test_close_leaves_no_child(engine: LlamaProcessEngine) -> None:
    assert engine.child is not None
    pid = engine.child.proc.pid
    await engine.close()
    assert engine.child is None and gone(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie


async def test_a_model_that_cannot_load_is_a_clear_error_and_not_retried(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    settings = Settings(cache_dir=tmp_path, data_dir=tmp_path)
    engine = LlamaProcessEngine(EngineSpec(model=str(bad), ctx_size=256, parallel=1), settings)
    with pytest.raises(EngineUnavailable, match="exited before listening"):
        await engine.start()
    await asyncio.sleep(1.0)  # a restart, if one were (wrongly) scheduled, would have spawned by now
    assert children() == []
    await engine.close()


def children() -> list[int]:
    """This process's llama.cpp children that are still running."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if (b"ember.engines.llama_child" in cmdline or b"llama-server" in cmdline) and not gone(int(pid)):
                found.append(int(pid))
    return found


PARENT = """
import asyncio, pathlib, sys
from ember import registry
from ember.engines.llama_process import LlamaProcessEngine
from tests.test_llama_process import tiny_settings

async def main():
    settings = tiny_settings(pathlib.Path(sys.argv[1]), sys.argv[2])
    engine = LlamaProcessEngine(settings.roles["chat-tiny"], settings)
    await engine.start()
    print(engine.child.proc.pid, flush=True)
    await asyncio.sleep(3600)

registry.load_plugins()
asyncio.run(main())
"""


def parent_of_a_child(prefix: list[str], model_cache: Path, kind: str) -> subprocess.Popen[bytes]:
    """`PARENT` started (through the command line `prefix`, if any) on a `kind` child; its stdout piped."""
    root = Path(__file__).resolve().parent.parent
    env = {**child_env(), "PYTHONPATH": os.pathsep.join([str(root), child_env()["PYTHONPATH"]])}
    argv = [*prefix, sys.executable, "-c", PARENT, str(model_cache), kind]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)


def child_of(parent: subprocess.Popen[bytes]) -> int:
    """The pid of the child that `PARENT` started, as it printed it."""
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), f"the parent did not start its child (exit code {parent.poll()})"
    return int(line)


@pytest.mark.parametrize("kind", [NATIVE, WHEEL])
def test_the_child_of_a_killed_parent_exits_by_itself(model_cache: Path, kind: str) -> None:
    with parent_of_a_child([], model_cache, kind) as parent:
        try:
            child = child_of(parent)
            assert not gone(child)
        finally:
            parent.kill()
    assert wait_gone(child)


def test_a_low_priority_parents_child_stays_low(model_cache: Path) -> None:
    """Started under `ember_tools.background` (its session's group at nice 19), the child, in a session of
    its own, gets a group at nice 19 too: where the kernel shares CPU time between sessions, an evaluation's
    llama.cpp child yields to other work as the evaluation does."""
    if not groups_can_be_niced():
        pytest.skip("no autogroup, or a session may not nice its group here: nice alone orders the processes")
    with parent_of_a_child([sys.executable, "-m", "ember_tools.background"], model_cache, WHEEL) as wrapper:
        try:
            child = child_of(wrapper)
            group = Path(f"/proc/{child}/autogroup").read_text().split()
            ours = Path("/proc/self/autogroup").read_text().split()  # empty in the kernel's root group
            assert group[-1] == "19" and group[0] != (ours or ["root"])[0]
            assert os.getsid(child) == child, "the child leads a session (and so a group) of its own"
        finally:
            wrapper.send_signal(signal.SIGTERM)
            wrapper.wait(30)
    assert wait_gone(child)


def test_auto_picks_the_native_server_only_when_it_is_built(tmp_path: Path) -> None:
    built = llama_server.binary(tmp_path)
    assert server_kind(Settings(cache_dir=tmp_path)) == WHEEL  # none in this cache
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    assert server_kind(Settings(cache_dir=tmp_path)) == NATIVE
    assert server_kind(Settings(cache_dir=tmp_path, llama_server="never")) == WHEEL


@pytest.mark.parametrize("kind", [NATIVE, WHEEL])
async def test_the_health_probe_names_the_server_a_role_runs_on(model_cache: Path, kind: str) -> None:
    registry.load_plugins()
    pool = EnginePool(tiny_settings(model_cache, kind))
    try:
        report = await pool.probe("chat-tiny", GONE_WAIT_S)
    finally:
        await pool.close()
    assert report["ok"] and report["engine"] == ENGINE and report["server"] == kind


async def test_a_native_child_whose_port_was_taken_starts_on_another(
    model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port is looked up free just before llama-server binds it; another program may take it in between.
    llama-server then exits before loading anything, and the engine starts it again on another port."""
    registry.load_plugins()
    settings = tiny_settings(model_cache, NATIVE)
    taken = socket.socket()
    taken.bind((llama_server.LOOPBACK, 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    real = llama_server.free_port
    monkeypatch.setattr(llama_server, "free_port", lambda: next(ports, None) or real())
    eng = LlamaProcessEngine(settings.roles["chat-tiny"], settings)
    try:
        await eng.start()
        assert eng.child is not None and eng.server == NATIVE
        assert not eng.child.url.endswith(f":{taken.getsockname()[1]}")
        assert "".join(d.content for d in await collect(eng, HELLO, 4)).strip()
    finally:
        await eng.close()
        taken.close()
