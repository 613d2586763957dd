"""Rate limits: the Limiter's exact behaviour under a controlled clock (memory storage), the same
behaviour on the real Redis, 429s and x-ratelimit-* headers over HTTP, slots freed when clients leave,
and two `ember serve` processes held to one budget by one Redis.

Redis tests need the server on 127.0.0.1:6379; they skip when it is down unless EMBER_REQUIRE_REDIS=1,
which makes that a failure (CI sets it). The variable is read at import, before conftest clears EMBER_*.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import limits.aio.storage.memory
import pytest
import redis
import redis.asyncio
from fastapi import FastAPI
from fastapi.testclient import TestClient
from limits.aio.storage import MemoryStorage, RedisStorage, Storage

from ember import registry
from ember.api.app import create_app
from ember.config import Settings, Tier
from ember.errors import ConfigError, RateLimited
from ember.modes.instant import InstantMode
from ember.policy.keys import LOCAL, Principal
from ember.policy.limits import STREAM_SLOT_TTL_S, STREAMS, Limiter, Meter, duration
from ember.types import Delta, Usage

from .audio import tone
from .conftest import free_port, make_settings, run_cli, serve_in_thread, sse_events, wait_healthy

REQUIRE_REDIS = os.environ.get("EMBER_REQUIRE_REDIS") == "1"
REDIS_URL = "redis://127.0.0.1:6379"
REDIS_DB = 11  # the two-process test's database; its keys carry a fresh key id, so runs never collide
FAKE = {"engine": "fake", "model": "fake", "ctx_size": 256}


class Clock:
    """Stands in for the `time` module that limits' memory storage reads, and is the Limiter's clock."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(limits.aio.storage.memory, "time", fake)
    return fake


def key(tier: str = "t") -> Principal:
    return Principal(owner="acme", scopes=frozenset({"chat", "audio"}), tier=tier, key_id="key_" + uuid.uuid4().hex)


def on_clock(clock: Clock, **tier: int) -> Limiter:
    return Limiter({"t": Tier(**tier)}, MemoryStorage(), clock=clock.time)


# --- exact behaviour under a controlled clock (memory storage) ---


async def test_requests_window_is_exact_under_a_controlled_clock(clock: Clock) -> None:
    limiter, who = on_clock(clock, requests_per_minute=3), key()
    remaining = [(await limiter.check(who)).requests for _ in range(3)]
    assert [w.remaining for w in remaining if w] == [2, 1, 0]
    assert remaining[0] is not None and remaining[0].reset_s == 60.0
    clock.advance(15)
    with pytest.raises(RateLimited) as refused:
        await limiter.check(who)
    assert refused.value.status == 429
    assert refused.value.headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "45s",
        "retry-after": "45",
    }
    clock.advance(44.9)
    with pytest.raises(RateLimited) as refused:
        await limiter.check(who)
    assert refused.value.headers["retry-after"] == "1"
    assert refused.value.headers["x-ratelimit-reset-requests"] == "100ms"
    clock.advance(0.1)  # the window opened by the first hit is over: a new one opens
    assert (await limiter.check(who)).headers()["x-ratelimit-remaining-requests"] == "2"


async def test_tokens_are_tested_before_and_debited_after_overshooting_once(clock: Clock) -> None:
    limiter, who = on_clock(clock, tokens_per_minute=100), key()
    quota = await limiter.check(who, 10)
    assert quota.headers() == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "0s",
    }
    await limiter.debit(who, 90)
    clock.advance(20)
    assert (await limiter.check(who, 10)).headers()["x-ratelimit-remaining-tokens"] == "10"
    await limiter.debit(who, 50)  # the answer was longer than the room left: counted all the same
    with pytest.raises(RateLimited) as refused:
        await limiter.check(who, 1)
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "0"
    assert refused.value.headers["retry-after"] == "40"
    assert "tokens per minute" in refused.value.message
    await limiter.check(who, 0)  # a request that spends no tokens (a transcription) still runs
    clock.advance(40)
    assert (await limiter.check(who, 1)).headers()["x-ratelimit-remaining-tokens"] == "100"


