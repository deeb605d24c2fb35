"""The GLM circuit breaker and bulkhead on Redis, shared by every replica of the bot.

When the model is down, one replica's failures open the breaker for all of them, and when it
is half-open one probe at a time goes out across all of them. ``GLM_MAX_CONCURRENCY`` (the
account's concurrency limit) caps the model calls of all replicas together.

Each is one key, written only by small Lua scripts that read the server's clock (``TIME``),
so every replica sees the same time; each call touches one key, so it runs unchanged on Redis
Cluster. Keys (``bot`` is the store's prefix, ``answer`` the guard's name and hash tag):

* ``bot:glm:breaker:{answer}``: a hash. Closed: the outcomes of the last ``window_seconds`` in
  buckets of a tenth of it, at most a second (30 buckets of 1 s by default; to within a bucket,
  it is the in-process breaker's window), fields ``c<bucket>`` calls, ``f<bucket>`` failures,
  with running totals ``calls``, ``fails`` and the oldest bucket ``head``; a call prunes the
  buckets that left the window, amortised O(1). Open: only ``opened`` (server ms); half-open
  once ``open_seconds`` passed, then ``probe`` (the replica holding the probe) and ``until``
  (when its claim lapses, so a replica that died mid-probe frees it). No key: closed with an
  empty window. It expires a minute after the state it holds stops meaning anything.
* ``bot:glm:slots:{answer}``: a sorted set of leases, a random token scored by the server
  time it expires. A call takes a slot when fewer than ``max_concurrent`` leases are live
  (expired ones are dropped first), gives it back with ZREM, and one task per process renews
  the leases of its running calls every third of ``lease_seconds``, so a dead replica's slots
  free within ``lease_seconds``. The key expires with its last lease.

Costs per model call: one round trip to admit it, one for a slot; one to report its outcome
(at the first token of an answer) and one to give the slot back. With Redis on loopback that
is about 0.45 ms before the call and 0.45 ms after it (``bench/bench_breaker.py``).

Redis failing must not stop answers: a call whose Redis command fails (or takes longer than
``timeout``) uses this process's own :class:`CircuitBreaker` and :class:`Bulkhead` instead,
Redis is left alone for a second, and a warning is logged at most once a minute. The local
breaker hears every outcome this process reports, so it is warm when it is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.glm.breaker import Breaker, BreakerState, Bulkhead, CallLimit, CircuitBreaker, Verdict
from bot.glm.errors import GlmUnavailable
from bot.sessions import on_redis, redis_errors

if TYPE_CHECKING:
    from bot.sessions.base import SessionStore
    from bot.sessions.redis import RedisClient
    from bot.settings import Settings

__all__ = [
    "GlmGuards",
    "RedisBreaker",
    "RedisBulkhead",
    "RedisFallback",
    "build_guards",
]

log = logging.getLogger(__name__)

# KEYS[1]: the breaker's hash. ARGV: op ('allow', 'success', 'failure', 'ignored' or 'peek'),
# the caller's token, bucket ms, buckets in the window, min_calls, failure rate, open ms,
# probe ms, key ms. Returns {allowed, state (0 closed, 1 open, 2 half-open), ms until an open
# breaker turns half-open}.
_BREAKER_SCRIPT = """
local key, op, token = KEYS[1], ARGV[1], ARGV[2]
local bucket_ms, buckets = tonumber(ARGV[3]), tonumber(ARGV[4])
local min_calls, rate = tonumber(ARGV[5]), tonumber(ARGV[6])
local open_ms, probe_ms, key_ms = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function open()
    redis.call('DEL', key)
    redis.call('HSET', key, 'opened', now)
    redis.call('PEXPIRE', key, key_ms)
    return {0, 1, open_ms}
end

