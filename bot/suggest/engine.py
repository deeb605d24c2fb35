"""Recommendation engines: which catalog items to show when a user accepts a suggestion.

:class:`BuiltinRecommender` ranks the catalog in process (always available, no I/O).
:class:`HttpRecommender` asks an operator's service at ``RECOMMENDER_URL``;
:func:`build_recommender` puts it in front of the built-in one (:class:`FallbackRecommender`),
so an outage, a slow answer or an empty one costs at most the timeout (0.5 s), and nothing
once the circuit breaker is open.

The recommender service contract
--------------------------------

The bot sends ``POST RECOMMENDER_URL`` with ``Content-Type: application/json`` (UTF-8)::

    {
      "user": "tg:5f2c9a...",                 # a pseudonymous id, stable per user; no name
      "lang": "ko",                           # the user's language (ISO 639-1)
      "profile": {"python": 1.0, "performance": 0.42},  # topic id -> interest (> 0, decayed)
      "focus": "python",                      # the topic the user accepted a suggestion about
      "seen": ["jump-to-python"],             # item ids already shown: do not return them
      "limit": 3                              # return at most this many items
    }

and expects, within 0.5 s, HTTP 2xx with a JSON body (at most 256 KiB)::

    {"items": [ITEM, ...]}                    # best first; [] when there is nothing to show

where each ITEM is either a reference to the bot's own catalog, ``{"id": "python-profilers"}``
(an item with none of ``title``, ``url`` and ``topics``; other fields ignored; an id the
catalog does not have is dropped), or a full item (one with any of those three must have all
three)::

    {
      "id": "ext-123",                        # 1-64 of A-Z a-z 0-9 _ . : - (starting alnum)
      "title": {"ko": "...", "en": "..."},    # at least one, each 1-500 characters; or a
                                              # string, in the item's language ("any": English)
      "url": "https://...",                   # http or https, a host, at most 2048 characters
      "topics": ["python"],                   # at least one topic id (non-empty strings)
      "language": "ko" | "en" | "any",        # optional, default "any"
      "published": "2024-05-01",              # optional (YYYY-MM-DD or null)
      "summary": {"ko": "...", "en": "..."}   # optional, like title; other fields are ignored
    }

The bot shows at most ``limit`` items, never one whose id is in ``seen`` (nor one id twice),
even if the service returns them. Any of these is an error and the bot uses its built-in
ranking instead: no answer within the timeout, no connection, a status other than 2xx, a body
that is not JSON, too large, not ``{"items": [...]}``, or any item that breaks the rules
above (the whole answer is rejected, not just the item). An answer with no items left also
falls back to the built-in ranking. Answers are cached for 5 minutes per (user, lang, focus,
seen, limit). After repeated errors (half of at least 5 calls within a minute) the service is
not called for 30 s, then one call probes it. No secret is sent; responses are never logged
whole (errors name the status, the item index and the field).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import aiohttp

from bot.glm.breaker import Breaker, CircuitBreaker, Verdict
from bot.suggest.catalog import Catalog, CatalogError, CatalogItem, parse_item

__all__ = [
    "BuiltinRecommender",
    "FallbackRecommender",
    "HttpRecommender",
    "RecommendRequest",
    "Recommender",
    "RecommenderError",
    "build_recommender",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecommendRequest:
    """What to recommend for: ``focus`` is the topic of the accepted suggestion, ``profile``
    the user's interest scores by topic (any positive scale), ``seen`` the item ids already
    shown to this user."""

    user: str  # pseudonymous: it is sent to the recommender service
    lang: str
    profile: Mapping[str, float]
    focus: str
    seen: frozenset[str] = frozenset()
    limit: int = 3


class Recommender(Protocol):
    async def recommend(self, request: RecommendRequest) -> list[CatalogItem]:
        """At most ``request.limit`` items, best first; none of ``request.seen``."""
        ...


class RecommenderError(Exception):
    """The recommender service gave no usable answer (or was not called: breaker open)."""


def _utc_today() -> date:
    return datetime.now(UTC).date()


# ---- the built-in ranking -------------------------------------------------------------------

HALF_LIFE_DAYS = 365.0
# Freshness moves a score by at most 30 %: a reference written years ago (the Python
# tutorial) is still worth showing, and a three-year-old item about the focus and another
# topic the user cares about as much beats a new one about the focus only; of two equally
# relevant items the newer one wins.
FRESHNESS_WEIGHT = 0.3
# An undated item counts as one half-life old: neither preferred to dated items nor buried.
UNDATED_FRESHNESS = 0.5
# By the item's language for a Korean user: Korean first, language-neutral next, English last
# but kept (Korean developers read English documentation; many good resources exist only in
# English), so an English item comes first only when it is much (1.43 times) more relevant.
# For everyone else (the bot's own strings fall back to English too): English first,
# then neutral; Korean items are left out, since few of them can read them.
_LANGUAGE_FACTOR: dict[str, dict[str, float]] = {
    "ko": {"ko": 1.0, "any": 0.9, "en": 0.7},
    "en": {"en": 1.0, "any": 0.9},
}


class BuiltinRecommender:
    """Content-based ranking of the catalog's items about the focus topic.

    score = relevance × freshness × language, highest first, ties by item id (so the same
    request always gets the same answer):

    * relevance: the cosine of the item's topics and the profile (up to the profile's norm,
      the same for every item), where the focus topic weighs 1 and every other topic its
      score over the profile's highest score. An item about the focus and another topic the
      user cares about beats one about the focus only; one tagged with many topics the user
      does not care about loses to a focused one.
    * freshness: ``1 - w + w × 0.5 ** (age / HALF_LIFE_DAYS)`` with ``w = FRESHNESS_WEIGHT``
      (undated: as if one half-life old; dated in the future: as if new).
    * language: see ``_LANGUAGE_FACTOR``.

    Only items tagged with the focus topic, none in ``seen``. Pure: no I/O, O(items about the
    focus) per call.
    """

    __slots__ = ("catalog", "clock")

    def __init__(self, catalog: Catalog, *, clock: Callable[[], date] = _utc_today) -> None:
        self.catalog = catalog
        self.clock = clock  # today's date, for the freshness

    async def recommend(self, request: RecommendRequest) -> list[CatalogItem]:
        return self.rank(request)

    def rank(self, request: RecommendRequest) -> list[CatalogItem]:
        """:meth:`recommend` without the coroutine."""
        if request.limit < 1:
            return []
        factors = _LANGUAGE_FACTOR["ko" if request.lang == "ko" else "en"]
        weights = _weights(request.profile, request.focus)
        today = self.clock().toordinal()
        seen = request.seen
        scored: list[tuple[float, str, CatalogItem]] = []
        for item in self.catalog.with_topic(request.focus):
            language = factors.get(item.language)
            if language is None or item.id in seen:
                continue
            topics = item.topics
            relevance = sum(weights.get(t, 0.0) for t in topics) / math.sqrt(len(topics))
            if item.published is None:
                fresh = UNDATED_FRESHNESS
            else:
                age = max(0, today - item.published.toordinal())
                fresh = 0.5 ** (age / HALF_LIFE_DAYS)
            score = relevance * (1.0 - FRESHNESS_WEIGHT + FRESHNESS_WEIGHT * fresh) * language
            scored.append((-score, item.id, item))
        return [entry[2] for entry in heapq.nsmallest(request.limit, scored)]

    async def close(self) -> None:
        return None


def _weights(profile: Mapping[str, float], focus: str) -> dict[str, float]:
    """Topic weights in [0, 1]: the profile over its highest score, the focus 1."""
    usable = {
        topic: float(score)
        for topic, score in profile.items()
        if isinstance(score, int | float) and math.isfinite(score) and score > 0
    }
    top = max(usable.values(), default=0.0)
    weights = {topic: score / top for topic, score in usable.items()}
    weights[focus] = 1.0
    return weights


# ---- the recommender service ------------------------------------------------------------------

MAX_BODY = 256 * 1024
_CacheKey = tuple[str, str, str, frozenset[str], int]


class HttpRecommender:
    """The operator's recommender service (the contract is in the module docstring).

    Errors raise :class:`RecommenderError`. ``breaker`` (in this process by default) makes
    an outage cost nothing once it is open; answers (empty ones too) are cached for
    ``cache_ttl`` seconds, at most ``cache_size`` of them (least recently stored go first).
    The HTTP session is created lazily in the running loop by ``session_factory`` (one
    connection pool for every call) and closed by :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        catalog: Catalog,
        *,
        timeout: float = 0.5,
        breaker: Breaker | None = None,
        cache_ttl: float = 300.0,
        cache_size: int = 10_000,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.url = url
        self.catalog = catalog
        self.timeout = timeout
        # Opens sooner than the model's: every failed call delays the user's button by up
        # to the timeout, and the built-in ranking is a good answer meanwhile.
        self.breaker: Breaker = (
            breaker
            if breaker is not None
            else CircuitBreaker(window_seconds=60.0, min_calls=5, open_seconds=30.0)
        )
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self.clock = clock
        self._session_factory = session_factory or self._default_session
        self._session: aiohttp.ClientSession | None = None
        self._cache: OrderedDict[_CacheKey, tuple[float, tuple[CatalogItem, ...]]] = OrderedDict()

    def _default_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=20, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def recommend(self, request: RecommendRequest) -> list[CatalogItem]:
        if request.limit < 1:
            return []
        key: _CacheKey = (request.user, request.lang, request.focus, request.seen, request.limit)
        cached = self._cached(key)
        if cached is not None:
            return list(cached)
        if not await self.breaker.admit():
            raise RecommenderError("circuit breaker is open: the service was not called")
        verdict: Verdict = "failure"
        try:
            items = await self._call(request)
            verdict = "success"
        except asyncio.CancelledError:
            verdict = "ignored"  # the caller gave up: says nothing about the service
            raise
        finally:
            await self.breaker.report(verdict)
        self._store(key, items)
        return list(items)

    def _cached(self, key: _CacheKey) -> tuple[CatalogItem, ...] | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            del self._cache[key]
            return None
        return entry[1]

    def _store(self, key: _CacheKey, items: tuple[CatalogItem, ...]) -> None:
        if self.cache_ttl <= 0:
            return
        self._cache[key] = (self.clock() + self.cache_ttl, items)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _call(self, request: RecommendRequest) -> tuple[CatalogItem, ...]:
        body = json.dumps(_payload(request), ensure_ascii=False, allow_nan=False).encode()
        try:
            async with (
                asyncio.timeout(self.timeout),
                self._http().post(
                    self.url,
                    data=body,
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as resp,
            ):
                status = resp.status
                raw = await _read_capped(resp)
        except TimeoutError:
            raise RecommenderError(f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise RecommenderError(f"{type(exc).__name__}: {exc}"[:200]) from exc
        if not 200 <= status < 300:
            raise RecommenderError(f"HTTP {status}")
        return self._parse(raw, request)

    def _parse(self, raw: bytes, request: RecommendRequest) -> tuple[CatalogItem, ...]:
        try:
            data = json.loads(raw)
        except ValueError:  # UnicodeDecodeError too
            raise RecommenderError(f"the body is not JSON ({len(raw)} bytes)") from None
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise RecommenderError('the body is not {"items": [...]}')
        items: list[CatalogItem] = []
        unknown = 0
        for index, entry in enumerate(data["items"]):
            if not isinstance(entry, dict):
                raise RecommenderError(f"items[{index}]: expected an object")
            if not entry.keys() & {"title", "url", "topics"}:
                item_id = entry.get("id")
                if not isinstance(item_id, str) or not item_id:
                    raise RecommenderError(f"items[{index}]: id: expected a non-empty string")
                found = self.catalog.get(item_id)
                if found is None:
                    unknown += 1
                    continue
                items.append(found)
                continue
            try:
                items.append(parse_item(entry, extra_fields=True, default_language="any"))
            except CatalogError as exc:
                raise RecommenderError(f"items[{index}]: {'; '.join(exc.problems)}") from None
        if unknown:
            log.info("recommender service: %d item id(s) not in the catalog, dropped", unknown)
        shown: list[CatalogItem] = []
        ids: set[str] = set()
        for item in items:
            if item.id in request.seen or item.id in ids:
                continue
            ids.add(item.id)
            shown.append(item)
            if len(shown) == request.limit:
                break
        return tuple(shown)


def _payload(request: RecommendRequest) -> dict[str, Any]:
    return {
        "user": request.user,
        "lang": request.lang,
        "profile": {
            topic: float(score)
            for topic, score in request.profile.items()
            if isinstance(score, int | float) and math.isfinite(score) and score > 0
        },
        "focus": request.focus,
        "seen": sorted(request.seen),
        "limit": request.limit,
    }


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """The body, or :class:`RecommenderError` once it passes ``MAX_BODY`` bytes."""
    if resp.content_length is not None and resp.content_length > MAX_BODY:
        raise RecommenderError(f"the body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise RecommenderError(f"the body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# ---- the fallback ----------------------------------------------------------------------------


class FallbackRecommender:
    """``primary``'s answer, else ``fallback``'s: when the primary fails (any exception, an
    open breaker included) or has nothing to show.

    A failure is logged as a warning at most once every ``warn_every`` seconds (DEBUG in
    between: an outage is one line a minute), and the recovery once. An empty answer is not a
    failure (the service may know nothing better): DEBUG only.
    """

    def __init__(
        self,
        primary: Recommender,
        fallback: Recommender,
        *,
        warn_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.warn_every = warn_every
        self.clock = clock
        self.failing = False
        self._warned_at = -math.inf

    async def recommend(self, request: RecommendRequest) -> list[CatalogItem]:
        try:
            items = await self.primary.recommend(request)
        except Exception as exc:
            self._failed(exc)
            return await self.fallback.recommend(request)
        if self.failing:
            self.failing = False
            log.info("the recommender service answers again")
        if not items:
            log.debug("the recommender service had nothing for focus=%s; built-in", request.focus)
            return await self.fallback.recommend(request)
        return items

    def _failed(self, exc: Exception) -> None:
        self.failing = True
        detail = exc if isinstance(exc, RecommenderError) else f"{type(exc).__name__}: {exc}"
        now = self.clock()
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            log.warning("recommender service failed, using the built-in ranking: %s", detail)
        else:
            log.debug("recommender service failed: %s", detail)

    async def close(self) -> None:
        for engine in (self.primary, self.fallback):
            # The engines here have close(); a test's stub may not.
            close = getattr(engine, "close", None)
            if close is not None:
                await close()


def build_recommender(
    catalog: Catalog, url: str | None
) -> BuiltinRecommender | FallbackRecommender:
    """The built-in ranking, behind the service at ``url`` (``RECOMMENDER_URL``) if set.

    Either is a :class:`Recommender` with a ``close()`` to await at shutdown."""
    builtin = BuiltinRecommender(catalog)
    if not url:
        return builtin
    return FallbackRecommender(HttpRecommender(url, catalog), builtin)
