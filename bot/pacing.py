"""Pacing ledgers: the calls a platform has counted in its rate windows, kept for every answer of
one process (:class:`MemoryLedger`) or for every replica together (:class:`RedisLedger`).

A platform limit is a :class:`Window` (at most ``limit`` calls in ``span`` seconds). A call
names the windows it counts against as :class:`Rule` s of one :class:`Call`; the ledger either
counts it and says go (a :class:`Stamp`), or says how many seconds to wait. All rules of a call
are checked and taken at once, so two answers (or two replicas) can never both take the last
place of a window.

* A call counts as "now" from when it starts until its answer comes back (the platform stamps
  it when it arrives, somewhere in between), then from when its answer came back.
* ``Rule.room``: how many counted calls (and reservations) of the window leave room for this
  one. Calls that must arrive use the window's limit; interim updates use less, leaving the
  rest to final messages.
* ``Rule.steady``: once half of the window is used, the call waits the window's sustainable
  interval (span / limit) after the last one, so interim updates spread out instead of using
  the rest of the window in one burst.
* A :class:`Reservation` holds a place for a call that will certainly come later (the end of
  an answer): it counts as used until it is taken or released (on Redis it also expires).
* A block (the platform's 429 with Retry-After) stops a key for everyone for that long.

The Redis ledger is a small Lua script rather than a library: the maintained one we looked at
(``limits``, with its Redis moving window) counts one key per call and tests windows one after
another, so a message that counts against its chat, its group and the whole bot cannot take
all three atomically; and it has no calls in flight, reservations or steady pacing, which are
what keep a streamed answer from ever seeing a 429. Each call is one round trip; all keys of a
call share one hash tag (the bot or the workspace), so it works on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.sessions import OutageLog, on_redis, redis_errors
from bot.sessions.base import SessionStore

if TYPE_CHECKING:
    from bot.sessions.redis import RedisClient

log = logging.getLogger(__name__)

__all__ = [
    "Call",
    "MemoryLedger",
    "PaceLedger",
    "RedisLedger",
    "Reservation",
    "Rule",
    "Stamp",
    "WaitingLine",
    "Window",
    "build_ledger",
    "margin",
    "when_room",
]


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` calls in any ``span`` seconds."""

    span: float
    limit: int

    @property
    def counted(self) -> float:
        """How far back calls count against this window on our clock: the platform stamps a
        call when it arrives, a little later than we do (see ``margin``)."""
        return self.span + margin(self.span)


def margin(span: float) -> float:
    """Extra seconds a window is held for: 50 ms plus 1% of its span."""
    return 0.05 + span * 0.01


@dataclass(frozen=True, slots=True)
class Rule:
    """One window a call counts against, under ``key`` (calls with the same key share counts)."""

    key: str
    window: Window
    room: int = 0  # counted calls that still leave room for this one (0: the window's limit)
    steady: bool = False  # past half of the window, keep to its sustainable rate

    @property
    def allowed(self) -> int:
        return self.room if self.room > 0 else self.window.limit


@dataclass(frozen=True, slots=True)
class Call:
    """What one platform call counts against: ``rules`` within ``scope`` (one bot, one
    workspace: everything a limit is shared by), held up by the blocks of ``blocks``."""

    scope: str
    rules: tuple[Rule, ...]
    blocks: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.key for r in self.rules))

    @property
    def spans(self) -> dict[str, float]:
        """Per key (in the order of ``keys``), the longest window it counts in, in seconds:
        older calls never matter to it."""
        longest: dict[str, float] = {}
        for rule in self.rules:
            longest[rule.key] = max(longest.get(rule.key, 0.0), rule.window.counted)
        return longest


_ids = itertools.count()
_PROCESS = f"{os.getpid():x}.{os.urandom(3).hex()}"


def _new_id() -> str:
    return f"{_PROCESS}.{next(_ids):x}"


@dataclass(slots=True, eq=False)
class Stamp:
    """One counted call; hand it back with ``sent()`` once its answer came back."""

    scope: str
    keys: tuple[str, ...]
    at: float  # memory ledgers: the ledger's clock at the start, then at the answer
    id: str = field(default_factory=_new_id)
    done: bool = False
    local: bool = True  # counted in memory (a Redis ledger falls back to memory)
    counted: tuple[float, ...] = ()  # per key: how long it counts (Redis expiry)


