"""Rate limits per API key and tier: requests per minute, tokens per minute, concurrent streams.

`Limiter` counts on the `limits` library's storage: in process memory by default, Redis when
`settings.redis_url` is set, so that several API replicas share one budget per key. Its API:

    quota = await limiter.check(principal, estimated_tokens)   # before the mode runs; raises RateLimited
    async with limiter.stream(principal): ...                  # one concurrent-streams slot, always released
    await limiter.debit(principal, meter.tokens)               # the answer's actual, weighted tokens

Limits are keyed by the principal's key id (its owner for the keyless local principal). A tier value of
None skips that check with no storage round trip, so the default `local` tier costs nothing.

Strategy: fixed window (`FixedWindowRateLimiter`), a window of one minute opening at a key's first
hit. Moving window is exact but stores one entry per unit of cost (a 2M tokens/minute tier would keep
lists of millions of entries in Redis) and, like the sliding-window counter, refuses a hit that would
cross the limit without counting it, which loses usage learnt only after the answer. A fixed window is
one counter per key in both storages (Redis INCRBY + EXPIRE in one Lua script, so replicas never
over-admit), always counts a debit, reports an exact reset time, and is deterministic under a
controlled clock (memory storage reads `time.time()` of module `limits.aio.storage.memory`). Its known
cost: a client may spend up to twice a limit across a window boundary.

Tokens are tested, not taken, before the answer (the window must have room for the prompt's estimate,
clamped to the whole limit so a big prompt can still run in an empty window), and the actual usage is
debited afterwards: one request may overshoot the limit once; the next is refused until the reset.

Concurrent streams are a counter with a TTL (`STREAM_SLOT_TTL_S`, set when it rises from zero), so
slots held by a crashed process free themselves within it; streams still open when it expires are
forgotten, so a key never idle for that long may briefly exceed its limit. This module does not
authenticate, read HTTP, or know what a mode does beyond its optional `cost_weight`.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import redis.asyncio
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

from ember.config import Settings, Tier
from ember.errors import ConfigError, RateLimited
from ember.policy.keys import Principal
from ember.types import Answer, Delta

REQUESTS = "requests"
TOKENS = "tokens"
STREAMS = "ember-streams"
STREAM_SLOT_TTL_S = 3600  # longer than any answer; a crashed process's slots are free after this
STREAM_RETRY_AFTER_S = 1
CHARS_PER_TOKEN = 4  # the usual rough ratio for English text, for estimates before the engine counts
REDIS_PREFIX = "ember"
REDIS_SCHEMES = ("redis", "rediss")
UNLIMITED = Tier()


@dataclass(frozen=True)
class Window:
    """One per-minute budget as a client sees it."""

    limit: int
    remaining: int
    reset_s: float

    def headers(self, kind: str) -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{kind}": str(self.limit),
            f"x-ratelimit-remaining-{kind}": str(max(0, self.remaining)),
            f"x-ratelimit-reset-{kind}": duration(self.reset_s),
        }


@dataclass(frozen=True)
class Quota:
    """What a key has left after a check; None where its tier has no such limit."""

    requests: Window | None = None
    tokens: Window | None = None

    def headers(self) -> dict[str, str]:
        """OpenAI's `x-ratelimit-*` headers (none for an unlimited tier)."""
        out: dict[str, str] = {}
        for kind, window in ((REQUESTS, self.requests), (TOKENS, self.tokens)):
            if window is not None:
                out |= window.headers(kind)
        return out


def duration(seconds: float) -> str:
    """A reset time as OpenAI writes it: `250ms`, `17s`, `1m0s`."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, secs = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def estimate_tokens(chars: int) -> int:
    """A prompt's tokens, roughly, from its length (at least 1)."""
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


@dataclass
class Meter:
    """What one answer costs: the engine's usage when it reports it; for a stream cut short (no usage),
    the prompt estimate plus one token a piece received. Weighted by the mode's `cost_weight`."""

    prompt_estimate: int
    weight: float = 1.0
    answer: Answer = field(default_factory=Answer)

    @property
    def estimated(self) -> int:
        return math.ceil(self.prompt_estimate * self.weight)

    @property
    def tokens(self) -> int:
        usage, pieces = self.answer.usage, self.answer.pieces
        raw = usage.total_tokens if usage else (self.prompt_estimate + pieces if pieces else 0)
        return math.ceil(raw * self.weight)

    async def watch(self, deltas: AsyncGenerator[Delta, None]) -> AsyncGenerator[Delta, None]:
        """`deltas`, counted on the way through; closing this closes them."""
        try:
            async for delta in deltas:
                yield self.answer.add(delta)
        finally:
            await deltas.aclose()


def _who(principal: Principal) -> str:
    return principal.key_id or principal.owner


def _item(kind: str, limit: int) -> RateLimitItemPerMinute:
    return RateLimitItemPerMinute(limit, namespace=f"ember-{kind}")