async def test_an_estimate_beyond_the_whole_limit_runs_in_an_empty_window(clock: Clock) -> None:
    limiter, who = on_clock(clock, tokens_per_minute=100), key()
    await limiter.check(who, 500)
    await limiter.debit(who, 500)
    with pytest.raises(RateLimited):
        await limiter.check(who, 500)


async def test_a_refused_tokens_check_does_not_spend_a_request(clock: Clock) -> None:
    limiter, who = on_clock(clock, requests_per_minute=2, tokens_per_minute=10), key()
    await limiter.debit(who, 10)
    for _ in range(3):
        with pytest.raises(RateLimited, match="tokens per minute"):
            await limiter.check(who, 5)
    assert (await limiter.check(who, 0)).headers()["x-ratelimit-remaining-requests"] == "1"
    await limiter.check(who, 0)
    with pytest.raises(RateLimited, match="requests per minute"):
        await limiter.check(who, 0)


async def test_keys_have_separate_budgets_and_the_local_principal_is_keyed_by_owner(clock: Clock) -> None:
    limiter = Limiter({"t": Tier(requests_per_minute=1), "local": Tier()}, MemoryStorage(), clock=clock.time)
    first, second, owner_only = key(), key(), Principal(owner="bob", scopes=frozenset({"chat"}), tier="t")
    for principal in (first, second, owner_only):
        await limiter.check(principal)
    for principal in (first, Principal(owner="bob", scopes=frozenset(), tier="t")):
        with pytest.raises(RateLimited):
            await limiter.check(principal)


class Untouchable(MemoryStorage):
    """A storage that fails the test on any round trip."""

    async def incr(self, *_: Any, **__: Any) -> int:
        raise AssertionError("storage touched")

    get = get_expiry = clear = incr  # type: ignore[assignment]


async def test_unlimited_tiers_and_the_local_principal_never_touch_storage() -> None:
    limiter = Limiter({"local": Tier(), "open": Tier(), "slots": Tier(concurrent_streams=1)}, Untouchable())
    for principal in (LOCAL, key("open")):
        quota = await limiter.check(principal, 10_000)
        assert quota.headers() == {}
        await limiter.debit(principal, 10_000)
        async with limiter.stream(principal), limiter.stream(principal):
            pass
    assert (await limiter.check(key("slots"), 5)).headers() == {}


async def test_stream_slots_are_released_on_error_and_on_cancellation(clock: Clock) -> None:
    limiter, who = on_clock(clock, concurrent_streams=2), key()
    async with limiter.stream(who):
        async with limiter.stream(who):
            with pytest.raises(RateLimited) as refused:
                async with limiter.stream(who):
                    pass
            assert refused.value.headers == {"retry-after": "1"}
            assert await limiter.streams_held(who) == 2
        with pytest.raises(ValueError):
            async with limiter.stream(who):
                raise ValueError("the engine failed")
        assert await limiter.streams_held(who) == 1
    with anyio.move_on_after(0.05):
        async with limiter.stream(who), limiter.stream(who):
            await anyio.sleep(10)  # cancelled, like a request whose client left
    assert await limiter.streams_held(who) == 0


async def test_slots_held_by_a_crashed_process_expire_after_the_ttl(clock: Clock) -> None:
    limiter, who = on_clock(clock, concurrent_streams=1), key()
    await limiter.stream(who).__aenter__()  # never exited: the process died
    with pytest.raises(RateLimited):
        async with limiter.stream(who):
            pass
    clock.advance(STREAM_SLOT_TTL_S)
    async with limiter.stream(who):
        assert await limiter.streams_held(who) == 1
    assert await limiter.streams_held(who) == 0


async def test_meter_weights_usage_and_estimates_a_stream_cut_short() -> None:
    async def answer() -> AsyncGenerator[Delta, None]:
        yield Delta(content="a")
        yield Delta(content=" b")
        yield Delta(finish_reason="stop", usage=Usage(prompt_tokens=7, completion_tokens=2))

    meter = Meter(prompt_estimate=5, weight=2.5)
    assert meter.estimated == 13 and meter.tokens == 0
    assert [d.content async for d in meter.watch(answer())] == ["a", " b", ""]
    assert meter.tokens == 23  # ceil(9 * 2.5)
    cut = Meter(prompt_estimate=5)
    pieces = cut.watch(answer())
    await anext(pieces)
    await pieces.aclose()
    assert cut.tokens == 6  # no usage came: the estimate plus one token for the piece received