@dataclass(slots=True, eq=False)
class Reservation:
    """A place held under ``key`` for a later call."""

    scope: str
    key: str
    id: str = field(default_factory=_new_id)
    active: bool = True
    local: bool = True


def rule_wait(rule: Rule, recent: list[float], reserved: int, now: float) -> float:
    """Seconds until ``rule`` has room, given the sorted times of its counted calls (calls in
    flight as ``now``) and its reservations. The Lua script below is this function again."""
    counted = rule.window.counted
    limit = rule.window.limit
    used = len(recent) + reserved
    wait = 0.0
    if rule.steady and recent and used >= max(1, limit // 2):
        wait = recent[-1] + counted / limit - now
    excess = used - rule.allowed + 1  # counted calls that must leave the window first
    if excess > 0:
        # Reservations do not leave by themselves: when they alone fill it, look again later.
        until = recent[excess - 1] + counted if excess <= len(recent) else now + counted / 4
        wait = max(wait, until - now)
    return max(0.0, wait)


class PaceLedger(Protocol):
    """Where calls are counted; one per process or one shared by every replica."""

    async def take(self, call: Call) -> Stamp | float:
        """Count ``call`` now and return its stamp, or the seconds to wait for room."""
        ...

    async def wait_time(self, call: Call) -> float:
        """Seconds until ``call`` would have room (0: now), counting nothing."""
        ...

    async def sent(self, stamp: Stamp) -> None:
        """The call's answer came back: it counts from now on, no longer "in flight"."""
        ...

    async def block(self, scope: str, key: str, seconds: float) -> None:
        """The platform said "retry after ``seconds``" for ``key``."""
        ...

    async def blocked_for(self, scope: str, key: str) -> float: ...

    async def reserve(self, call: Call, key: str) -> Reservation | None:
        """Hold a place under ``key`` when ``call`` would have room now, else None."""
        ...

    async def take_reserved(self, reservation: Reservation, call: Call) -> Stamp:
        """Turn a reservation into the call it was held for (counted at once, no check)."""
        ...

    async def release(self, reservation: Reservation | None) -> None:
        """Give a place back (idempotent; None is nothing to release)."""
        ...


async def when_room(ledger: PaceLedger, call: Call) -> Stamp:
    """Wait until ``call`` has room in every window, and count it."""
    while True:
        got = await ledger.take(call)
        if isinstance(got, Stamp):
            return got
        await asyncio.sleep(got)


class WaitingLine:
    """Callers waiting for room under a key many of them share (a bot's second, a workspace's
    method minute) queue in arrival order, and only the first of them asks the ledger.

    Waiting each on its own, a thousand final messages would all wake when a place frees, and
    all but one would find it taken: a thousand ledger checks (a thousand Redis round trips)
    per place. In line it is one check per place, and the first to wait is the first sent.
    The ledger still decides: the line only orders who asks (other replicas, and interim
    updates, which never wait, take places too). A caller whose own windows (its chat, a
    block on it) are full waits for them out of line, so it holds up nobody else.
    """

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}

    async def when_room(self, ledger: PaceLedger, call: Call, shared: str) -> Stamp:
        """Like :func:`when_room`, waiting in line for the rule keyed ``shared``."""
        own = Call(call.scope, tuple(r for r in call.rules if r.key != shared), call.blocks)
        while True:
            wait = await ledger.wait_time(own)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            async with self._turn((call.scope, shared)):
                while True:
                    got = await ledger.take(call)
                    if isinstance(got, Stamp):
                        return got
                    if await ledger.wait_time(own) > 0:
                        break  # its own windows filled meanwhile: step aside
                    await asyncio.sleep(got)

    @contextlib.asynccontextmanager
    async def _turn(self, key: tuple[str, str]) -> AsyncIterator[None]:
        """Hold ``key``'s line (asyncio.Lock wakes its waiters first come, first served)."""
        lock, users = self._lines.get(key) or self._lines.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._lines[key]


# ---- in memory ---------------------------------------------------------------------------------


