"""Session storage: the protocol, an in-memory store and a Redis (Cluster) store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.sessions.base import (
    LockTimeout,
    Message,
    Session,
    SessionStore,
    SessionStoreError,
)
from bot.sessions.memory import MemorySessionStore

if TYPE_CHECKING:
    from bot.sessions.redis import RedisSessionStore

__all__ = [
    "LockTimeout",
    "MemorySessionStore",
    "Message",
    "RedisSessionStore",
    "Session",
    "SessionStore",
    "SessionStoreError",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: redis-py takes ~0.2 s to import and memory-only runs never need it.
    if name == "RedisSessionStore":
        from bot.sessions.redis import RedisSessionStore

        return RedisSessionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
