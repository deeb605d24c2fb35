"""A SessionStore on Redis or Redis Cluster: one JSON document per session and a shared lock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from bot.sessions.base import LockTimeout, Session, SessionStoreError
from bot.sessions.memory import KeyedLocks
from bot.turn import SessionKey

log = logging.getLogger(__name__)

RedisClient: TypeAlias = "Redis | RedisCluster"

# A session's lock lives this long past its last renewal (renewed every third of it while its
# turn runs): a process that dies mid-turn frees its sessions within this time, so the turn it
# left can be taken over (bot.journal) well within half a minute.
LOCK_TIMEOUT = 15.0

# Every failure of the client library; OSError covers socket errors that escape unwrapped
# (the builtin TimeoutError is one of them).
_BACKEND_ERRORS = (RedisError, RedisClusterException, OSError)

# Compare-and-delete: only the holder of the token may release the lock. One key only, so
# it runs unchanged on Redis Cluster.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

# Compare-and-extend: the holder keeps its lock alive while a long turn (a long streamed
# answer) runs; a lock that expired or changed hands is left alone.
_EXTEND_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# Fenced save: a turn writes its session only while it still holds the session's lock, so a
# turn whose lock expired (a loop blocked for a minute) cannot overwrite the next turn's
# history. Both keys carry the same hash tag, so it runs on Redis Cluster too.
_FENCED_SAVE_SCRIPT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""

# Add members to an index set and make it live at least ARGV[1] seconds (never shorter than
# it already does: a user's index outlives each of the things it lists).
_INDEX_ADD_SCRIPT = """
redis.call('sadd', KEYS[1], unpack(ARGV, 2))
if redis.call('ttl', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('expire', KEYS[1], ARGV[1])
end
return 1
"""

# A record and its place in the tenant's newest-first list, in one step; both keys carry the
# tenant's hash tag. The list lives as long as its longest-lived record.
_RECORD_PUT_SCRIPT = """
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('zadd', KEYS[2], ARGV[3], ARGV[4])
if redis.call('ttl', KEYS[2]) < tonumber(ARGV[2]) then
    redis.call('expire', KEYS[2], ARGV[2])
end
return 1
"""

_RECORD_DELETE_SCRIPT = """
redis.call('zrem', KEYS[2], ARGV[1])
return redis.call('del', KEYS[1])
"""

# The Redis locks the current task holds, by session key: save() fences writes with them.
_HELD: ContextVar[dict[str, str] | None] = ContextVar("redis_session_locks", default=None)

_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]+$")  # no glob characters (SCAN) and no braces (slots)
_ESCAPES = {"%": "%25", "{": "%7B", "}": "%7D"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_ESCAPED = re.compile("%25|%7B|%7D")


def hash_tag(name: str) -> str:
    """The session key as a hash tag body: braces escaped, so the whole key is the tag.

    A raw '}' would end the tag early and could split one session's keys across slots;
    escaping is injective and leaves ordinary keys (no '%', '{', '}') unchanged.
    """
    return "".join(_ESCAPES.get(c, c) for c in name)


def _untag(tag: str) -> str:
    return _ESCAPED.sub(lambda m: _UNESCAPES[m.group(0)], tag)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _password_of(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        # An unparsable URL: hide everything between '://' and '@' instead.
        match = re.search(r"://([^@/]*)@", url)
        return [match.group(1)] if match else []
    if not password:
        return []
    return [password, unquote(password)]


def make_client(
    url: str,
    *,
    cluster: bool,
    connect_timeout: float = 1.0,
    socket_timeout: float = 2.0,
) -> RedisClient:
    """A redis-py asyncio client for ``url``; it connects lazily on the first command.

    Short timeouts make a dead Redis fail the turn in about a second instead of hanging it.
    Recovery after a Redis restart needs nothing from the caller: the pool replaces
    connections the server closed, and one quick retry covers a connection that breaks
    while a command is in flight.
    """
    secrets_in_url = _password_of(url)
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
    }
    try:
        if cluster:
            return RedisCluster.from_url(
                url,
                retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=2),
                **options,
            )
        return Redis.from_url(
            url,
            retry=Retry(
                ExponentialBackoff(cap=0.1, base=0.01),
                retries=1,
                # Not TimeoutError: a command that timed out may have run, and a second
                # wait would double the time a user waits on a dead server.
                supported_errors=(RedisConnectionError,),
            ),
            **options,
        )
    except (*_BACKEND_ERRORS, ValueError, TypeError) as exc:
        raise SessionStoreError(f"invalid Redis URL: {_redact(str(exc), secrets_in_url)}") from None


def _redact(text: str, hidden: Iterable[str]) -> str:
    for secret in hidden:
        if secret:
            text = text.replace(secret, "****")
    return text


class RedisSessionStore:
    """Sessions in Redis (standalone or Cluster).

    Keys: ``{prefix}:session:{<key>}`` holds the JSON document, ``{prefix}:lock:{<key>}``
    the lock token (same hash tag, so same cluster slot), ``{prefix}:delivery:<id>`` the
    de-duplication marks.

    The lock expires ``lock_timeout`` seconds after it was last renewed; while its turn runs
    the holder renews it every third of that, so a long answer keeps its session while a
    crashed or hung process loses it within ``lock_timeout``.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        ttl_seconds: int,
        lock_timeout: float = LOCK_TIMEOUT,
        lock_wait: float = 30.0,
        prefix: str = "bot",
        redact: Iterable[str] = (),
        renew_lock: bool = True,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        if lock_timeout <= 0 or lock_wait < 0:
            raise ValueError("lock_timeout must be positive and lock_wait not negative")
        if not _PREFIX.match(prefix):
            raise ValueError("prefix may contain only letters, digits and _ . : -")
        self._client = client
        self.ttl_seconds = int(ttl_seconds)
        self.lock_timeout = lock_timeout
        self.lock_wait = lock_wait
        self.prefix = prefix
        self._lock_ms = max(1, int(lock_timeout * 1000))
        self._renew = renew_lock  # False only in tests that play a hung holder
        self._local = KeyedLocks()
        hidden = set(redact)
        password = client.get_connection_kwargs().get("password")
        if isinstance(password, str) and password:
            hidden.add(password)
        # Longest first, so a secret that contains another is replaced whole.
        self._hidden = sorted(hidden, key=len, reverse=True)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        ttl_seconds: int,
        lock_timeout: float = LOCK_TIMEOUT,
        lock_wait: float = 30.0,
        prefix: str = "bot",
        connect_timeout: float = 1.0,
        socket_timeout: float = 2.0,
        renew_lock: bool = True,
    ) -> RedisSessionStore:
        """A store with its own client for ``url`` (``cluster=True`` for Redis Cluster)."""
        client = make_client(
            url, cluster=cluster, connect_timeout=connect_timeout, socket_timeout=socket_timeout
        )
        return cls(
            client,
            ttl_seconds=ttl_seconds,
            lock_timeout=lock_timeout,
            lock_wait=lock_wait,
            prefix=prefix,
            redact=_password_of(url),
            renew_lock=renew_lock,
        )

    @property
    def client(self) -> RedisClient:
        return self._client

    # --- key layout -------------------------------------------------------------------

    def session_key(self, key: SessionKey | str) -> str:
        return f"{self.prefix}:session:{{{hash_tag(str(key))}}}"

    def lock_key(self, key: SessionKey | str) -> str:
        return f"{self.prefix}:lock:{{{hash_tag(str(key))}}}"

    def delivery_key(self, delivery_id: str) -> str:
        return f"{self.prefix}:delivery:{delivery_id}"

    def index_key(self, index: str) -> str:
        return f"{self.prefix}:index:{{{hash_tag(index)}}}"

    def record_key(self, kind: str, tenant: str, record_id: str) -> str:
        return f"{self.prefix}:record:{{{hash_tag(f'{kind}:{tenant}')}}}:{record_id}"

    def records_key(self, kind: str, tenant: str) -> str:
        return f"{self.prefix}:records:{{{hash_tag(f'{kind}:{tenant}')}}}"

    # --- errors -----------------------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> SessionStoreError:
        detail = _redact(str(exc), self._hidden) or type(exc).__name__
        return SessionStoreError(f"Redis {what} failed: {type(exc).__name__}: {detail}")

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        try:
            yield
        except _BACKEND_ERRORS as exc:
            error = self._error(what, exc)
            if any(s in repr(exc) for s in self._hidden):
                # Keep the secret out of tracebacks too.
                raise error from None
            raise error from exc

    # --- SessionStore -----------------------------------------------------------------

    async def load(self, key: SessionKey) -> Session:
        name = str(key)
        with self._translate("load"):
            raw = _text(await self._client.get(self.session_key(name)))
        if raw is None:
            return Session(key=name)
        try:
            return Session.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionStoreError(f"stored session {name} is unreadable: {exc}") from exc

    async def save(self, session: Session) -> None:
        raw = session.to_json()
        token = (_HELD.get() or {}).get(session.key)
        with self._translate("save"):
            if token is None:  # not under this session's lock (e.g. a form submission)
                await self._client.set(self.session_key(session.key), raw, ex=self.ttl_seconds)
                return
            saved = await self._client.eval(
                _FENCED_SAVE_SCRIPT,
                2,
                self.lock_key(session.key),
                self.session_key(session.key),
                token,
                raw,
                self.ttl_seconds,
            )
        if not saved:
            raise SessionStoreError(
                f"session {session.key} not saved: its lock expired or passed to another turn"
            )

    async def delete(self, key: SessionKey) -> bool:
        with self._translate("delete"):
            deleted = await self._client.delete(self.session_key(key))
        return int(deleted) > 0

    def lock(self, key: SessionKey) -> AbstractAsyncContextManager[None]:
        return self._lock(str(key))

    @asynccontextmanager
    async def _lock(self, name: str) -> AsyncIterator[None]:
        deadline = asyncio.get_running_loop().time() + self.lock_wait
        # Turns of one session in this process queue here, so only one of them at a time
        # polls Redis; the Redis lock then serialises against other processes.
        async with self._local.hold(name, self.lock_wait):
            lock_key = self.lock_key(name)
            token = await self._acquire(name, lock_key, deadline)
            held = _HELD.set({**(_HELD.get() or {}), name: token})
            keeper = (
                asyncio.create_task(self._keep(name, lock_key, token), name=f"lock:{name}")
                if self._renew
                else None
            )
            try:
                yield
            finally:
                if keeper is not None:
                    keeper.cancel()
                # Exited from another context (a generator finalised by the collector): the
                # variable there never held this lock, so there is nothing to undo.
                with contextlib.suppress(ValueError):
                    _HELD.reset(held)
                # Shielded: a cancelled turn must still give the lock back at once rather
                # than block the session until the lock expires.
                await asyncio.shield(self._release(name, lock_key, token))

    async def _acquire(self, name: str, lock_key: str, deadline: float) -> str:
        loop = asyncio.get_running_loop()
        token = secrets.token_hex(16)
        delay = 0.005
        try:
            while True:
                with self._translate("lock"):
                    if await self._client.set(lock_key, token, nx=True, px=self._lock_ms):
                        return token
                    # A retried SET whose first attempt did succeed sees its own token.
                    if _text(await self._client.get(lock_key)) == token:
                        return token
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise LockTimeout(
                        f"session {name} is busy: lock not free within {self.lock_wait:g}s"
                    )
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.1)
        except SessionStoreError:
            # LockTimeout: the last poll saw another token, nothing of ours to give back.
            # Redis failing: a release would most likely fail (slowly) as well, and a lock
            # we might hold expires after lock_timeout anyway.
            raise
        except BaseException:
            # Cancelled while a SET may have succeeded without us seeing the reply: give
            # back a lock we might hold (the script only deletes our own token).
            await asyncio.shield(self._release(name, lock_key, token))
            raise

    async def _keep(self, name: str, lock_key: str, token: str) -> None:
        """Renew the lock every third of its lifetime until cancelled or lost."""
        try:
            await self._renew_until_lost(name, lock_key, token)
        except Exception:  # a bug here must not go unseen, nor end the turn
            log.exception("lock renewal of session %s stopped", name)

    async def _renew_until_lost(self, name: str, lock_key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.lock_timeout / 3)
            kept = await self._owner_script("renew", _EXTEND_SCRIPT, name, lock_key, token)
            if kept == 0:
                # Expired (the loop was blocked for lock_timeout) or taken: nothing to renew.
                log.warning("lock of session %s was lost while its turn ran", name)
                return
            # None (Redis failing): try again next time; the lock lasts two more intervals.

    async def _release(self, name: str, lock_key: str, token: str) -> None:
        # A failure is not raised: the turn's work is done, and the lock expires by itself.
        released = await self._owner_script("release", _RELEASE_SCRIPT, name, lock_key, token)
        if released == 0:
            log.debug("lock of session %s was not held at release", name)

    async def _owner_script(
        self, what: str, script: str, name: str, lock_key: str, token: str
    ) -> int | None:
        """Run a compare-token script on the lock; None (logged) when Redis fails."""
        try:
            return int(await self._client.eval(script, 1, lock_key, token, self._lock_ms))
        except _BACKEND_ERRORS as exc:
            log.warning(
                "could not %s the lock of session %s: %s", what, name, self._error(what, exc)
            )
            return None

    async def claim_delivery(self, delivery_id: str, ttl_seconds: int = 86_400) -> bool:
        key = self.delivery_key(delivery_id)
        token = secrets.token_hex(8)
        with self._translate("claim_delivery"):
            if await self._client.set(key, token, nx=True, ex=max(1, int(ttl_seconds))):
                return True
            # A retried SET whose first attempt did succeed must still count as first.
            return _text(await self._client.get(key)) == token

    async def keys(self) -> AsyncIterator[str]:
        head = f"{self.prefix}:session:{{"
        # On Redis Cluster, scan_iter walks every primary; SCAN may repeat a key, so dedupe.
        seen: set[str] = set()
        iterator = self._client.scan_iter(match=f"{head}*", count=1000)
        while True:
            with self._translate("scan"):
                try:
                    raw = await anext(iterator)
                except StopAsyncIteration:
                    return
            key = _text(raw)
            if key is None or not key.startswith(head) or not key.endswith("}"):
                continue
            name = _untag(key[len(head) : -1])
            if name not in seen:
                seen.add(name)
                yield name

    # --- indexes -----------------------------------------------------------------------

    async def index_add(self, index: str, members: Iterable[str], ttl_seconds: int) -> None:
        items = list(members)
        if not items:
            return
        with self._translate("index_add"):
            await self._client.eval(
                _INDEX_ADD_SCRIPT, 1, self.index_key(index), max(1, int(ttl_seconds)), *items
            )

    async def index_members(self, index: str) -> set[str]:
        with self._translate("index_members"):
            found = await self._client.smembers(self.index_key(index))
        return {m for m in (_text(v) for v in found) if m is not None}

    async def index_remove(self, index: str, members: Iterable[str]) -> None:
        items = list(members)
        if items:
            with self._translate("index_remove"):
                await self._client.srem(self.index_key(index), *items)

    async def index_drop(self, index: str) -> None:
        with self._translate("index_drop"):
            await self._client.delete(self.index_key(index))

    # --- records -----------------------------------------------------------------------

    async def put_record(
        self, kind: str, tenant: str, record_id: str, data: dict[str, Any], ttl_seconds: int
    ) -> None:
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        with self._translate("put_record"):
            await self._client.eval(
                _RECORD_PUT_SCRIPT,
                2,
                self.record_key(kind, tenant, record_id),
                self.records_key(kind, tenant),
                raw,
                max(1, int(ttl_seconds)),
                0,  # one score for all: the listing is ordered by id (ids sort by time)
                record_id,
            )

    async def recent_records(self, kind: str, tenant: str, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        listing = self.records_key(kind, tenant)
        found: list[dict[str, Any]] = []
        start = 0
        with self._translate("recent_records"):
            while len(found) < limit:
                ids = [
                    _text(i) or ""
                    for i in await self._client.zrevrange(listing, start, start + limit - 1)
                ]
                if not ids:
                    break
                start += len(ids)
                # Same hash tag as the listing: one slot, so MGET works on a cluster too.
                docs = await self._client.mget([self.record_key(kind, tenant, i) for i in ids])
                gone = []
                for record_id, doc in zip(ids, docs, strict=True):
                    raw = _text(doc)
                    if raw is None:
                        gone.append(record_id)  # expired: drop it from the listing
                        continue
                    found.append(json.loads(raw))
                if gone:
                    await self._client.zrem(listing, *gone)
                    start -= len(gone)
        return found[:limit]

    async def get_record(self, kind: str, tenant: str, record_id: str) -> dict[str, Any] | None:
        with self._translate("get_record"):
            raw = _text(await self._client.get(self.record_key(kind, tenant, record_id)))
        if raw is None:
            return None
        found: dict[str, Any] = json.loads(raw)
        return found

    async def delete_record(self, kind: str, tenant: str, record_id: str) -> bool:
        with self._translate("delete_record"):
            deleted = await self._client.eval(
                _RECORD_DELETE_SCRIPT,
                2,
                self.record_key(kind, tenant, record_id),
                self.records_key(kind, tenant),
                record_id,
            )
        return int(deleted) > 0

    async def ping(self) -> None:
        with self._translate("ping"):
            await self._client.ping()

    async def close(self) -> None:
        with self._translate("close"):
            await self._client.aclose()
