"""Suggestions: from what a user keeps talking about to "관련 자료를 추천드릴까요?" with buttons.

Per turn, off the answer's path (``Suggestions.begin`` starts a task when the model is asked;
the answer streams meanwhile):

1. the user's message is read for topics (``TopicGazetteer``: Korean and English surface forms
   to topic ids) and entities (Kiwi's nouns);
2. the user's interest profile is loaded and the topics scored (``InterestProfile.add``);
3. the policy (``choose``) picks a topic of this message whose score crossed the threshold, not
   offered within its cooldown (longer after a "no"), with no other offer to this user lately,
   suggestions not turned off;
4. the recommender (built-in over the catalog, or an external engine with the built-in as its
   fallback) must have unseen items for it, or nothing is offered.

When the answer is complete (never after a fallback, a cut answer, a blocked message or during
a form: the manager asks only then), the offer is added under the answer, in the user's
language and naming the topic, with two buttons that only this user may press. The profile is
saved afterwards, in the background, with the topics of the answer's headings at half weight
and the offer made. Pressing a button runs ``/suggestions accept <topic>`` or
``/suggestions decline <topic>``: up to three items with links, or a longer cooldown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.commands import Caller
from bot.forms.korean import KoreanAnalyzer
from bot.i18n import localized
from bot.reply import Button
from bot.sessions import OutageLog
from bot.sessions.base import SessionStoreError
from bot.suggest.catalog import CatalogItem
from bot.suggest.engine import Recommender, RecommendRequest
from bot.suggest.profile import InterestProfile, Offer, ProfileKey, ProfileStore
from bot.suggest.topics import TopicGazetteer, entities, headings
from bot.turn import Turn

log = logging.getLogger(__name__)

DAY = 86_400.0

TEXT: dict[str, dict[str, str]] = {
    "offer": {
        "ko": "💡 {topic}에 관심 있으시면 관련 자료를 추천드릴까요?",
        "en": "💡 You seem interested in {topic}. Shall I recommend some resources?",
    },
    "accept_button": {"ko": "추천 받기", "en": "Yes, show me"},
    "decline_button": {"ko": "괜찮아요", "en": "No, thanks"},
    "items": {"ko": "{topic} 관련 추천 자료예요:", "en": "Resources on {topic}:"},
    "no_items": {
        "ko": "지금은 {topic} 관련해서 새로 추천할 자료가 없어요.",
        "en": "I have nothing new to recommend on {topic} right now.",
    },
    "declined": {
        "ko": "알겠어요. 당분간 {topic} 관련 추천은 드리지 않을게요.",
        "en": "Got it. I won't suggest anything on {topic} for a while.",
    },
    "stale": {
        "ko": "이 제안은 이미 답하셨거나 기한이 지났어요.",
        "en": "This suggestion was already answered or has expired.",
    },
    "off": {
        "ko": "추천을 껐어요. 다시 받으려면 /suggestions on 을 보내 주세요.",
        "en": "Suggestions are off. Send /suggestions on to get them again.",
    },
    "on": {
        "ko": "추천을 켰어요. 자주 이야기하는 주제에 맞는 자료를 가끔 추천해 드릴게요.",
        "en": "Suggestions are on: now and then I'll offer resources on topics you talk about.",
    },
    "status": {
        "ko": "추천: {state}. 사용법: /suggestions on 또는 /suggestions off",
        "en": "Suggestions: {state}. Usage: /suggestions on or /suggestions off",
    },
    "state_on": {"ko": "켜짐", "en": "on"},
    "state_off": {"ko": "꺼짐", "en": "off"},
    "interests_empty": {
        "ko": "아직 기록된 관심 주제가 없어요. (추천: {state})",
        "en": "No interests recorded yet. (Suggestions: {state})",
    },
    "interests_head": {"ko": "자주 이야기한 주제:", "en": "Topics you talk about:"},
    "interests_line": {
        "ko": "• {topic} — 점수 {score:.1f}, {mentions}회, 마지막 {last}",
        "en": "• {topic} — score {score:.1f}, {mentions} turns, last {last}",
    },
    "interests_entities": {"ko": "최근 언급: {entities}", "en": "Recently mentioned: {entities}"},
    "interests_tail": {
        "ko": "추천: {state} · 본 자료 {seen}개 · /suggestions off 로 끄고, /forget 으로 지울 수 "
        "있어요.",
        "en": "Suggestions: {state} · {seen} items seen · /suggestions off turns them off, "
        "/forget deletes all this.",
    },
    "unavailable": {
        "ko": "지금은 관심사 기록을 불러올 수 없어요. 잠시 후 다시 시도해 주세요.",
        "en": "I can't reach the interest records right now. Please try again shortly.",
    },
}


def say(key: str, lang: str, **values: object) -> str:
    return localized(TEXT[key], lang, **values)


@dataclass(frozen=True, slots=True)
class SuggestConfig:
    """The policy's numbers; the composition root fills ``half_life_days`` from the settings."""

    half_life_days: float = 14.0  # INTEREST_HALF_LIFE_DAYS
    threshold: float = 1.8  # a topic named in two turns within a few days
    cooldown_days: float = 7.0  # the same topic is not offered again before this
    decline_cooldown_days: float = 30.0  # ... or this, after a "no thanks"
    min_gap_hours: float = 6.0  # between two offers to one user, whatever the topics
    offer_wait_seconds: float = 0.3  # the final answer waits at most this for the offer
    ttl_seconds: int = 30 * 86_400  # SESSION_TTL_DAYS: profiles live as long as sessions
    max_items: int = 3
    heading_weight: float = 0.5  # topics of the answer's headings count half

    @property
    def half_life(self) -> float:
        return self.half_life_days * DAY