class MemoryLedger:
    """The ledger of one process (synchronous inside, so exact under one event loop)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sends: dict[tuple[str, str], deque[Stamp]] = {}
        self._reserved: Counter[tuple[str, str]] = Counter()
        self._blocked: dict[tuple[str, str], float] = {}
        self._keep: dict[tuple[str, str], float] = {}  # per key, its longest window
        self._takes = 0

    def check(self, call: Call) -> float:
        now = self.clock()
        wait = max((self._blocked.get((call.scope, k), 0.0) - now for k in call.blocks), default=0)
        for rule in call.rules:
            key = (call.scope, rule.key)
            sends = self._sends.get(key)
            recent: list[float] = []
            if sends:
                since = now - rule.window.counted
                recent = sorted(t for t in (s.at if s.done else now for s in sends) if t > since)
            reserved = self._reserved[key] if key in self._reserved else 0
            wait = max(wait, rule_wait(rule, recent, reserved, now))
        return max(0.0, wait)

    def count(self, call: Call) -> Stamp:
        now = self.clock()
        stamp = Stamp(call.scope, call.keys, now)
        for name, span in call.spans.items():
            key = (call.scope, name)
            keep = self._keep[key] = max(self._keep.get(key, 0.0), span)
            sends = self._sends.setdefault(key, deque())
            sends.append(stamp)
            while sends and sends[0].done and sends[0].at <= now - keep:
                sends.popleft()
        self._takes += 1
        if self._takes % 1000 == 0:
            self._forget_idle(now)
        return stamp

    def _forget_idle(self, now: float) -> None:
        """Drop keys with nothing recent, so memory follows active chats, not all chats."""
        idle = [
            key
            for key, sends in self._sends.items()
            if all(s.done and s.at <= now - self._keep.get(key, 0.0) for s in sends)
        ]
        for key in idle:
            del self._sends[key]
            self._keep.pop(key, None)
        for key in [k for k, until in self._blocked.items() if until <= now]:
            del self._blocked[key]
        for key in [k for k, n in self._reserved.items() if n <= 0]:
            del self._reserved[key]

    async def take(self, call: Call) -> Stamp | float:
        wait = self.check(call)
        return wait if wait > 0 else self.count(call)

    async def wait_time(self, call: Call) -> float:
        return self.check(call)

    async def sent(self, stamp: Stamp) -> None:
        stamp.at, stamp.done = max(stamp.at, self.clock()), True

    async def block(self, scope: str, key: str, seconds: float) -> None:
        until = self.clock() + seconds
        self._blocked[(scope, key)] = max(self._blocked.get((scope, key), until), until)

    async def blocked_for(self, scope: str, key: str) -> float:
        return max(0.0, self._blocked.get((scope, key), 0.0) - self.clock())

    async def reserve(self, call: Call, key: str) -> Reservation | None:
        if self.check(call) > 0:
            return None
        self._reserved[(call.scope, key)] += 1
        return Reservation(call.scope, key)

    async def take_reserved(self, reservation: Reservation, call: Call) -> Stamp:
        await self.release(reservation)
        return self.count(call)

    async def release(self, reservation: Reservation | None) -> None:
        if reservation is not None and reservation.active:
            reservation.active = False
            self._reserved[(reservation.scope, reservation.key)] -= 1


# ---- on Redis ----------------------------------------------------------------------------------

# KEYS: per rule its calls (a sorted set: member = call id, score = when it counts, in ms; a
# call in flight scores "now + hold" and counts as now), then its reservations (a sorted set
# scored by expiry); then the block keys (their PTTL). ARGV: mode ("take", "peek", "reserve"),
# call id, hold ms, reservation ms, number of rules, the rule to reserve under; then per rule
# its counted span in ms, limit, room and steady (0/1). Returns "0" (taken, or room when
# peeking) or the milliseconds to wait, as a string. The server's clock (TIME) is everyone's.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local mode = ARGV[1]
local hold = tonumber(ARGV[3])
local n = tonumber(ARGV[5])
local wait = 0
for b = 2 * n + 1, #KEYS do
    local ttl = redis.call('PTTL', KEYS[b])
    if ttl > wait then wait = ttl end
end
for i = 1, n do
    local base = 6 + (i - 1) * 4
    local counted = tonumber(ARGV[base + 1])
    local limit = tonumber(ARGV[base + 2])
    local room = tonumber(ARGV[base + 3])
    local steady = ARGV[base + 4] == '1'
    local calls, held = KEYS[2 * i - 1], KEYS[2 * i]
    redis.call('ZREMRANGEBYSCORE', calls, '-inf', '(' .. string.format('%.3f', now - counted))
    redis.call('ZREMRANGEBYSCORE', held, '-inf', string.format('%.3f', now))
    local scores = redis.call('ZRANGE', calls, 0, -1, 'WITHSCORES')
    local recent = {}
    for j = 2, #scores, 2 do
        local s = tonumber(scores[j])
        if s > now then s = now end
        recent[#recent + 1] = s
    end
    table.sort(recent)
    local used = #recent + redis.call('ZCARD', held)
    local w = 0
    if steady and #recent > 0 and used >= math.max(1, math.floor(limit / 2)) then
        w = recent[#recent] + counted / limit - now
    end
    local excess = used - room + 1
    if excess > 0 then
        local untl = now + counted / 4
        if excess <= #recent then untl = recent[excess] + counted end
        if untl - now > w then w = untl - now end
    end
    if w > wait then wait = w end
end
if wait > 0 or mode == 'peek' then
    return string.format('%.3f', wait)
end
if mode == 'take' then
    for i = 1, n do
        local counted = tonumber(ARGV[6 + (i - 1) * 4 + 1])
        redis.call('ZADD', KEYS[2 * i - 1], string.format('%.3f', now + hold), ARGV[2])
        local ttl = math.ceil(counted + hold)
        if redis.call('PTTL', KEYS[2 * i - 1]) < ttl then
            redis.call('PEXPIRE', KEYS[2 * i - 1], ttl)
        end
    end
else
    local i = tonumber(ARGV[6])
    local ttl = tonumber(ARGV[4])
    redis.call('ZADD', KEYS[2 * i], string.format('%.3f', now + ttl), ARGV[2])
    if redis.call('PTTL', KEYS[2 * i]) < ttl then
        redis.call('PEXPIRE', KEYS[2 * i], ttl)
    end
end
return '0'
"""

