"""TurnJournal: every inbound turn is written down before the platform is told it arrived.

With Redis (``RedisTurnJournal``) the journal is a set of Redis Streams with one consumer
group. A channel calls ``record`` before it acknowledges a delivery (Telegram: before the
``getUpdates`` offset that confirms it, or the webhook's 200; Slack: before the ack); one Lua
call de-duplicates the delivery, appends the turn to its stream and delivers it to this
process's consumer, so the entry sits in the group's pending-entries list under our name.
``done`` (XACK + XDEL) follows once the answer was delivered and the session saved.

Each process keeps a heartbeat key alive. A process that dies (SIGKILL, a lost machine)
stops renewing it; within ``takeover_seconds`` a live process (another replica, or the same
bot started again) claims the dead consumer's pending entries with XCLAIM and answers them,
with a short note that the answer was resumed. A turn whose answer reached the user but that
was not marked done yet is recognised by the session's record of answered deliveries and is
not answered twice.

Order: one user's turns stay in order across processes. Before a turn runs, ``earlier``
looks for older pending entries of the same session held by other consumers: a dead
consumer's are claimed and answered first; a live one's are waited for (bounded).

Without Redis (``TurnJournal``) nothing outlives the process: ``record`` only de-duplicates
and ``done`` does nothing (the README says what is durable in which mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from bot.sessions import on_redis, redis_errors
from bot.sessions.base import SessionStore, SessionStoreError, first_delivery
from bot.turn import SessionKey

if TYPE_CHECKING:
    from bot.sessions.redis import RedisClient, RedisSessionStore

log = logging.getLogger(__name__)

SHARDS = 8  # streams per platform: a Redis Cluster spreads them over its masters
GROUP = "turns"
TAKEOVER_SECONDS = 10.0  # a consumer without a heartbeat this long is dead
SWEEP_SECONDS = 2.0  # how often live processes look for a dead one's turns
CLAIM_MIN_IDLE_MS = 1000  # two processes racing for one entry: the first XCLAIM wins
ORDER_WAIT_SECONDS = 30.0  # a turn waits at most this long for an earlier one elsewhere
MAX_AGE_SECONDS = 86_400.0  # a turn older than this is dropped rather than answered
ANSWERED_MEMORY = 16  # deliveries a session remembers as answered
BEGUN_MEMORY = 10_000  # entry ids a process remembers having begun


# Record a delivery once: mark it seen (same hash tag as the stream), append it and deliver
# it to this consumer at once, so it is pending under our name from the start. Every entry
# is added by this script and read in the same call, so the entry '>' reads is the new one.
_RECORD_SCRIPT = """
if not redis.call('set', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
    return false
end
redis.pcall('xgroup', 'create', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local id = redis.call('xadd', KEYS[1], '*', 'p', ARGV[4], 's', ARGV[5], 'd', ARGV[6],
    'b', ARGV[7])
redis.call('xreadgroup', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
return id
"""


# Take or keep a lease: free or ours, it is (re)set to us; held by another, the holder.
_LEASE_SCRIPT = """
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then
    return holder
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# Compare-and-delete: a lease is given back only by its holder.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class JournalUnavailable(SessionStoreError):
    """The journal could not record a delivery: the channel must not acknowledge it."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One recorded inbound turn: what the platform handed over, and where it is kept."""

    platform: str
    session: str  # the session key (str), for ordering and the answered check
    delivery: str  # ``Turn.delivery_key``
    payload: dict[str, Any]  # the platform's own update or event, as JSON
    stream: str = ""  # empty: not durable (in-memory mode)
    id: str = ""
    recovered: bool = False  # taken over from a process that died

    @property
    def key(self) -> str:
        """Unique across the streams (an entry id is unique within its stream only: two
        streams on two Cluster masters give out the same id in the same millisecond)."""
        return f"{self.stream} {self.id}"


class Resumer(Protocol):
    """A channel's way back into a recorded turn (the journal knows no platform)."""

    def resume_later(self, entry: JournalEntry) -> None:
        """Queue ``entry`` behind its session's turns in this process."""

    async def resume_now(self, entry: JournalEntry) -> None:
        """Answer ``entry`` now (its session's place in line is already ours)."""


def answered(meta: dict[str, Any], delivery: str) -> bool:
    """Whether a session's ``meta`` records ``delivery`` as answered (see ``note_answered``)."""
    return delivery in (meta.get("answered") or [])


def note_answered(meta: dict[str, Any], delivery: str) -> None:
    """Remember in a session's ``meta`` that ``delivery`` was answered (saved with it)."""
    if not delivery:
        return
    seen = [d for d in (meta.get("answered") or []) if isinstance(d, str) and d != delivery]
    meta["answered"] = [*seen[-(ANSWERED_MEMORY - 1) :], delivery]


class TurnJournal:
    """The in-memory journal: de-duplication only; nothing survives the process."""

    durable = False

    def __init__(self, store: SessionStore, *, dedupe_ttl_seconds: int = 86_400) -> None:
        self.store = store
        self.dedupe_ttl_seconds = dedupe_ttl_seconds
        self.resumers: dict[str, Resumer] = {}
        # Entries begun (and, most recent first, finished): a recovered turn can reach
        # ``process`` twice, through the sweep and through a later turn's order check.
        self._begun: OrderedDict[str, None] = OrderedDict()

    def register(self, platform: str, resumer: Resumer) -> None:
        """Turns of ``platform`` left by a dead process are handed to ``resumer``."""
        self.resumers[platform] = resumer

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def stop_taking_over(self) -> None:
        """Shutting down: take no more turns from dead processes (the heartbeat goes on)."""
        return None

    async def record(
        self, platform: str, delivery: str, session: str, payload: dict[str, Any]
    ) -> JournalEntry | None:
        """The entry for a new delivery, or None for a re-delivery (already recorded)."""
        if not await first_delivery(self.store, delivery, self.dedupe_ttl_seconds):
            return None
        return JournalEntry(platform, session, delivery, payload)

    async def process(self, entry: JournalEntry, run: Callable[[], Awaitable[object]]) -> None:
        """Answer ``entry`` with ``run`` (which handles its own failures), after any earlier
        turn of its session that a dead process left; then mark it done.

        A cancelled ``run`` (shutdown past its grace) leaves the entry for the next process.
        """
        if entry.id:
            if entry.key in self._begun:
                return  # a recovered turn reached by two paths (the sweep and an order check)
            self._begun[entry.key] = None
            while len(self._begun) > BEGUN_MEMORY:
                self._begun.popitem(last=False)
        try:
            for early in await self.earlier(entry):
                resumer = self.resumers.get(early.platform)
                if resumer is not None:
                    await resumer.resume_now(early)
            if entry.recovered and await self._was_answered(entry):
                log.info("resumed turn %s was answered before its process died", entry.id)
            else:
                await run()
        except BaseException:
            self._begun.pop(entry.key, None)  # not finished: the next process takes it
            raise
        await self.done(entry)

    async def earlier(self, entry: JournalEntry) -> list[JournalEntry]:
        """Older turns of ``entry``'s session that this process must answer first."""
        return []

    @property
    def lease_seconds(self) -> float:
        """How long a lease outlives a process that died holding it."""
        return 0.0

    async def lease(self, name: str) -> str | None:
        """Hold ``name`` for as long as this process lives (e.g. the one Telegram poller of a
        bot); None when held, else who holds it. In memory there is only this process."""
        return None

    async def done(self, entry: JournalEntry) -> None:
        return None

    async def _was_answered(self, entry: JournalEntry) -> bool:
        try:
            session = await self.store.load(SessionKey.parse(entry.session))
        except (SessionStoreError, ValueError):
            return False
        return answered(session.meta, entry.delivery)


class RedisTurnJournal(TurnJournal):
    """Turns in Redis Streams (one consumer group, pending-entry claims); see the module."""

    durable = True

    def __init__(
        self,
        store: RedisSessionStore,
        *,
        dedupe_ttl_seconds: int = 86_400,
        consumer: str | None = None,
        takeover_seconds: float = TAKEOVER_SECONDS,
        sweep_seconds: float = SWEEP_SECONDS,
        order_wait_seconds: float = ORDER_WAIT_SECONDS,
    ) -> None:
        super().__init__(store, dedupe_ttl_seconds=dedupe_ttl_seconds)
        self.client: RedisClient = store.client
        self.prefix = store.prefix
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.takeover_seconds = takeover_seconds
        self.sweep_seconds = sweep_seconds
        self.order_wait_seconds = order_wait_seconds
        self._claimed: dict[str, JournalEntry] = {}  # recovered, handed to a channel, not begun
        self._unacked: dict[str, JournalEntry] = {}  # done, but Redis did not take the XACK
        self._tasks: list[asyncio.Task[None]] = []
        self._leases: set[str] = set()

    # --- keys -------------------------------------------------------------------------

    def stream_key(self, platform: str, session: str) -> str:
        shard = zlib.crc32(session.encode("utf-8")) % SHARDS
        return self._stream(platform, shard)

    def _stream(self, platform: str, shard: int) -> str:
        from bot.sessions.redis import hash_tag

        return f"{self.prefix}:journal:{{{hash_tag(f'{platform}:{shard}')}}}"

    def alive_key(self, consumer: str) -> str:
        return f"{self.prefix}:journal:alive:{consumer}"

    def lease_key(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Heartbeat at once, then keep it and sweep for dead processes' turns."""
        with contextlib.suppress(SessionStoreError):
            await self._beat()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self.takeover_seconds / 3, self._beat), name="journal"),
            loop.create_task(self._every(self.sweep_seconds, self.sweep), name="journal-sweep"),
        ]

    def stop_taking_over(self) -> None:
        for task in self._tasks:
            if task.get_name() == "journal-sweep":
                task.cancel()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        # Turns still pending under our name, and our leases, are free to take at once.
        with contextlib.suppress(*redis_errors()):
            await self.client.delete(self.alive_key(self.consumer))
            for name in self._leases:
                await self.client.eval(_RELEASE_SCRIPT, 1, self.lease_key(name), self.consumer)

    async def _every(self, seconds: float, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await work()
            except SessionStoreError as exc:
                log.warning("journal: %s", exc)
            except Exception:
                log.exception("journal: background work failed")
            await asyncio.sleep(seconds)

    async def _beat(self) -> None:
        ttl = max(1, round(self.takeover_seconds * 1000))
        with self._translate("heartbeat"):
            await self.client.set(self.alive_key(self.consumer), str(time.time()), px=ttl)
            for name in self._leases:
                holder = await self.client.eval(
                    _LEASE_SCRIPT, 1, self.lease_key(name), self.consumer, ttl
                )
                if holder:
                    log.error("journal: lease %s was taken over by %s", name, holder)
        for entry in list(self._unacked.values()):
            await self.done(entry)

    @property
    def lease_seconds(self) -> float:
        return self.takeover_seconds

    async def lease(self, name: str) -> str | None:
        ttl = max(1, round(self.takeover_seconds * 1000))
        with self._translate("lease"):
            holder = await self.client.eval(
                _LEASE_SCRIPT, 1, self.lease_key(name), self.consumer, ttl
            )
        if holder:
            return str(holder)
        self._leases.add(name)  # renewed with the heartbeat, released at close
        return None

    # --- recording --------------------------------------------------------------------

    async def record(
        self, platform: str, delivery: str, session: str, payload: dict[str, Any]
    ) -> JournalEntry | None:
        stream = self.stream_key(platform, session)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        try:
            entry_id = await self.client.eval(
                _RECORD_SCRIPT,
                2,
                stream,
                f"{stream}:seen:{delivery}",
                GROUP,
                self.consumer,
                self.dedupe_ttl_seconds,
                platform,
                session,
                delivery,
                body,
            )
        except redis_errors() as exc:
            raise JournalUnavailable(f"journal record failed: {type(exc).__name__}") from exc
        if not entry_id:
            return None
        return JournalEntry(platform, session, delivery, payload, stream, str(entry_id))

    async def done(self, entry: JournalEntry) -> None:
        if not entry.id:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.xack(entry.stream, GROUP, entry.id)
                pipe.xdel(entry.stream, entry.id)
                await pipe.execute()
        except redis_errors() as exc:
            # Still pending under our (live) name, so nobody takes it over; retried with
            # the next heartbeat.
            log.warning("journal: turn %s not marked done yet: %s", entry.id, exc)
            self._unacked[entry.key] = entry
            return
        self._unacked.pop(entry.key, None)
        self._claimed.pop(entry.key, None)

    # --- takeover ---------------------------------------------------------------------

    async def sweep(self) -> list[JournalEntry]:
        """Claim the turns of consumers without a heartbeat and hand them to their channels."""
        found: list[JournalEntry] = []
        for platform in list(self.resumers):
            for shard in range(SHARDS):
                found.extend(await self._sweep_stream(self._stream(platform, shard)))
        for entry in found:
            self._hand_over(entry)
        return found

    async def _sweep_stream(self, stream: str) -> list[JournalEntry]:
        from redis.exceptions import ResponseError

        with self._translate("sweep"):
            try:
                consumers = await self.client.xinfo_consumers(stream, GROUP)
            except ResponseError:
                return []  # no stream or no group yet: nothing was recorded here
            claimed: list[JournalEntry] = []
            for info in consumers:
                name = str(info.get("name"))
                if name == self.consumer:
                    continue
                if int(info.get("pending") or 0) == 0:
                    if int(info.get("idle") or 0) > self.takeover_seconds * 1000:
                        await self.client.xgroup_delconsumer(stream, GROUP, name)
                    continue
                if await self.client.exists(self.alive_key(name)):
                    continue
                pending = await self.client.xpending_range(
                    stream, GROUP, "-", "+", 100, consumername=name
                )
                ids = [str(p["message_id"]) for p in pending]
                claimed.extend(await self._claim(stream, ids))
        return claimed

    async def _claim(self, stream: str, ids: list[str]) -> list[JournalEntry]:
        if not ids:
            return []
        claim_ids: list[str | bytes | int | memoryview[int]] = list(ids)
        got = cast(
            list[tuple[str, dict[str, Any] | None]],
            await self.client.xclaim(stream, GROUP, self.consumer, CLAIM_MIN_IDLE_MS, claim_ids),
        )
        entries = []
        for entry_id, fields in got:
            entry = self._entry(stream, str(entry_id), fields)
            if entry is None:
                continue
            if _age_seconds(entry.id) > MAX_AGE_SECONDS:
                log.warning("journal: turn %s is over a day old and was dropped", entry.id)
                await self.done(entry)
                continue
            log.info("journal: took over turn %s session=%s", entry.id, entry.session)
            entries.append(entry)
        return entries

    def _hand_over(self, entry: JournalEntry) -> None:
        resumer = self.resumers.get(entry.platform)
        if resumer is None or entry.key in self._claimed or entry.key in self._begun:
            return
        self._claimed[entry.key] = entry
        resumer.resume_later(entry)

    @staticmethod
    def _entry(stream: str, entry_id: str, fields: dict[str, Any] | None) -> JournalEntry | None:
        if not fields:
            return None  # deleted meanwhile
        try:
            payload = json.loads(fields["b"])
            return JournalEntry(
                str(fields["p"]),
                str(fields["s"]),
                str(fields["d"]),
                payload,
                stream,
                entry_id,
                recovered=True,
            )
        except (KeyError, ValueError, TypeError) as exc:
            log.error("journal: unreadable entry %s dropped: %s", entry_id, exc)
            return None

    # --- order ------------------------------------------------------------------------

    async def earlier(self, entry: JournalEntry) -> list[JournalEntry]:
        if not entry.id:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.order_wait_seconds
        while True:
            first, waiting = await self._earlier_once(entry)
            if not waiting or loop.time() >= deadline:
                if waiting:
                    log.warning(
                        "journal: turn %s runs before an earlier one still answered elsewhere",
                        entry.id,
                    )
                return first
            await asyncio.sleep(0.25)

    async def _earlier_once(self, entry: JournalEntry) -> tuple[list[JournalEntry], bool]:
        """Older entries of the session to answer here first, and whether one is still
        being answered by a live process (then they all wait, to keep the order)."""
        try:
            with self._translate("order check"):
                pending = await self.client.xpending_range(
                    entry.stream, GROUP, "-", f"({entry.id}", 100
                )
                # Our own live turns are ordered in this process already.
                others = [
                    p
                    for p in pending
                    if p["consumer"] != self.consumer
                    or f"{entry.stream} {p['message_id']!s}" in self._claimed
                ]
                if not others:
                    return [], False
                async with self.client.pipeline(transaction=False) as pipe:
                    for p in others:
                        pipe.xrange(entry.stream, p["message_id"], p["message_id"])
                    rows = await pipe.execute()
                mine: list[JournalEntry] = []
                for p, row in zip(others, rows, strict=True):
                    if not row or row[0][1].get("s") != entry.session:
                        continue
                    entry_id, owner = str(p["message_id"]), str(p["consumer"])
                    if owner == self.consumer:
                        mine.append(self._claimed.pop(f"{entry.stream} {entry_id}"))
                    elif await self.client.exists(self.alive_key(owner)):
                        return [], True
                    else:
                        mine.extend(await self._claim(entry.stream, [entry_id]))
        except SessionStoreError as exc:
            log.warning("journal: order check skipped: %s", exc)
            return [], False
        for early in mine:
            self._claimed.pop(early.key, None)
        return [e for e in mine if e.key not in self._begun], False

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis_errors() as exc:
            raise SessionStoreError(f"journal {what} failed: {type(exc).__name__}") from exc


def _age_seconds(entry_id: str) -> float:
    try:
        return time.time() - int(entry_id.split("-", 1)[0]) / 1000
    except ValueError:
        return 0.0


def build_journal(store: SessionStore, *, dedupe_ttl_seconds: int = 86_400) -> TurnJournal:
    """Durable with Redis, de-duplication only in memory."""
    if on_redis(store):
        return RedisTurnJournal(store, dedupe_ttl_seconds=dedupe_ttl_seconds)
    return TurnJournal(store, dedupe_ttl_seconds=dedupe_ttl_seconds)
