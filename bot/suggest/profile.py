"""Interest profiles: the topics a user keeps talking about, decayed over time, in the store.

One profile per user of a platform and workspace (not per chat: what someone is interested in
follows them from their private chat into a group). A topic's score grows by one for each turn
that names it and halves every ``half_life`` (``INTEREST_HALF_LIFE_DAYS``), so "two turns about
Python this week" is a score near 2 and last month's passing mention is near nothing. The
profile also remembers the suggestions made (per topic: when, and what the user answered), the
catalog items already shown, a few recent entities (for ``/interests``) and whether the user
turned suggestions off. It lives as one small JSON document with the sessions' lifetime:
in Redis when sessions are (``{prefix}:interests:{platform:team:user}``, one hash tag per user
so Redis Cluster spreads them), else in memory; ``/forget`` deletes it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.sessions import on_redis
from bot.sessions.base import SessionStore, SessionStoreError
from bot.turn import Turn

log = logging.getLogger(__name__)

PROFILE_VERSION = 1
MAX_TOPICS = 40  # the weakest go first
MAX_ENTITIES = 20  # the oldest go first
MAX_SEEN = 200  # catalog items shown, newest kept


@dataclass(frozen=True, slots=True)
class ProfileKey:
    """Whose profile: a user of one platform and workspace."""

    platform: str
    team: str
    user: str

    @classmethod
    def of(cls, turn: Turn) -> ProfileKey:
        return cls(turn.platform, turn.team_id, turn.user_id)

    def __str__(self) -> str:
        return f"{self.platform}:{self.team}:{self.user}"


@dataclass(slots=True)
class TopicScore:
    score: float  # as of ``at``
    at: float
    mentions: int = 0
    last_seen: float = 0.0


@dataclass(slots=True)
class Offer:
    """A suggestion made about a topic: when, and what became of it."""

    at: float
    answer: str = "offered"  # "offered", "accepted" or "declined"
    answered_at: float = 0.0


@dataclass(slots=True)
class InterestProfile:
    topics: dict[str, TopicScore] = field(default_factory=dict)
    entities: dict[str, float] = field(default_factory=dict)  # entity → last seen
    offers: dict[str, Offer] = field(default_factory=dict)  # topic → the last offer
    seen: list[str] = field(default_factory=list)  # catalog item ids shown, oldest first
    enabled: bool = True
    updated_at: float = 0.0

    # -- scores --

    def score(self, topic: str, now: float, half_life: float) -> float:
        held = self.topics.get(topic)
        if held is None:
            return 0.0
        decay: float = 0.5 ** (max(0.0, now - held.at) / half_life)
        return held.score * decay

    def add(self, topics: Iterable[str], now: float, half_life: float, weight: float = 1.0) -> None:
        """One turn named ``topics``: each grows by ``weight`` (once per turn, however often
        the message repeats it)."""
        for topic in set(topics):
            held = self.topics.get(topic)
            score = self.score(topic, now, half_life) + weight
            mentions = (held.mentions if held is not None else 0) + 1
            self.topics[topic] = TopicScore(score, now, mentions, now)
        if len(self.topics) > MAX_TOPICS:
            ranked = self.ranked(now, half_life)
            self.topics = {t: self.topics[t] for t, _ in ranked[:MAX_TOPICS]}
        self.updated_at = now

    def ranked(self, now: float, half_life: float) -> list[tuple[str, float]]:
        """Topics by decayed score, highest first (ties by name: deterministic)."""
        scored = [(t, self.score(t, now, half_life)) for t in self.topics]
        return sorted(scored, key=lambda ts: (-ts[1], ts[0]))

    def note_entities(self, entities: Iterable[str], now: float) -> None:
        for entity in entities:
            self.entities.pop(entity, None)
            self.entities[entity] = now
        while len(self.entities) > MAX_ENTITIES:
            del self.entities[next(iter(self.entities))]

    def note_seen(self, item_ids: Iterable[str]) -> None:
        for item in item_ids:
            if item in self.seen:
                self.seen.remove(item)
            self.seen.append(item)
        del self.seen[:-MAX_SEEN]

    # -- JSON --

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": PROFILE_VERSION,
            "topics": {
                t: [round(s.score, 4), s.at, s.mentions, s.last_seen]
                for t, s in self.topics.items()
            },
            "entities": self.entities,
            "offers": {t: [o.at, o.answer, o.answered_at] for t, o in self.offers.items()},
            "seen": self.seen,
            "enabled": self.enabled,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: object) -> InterestProfile:
        """The stored profile; a fresh one when it cannot be read (logged)."""
        if not isinstance(data, Mapping) or data.get("v") != PROFILE_VERSION:
            return cls()
        try:
            topics = {
                str(t): TopicScore(float(v[0]), float(v[1]), int(v[2]), float(v[3]))
                for t, v in dict(data.get("topics") or {}).items()
            }
            offers = {
                str(t): Offer(float(v[0]), str(v[1]), float(v[2]))
                for t, v in dict(data.get("offers") or {}).items()
            }
            entities = {str(e): float(at) for e, at in dict(data.get("entities") or {}).items()}
            seen = [str(i) for i in list(data.get("seen") or [])]
            return cls(
                topics,
                entities,
                offers,
                seen,
                bool(data.get("enabled", True)),
                float(data.get("updated_at") or 0.0),
            )
        except (TypeError, ValueError, IndexError, AttributeError):
            log.warning("unreadable interest profile dropped")
            return cls()


class ProfileStore(Protocol):
    async def load(self, key: ProfileKey) -> InterestProfile | None: ...

    async def save(self, key: ProfileKey, profile: InterestProfile, ttl_seconds: int) -> None: ...

    async def delete(self, key: ProfileKey) -> bool: ...


class MemoryProfileStore:
    """Profiles in this process: bounded (least recently used go first), with the TTL."""

    def __init__(
        self, *, max_profiles: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_profiles = max_profiles
        self.clock = clock
        self._profiles: OrderedDict[ProfileKey, tuple[float, str]] = OrderedDict()

    async def load(self, key: ProfileKey) -> InterestProfile | None:
        held = self._profiles.get(key)
        if held is None:
            return None
        expires_at, raw = held
        if expires_at <= self.clock():
            del self._profiles[key]
            return None
        self._profiles.move_to_end(key)
        return InterestProfile.from_dict(json.loads(raw))

    async def save(self, key: ProfileKey, profile: InterestProfile, ttl_seconds: int) -> None:
        self._profiles[key] = (self.clock() + ttl_seconds, json.dumps(profile.to_dict()))
        self._profiles.move_to_end(key)
        while len(self._profiles) > self.max_profiles:
            self._profiles.popitem(last=False)

    async def delete(self, key: ProfileKey) -> bool:
        return self._profiles.pop(key, None) is not None


class RedisProfileStore:
    """Profiles in Redis: one JSON string per user, with the sessions' TTL."""

    def __init__(self, client: Any, *, prefix: str = "bot") -> None:
        from bot.sessions.redis import hash_tag

        self.client = client
        self.prefix = prefix
        self._tag = hash_tag

    def key(self, key: ProfileKey) -> str:
        return f"{self.prefix}:interests:{{{self._tag(str(key))}}}"

    async def load(self, key: ProfileKey) -> InterestProfile | None:
        try:
            raw = await self.client.get(self.key(key))
        except Exception as exc:
            raise SessionStoreError(f"interest profile not loaded: {type(exc).__name__}") from exc
        if raw is None:
            return None
        try:
            return InterestProfile.from_dict(json.loads(raw))
        except ValueError:
            log.warning("unreadable interest profile dropped")
            return InterestProfile()

    async def save(self, key: ProfileKey, profile: InterestProfile, ttl_seconds: int) -> None:
        raw = json.dumps(profile.to_dict(), separators=(",", ":"))
        try:
            await self.client.set(self.key(key), raw, ex=max(1, int(ttl_seconds)))
        except Exception as exc:
            raise SessionStoreError(f"interest profile not saved: {type(exc).__name__}") from exc

    async def delete(self, key: ProfileKey) -> bool:
        try:
            return int(await self.client.delete(self.key(key))) > 0
        except Exception as exc:
            raise SessionStoreError(f"interest profile not deleted: {type(exc).__name__}") from exc


def build_profile_store(store: SessionStore) -> ProfileStore:
    """On the Redis store's client when sessions are in Redis, else in memory."""
    if on_redis(store):
        return RedisProfileStore(store.client, prefix=store.prefix)
    return MemoryProfileStore()