local s = redis.call('HMGET', key, 'opened', 'probe', 'until')
local opened = tonumber(s[1])
if opened then
    if now - opened < open_ms then
        return {0, 1, opened + open_ms - now}  -- open: no call, and outcomes are ignored
    end
    local busy = s[2] and tonumber(s[3]) > now
    if op == 'allow' then
        if busy then
            return {0, 2, 0}
        end
        redis.call('HSET', key, 'probe', token, 'until', now + probe_ms)
        redis.call('PEXPIRE', key, key_ms)
        return {1, 2, 0}
    elseif op == 'success' then
        redis.call('DEL', key)  -- closed, with an empty window
        return {1, 0, 0}
    elseif op == 'failure' then
        return open()
    elseif op == 'ignored' and s[2] == token then
        redis.call('HDEL', key, 'probe', 'until')
        return {1, 2, 0}
    end
    return {busy and 0 or 1, 2, 0}
end
if op ~= 'success' and op ~= 'failure' then
    return {1, 0, 0}
end

local cur = math.floor(now / bucket_ms)
local low = cur - buckets + 1
local w = redis.call('HMGET', key, 'head', 'calls', 'fails')
local head = tonumber(w[1]) or cur
local calls, fails = tonumber(w[2]) or 0, tonumber(w[3]) or 0
if head < low then
    -- Every bucket there is lies in [head, head + buckets - 1].
    for b = head, math.min(low - 1, head + buckets - 1) do
        local old = redis.call('HMGET', key, 'c' .. b, 'f' .. b)
        if old[1] then
            calls = calls - tonumber(old[1])
            fails = fails - (tonumber(old[2]) or 0)
            redis.call('HDEL', key, 'c' .. b, 'f' .. b)
        end
    end
    head = low
end
calls = calls + 1
redis.call('HINCRBY', key, 'c' .. cur, 1)
if op == 'failure' then
    fails = fails + 1
    if calls >= min_calls and fails / calls >= rate then
        return open()
    end
    redis.call('HINCRBY', key, 'f' .. cur, 1)
end
redis.call('HSET', key, 'head', head, 'calls', calls, 'fails', fails)
redis.call('PEXPIRE', key, key_ms)
return {1, 0, 0}
"""

# KEYS[1]: the leases. ARGV: token, max_concurrent, lease ms. Returns 1 (taken) or 0 (full).
_ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease then
    redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
"""

