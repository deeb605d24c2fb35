"""What the store holds for each user and each chat, so /forget and /reset need no key scans.

Two kinds of index sets live in the store (``SessionStore.index_*``):

* ``user:<platform>:<team>:<user>`` lists everything stored for one user: the sessions they
  wrote in (``s|<session key>``, shared ones included) and the records they made
  (``r|<kind>|<tenant>|<id>``, e.g. bookings). ``/forget`` deletes exactly these.
* ``chat:<platform>:<team>:<chat>`` lists the sessions of one chat, for ``/reset all``,
  ``/reset <user>`` and ``/reset thread`` in groups and channels.

A session is entered in both before it is first saved (and again once a day, so the sets
outlive the sessions they list); the session remembers when, in ``meta["indexed"]``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bot.sessions.base import Session, SessionStore
from bot.turn import SessionKey, Turn

log = logging.getLogger(__name__)

REFRESH_SECONDS = 86_400  # how often a session re-enters the indexes (their TTL is renewed)
BACKFILLED = "meta:backfilled:v1"  # an index set that marks a store whose sessions are indexed


def user_index(platform: str, team: str, user: str) -> str:
    return f"user:{SessionKey(platform, team, '', '', user)}"


def chat_index(platform: str, team: str, chat: str) -> str:
    return f"chat:{SessionKey(platform, team, chat)}"


def tenant_of(turn: Turn) -> str:
    """Whose data a turn sees: one Telegram bot, or one Slack workspace."""
    return f"{turn.platform}:{turn.team_id}"


def session_member(key: SessionKey | str) -> str:
    return f"s|{key}"


def record_member(kind: str, tenant: str, record_id: str) -> str:
    return f"r|{kind}|{tenant}|{record_id}"


@dataclass(frozen=True, slots=True)
class RecordRef:
    kind: str
    tenant: str
    record_id: str


def parse_member(member: str) -> SessionKey | RecordRef | None:
    """A user index member as the session key or record it names; None if unreadable."""
    kind, _, rest = member.partition("|")
    try:
        if kind == "s":
            return SessionKey.parse(rest)
        if kind == "r":
            record_kind, tenant, record_id = rest.split("|", 2)
            return RecordRef(record_kind, tenant, record_id)
    except ValueError:
        return None
    return None


class StoredIndex:
    """Keeps the user and chat indexes of a store up to date."""

    def __init__(self, store: SessionStore, *, session_ttl_seconds: int) -> None:
        self.store = store
        # The sets are renewed at most once a day, so they must outlive the sessions by that.
        self.ttl_seconds = session_ttl_seconds + REFRESH_SECONDS

    async def note_session(self, session: Session, turn: Turn) -> None:
        """Enter ``session`` under ``turn``'s user and chat (before it is saved).

        Cheap on the hot path: the store is called only the first time a user writes in a
        session and then once a day. Raises ``SessionStoreError`` like the store.
        """
        indexed = session.meta.get("indexed")
        if not isinstance(indexed, dict):
            indexed = {}
        now = time.time()
        last = indexed.get(turn.user_id)
        if isinstance(last, int | float) and now - last < REFRESH_SECONDS:
            return
        key = SessionKey.parse(session.key)
        await self.store.index_add(
            user_index(turn.platform, turn.team_id, turn.user_id),
            [session_member(session.key)],
            self.ttl_seconds,
        )
        await self.store.index_add(
            chat_index(key.platform, key.team, key.chat), [session.key], self.ttl_seconds
        )
        indexed[turn.user_id] = now
        session.meta["indexed"] = indexed

    async def note_record(self, turn: Turn, ref: RecordRef, ttl_seconds: int) -> None:
        await self.store.index_add(
            user_index(turn.platform, turn.team_id, turn.user_id),
            [record_member(ref.kind, ref.tenant, ref.record_id)],
            max(ttl_seconds, self.ttl_seconds),
        )

    async def chat_sessions(self, platform: str, team: str, chat: str) -> set[SessionKey]:
        found = set()
        for name in await self.store.index_members(chat_index(platform, team, chat)):
            try:
                found.add(SessionKey.parse(name))
            except ValueError:
                continue
        return found

    async def backfill(self) -> int:
        """Index sessions saved before the indexes existed: one walk of the keys, once per
        store (a marker remembers it), so that /forget and /reset find them too.

        A shared session's participants are not known from its key: it enters its chat's
        index only. Returns the number of sessions indexed.
        """
        if await self.store.index_members(BACKFILLED):
            return 0
        count = 0
        async for name in self.store.keys():
            try:
                key = SessionKey.parse(name)
            except ValueError:
                continue
            if key.platform == "form":
                continue  # a booking stored by an older version: it expires with its TTL
            if key.user:
                await self.store.index_add(
                    user_index(key.platform, key.team, key.user),
                    [session_member(name)],
                    self.ttl_seconds,
                )
            await self.store.index_add(
                chat_index(key.platform, key.team, key.chat), [name], self.ttl_seconds
            )
            count += 1
        await self.store.index_add(BACKFILLED, ["done"], 100 * 365 * 86_400)
        if count:
            log.info("indexed %d sessions stored by an earlier version", count)
        return count