def test_cost_weight_and_reset_durations() -> None:
    assert InstantMode().cost_weight == 1.0  # the Mode contract's default
    assert DoubleMode(name="ember-double").cost_weight == 2.0
    assert [duration(s) for s in (0, 0.02, 1, 17.2, 60, 61)] == ["0s", "20ms", "1s", "18s", "1m0s", "1m1s"]


# --- the same behaviour on memory and on the real Redis ---


@pytest.fixture(scope="module")
def redis_up() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis is not reachable at 127.0.0.1:6379 ({exc})"
        if REQUIRE_REDIS:
            pytest.fail(f"{reason}, and EMBER_REQUIRE_REDIS=1")
        pytest.skip(f"{reason}; set EMBER_REQUIRE_REDIS=1 to make this a failure")
    finally:
        client.close()
    return REDIS_URL


@dataclass
class Shared:
    """Two limiters on one storage (two replicas), and the raw Redis client when there is one."""

    first: Limiter
    second: Limiter
    prefix: str
    raw: redis.asyncio.Redis | None = None


@contextlib.asynccontextmanager
async def on_redis(tiers: dict[str, Tier]) -> AsyncIterator[Shared]:
    prefix = f"ember-test-{uuid.uuid4().hex}"
    pools = [redis.asyncio.ConnectionPool.from_url(REDIS_URL) for _ in range(2)]
    storages: list[Storage] = [
        RedisStorage("async+" + REDIS_URL, implementation="redispy", key_prefix=prefix, connection_pool=pool)  # type: ignore[arg-type]
        for pool in pools
    ]
    raw = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        yield Shared(Limiter(tiers, storages[0]), Limiter(tiers, storages[1]), prefix, raw)
    finally:
        await storages[0].reset()
        await raw.aclose()
        for pool in pools:
            await pool.aclose()


@pytest.fixture(params=["memory", "redis"])
async def shared(request: pytest.FixtureRequest) -> AsyncIterator[Shared]:
    tiers = {"t": Tier(requests_per_minute=3, tokens_per_minute=100, concurrent_streams=2)}
    if request.param == "memory":
        storage = MemoryStorage()
        yield Shared(Limiter(tiers, storage), Limiter(tiers, storage), "")
        return
    request.getfixturevalue("redis_up")
    async with on_redis(tiers) as both:
        yield both


async def test_replicas_share_requests_tokens_and_slots(shared: Shared) -> None:
    who = key()
    await shared.first.check(who)
    await shared.second.check(who)
    quota = await shared.first.check(who)
    assert quota.requests is not None and quota.requests.remaining == 0 and 58 <= quota.requests.reset_s <= 60
    with pytest.raises(RateLimited) as refused:
        await shared.second.check(who)
    assert 58 <= int(refused.value.headers["retry-after"]) <= 60
    other = key()
    await shared.first.debit(other, 80)
    await shared.second.debit(other, 80)  # past the limit: the overshoot is kept
    with pytest.raises(RateLimited, match="tokens per minute"):
        await shared.first.check(other, 1)
    async with shared.first.stream(other), shared.second.stream(other):
        with pytest.raises(RateLimited):
            async with shared.first.stream(other):
                pass
        assert await shared.second.streams_held(other) == 2
    assert await shared.first.streams_held(other) == 0


async def test_the_redis_slot_counter_has_a_ttl(redis_up: str) -> None:
    async with on_redis({"t": Tier(concurrent_streams=1)}) as both:
        who = key()
        assert both.raw is not None
        async with both.first.stream(who):
            ttl = await both.raw.ttl(f"{both.prefix}:{STREAMS}/{who.key_id}")
            assert 0 < ttl <= STREAM_SLOT_TTL_S