# KEYS[1]: the leases. ARGV: lease ms, then the tokens to renew. Returns the tokens that are
# gone (their lease expired and another call may have its slot now).
_RENEW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
        redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
    else
        lost[#lost + 1] = ARGV[i]
    end
end
if redis.call('PTTL', KEYS[1]) < lease then
    redis.call('PEXPIRE', KEYS[1], lease)
end
return lost
"""

# KEYS[1]: the leases. Returns how many are live.
_COUNT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""

_STATES: tuple[BreakerState, ...] = ("closed", "open", "half_open")

_POLL_FIRST = 0.005  # seconds between polls of a full bulkhead: first...
_POLL_MAX = 0.05  # ...and at most (a slot freed in this process wakes the poller at once)


def _password(client: RedisClient) -> list[str]:
    password = client.get_connection_kwargs().get("password")
    return [password] if isinstance(password, str) and password else []


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")  # no braces: the name is the key's hash tag


def _key(prefix: str, kind: str, name: str) -> str:
    if not (_NAME.match(prefix) and _NAME.match(name)):
        raise ValueError("prefix and name may contain only letters, digits and _ . : -")
    return f"{prefix}:glm:{kind}:{{{name}}}"


class RedisFallback:
    """What the shared guards do while Redis fails: each call that cannot reach it uses this
    process's own breaker and bulkhead, Redis is not asked again for ``retry_after`` seconds
    (so a hung server does not cost every call a timeout), and a warning is logged at most
    once every ``warn_every`` seconds. One instance serves all the guards of one client."""

    def __init__(
        self,
        *,
        retry_after: float = 1.0,
        warn_every: float = 60.0,
        hidden: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_after = retry_after
        self.warn_every = warn_every
        self.clock = clock
        self.failing = False
        self._hidden = sorted((h for h in hidden if h), key=len, reverse=True)
        self._retry_at = -math.inf
        self._warned_at = -math.inf

    def skip(self) -> bool:
        """Is Redis left alone for now (it failed less than ``retry_after`` seconds ago)?"""
        return self.clock() < self._retry_at

    def failed(self, what: str, exc: BaseException) -> None:
        now = self.clock()
        self._retry_at = now + self.retry_after
        self.failing = True
        detail = f"{type(exc).__name__}: {exc}"
        for secret in self._hidden:
            detail = detail.replace(secret, "****")
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            log.warning(
                "Redis failed for the shared GLM %s; this process uses its own until Redis "
                "answers: %s",
                what,
                detail,
            )
        else:
            log.debug("Redis failed for the shared GLM %s: %s", what, detail)

    def answered(self) -> None:
        if self.failing:
            self.failing = False
            log.info("Redis answers again: the GLM breaker and bulkhead are shared again")


class RedisBreaker:
    """A :class:`Breaker` on Redis with :class:`CircuitBreaker`'s rules, shared by every
    replica (see the module docstring). ``probe_seconds``: how long a half-open probe's claim
    lasts without an outcome (the probe's replica may have died); the outcome of a model call
    is known by its first-token deadline, so a little more than that."""

    def __init__(
        self,
        client: RedisClient,
        *,
        name: str = "answer",
        prefix: str = "bot",
        window_seconds: float = 30.0,
        min_calls: int = 10,
        failure_rate: float = 0.5,
        open_seconds: float = 15.0,
        probe_seconds: float = 15.0,
        fallback: RedisFallback | None = None,
        timeout: float = 1.0,
    ) -> None:
        # The local breaker checks the settings, and is the fallback when Redis fails.
        self.local = CircuitBreaker(
            window_seconds=window_seconds,
            min_calls=min_calls,
            failure_rate=failure_rate,
            open_seconds=open_seconds,
        )
        if probe_seconds <= 0:
            raise ValueError("probe_seconds must be > 0")
        self.client = client
        self.name = name
        self.key = _key(prefix, "breaker", name)
        self.fallback = (
            fallback if fallback is not None else RedisFallback(hidden=_password(client))
        )
        self.timeout = timeout
        window_ms = _ms(window_seconds)
        bucket_ms = max(1, min(1000, window_ms // 10))
        open_ms = max(0, round(open_seconds * 1000))
        probe_ms = _ms(probe_seconds)
        self._args: tuple[Any, ...] = (
            secrets.token_hex(8),  # this replica, as the holder of a probe
            bucket_ms,
            math.ceil(window_ms / bucket_ms),
            min_calls,
            repr(float(failure_rate)),  # the same double in Lua as here
            open_ms,
            probe_ms,
            window_ms + bucket_ms + open_ms + probe_ms + 60_000,
        )
        self._seen: BreakerState = "closed"
        self._half_open_at = 0.0  # monotonic time an open breaker seen turns half-open
        self._local_only = False  # the last call used the local breaker

    @property
    def state(self) -> BreakerState:
        """The state as this replica last saw it (another replica may have changed it since);
        the local breaker's while Redis fails."""
        if self._local_only:
            return self.local.state
        if self._seen == "open" and time.monotonic() >= self._half_open_at:
            return "half_open"
        return self._seen

    async def admit(self) -> bool:
        allowed = await self._run("allow")
        return self.local.allow() if allowed is None else allowed

    async def report(self, verdict: Verdict) -> None:
        self.local.record(verdict)
        await self._run(verdict)

    async def peek(self) -> BreakerState:
        """The shared state now, from Redis (the local one while Redis fails)."""
        await self._run("peek")
        return self.state

    async def _run(self, op: str) -> bool | None:
        """Run the script; whether a call is allowed, or None when Redis failed."""
        if self.fallback.skip():
            self._local_only = True
            return None
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self.client.eval(_BREAKER_SCRIPT, 1, self.key, op, *self._args)
        except redis_errors() as exc:  # OSError covers the timeout
            self.fallback.failed(f"circuit breaker ({self.name})", exc)
            self._local_only = True
            return None
        self.fallback.answered()
        self._local_only = False
        allowed, state, wait_ms = (int(v) for v in reply)
        self._seen = _STATES[state]
        if state == 1:
            self._half_open_at = time.monotonic() + wait_ms / 1000
        return allowed == 1


class RedisBulkhead:
    """A :class:`CallLimit` on Redis: at most ``max_concurrent`` calls of every replica
    together hold a slot (a lease that expires ``lease_seconds`` after its last renewal).

    A full bulkhead is polled (5 ms, doubling to 50 ms) by one waiter of this process at a
    time, the others queue behind it in order; a slot given back in this process wakes it at
    once. ``renew=False`` only in tests that play a replica that died holding its slots.
    """

    def __init__(
        self,
        client: RedisClient,
        max_concurrent: int = 100,
        *,
        name: str = "answer",
        prefix: str = "bot",
        lease_seconds: float = 6.0,
        fallback: RedisFallback | None = None,
        timeout: float = 1.0,
        renew: bool = True,
    ) -> None:
        self.local = Bulkhead(max_concurrent)  # checks max_concurrent; the fallback
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be > 0")
        self.client = client
        self.name = name
        self.key = _key(prefix, "slots", name)
        self.fallback = (
            fallback if fallback is not None else RedisFallback(hidden=_password(client))
        )
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self._lease_ms = _ms(lease_seconds)
        self._renew = renew
        self._running = 0  # calls of this process holding a lease
        self._leases: set[str] = set()  # their tokens, renewed by the keeper
        self._queue = asyncio.Lock()  # the waiter that polls a full bulkhead
        self._freed = asyncio.Event()  # a lease of this process was given back
        self._keeper: asyncio.Task[None] | None = None

    @property
    def in_use(self) -> int:
        return self._running + self.local.in_use

    @property
    def max_concurrent(self) -> int:
        return self.local.max_concurrent

    async def leases(self) -> int:
        """Live leases of every replica (for tests and inspection)."""
        return int(await self.client.eval(_COUNT_SCRIPT, 1, self.key))

    @asynccontextmanager
    async def slot(self, timeout: float | None = None) -> AsyncIterator[None]:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = math.inf if timeout is None else loop.time() + timeout
        token = await self._take(deadline)
        if token is None:  # Redis failed: this process's own bulkhead, for the time left
            left = None if timeout is None else max(0.0, deadline - loop.time())
            async with self.local.slot(left):
                yield
            return
        try:
            yield
        finally:
            self._running -= 1
            self._leases.discard(token)
            if not self._leases and self._keeper is not None:
                self._keeper.cancel()
                self._keeper = None
            # Shielded: a cancelled call must still give its slot back now, not at expiry.
            await asyncio.shield(self._give_back(token))

    async def _take(self, deadline: float) -> str | None:
        """A lease's token, None when Redis failed; GlmUnavailable when none by ``deadline``."""
        if self.fallback.skip():
            return None
        loop = asyncio.get_running_loop()
        token = secrets.token_hex(8)
        try:
            # A free slot costs one round trip, unless calls of this process wait already.
            if not self._queue.locked() and await self._try(token):
                return self._hold(token)
            if deadline - loop.time() <= 0:
                raise GlmUnavailable("too many concurrent requests")
            try:
                # wait_for, not asyncio.timeout: see Bulkhead.slot.
                await asyncio.wait_for(self._queue.acquire(), _left(deadline, loop))
            except TimeoutError:
                raise GlmUnavailable("too many concurrent requests") from None
            try:
                delay = _POLL_FIRST
                while True:
                    self._freed.clear()
                    if await self._try(token):
                        return self._hold(token)
                    left = deadline - loop.time()
                    if left <= 0:
                        raise GlmUnavailable("too many concurrent requests")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._freed.wait(), min(delay, left))
                    delay = min(delay * 2, _POLL_MAX)
            finally:
                self._queue.release()
        except redis_errors() as exc:  # OSError covers the timeout
            self.fallback.failed(f"bulkhead ({self.name})", exc)
            return None
        except GlmUnavailable:
            raise
        except BaseException:
            # Cancelled, perhaps after Redis granted a lease we never saw: give it back.
            await asyncio.shield(self._give_back(token))
            raise

    async def _try(self, token: str) -> bool:
        async with asyncio.timeout(self.timeout):
            taken = await self.client.eval(
                _ACQUIRE_SCRIPT, 1, self.key, token, self.max_concurrent, self._lease_ms
            )
        self.fallback.answered()
        return int(taken) == 1

    def _hold(self, token: str) -> str:
        self._running += 1
        if self._renew:
            self._leases.add(token)
            if self._keeper is None:
                self._keeper = asyncio.create_task(self._keep(), name=f"glm-slots:{self.name}")
        return token

    async def _give_back(self, token: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.zrem(self.key, token)
        except redis_errors() as exc:  # the lease expires by itself
            self.fallback.failed(f"bulkhead ({self.name})", exc)
        finally:
            self._freed.set()

    async def _keep(self) -> None:
        """Renew every lease of this process every third of their lifetime, in one call."""
        while self._leases:
            await asyncio.sleep(self.lease_seconds / 3)
            tokens = list(self._leases)
            if not tokens:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    lost = await self.client.eval(
                        _RENEW_SCRIPT, 1, self.key, self._lease_ms, *tokens
                    )
            except redis_errors() as exc:  # try again next time; the leases may expire
                self.fallback.failed(f"bulkhead ({self.name})", exc)
                continue
            except Exception:  # a bug here must not go unseen
                log.exception("renewing the GLM bulkhead's leases failed")
                continue
            for raw in lost:
                token = raw.decode() if isinstance(raw, bytes) else str(raw)
                if token in self._leases:
                    # The loop or Redis stalled for a whole lease: the call goes on, but its
                    # slot may be another's by now.
                    log.warning("a GLM bulkhead lease expired while its call ran")
                    self._leases.discard(token)


def _left(deadline: float, loop: asyncio.AbstractEventLoop) -> float | None:
    return None if deadline == math.inf else max(0.0, deadline - loop.time())


# A summary's own deadline (bot.context.summary.guarded_complete) plus a margin: the longest a
# summary probe's claim must last.
_SUMMARY_PROBE_SECONDS = 35.0


@dataclass(frozen=True, slots=True)
class GlmGuards:
    """The breakers and bulkheads of the model calls: the answers' (every call of a turn) and
    the summaries' (their own, so that their timeouts do not open the answers' breaker)."""

    breaker: Breaker
    bulkhead: CallLimit
    summary_breaker: Breaker
    summary_bulkhead: CallLimit


def build_guards(settings: Settings, store: SessionStore) -> GlmGuards:
    """On the Redis store's client when sessions are in Redis (shared by every replica: the
    breakers, and ``GLM_MAX_CONCURRENCY`` for all replicas together), else in this process.

    The summaries' bulkhead of 4 stays per process: it keeps summaries from taking this
    process's connections to the API, which are per process too."""
    summary_bulkhead = Bulkhead(4)
    if not on_redis(store):
        return GlmGuards(
            CircuitBreaker(),
            Bulkhead(settings.glm_max_concurrency),
            CircuitBreaker(),
            summary_bulkhead,
        )
    client = store.client
    fallback = RedisFallback(hidden=_password(client))
    return GlmGuards(
        RedisBreaker(
            client,
            name="answer",
            prefix=store.prefix,
            probe_seconds=settings.glm_first_token_timeout + 5.0,
            fallback=fallback,
        ),
        RedisBulkhead(
            client,
            settings.glm_max_concurrency,
            name="answer",
            prefix=store.prefix,
            fallback=fallback,
        ),
        RedisBreaker(
            client,
            name="summary",
            prefix=store.prefix,
            probe_seconds=_SUMMARY_PROBE_SECONDS,
            fallback=fallback,
        ),
        summary_bulkhead,
    )
