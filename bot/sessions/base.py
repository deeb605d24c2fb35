"""The SessionStore protocol and the Session document every backend stores."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bot.turn import SessionKey

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class SessionStoreError(Exception):
    """The store could not be reached or answered wrongly; the turn cannot be remembered."""


class LockTimeout(SessionStoreError):
    """Another turn of the same session held the lock for too long."""


@dataclass(slots=True)
class Message:
    """One entry of the conversation history."""

    role: str  # "user" | "assistant" | "system"
    content: str
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, "ts": self.ts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(role=str(data["role"]), content=str(data["content"]), ts=float(data["ts"]))


@dataclass(slots=True)
class Session:
    """Everything remembered about one conversation, stored as one JSON document."""

    key: str
    history: list[Message] = field(default_factory=list)
    form: dict[str, Any] | None = None  # the running slot-filling form, if any
    state: dict[str, Any] = field(default_factory=dict)  # dialogue state: last intent and slots
    summary: str = ""  # summary of history that no longer fits the context window
    meta: dict[str, Any] = field(default_factory=dict)  # language, user name, counters
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": SCHEMA_VERSION,
                "key": self.key,
                "history": [m.to_dict() for m in self.history],
                "form": self.form,
                "state": self.state,
                "summary": self.summary,
                "meta": self.meta,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Session:
        data = json.loads(raw)
        return cls(
            key=str(data["key"]),
            history=[Message.from_dict(m) for m in data.get("history", [])],
            form=data.get("form"),
            state=dict(data.get("state") or {}),
            summary=str(data.get("summary") or ""),
            meta=dict(data.get("meta") or {}),
            created_at=float(data.get("created_at", time.time())),
            updated_at=float(data.get("updated_at", time.time())),
        )


@runtime_checkable
class SessionStore(Protocol):
    """Where sessions live. Implementations: ``MemorySessionStore``, ``RedisSessionStore``.

    Every method may raise ``SessionStoreError`` when the backend is unavailable.
    """

    async def load(self, key: SessionKey) -> Session:
        """The stored session, or a new empty one (not yet saved) when there is none."""
        ...

    async def save(self, session: Session) -> None:
        """Store the session and refresh its TTL."""
        ...

    async def delete(self, key: SessionKey) -> bool:
        """Forget the session; True when something was deleted."""
        ...

    def lock(self, key: SessionKey) -> AbstractAsyncContextManager[None]:
        """Serialise the turns of one session (within and across processes)."""
        ...

    async def claim_delivery(self, delivery_id: str, ttl_seconds: int = 86_400) -> bool:
        """True the first time a platform delivery id is seen, False for a re-delivery."""
        ...

    def keys(self) -> AsyncIterator[str]:
        """Every stored session key (for admin tools and tests)."""
        ...

    # --- indexes: what is stored for a user or a chat, so no command scans the keyspace ---

    async def index_add(self, index: str, members: Iterable[str], ttl_seconds: int) -> None:
        """Add ``members`` to the set ``index``; the set then lives at least ``ttl_seconds``."""
        ...

    async def index_members(self, index: str) -> set[str]:
        """The members of ``index`` (empty when there is none)."""
        ...

    async def index_remove(self, index: str, members: Iterable[str]) -> None:
        """Remove ``members`` from ``index``."""
        ...

    async def index_drop(self, index: str) -> None:
        """Delete the whole set ``index``."""
        ...

    # --- records: documents that are not a conversation (e.g. bookings), per tenant ---

    async def put_record(
        self, kind: str, tenant: str, record_id: str, data: dict[str, Any], ttl_seconds: int
    ) -> None:
        """Store ``data`` for ``ttl_seconds``; never evicted before that (unlike sessions)."""
        ...

    async def recent_records(self, kind: str, tenant: str, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` live records of ``kind`` of ``tenant`` with the greatest ids, greatest
        first (give records ids that sort by time to list the newest first)."""
        ...

    async def get_record(self, kind: str, tenant: str, record_id: str) -> dict[str, Any] | None:
        """One live record, or None."""
        ...

    async def delete_record(self, kind: str, tenant: str, record_id: str) -> bool:
        """Delete one record; True when it existed."""
        ...

    async def ping(self) -> None:
        """Raise ``SessionStoreError`` when the backend is unreachable."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


async def first_delivery(store: SessionStore, delivery: str, ttl_seconds: int) -> bool:
    """``store.claim_delivery``, and True when the store cannot tell: better to risk answering a
    re-delivery twice than to drop a message."""
    try:
        return await store.claim_delivery(delivery, ttl_seconds)
    except SessionStoreError as exc:
        log.warning("dedupe unavailable, answering anyway: %s", exc)
        return True
