"""Suggestions through the real manager (bot/suggest/service.py): the GLM fake on loopback, the
shipped topic gazetteer and catalog, profiles in memory, a clock the tests move.

The promises tested: two turns about Python optimisation lead to an offer under the second
answer, naming the topic, with two buttons only that user may press; accepting brings up to
three unseen items with links, once; declining cools the topic for 30 days; never after a
fallback, a blocked message or during a form; /suggestions off is respected; /interests shows
the profile and /forget deletes it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.manager import ConversationManager, TurnResult
from bot.moderation import load_content_filter
from bot.sessions.base import SessionStoreError
from bot.sessions.memory import MemorySessionStore
from bot.suggest.catalog import DEFAULT_CATALOG, Catalog, CatalogItem
from bot.suggest.engine import BuiltinRecommender, RecommendRequest
from bot.suggest.profile import (
    InterestProfile,
    MemoryProfileStore,
    Offer,
    ProfileKey,
)
from bot.suggest.service import DAY, SuggestConfig, Suggestions, choose
from bot.suggest.topics import TopicGazetteer
from tests.bot.forms.support import korean
from tests.bot.helpers import RecordingReply, make_manager, turn
from tests.fakes.glm import Error, FakeGlm

NOW = 1_780_000_000.0
CONFIG = SuggestConfig()
PYTHON_1 = "파이썬 코드가 너무 느린데 최적화하는 방법 좀 알려줘"
PYTHON_2 = "파이썬에서 반복문 성능을 높이려면 어떻게 해?"


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    manager: ConversationManager
    suggestions: Suggestions
    profiles: MemoryProfileStore
    glm: FakeGlm
    clock: Clock

    async def say(self, text: str, user: str = "7", chat: str = "7") -> RecordingReply:
        reply = RecordingReply()
        is_private = user == chat
        await self.manager.handle(turn(text, user=user, chat=chat, is_private=is_private), reply)
        await self.suggestions.drain()  # the profile is saved in the background
        return reply

    async def profile(self, user: str = "7") -> InterestProfile | None:
        return await self.profiles.load(ProfileKey("test", "", user))


def wire(manager: ConversationManager, suggestions: Suggestions) -> None:
    """As bot/app.py wires it: the stage, the two commands, the forgetter."""
    manager.suggestions = suggestions
    for command in suggestions.commands():
        for name in command.names:
            manager.commands.extra[name] = command
    manager.commands.forgetters.append(suggestions.forget)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with FakeGlm() as glm:
        clock = Clock()
        profiles = MemoryProfileStore(clock=clock)
        suggestions = Suggestions(
            TopicGazetteer.load(),
            profiles,
            BuiltinRecommender(Catalog.load(DEFAULT_CATALOG)),
            analyzer=korean(),
            clock=clock,
        )
        manager = make_manager(glm.base_url, glm.api_key, MemorySessionStore())
        wire(manager, suggestions)
        try:
            yield Rig(manager, suggestions, profiles, glm, clock)
        finally:
            await manager.glm.client.close()


def offered(reply: RecordingReply) -> bool:
    return bool(reply.buttons)


# ---- the policy ---------------------------------------------------------------------------------


def scored(*topics: str, times: int = 2, at: float = NOW) -> InterestProfile:
    profile = InterestProfile()
    for _ in range(times):
        profile.add(topics, at, CONFIG.half_life)
    return profile


def test_a_topic_named_now_past_the_threshold_is_offered() -> None:
    assert choose(scored("python"), ["python"], NOW, CONFIG) == ["python"]
    assert choose(scored("python", times=1), ["python"], NOW, CONFIG) == []
    # Crossed the threshold, but this message is about something else: not now.
    assert choose(scored("python"), ["cooking"], NOW, CONFIG) == []
    # Two weeks later the interest has halved.
    assert choose(scored("python"), ["python"], NOW + 14 * DAY, CONFIG) == []


def test_two_topics_named_together_are_offered_together_in_the_messages_order() -> None:
    profile = scored("python", "performance", "cooking")
    assert choose(profile, ["performance", "python"], NOW, CONFIG) == ["performance", "python"]
    assert choose(profile, ["python", "cooking", "performance"], NOW, CONFIG) == [
        "python",
        "cooking",
    ]


def test_cooldowns_after_an_offer_and_longer_after_a_no() -> None:
    profile = scored("python", "cooking")
    profile.offers["python"] = Offer(NOW - 6 * DAY)
    assert choose(profile, ["python"], NOW, CONFIG) == []
    profile.offers["python"] = Offer(NOW - 8 * DAY)
    assert choose(profile, ["python"], NOW, CONFIG) == ["python"]
    profile.offers["python"] = Offer(NOW - 40 * DAY, "declined", NOW - 20 * DAY)
    assert choose(profile, ["python"], NOW, CONFIG) == []
    profile.offers["python"] = Offer(NOW - 40 * DAY, "declined", NOW - 31 * DAY)
    assert choose(profile, ["python"], NOW, CONFIG) == ["python"]


def test_one_offer_at_a_time_and_never_when_turned_off() -> None:
    profile = scored("python", "cooking")
    profile.offers["cooking"] = Offer(NOW - 3600)  # another topic, an hour ago
    assert choose(profile, ["python"], NOW, CONFIG) == []
    assert choose(profile, ["python"], NOW + 7 * 3600, CONFIG) == ["python"]
    profile.enabled = False
    assert choose(profile, ["python"], NOW + 7 * 3600, CONFIG) == []


# ---- through the manager -----------------------------------------------------------------------


async def test_two_turns_about_python_optimisation_lead_to_an_offer_with_buttons(
    rig: Rig,
) -> None:
    first = await rig.say(PYTHON_1)
    assert first.final[0] == "finish" and not offered(first)
    second = await rig.say(PYTHON_2)
    kind, text = second.final
    assert kind == "finish" and text.startswith(f"echo: {PYTHON_2}")  # the answer comes first
    assert "파이썬·성능 최적화에 관심 있으시면" in text.split("\n\n")[-1]
    labels = [b.label for b in second.buttons]
    assert labels == ["추천 받기", "괜찮아요"]
    assert {b.owner for b in second.buttons} == {"7"}
    assert [b.payload for b in second.buttons] == [
        "/suggestions accept python",
        "/suggestions decline python",
    ]
    assert all(len((b.payload + "#" + str(b.owner)).encode()) <= 64 for b in second.buttons)
    # What the model saw and what is remembered is the question, not the offer.
    session = await rig.manager.store.load(turn("x").session_key())
    assert "추천드릴까요" not in session.history[-1].content
    profile = await rig.profile()
    assert profile is not None and profile.offers["python"].answer == "offered"


async def test_accepting_brings_unseen_items_with_links_once(rig: Rig) -> None:
    await rig.say(PYTHON_1)
    await rig.say(PYTHON_2)
    accepted = await rig.say("/suggestions accept python")
    text = accepted.final[1]
    links = re.findall(r"\[([^\]]+)\]\((https?://[^)]+)\)", text)
    assert 1 <= len(links) <= 3 and text.startswith("파이썬")
    profile = await rig.profile()
    assert profile is not None and profile.offers["python"].answer == "accepted"
    assert len(profile.seen) == len(links)
    again = await rig.say("/suggestions accept python")  # a stale button, pressed again
    assert "이미" in again.final[1] and not re.search(r"\]\(https?://", again.final[1])
    # Next time (after the cooldown) the items already shown are not shown again.
    rig.clock.now += 8 * DAY
    await rig.say(PYTHON_1)
    await rig.say(PYTHON_2)
    more = await rig.say("/suggestions accept python")
    shown_again = {url for _, url in re.findall(r"\[([^\]]+)\]\((https?://[^)]+)\)", more.final[1])}
    assert shown_again.isdisjoint({url for _, url in links})


async def test_declining_cools_the_topic_for_thirty_days(rig: Rig) -> None:
    await rig.say(PYTHON_1)
    await rig.say(PYTHON_2)
    declined = await rig.say("/suggestions decline python")
    # The offer named both topics; the "no" is for both.
    assert "파이썬·성능 최적화" in declined.final[1] and "않을게요" in declined.final[1]
    for days in (8, 20, 29):
        rig.clock.now = NOW + days * DAY
        assert not offered(await rig.say(PYTHON_1)), days
        assert not offered(await rig.say(PYTHON_2)), days
    rig.clock.now = NOW + 31 * DAY
    assert offered(await rig.say(PYTHON_1))


async def test_the_offer_is_in_the_users_language(rig: Rig) -> None:
    await rig.say("My Python script is slow, how do I profile it?")
    reply = await rig.say("Any tips to optimize Python loops?")
    assert "Python" in reply.final[1].split("\n\n")[-1]
    assert [b.label for b in reply.buttons] == ["Yes, show me", "No, thanks"]


async def test_no_offer_after_a_fallback(rig: Rig) -> None:
    await rig.say(PYTHON_1)
    rig.glm.enqueue(*[Error(500, "1234", "boom")] * 5)
    reply = await rig.say(PYTHON_2)
    assert reply.final[0] == "fail" and not offered(reply)
    profile = await rig.profile()
    assert profile is not None and "python" not in profile.offers


async def test_no_offer_for_a_blocked_message(rig: Rig, tmp_path: Path) -> None:
    banned, allowed = tmp_path / "banned.txt", tmp_path / "allowed.txt"
    banned.write_text("씨발\n", encoding="utf-8")
    allowed.write_text("", encoding="utf-8")
    rig.manager.content_filter = load_content_filter(banned, allowed)
    await rig.say(PYTHON_1)
    reply = await rig.say(f"{PYTHON_2} 씨발")
    assert not offered(reply)
    profile = await rig.profile()
    assert profile is not None and "python" not in profile.offers


async def test_suggestions_off_is_respected_and_on_again(rig: Rig) -> None:
    await rig.say(PYTHON_1)
    off = await rig.say("/suggestions off")  # answered in the language of the conversation
    assert "껐어요" in off.final[1]
    assert not offered(await rig.say(PYTHON_2))
    status = await rig.say("/suggestions")
    assert "꺼짐" in status.final[1]
    await rig.say("/suggestions on")
    assert offered(await rig.say(PYTHON_1))


async def test_interests_shows_the_profile_and_forget_deletes_it(rig: Rig) -> None:
    await rig.say(PYTHON_1)
    shown = (await rig.say("/interests")).final[1]
    assert "파이썬" in shown and "성능 최적화" in shown
    await rig.say("/forget")
    assert await rig.profile() is None
    assert "아직" in (await rig.say("/interests")).final[1]


async def test_the_profile_follows_the_user_into_a_group_and_the_buttons_are_theirs(
    rig: Rig,
) -> None:
    await rig.say(PYTHON_1, user="7", chat="7")
    reply = await rig.say(PYTHON_2, user="7", chat="-100")
    assert offered(reply) and {b.owner for b in reply.buttons} == {"7"}
    assert await rig.profile("8") is None


class DownProfiles(MemoryProfileStore):
    async def load(self, key: ProfileKey) -> InterestProfile | None:
        raise SessionStoreError("redis down")


async def test_with_the_profiles_unreachable_answers_go_on_without_offers(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.suggestions.profiles = DownProfiles()
    for text in (PYTHON_1, PYTHON_2):
        reply = await rig.say(text)
        assert reply.final == ("finish", f"echo: {text}") and not offered(reply)
    assert "interest profiles unavailable" in caplog.text
    assert "불러올 수 없어요" in (await rig.say("/interests")).final[1]


class SlowRecommender:
    async def recommend(self, request: RecommendRequest) -> list[CatalogItem]:
        await asyncio.sleep(1.5)
        return []


async def test_a_slow_recommender_does_not_hold_the_answer(rig: Rig) -> None:
    rig.suggestions.recommender = SlowRecommender()
    await rig.say(PYTHON_1)
    reply = RecordingReply()
    started = asyncio.get_running_loop().time()
    result = await rig.manager.handle(turn(PYTHON_2), reply)
    waited = asyncio.get_running_loop().time() - started
    assert result is TurnResult.ANSWERED and not offered(reply)
    assert waited < 1.2  # the offer is given up after 0.3 s; the answer is not held
    await rig.suggestions.drain()
