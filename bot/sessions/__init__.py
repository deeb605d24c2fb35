"""Session storage: the protocol, an in-memory store and a Redis (Cluster) store."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeGuard

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
    "on_redis",
    "redis_errors",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: redis-py takes ~0.2 s to import and memory-only runs never need it.
    if name == "RedisSessionStore":
        from bot.sessions.redis import RedisSessionStore

        return RedisSessionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def redis_errors() -> tuple[type[Exception], ...]:
    """What a Redis call raises when Redis fails. Imported when first needed: redis-py takes
    0.05-0.1 s and 6 MB to import, which runs without Redis (the terminal chat) never need."""
    from redis.exceptions import RedisClusterException, RedisError

    return (RedisError, RedisClusterException, OSError)


def on_redis(store: SessionStore) -> TypeGuard[RedisSessionStore]:
    """The store is a RedisSessionStore (whose module is then imported already)."""
    module = sys.modules.get("bot.sessions.redis")
    return module is not None and isinstance(store, module.RedisSessionStore)
