"""An in-process SessionStore: a bounded LRU with TTL, for one process or tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bot.sessions.base import LockTimeout, Session, SessionStoreError
from bot.turn import SessionKey

Clock = Callable[[], float]


@dataclass(slots=True)
class _LockEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders plus waiters; the entry is dropped when it reaches zero


class KeyedLocks:
    """One ``asyncio.Lock`` per name, created on demand and dropped when nobody uses it.

    Dropping unused locks keeps the dict as small as the number of sessions with a turn
    in flight, instead of growing with every session ever seen.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _LockEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, name: str, wait: float) -> AsyncIterator[None]:
        """Hold the lock of ``name``; ``LockTimeout`` when it is not free within ``wait``."""
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = _LockEntry()
        entry.users += 1
        try:
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    await entry.lock.acquire()
            except TimeoutError:
                raise LockTimeout(
                    f"session {name} is busy: lock not free within {wait:g}s"
                ) from None
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0 and self._entries.get(name) is entry:
                del self._entries[name]


class MemorySessionStore:
    """Sessions in a dict: lost on restart, bounded by ``max_sessions`` (least recently used
    go first) and by ``ttl_seconds`` since the last save."""

    def __init__(
        self,
        max_sessions: int = 10_000,
        ttl_seconds: int = 30 * 86_400,
        clock: Clock = time.monotonic,
        *,
        lock_wait: float = 30.0,
        max_deliveries: int = 100_000,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.max_sessions = max_sessions
        self.ttl_seconds = ttl_seconds
        self.lock_wait = lock_wait
        self.max_deliveries = max_deliveries
        self._clock = clock
        # key -> (expires_at, JSON). JSON rather than the object, so that a caller mutating
        # a loaded session changes nothing here until it saves.
        self._sessions: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._deliveries: OrderedDict[str, float] = OrderedDict()
        self._locks = KeyedLocks()
        # Indexes and records are not bounded by the LRU: a booking or the list of a user's
        # sessions must not vanish because many others chatted since. Both expire.
        self._indexes: dict[str, tuple[float, set[str]]] = {}
        # (kind, tenant) -> id -> (expires_at, JSON)
        self._records: dict[tuple[str, str], dict[str, tuple[float, str]]] = {}

    async def load(self, key: SessionKey) -> Session:
        name = str(key)
        entry = self._sessions.get(name)
        if entry is None:
            return Session(key=name)
        expires_at, raw = entry
        if expires_at <= self._clock():
            del self._sessions[name]
            return Session(key=name)
        self._sessions.move_to_end(name)
        try:
            return Session.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionStoreError(f"stored session {name} is unreadable: {exc}") from exc

    async def save(self, session: Session) -> None:
        raw = session.to_json()
        self._sessions[session.key] = (self._clock() + self.ttl_seconds, raw)
        self._sessions.move_to_end(session.key)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    async def delete(self, key: SessionKey) -> bool:
        entry = self._sessions.pop(str(key), None)
        return entry is not None and entry[0] > self._clock()

    def lock(self, key: SessionKey) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(str(key), self.lock_wait)

    async def claim_delivery(self, delivery_id: str, ttl_seconds: int = 86_400) -> bool:
        now = self._clock()
        expires_at = self._deliveries.get(delivery_id)
        if expires_at is not None and expires_at > now:
            return False
        self._deliveries[delivery_id] = now + ttl_seconds
        self._deliveries.move_to_end(delivery_id)
        # Oldest claims go first; once the map is full a very old re-delivery may be
        # answered twice, which beats unbounded memory.
        while len(self._deliveries) > self.max_deliveries:
            self._deliveries.popitem(last=False)
        return True

    async def keys(self) -> AsyncIterator[str]:
        now = self._clock()
        for name, (expires_at, _raw) in list(self._sessions.items()):
            if expires_at > now:
                yield name

    # --- indexes ---

    def _live_index(self, index: str) -> set[str] | None:
        entry = self._indexes.get(index)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._indexes[index]
            return None
        return entry[1]

    async def index_add(self, index: str, members: Iterable[str], ttl_seconds: int) -> None:
        current = self._live_index(index)
        expires_at = self._clock() + ttl_seconds
        if current is None:
            self._indexes[index] = (expires_at, set(members))
            return
        current.update(members)
        self._indexes[index] = (max(expires_at, self._indexes[index][0]), current)

    async def index_members(self, index: str) -> set[str]:
        return set(self._live_index(index) or ())

    async def index_remove(self, index: str, members: Iterable[str]) -> None:
        current = self._live_index(index)
        if current is not None:
            current.difference_update(members)
            if not current:
                del self._indexes[index]

    async def index_drop(self, index: str) -> None:
        self._indexes.pop(index, None)

    # --- records ---

    async def put_record(
        self, kind: str, tenant: str, record_id: str, data: dict[str, Any], ttl_seconds: int
    ) -> None:
        raw = json.dumps(data, ensure_ascii=False)
        records = self._records.setdefault((kind, tenant), {})
        records[record_id] = (self._clock() + ttl_seconds, raw)

    async def recent_records(self, kind: str, tenant: str, limit: int) -> list[dict[str, Any]]:
        records = self._records.get((kind, tenant))
        if not records:
            return []
        now = self._clock()
        for record_id in [i for i, (expires_at, _) in records.items() if expires_at <= now]:
            del records[record_id]
        newest = sorted(records, reverse=True)[:limit]
        return [json.loads(records[i][1]) for i in newest]

    async def get_record(self, kind: str, tenant: str, record_id: str) -> dict[str, Any] | None:
        entry = self._records.get((kind, tenant), {}).get(record_id)
        if entry is None or entry[0] <= self._clock():
            return None
        found: dict[str, Any] = json.loads(entry[1])
        return found

    async def delete_record(self, kind: str, tenant: str, record_id: str) -> bool:
        records = self._records.get((kind, tenant))
        if not records:
            return False
        entry = records.pop(record_id, None)
        return entry is not None and entry[0] > self._clock()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