async def test_limiter_open_checks_redis(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with pytest.raises(ConfigError, match="not reachable"):
        await Limiter.open(settings)


# --- over HTTP ---


def keyed_app(tmp_path: Path, tiers: dict[str, Tier], **chat_fast: Any) -> tuple[FastAPI, Settings]:
    settings = make_settings(tmp_path, chat_fast={**FAKE, **chat_fast}).model_copy(
        update={"require_keys": True, "tiers": {"local": Tier(), **tiers}}
    )
    return create_app(settings), settings


def new_key(app: FastAPI, tier: str) -> tuple[dict[str, str], Principal]:
    secret, record = app.state.keys.create("acme", ("chat", "audio"), tier)
    principal = Principal("acme", frozenset({"chat", "audio"}), tier, record["id"])
    return {"authorization": f"Bearer {secret}"}, principal


def chat(client: TestClient | httpx.Client, auth: dict[str, str], base: str = "", **over: Any) -> Any:
    body = {"model": "ember-instant", "messages": [{"role": "user", "content": "a b"}], **over}
    return client.post(f"{base}/v1/chat/completions", json=body, headers=auth)


def test_429_over_http_has_the_openai_envelope_and_headers(tmp_path: Path, clock: Clock) -> None:
    app, settings = keyed_app(tmp_path, {"tight": Tier(requests_per_minute=2, tokens_per_minute=1000)})
    with TestClient(app) as client:
        app.state.limiter = Limiter(settings.tiers, MemoryStorage(), clock=clock.time)
        auth, _ = new_key(app, "tight")
        ok = chat(client, auth)
        assert ok.status_code == 200
        assert {k: v for k, v in ok.headers.items() if k.startswith("x-ratelimit")} == {
            "x-ratelimit-limit-requests": "2",
            "x-ratelimit-remaining-requests": "1",
            "x-ratelimit-reset-requests": "1m0s",
            "x-ratelimit-limit-tokens": "1000",
            "x-ratelimit-remaining-tokens": "1000",
            "x-ratelimit-reset-tokens": "0s",
        }
        clock.advance(15)
        spoken = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", tone(1.0))}, headers=auth)
        assert spoken.status_code == 200 and spoken.headers["x-ratelimit-remaining-requests"] == "0"
        assert spoken.headers["x-ratelimit-remaining-tokens"] == str(1000 - ok.json()["usage"]["total_tokens"])
        refused = chat(client, auth)
        assert refused.status_code == 429
        assert refused.json() == {
            "error": {
                "message": "Rate limit reached for requests per minute: limit 2, remaining 0. Try again in 45s.",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        assert refused.headers["retry-after"] == "45"
        assert refused.headers["x-ratelimit-reset-requests"] == "45s"
        assert refused.headers["x-ratelimit-limit-tokens"] == "1000"
        spoken = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", tone(1.0))}, headers=auth)
        assert spoken.status_code == 429
        clock.advance(45)
        assert chat(client, auth).status_code == 200
        assert "x-ratelimit-limit-requests" not in chat(client, {}).headers  # keyless local use is unlimited here


class DoubleMode(InstantMode):
    """ember-instant whose tokens count twice."""

    cost_weight = 2.0


def test_tokens_are_debited_after_the_answer_weighted_by_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.modes._entries, "ember-double", DoubleMode(name="ember-double"))
    app, _ = keyed_app(tmp_path, {"small": Tier(tokens_per_minute=60)})
    with TestClient(app) as client:
        auth, _ = new_key(app, "small")
        first = chat(client, auth, model="ember-double")
        assert first.json()["usage"]["total_tokens"] == 21  # 11 (system) + 6 (user) + 4 (answer), fake counts
        with client.stream(
            "POST",
            "/v1/chat/completions",
            headers=auth,
            json={"model": "ember-instant", "stream": True, "messages": [{"role": "user", "content": "a b"}]},
        ) as second:
            assert second.headers["x-ratelimit-remaining-tokens"] == str(60 - 2 * 21)
            assert sse_events(list(second.iter_lines()))[-1] == "[DONE]"
        refused = chat(client, auth)  # 42 + 21 = 63 > 60: the stream overshot once; now it is spent
        assert refused.status_code == 429 and refused.headers["x-ratelimit-remaining-tokens"] == "0"
        assert "tokens per minute" in refused.json()["error"]["message"]


def test_slots_are_freed_when_clients_leave_mid_answer(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(300))
    tier = Tier(concurrent_streams=1, tokens_per_minute=100_000)
    app, _ = keyed_app(tmp_path, {"one": tier}, options={"replies": [words], "delay_s": 0.03})
    stream_body = {"model": "ember-instant", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        auth, principal = new_key(app, "one")
        with client.stream("POST", "/v1/chat/completions", json=stream_body, headers=auth) as first:
            lines = first.iter_lines()
            for _ in range(4):
                next(lines)
            busy = chat(client, auth, max_tokens=1)
            assert busy.status_code == 429 and "concurrent" in busy.json()["error"]["message"]
            assert busy.headers["retry-after"] == "1"
        freed = wait_free(client, auth)  # the answer had ~9 s to go: the slot came back when the client left
        spent = 100_000 - int(freed.headers["x-ratelimit-remaining-tokens"])
        assert spent >= 2  # the cut stream was debited: its prompt estimate plus the pieces it got
        with contextlib.suppress(httpx.ReadTimeout):  # a long non-streamed answer, abandoned
            client.post("/v1/chat/completions", json={**stream_body, "stream": False}, headers=auth, timeout=0.5)
        wait_free(client, auth)
        assert anyio.run(app.state.limiter.streams_held, principal) == 0


def wait_free(client: httpx.Client, auth: dict[str, str], within_s: float = 3.0) -> Any:
    """The first short answer that is not refused for want of a slot (within `within_s`)."""
    deadline = time.monotonic() + within_s
    while (reply := chat(client, auth, max_tokens=1)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reply.status_code == 200
    return reply


# --- two processes, one Redis ---


@contextlib.contextmanager
def servers(count: int, env: dict[str, str], logs: Path) -> Iterator[list[str]]:
    """`count` `ember serve` processes with `env`; yields their base URLs."""
    procs, bases = [], []
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}
    try:
        for i in range(count):
            port = free_port()
            with (logs / f"server{i}.log").open("wb") as log:
                command = [sys.executable, "-m", "ember.cli", "serve"]
                procs.append(
                    subprocess.Popen(command, env={**clean, **env, "EMBER_PORT": str(port)}, stdout=log, stderr=log)
                )
            bases.append(f"http://127.0.0.1:{port}")
        for base, proc in zip(bases, procs, strict=True):
            wait_healthy(base, 60, proc)
        yield bases
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def test_two_processes_on_one_redis_share_one_limit(tmp_path: Path, redis_up: str) -> None:
    env = {
        "EMBER_ROLES": json.dumps(
            {"chat-fast": {"engine": "fake", "model": "fake"}, "chat": {"engine": "fake", "model": "fake"}, "asr": FAKE}
        ),
        "EMBER_REQUIRE_KEYS": "1",
        "EMBER_DATA_DIR": str(tmp_path / "data"),
        "EMBER_CACHE_DIR": str(tmp_path / "cache"),
        "EMBER_TIERS": json.dumps({"team": {"requests_per_minute": 10, "tokens_per_minute": 100_000}}),
        "EMBER_REDIS_URL": f"{redis_up}/{REDIS_DB}",
    }
    made = run_cli(["keys", "create", "acme", "--tier", "team"], "", env)
    assert made.returncode == 0, made.stderr
    auth, key_id = {"authorization": f"Bearer {made.stdout.strip()}"}, made.stderr.split()[0]
    try:
        with servers(2, env, tmp_path) as bases, httpx.Client(timeout=30) as client, ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda i: chat(client, auth, max_tokens=2, base=bases[i % 2]), range(16)))
        assert Counter(r.status_code for r in replies) == {200: 10, 429: 6}
        assert {r.headers["x-ratelimit-limit-requests"] for r in replies} == {"10"}
        refused = [r for r in replies if r.status_code == 429]
        assert all(r.headers["x-ratelimit-remaining-requests"] == "0" for r in refused)
        assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in refused)
    finally:
        raw = redis.Redis.from_url(f"{redis_up}/{REDIS_DB}")
        for name in raw.scan_iter(match=f"*{key_id}*"):
            raw.delete(name)
        raw.close()