# KEYS: the calls of one stamp. ARGV: its id, then per key its counted span in ms. A call that
# was answered counts from now (XX: one that has already left the window stays gone).
_SENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i = 1, #KEYS do
    if redis.call('ZADD', KEYS[i], 'XX', 'CH', string.format('%.3f', now), ARGV[1]) > 0 then
        local ttl = math.ceil(tonumber(ARGV[i + 1]))
        if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
    end
end
return 1
"""

# KEYS[1]: a block key. ARGV[1]: milliseconds. A block is only ever lengthened.
_BLOCK = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
    redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
"""

# KEYS: the reservation set, then the calls of the reserved call. ARGV: reservation id, new
# call id, hold ms, then per call key its counted span in ms.
_TAKE_RESERVED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREM', KEYS[1], ARGV[1])
local hold = tonumber(ARGV[3])
for i = 2, #KEYS do
    redis.call('ZADD', KEYS[i], string.format('%.3f', now + hold), ARGV[2])
    local ttl = math.ceil(tonumber(ARGV[i + 2]) + hold)
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"""


class RedisLedger:
    """The ledger shared by every replica through Redis (or Redis Cluster).

    Keys: ``{prefix}:pace:{<scope>}:calls:<key>``, ``...:held:<key>`` and ``...:block:<key>``;
    they expire when they no longer limit anything. A call in flight counts for at most
    ``hold`` seconds (a replica that died mid-call stops holding room after that), a
    reservation for at most ``reservation_seconds``.

    When Redis fails, calls are counted in this process's own :class:`MemoryLedger` instead
    (each replica then keeps the limits on its own), with a warning at most once a minute.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "bot",
        hold: float = 30.0,
        reservation_seconds: float = 300.0,
        fallback: MemoryLedger | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.hold_ms = round(hold * 1000)
        self.reservation_ms = round(reservation_seconds * 1000)
        self.fallback = fallback or MemoryLedger()
        self._warn = OutageLog(client, log, "shared pacing unavailable, pacing this process alone")

    def _key(self, scope: str, kind: str, name: str) -> str:
        from bot.sessions.redis import hash_tag

        return f"{self.prefix}:pace:{{{hash_tag(scope)}}}:{kind}:{name}"

    def _script_args(
        self, call: Call, mode: str, call_id: str, reserve_under: int = 0
    ) -> tuple[list[str], list[str | int]]:
        keys: list[str] = []
        rules: list[str | int] = []
        for rule in call.rules:
            keys += [
                self._key(call.scope, "calls", rule.key),
                self._key(call.scope, "held", rule.key),
            ]
            rules += [
                f"{rule.window.counted * 1000:.3f}",
                rule.window.limit,
                rule.allowed,
                1 if rule.steady else 0,
            ]
        keys += [self._key(call.scope, "block", name) for name in call.blocks]
        head: list[str | int] = [
            mode,
            call_id,
            self.hold_ms,
            self.reservation_ms,
            len(call.rules),
            reserve_under,
        ]
        return keys, head + rules

    def _counted(self, call: Call) -> tuple[float, ...]:
        return tuple(span * 1000 for span in call.spans.values())

    async def _run(self, call: Call, mode: str, call_id: str, reserve_under: int = 0) -> float:
        keys, args = self._script_args(call, mode, call_id, reserve_under)
        answer = await self.client.eval(_TAKE, len(keys), *keys, *args)
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        return max(0.0, float(text) / 1000)

    async def take(self, call: Call) -> Stamp | float:
        stamp = Stamp(call.scope, call.keys, 0.0, local=False, counted=self._counted(call))
        try:
            wait = await self._run(call, "take", stamp.id)
        except redis_errors() as exc:
            self._warn(exc)
            return await self.fallback.take(call)
        return wait if wait > 0 else stamp

    async def wait_time(self, call: Call) -> float:
        try:
            return await self._run(call, "peek", "")
        except redis_errors() as exc:
            self._warn(exc)
            return await self.fallback.wait_time(call)

    async def sent(self, stamp: Stamp) -> None:
        if stamp.local:
            await self.fallback.sent(stamp)
            return
        if stamp.done:
            return
        stamp.done = True
        keys = [self._key(stamp.scope, "calls", name) for name in stamp.keys]
        try:
            await self.client.eval(_SENT, len(keys), *keys, stamp.id, *stamp.counted)
        except redis_errors() as exc:
            self._warn(exc)  # the call then counts as in flight until its hold runs out

    async def block(self, scope: str, key: str, seconds: float) -> None:
        await self.fallback.block(scope, key, seconds)  # honoured here even if Redis is away
        try:
            ms = max(1, math.ceil(seconds * 1000))
            await self.client.eval(_BLOCK, 1, self._key(scope, "block", key), ms)
        except redis_errors() as exc:
            self._warn(exc)

    async def blocked_for(self, scope: str, key: str) -> float:
        local = await self.fallback.blocked_for(scope, key)
        try:
            ms = int(await self.client.pttl(self._key(scope, "block", key)))
        except redis_errors() as exc:
            self._warn(exc)
            return local
        return max(local, ms / 1000 if ms > 0 else 0.0)

    async def reserve(self, call: Call, key: str) -> Reservation | None:
        index = next((i for i, r in enumerate(call.rules, 1) if r.key == key), 0)
        if index == 0:
            raise ValueError(f"no rule of this call is named {key!r}")
        reservation = Reservation(call.scope, key, local=False)
        try:
            wait = await self._run(call, "reserve", reservation.id, index)
        except redis_errors() as exc:
            self._warn(exc)
            return await self.fallback.reserve(call, key)
        return reservation if wait <= 0 else None

    async def take_reserved(self, reservation: Reservation, call: Call) -> Stamp:
        if reservation.local:
            return await self.fallback.take_reserved(reservation, call)
        reservation.active = False
        stamp = Stamp(call.scope, call.keys, 0.0, local=False, counted=self._counted(call))
        keys = [self._key(call.scope, "held", reservation.key)]
        keys += [self._key(call.scope, "calls", name) for name in call.keys]
        try:
            await self.client.eval(
                _TAKE_RESERVED,
                len(keys),
                *keys,
                reservation.id,
                stamp.id,
                self.hold_ms,
                *(f"{c:.3f}" for c in stamp.counted),
            )
        except redis_errors() as exc:
            self._warn(exc)
            return self.fallback.count(call)
        return stamp

    async def release(self, reservation: Reservation | None) -> None:
        if reservation is None or not reservation.active:
            return
        if reservation.local:
            await self.fallback.release(reservation)
            return
        reservation.active = False
        try:
            key = self._key(reservation.scope, "held", reservation.key)
            await self.client.zrem(key, reservation.id)
        except redis_errors() as exc:
            self._warn(exc)  # it expires by itself


def build_ledger(store: SessionStore, *, clock: Callable[[], float] | None = None) -> PaceLedger:
    """Shared by every replica when sessions are in Redis, else this process's own."""
    if on_redis(store):
        return RedisLedger(store.client, prefix=store.prefix)
    return MemoryLedger(clock=clock or time.monotonic)
