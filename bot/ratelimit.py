"""Per-user rate limits: in memory (one process) or on Redis (shared by every process).

Both use the generic cell rate algorithm (GCRA): a user may send ``limit`` messages at once,
then one every ``period / limit`` seconds (20 a minute: a burst of 20, then one every 3 s).
A refused message does not count. On Redis it is one key per user holding the time the user's
allowance is next back to full, written by one Lua script that reads the server's clock, so
every process sees the same limit; the key expires when it no longer limits anything.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.sessions import OutageLog, on_redis, redis_errors
from bot.sessions.base import SessionStore, SessionStoreError
from bot.turn import Turn

if TYPE_CHECKING:
    from bot.sessions.redis import RedisClient
    from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PER_MINUTE = 20


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after: float = 0.0  # seconds until a message would be allowed again


ALLOWED = RateDecision(True)


class RateLimiter(Protocol):
    """Counts one message of ``key`` (a user) and says whether it may be answered."""

    async def hit(self, key: str) -> RateDecision: ...

    async def forget(self, key: str) -> None:
        """Drop what is kept for ``key`` (the user's /forget)."""
        ...


def rate_key(turn: Turn) -> str:
    """The user a turn counts against: the same in every chat of the platform and team."""
    return f"{turn.platform}:{turn.team_id}:{turn.user_id}"


def _check(limit: int, period: float) -> float:
    if limit < 1:
        raise ValueError("limit must be at least 1 (0 turns the limit off: use no limiter)")
    if period <= 0:
        raise ValueError("period must be positive")
    return period / limit


class MemoryRateLimiter:
    """GCRA in this process; at most ``max_keys`` users remembered (least recent go first)."""

    def __init__(
        self,
        limit: int = DEFAULT_PER_MINUTE,
        *,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.interval = _check(limit, period)
        self.limit = limit
        self.period = period
        self.clock = clock
        self.max_keys = max_keys
        self._tat: OrderedDict[str, float] = OrderedDict()  # when each allowance is full again

    def __len__(self) -> int:
        return len(self._tat)

    async def hit(self, key: str) -> RateDecision:
        now = self.clock()
        tat = max(self._tat.get(key, now), now)
        wait = tat + self.interval - self.period - now
        if wait > 1e-9:
            return RateDecision(False, wait)
        self._tat[key] = tat + self.interval
        self._tat.move_to_end(key)
        while len(self._tat) > self.max_keys:
            self._tat.popitem(last=False)  # the longest idle: most likely back to full
        return ALLOWED

    async def forget(self, key: str) -> None:
        self._tat.pop(key, None)


# KEYS[1]: the user's key. ARGV: interval and period in milliseconds. Returns 0 when allowed,
# else the milliseconds to wait. TIME makes the clock the server's, the same for everyone.
_GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end
local wait = tat + interval - period - now
if wait > 0 then
    return wait
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', tat - now))
return 0
"""


class RedisRateLimiter:
    """GCRA on Redis or Redis Cluster, shared by every process; fails open when Redis fails.

    Build it from the session store's client: ``RedisRateLimiter(store.client, limit=20)``.
    Keys: ``{prefix}:rate:{<user>}`` (one slot per user on a cluster).
    """

    def __init__(
        self,
        client: RedisClient,
        limit: int = DEFAULT_PER_MINUTE,
        *,
        period: float = 60.0,
        prefix: str = "bot",
    ) -> None:
        interval = _check(limit, period)
        self.client = client
        self.limit = limit
        self.period = period
        self.prefix = prefix
        self._interval_ms = max(1, math.floor(interval * 1000))
        self._period_ms = max(1, round(period * 1000))
        self._warn = OutageLog(client, log, "rate limit unavailable, messages are let through")

    def key(self, name: str) -> str:
        from bot.sessions.redis import hash_tag

        return f"{self.prefix}:rate:{{{hash_tag(name)}}}"

    async def hit(self, key: str) -> RateDecision:
        try:
            wait_ms = await self.client.eval(
                _GCRA_SCRIPT, 1, self.key(key), self._interval_ms, self._period_ms
            )
        except redis_errors() as exc:
            self._warn(exc)
            return ALLOWED  # better an answer too many than none while Redis is away
        wait = int(wait_ms)
        return ALLOWED if wait <= 0 else RateDecision(False, wait / 1000)

    async def forget(self, key: str) -> None:
        try:
            await self.client.delete(self.key(key))
        except redis_errors() as exc:
            raise SessionStoreError(f"rate limit key not deleted: {type(exc).__name__}") from None


def build_rate_limiter(settings: Settings, store: SessionStore) -> RateLimiter | None:
    """``USER_RATE_LIMIT_PER_MINUTE`` per user (see ``shared_rate_limiter``)."""
    return shared_rate_limiter(store, settings.user_rate_limit_per_minute)


def shared_rate_limiter(
    store: SessionStore, per_minute: int, *, name: str = ""
) -> RateLimiter | None:
    """``per_minute`` per key: on the Redis store's client when sessions are in Redis (shared
    by every process; ``name`` keeps its keys apart from other limits'), else in memory;
    None when it is 0 (off)."""
    if per_minute <= 0:
        return None
    if on_redis(store):
        prefix = f"{store.prefix}:{name}" if name else store.prefix
        return RedisRateLimiter(store.client, per_minute, prefix=prefix)
    return MemoryRateLimiter(per_minute)


# ---- concurrency: answers in progress at once, per tenant ---------------------------------------


class ConcurrencyLimiter(Protocol):
    """Leases for answers in progress: at most ``limit`` at once per ``key`` (a tenant)."""

    limit: int

    async def acquire(self, key: str, lease: str) -> bool:
        """Take a place for ``lease`` (a unique id); False when ``key`` is at its limit."""
        ...

    async def release(self, key: str, lease: str) -> None: ...


class MemoryConcurrencyLimiter:
    """Counts in this process."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._held: dict[str, set[str]] = {}

    async def acquire(self, key: str, lease: str) -> bool:
        held = self._held.setdefault(key, set())
        if len(held) >= self.limit:
            return False
        held.add(lease)
        return True

    async def release(self, key: str, lease: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.discard(lease)
            if not held:
                del self._held[key]


# KEYS[1]: the tenant's sorted set of leases (score: when the lease lapses, in ms of the server's
# clock). ARGV: the lease id, the limit, the lease's life in ms. Lapsed leases (a process that
# died mid-answer) are dropped first. Returns 1 when taken, 0 at the limit.
_LEASE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class RedisConcurrencyLimiter:
    """Leases in one sorted set per tenant on Redis, shared by every process; a lease lapses
    after ``lease_seconds`` (an answer that outlives it no longer counts), so a dead process
    holds no place for long. Fails open when Redis fails, like the rate limit."""

    def __init__(
        self, client: RedisClient, limit: int, *, prefix: str = "bot", lease_seconds: float = 300.0
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.client = client
        self.limit = limit
        self.prefix = prefix
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self._warn = OutageLog(client, log, "concurrency limit unavailable, answers go ahead")

    def key(self, name: str) -> str:
        from bot.sessions.redis import hash_tag

        return f"{self.prefix}:inflight:{{{hash_tag(name)}}}"

    async def acquire(self, key: str, lease: str) -> bool:
        try:
            taken = await self.client.eval(
                _LEASE_SCRIPT, 1, self.key(key), lease, self.limit, self._lease_ms
            )
        except redis_errors() as exc:
            self._warn(exc)
            return True
        return int(taken) == 1

    async def release(self, key: str, lease: str) -> None:
        try:
            await self.client.zrem(self.key(key), lease)
        except redis_errors() as exc:
            self._warn(exc)  # the lease lapses on its own


def shared_concurrency_limiter(store: SessionStore, limit: int) -> ConcurrencyLimiter:
    """At most ``limit`` answers at once per key: on Redis when sessions are there (shared by
    every process), else in memory."""
    if on_redis(store):
        return RedisConcurrencyLimiter(store.client, limit, prefix=store.prefix)
    return MemoryConcurrencyLimiter(limit)
