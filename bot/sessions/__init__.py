"""Session storage: the protocol, an in-memory store and a Redis (Cluster) store."""

from __future__ import annotations

import logging
import math
import sys
import time
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
    "OutageLog",
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


class OutageLog:
    """Says that Redis failed: at WARNING at most once every ``every`` seconds (DEBUG in
    between, so a long outage is one line a minute), with the client's password hidden
    (``client`` None: there is none to hide)."""

    def __init__(
        self, client: Any | None, logger: logging.Logger, message: str, *, every: float = 60.0
    ) -> None:
        self.logger = logger
        self.message = message
        self.every = every
        self._warned_at = -math.inf
        password = client.get_connection_kwargs().get("password") if client is not None else None
        self._hidden = password if isinstance(password, str) and password else None

    def __call__(self, exc: BaseException) -> None:
        detail = f"{type(exc).__name__}: {exc}"
        if self._hidden:
            detail = detail.replace(self._hidden, "****")
        now = time.monotonic()
        if now - self._warned_at >= self.every:
            self._warned_at = now
            self.logger.warning("%s: %s", self.message, detail)
        else:
            self.logger.debug("%s: %s", self.message, detail)