def choose(
    profile: InterestProfile, named: Sequence[str], now: float, config: SuggestConfig
) -> list[str]:
    """The topics to offer now: of those this message names (in its order), the ones past the
    threshold and out of their cooldowns, at most two ("파이썬·성능 최적화"); the first is
    the offer's focus. Empty when nothing is to be offered."""
    if not profile.enabled or not named:
        return []
    last = max((o.at for o in profile.offers.values()), default=0.0)
    if now - last < config.min_gap_hours * 3600:
        return []
    chosen: list[str] = []
    for topic in named:
        if topic in chosen or profile.score(topic, now, config.half_life) < config.threshold:
            continue
        offer = profile.offers.get(topic)
        if offer is not None:
            declined = offer.answer == "declined"
            cooldown = config.decline_cooldown_days if declined else config.cooldown_days
            if now - max(offer.at, offer.answered_at) < cooldown * DAY:
                continue
        chosen.append(topic)
    return chosen[:2]


@dataclass(slots=True)
class _Prepared:
    profile: InterestProfile
    topics: list[str] = field(default_factory=list)  # the focus first; empty: no offer
    items: list[CatalogItem] = field(default_factory=list)


class Suggestions:
    """The suggestion pipeline and its commands (``/interests``, ``/suggestions``)."""

    def __init__(
        self,
        topics: TopicGazetteer,
        profiles: ProfileStore,
        recommender: Recommender,
        *,
        analyzer: KoreanAnalyzer | None = None,
        config: SuggestConfig | None = None,
        pepper: bytes = b"",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topics = topics
        self.profiles = profiles
        self.recommender = recommender
        self.analyzer = analyzer
        self.config = config or SuggestConfig()
        self.pepper = pepper
        self.clock = clock
        # The store's errors carry no password (SessionStoreError names the failure only).
        self.outages = OutageLog(None, log, "interest profiles unavailable")
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[ProfileKey, asyncio.Lock] = {}

    # ---- per turn --------------------------------------------------------------------------

    def begin(self, turn: Turn, text: str, lang: str) -> SuggestionTurn:
        """This turn's part; its work starts with ``start`` (a task, beside the answer)."""
        return SuggestionTurn(self, turn, text, lang)

    async def drain(self) -> None:
        """Wait for the profiles being saved (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        close = getattr(self.recommender, "close", None)
        if close is not None:
            await close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lock(self, key: ProfileKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _load(self, key: ProfileKey) -> InterestProfile:
        return await self.profiles.load(key) or InterestProfile()

    def pseudonym(self, key: ProfileKey) -> str:
        """The user as an external recommender sees them: a keyed hash, no platform id."""
        digest = hashlib.blake2b(str(key).encode(), key=self.pepper[:64], digest_size=12)
        return digest.hexdigest()

    async def _recommend(
        self, key: ProfileKey, profile: InterestProfile, topic: str, lang: str
    ) -> list[CatalogItem]:
        now = self.clock()
        request = RecommendRequest(
            user=self.pseudonym(key),
            lang=lang,
            profile={t: round(s, 3) for t, s in profile.ranked(now, self.config.half_life)[:10]},
            focus=topic,
            seen=frozenset(profile.seen),
            limit=self.config.max_items,
        )
        return list(await self.recommender.recommend(request))[: self.config.max_items]

    # ---- commands --------------------------------------------------------------------------

    def commands(self) -> list[_Command]:
        """``/interests`` and ``/suggestions``, for the command router."""
        return [_Command(("interests",), self.interests), _Command(("suggestions",), self.run)]

    async def interests(self, args: Sequence[str], caller: Caller) -> str:
        """``/interests``: the profile as it stands."""
        try:
            return await self._interests(ProfileKey.of(caller.turn), caller.lang)
        except SessionStoreError as exc:
            self.outages(exc)
            return say("unavailable", caller.lang)

    async def run(self, args: Sequence[str], caller: Caller) -> str:
        """``/suggestions [on|off]``, and the buttons' ``/suggestions accept|decline TOPIC``."""
        turn, lang = caller.turn, caller.lang
        key = ProfileKey.of(turn)
        try:
            action = args[0].lower() if args else ""
            if action in ("on", "off", "켜기", "끄기"):
                return await self._enable(key, action in ("on", "켜기"), lang)
            if action in ("accept", "decline") and len(args) > 1:
                return await self._answer(key, args[1], action == "accept", lang)
            profile = await self._load(key)
            state = say("state_on" if profile.enabled else "state_off", lang)
            return say("status", lang, state=state)
        except SessionStoreError as exc:
            self.outages(exc)
            return say("unavailable", lang)

    async def forget(self, turn: Turn) -> None:
        """``/forget``: the profile goes with everything else."""
        await self.profiles.delete(ProfileKey.of(turn))

    async def _interests(self, key: ProfileKey, lang: str) -> str:
        profile = await self._load(key)
        state = say("state_on" if profile.enabled else "state_off", lang)
        now = self.clock()
        ranked = [(t, s) for t, s in profile.ranked(now, self.config.half_life) if s >= 0.05]
        if not ranked and not profile.entities:
            return say("interests_empty", lang, state=state)
        lines = [say("interests_head", lang)] if ranked else []
        for topic, score in ranked[:10]:
            held = profile.topics[topic]
            last = datetime.fromtimestamp(held.last_seen, UTC).strftime("%Y-%m-%d")
            lines.append(
                say(
                    "interests_line",
                    lang,
                    topic=self.topics.name(topic, lang),
                    score=score,
                    mentions=held.mentions,
                    last=last,
                )
            )
        if profile.entities:
            recent = sorted(profile.entities, key=lambda e: -profile.entities[e])[:10]
            lines.append(say("interests_entities", lang, entities=", ".join(recent)))
        lines.append(say("interests_tail", lang, state=state, seen=len(profile.seen)))
        return "\n".join(lines)

    async def _enable(self, key: ProfileKey, enabled: bool, lang: str) -> str:
        async with self._lock(key):
            profile = await self._load(key)
            profile.enabled = enabled
            profile.updated_at = self.clock()
            await self.profiles.save(key, profile, self.config.ttl_seconds)
        return say("on" if enabled else "off", lang)

    async def _answer(self, key: ProfileKey, topic: str, accepted: bool, lang: str) -> str:
        """A pressed button: the offer about ``topic`` answered (once; a stale one says so)."""
        now = self.clock()
        async with self._lock(key):
            profile = await self._load(key)
            offer = profile.offers.get(topic)
            fresh = self.config.cooldown_days * DAY
            if offer is None or offer.answer != "offered" or now - offer.at > fresh:
                return say("stale", lang)
            answer = "accepted" if accepted else "declined"
            together = [topic]  # the topics named in the same offer are answered with it
            for other, made in list(profile.offers.items()):
                if made.at == offer.at and made.answer == "offered":
                    profile.offers[other] = Offer(made.at, answer, answered_at=now)
                    together += [other] if other != topic else []
            name = "·".join(self.topics.name(t, lang) for t in together)
            if not accepted:
                await self.profiles.save(key, profile, self.config.ttl_seconds)
                return say("declined", lang, topic=name)
            items = await self._recommend(key, profile, topic, lang)
            profile.note_seen(item.id for item in items)
            await self.profiles.save(key, profile, self.config.ttl_seconds)
        if not items:
            return say("no_items", lang, topic=name)
        listed = "\n".join(f"• [{_link_text(item.title_in(lang))}]({item.url})" for item in items)
        return f"{say('items', lang, topic=name)}\n{listed}"


def _in_order(topics: TopicGazetteer, text: str, analyzer: KoreanAnalyzer | None) -> list[str]:
    """The topics ``text`` names, in the order it names them."""
    ordered: list[str] = []
    for hit in topics.find(text, analyzer):
        ordered.extend(t for t in hit.topics if t not in ordered)
    return ordered


class _Command:
    """One of the pipeline's commands, as the command router takes them (``ExtraCommand``)."""

    def __init__(
        self, names: tuple[str, ...], run: Callable[[Sequence[str], Caller], Awaitable[str]]
    ) -> None:
        self.names = names
        self._run = run

    async def run(self, args: Sequence[str], caller: Caller) -> str:
        return await self._run(args, caller)


def _link_text(title: str) -> str:
    return title.replace("[", "(").replace("]", ")")


class SuggestionTurn:
    """One turn's part: started with the model request, asked for an offer when the answer is
    complete, settled (the profile saved) after the reply whatever its outcome."""

    def __init__(self, service: Suggestions, turn: Turn, text: str, lang: str) -> None:
        self.service = service
        self.turn = turn
        self.text = text
        self.lang = lang
        self.key = ProfileKey.of(turn)
        self.named: list[str] = []
        self.entities: tuple[str, ...] = ()
        self.offered: list[str] = []  # the topics of the offer shown (the focus first)
        self._task: asyncio.Task[_Prepared | None] | None = None
        self._settled = False

    def start(self) -> None:
        """Begin the work (the manager calls this once the first words are shown, so that
        none of it comes before them; ``offer`` and ``settle`` start it if nobody did)."""
        if self._task is None:
            self._task = asyncio.create_task(self._prepare())

    def _started(self) -> asyncio.Task[_Prepared | None]:
        self.start()
        assert self._task is not None
        return self._task

    async def _prepare(self) -> _Prepared | None:
        service, config = self.service, self.service.config
        analyzer = service.analyzer
        try:
            named = self.named = _in_order(service.topics, self.text, analyzer)
            found = self.entities = entities(self.text, analyzer) if analyzer is not None else ()
            async with service._lock(self.key):
                profile = await service._load(self.key)
            now = service.clock()
            profile.add(named, now, config.half_life)
            profile.note_entities(found, now)
            prepared = _Prepared(profile)
            topics = choose(profile, named, now, config)
            if topics:
                prepared.items = await service._recommend(self.key, profile, topics[0], self.lang)
                prepared.topics = topics if prepared.items else []
            return prepared
        except SessionStoreError as exc:
            service.outages(exc)
        except Exception:
            log.exception("suggestions: reading the turn failed")
        return None

    async def offer(self) -> tuple[str, list[Button]] | None:
        """The offer to show under a complete answer (waits a little for it), or None."""
        try:
            prepared = await asyncio.wait_for(
                asyncio.shield(self._started()), self.service.config.offer_wait_seconds
            )
        except TimeoutError:
            return None
        if prepared is None or not prepared.topics:
            return None
        topic = prepared.topics[0]
        self.offered = list(prepared.topics)
        name = "·".join(self.service.topics.name(t, self.lang) for t in prepared.topics)
        owner = self.turn.user_id
        buttons = [
            Button(say("accept_button", self.lang), f"/suggestions accept {topic}", owner),
            Button(say("decline_button", self.lang), f"/suggestions decline {topic}", owner),
        ]
        return say("offer", self.lang, topic=name), buttons

    def settle(self, answer: str = "") -> None:
        """Save the profile in the background: this turn's topics, the answer's headings' at
        half weight, and the offer if one was shown."""
        if self._settled:
            return
        self._settled = True
        self.service._spawn(self._save(answer))

    async def _save(self, answer: str) -> None:
        service, config = self.service, self.service.config
        prepared = await self._started()
        if prepared is None:
            return
        now = service.clock()
        try:
            async with service._lock(self.key):
                # Loaded again: a button pressed meanwhile (another turn) must not be undone.
                profile = await service._load(self.key)
                named = set(self.named)
                profile.add(named, now, config.half_life)
                profile.note_entities(self.entities, now)
                titled: set[str] = set()
                for heading in headings(answer):
                    titled |= service.topics.topics(heading, service.analyzer)
                if titled - named:
                    profile.add(titled - named, now, config.half_life, config.heading_weight)
                for topic in self.offered:  # one offer naming them all: answered together
                    profile.offers[topic] = Offer(now)
                await service.profiles.save(self.key, profile, config.ttl_seconds)
        except SessionStoreError as exc:
            service.outages(exc)

    def cancel(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                self._task.cancel()