def _refused(quota: Quota, kind: str, window: Window, detail: str = "") -> RateLimited:
    retry = max(1, math.ceil(window.reset_s))
    return RateLimited(
        f"Rate limit reached for {kind} per minute: limit {window.limit}, remaining {max(0, window.remaining)}"
        f"{detail}. Try again in {duration(window.reset_s)}.",
        headers={**quota.headers(), "retry-after": str(retry)},
    )


class Limiter:
    """Per-key budgets of the configured tiers, on one `limits` storage (see the module docstring)."""

    def __init__(
        self,
        tiers: Mapping[str, Tier],
        storage: Storage,
        clock: Callable[[], float] = time.time,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.tiers = tiers
        self.storage = storage
        self.window = FixedWindowRateLimiter(storage)
        self.clock = clock
        self._on_close = on_close

    @classmethod
    async def open(cls, settings: Settings) -> Limiter:
        """In memory, or on the Redis at `settings.redis_url` (checked reachable: a ConfigError if not)."""
        if settings.redis_url is None:
            return cls(settings.tiers, MemoryStorage())
        url = urllib.parse.urlsplit(settings.redis_url)
        if url.scheme not in REDIS_SCHEMES:
            raise ConfigError(f"EMBER_REDIS_URL must be a redis:// or rediss:// URL, not {url.scheme}://")
        pool = redis.asyncio.ConnectionPool.from_url(settings.redis_url)
        storage = RedisStorage(
            f"async+{settings.redis_url}",
            implementation="redispy",
            key_prefix=REDIS_PREFIX,
            connection_pool=pool,  # type: ignore[arg-type]  # passed on to redis.asyncio.Redis
        )
        limiter = cls(settings.tiers, storage, on_close=pool.aclose)
        if not await storage.check():
            await limiter.close()
            raise ConfigError(f"Redis at {url.hostname}:{url.port or 6379} (EMBER_REDIS_URL) is not reachable")
        return limiter

    async def close(self) -> None:
        if self._on_close is not None:
            await self._on_close()

    def _tier(self, principal: Principal) -> Tier:
        return self.tiers.get(principal.tier, UNLIMITED)

    async def _stats(self, kind: str, limit: int | None, who: str) -> Window | None:
        if limit is None:
            return None
        stats = await self.window.get_window_stats(_item(kind, limit), who)
        return Window(limit, stats.remaining, max(0.0, stats.reset_time - self.clock()))

    async def check(self, principal: Principal, estimated_tokens: int = 0) -> Quota:
        """Count one request and make sure the tokens window has room for `estimated_tokens`;
        RateLimited (429, with Retry-After and x-ratelimit-* headers) if either budget is spent."""
        tier, who = self._tier(principal), _who(principal)
        tokens = await self._stats(TOKENS, tier.tokens_per_minute, who)
        if tokens is not None and tokens.remaining < min(estimated_tokens, tokens.limit):
            requests = await self._stats(REQUESTS, tier.requests_per_minute, who)
            raise _refused(Quota(requests, tokens), TOKENS, tokens, f", needed about {estimated_tokens}")
        granted = tier.requests_per_minute is None or await self.window.hit(
            _item(REQUESTS, tier.requests_per_minute), who
        )
        quota = Quota(await self._stats(REQUESTS, tier.requests_per_minute, who), tokens)
        if not granted and quota.requests is not None:
            raise _refused(quota, REQUESTS, quota.requests)
        return quota

    async def debit(self, principal: Principal, tokens: int) -> None:
        """Count `tokens` (already weighted) against the key's tokens window, even past its limit."""
        limit = self._tier(principal).tokens_per_minute
        if limit is not None and tokens > 0:
            await self.window.hit(_item(TOKENS, limit), _who(principal), cost=tokens)

    @asynccontextmanager
    async def stream(self, principal: Principal) -> AsyncIterator[None]:
        """Hold one of the key's concurrent-streams slots for the block (RateLimited if none is free);
        released on any exit, cancellation included."""
        limit = self._tier(principal).concurrent_streams
        if limit is None:
            yield
            return
        key = f"{STREAMS}/{_who(principal)}"
        with anyio.CancelScope(shield=True):  # counted and released in pairs, even if cancelled right here
            held = await self.storage.incr(key, STREAM_SLOT_TTL_S)
        try:
            if held > limit:
                raise RateLimited(
                    f"Too many concurrent requests for this key: its tier allows {limit} at once. "
                    "Try again when one has finished.",
                    headers={"retry-after": str(STREAM_RETRY_AFTER_S)},
                )
            yield
        finally:
            with anyio.CancelScope(shield=True):
                if await self.storage.incr(key, STREAM_SLOT_TTL_S, amount=-1) < 0:
                    await self.storage.clear(key)  # the counter expired under a live stream

    async def streams_held(self, principal: Principal) -> int:
        """Slots the key holds now (for tests and diagnostics)."""
        return await self.storage.get(f"{STREAMS}/{_who(principal)}")
