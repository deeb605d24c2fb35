"""Suggestions end to end: the real ``python -m bot run`` process against the fake Bot API, the
fake Slack and the fake GLM (echoing), with the shipped topics and catalog.

Two turns about Python optimisation lead to an offer under the second answer, naming the
topic, with buttons; accepting brings items with links and answers the press; declining cools
the topic (no offer on the next turns about it); /interests shows the profile and /forget
deletes it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bot.suggest.service import say as suggestion_text
from tests.fakes.glm import FakeGlm
from tests.fakes.recommender import FakeRecommender
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.scenarios import test_slack as slack_scenario
from tests.scenarios import test_telegram as telegram_scenario
from tests.scenarios.test_slack import DM_ANN, DM_MINSU, glm, slack, thread_of

__all__ = ["glm", "slack"]

PYTHON_1 = "파이썬 코드가 너무 느린데 최적화하는 방법 좀 알려줘"
PYTHON_2 = "파이썬에서 반복문 성능을 높이려면 어떻게 해?"
OFFER_KO = "💡 파이썬·성능 최적화에 관심 있으시면 관련 자료를 추천드릴까요?"
MIN, ANN = 111, 222


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        fake.private_chat(fake.user(MIN, "민수", language_code="ko"))
        fake.private_chat(fake.user(ANN, "Ann", language_code="en"))
        yield fake


def _links(entities: list[dict[str, object]]) -> list[str]:
    return [str(e["url"]) for e in entities if e.get("type") == "text_link"]


async def test_telegram_offer_accept_decline_interests_and_forget(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    minsu, ann = tg.users[MIN], tg.users[ANN]
    async with telegram_scenario.running(tg, glm, SUGGESTIONS_ENABLED="true"):
        tg.say(tg.chats[MIN], minsu, PYTHON_1)
        await telegram_scenario.answered(tg, MIN, f"echo: {PYTHON_1}")
        first = tg.bot_messages(MIN)[-1]
        assert tg.keyboard(first) == []  # one turn is not yet an interest

        tg.say(tg.chats[MIN], minsu, PYTHON_2)
        await telegram_scenario.answered(tg, MIN, f"echo: {PYTHON_2}\n\n{OFFER_KO}")
        offer = tg.bot_messages(MIN)[-1]
        assert [label for label, _ in tg.keyboard(offer)] == ["추천 받기", "괜찮아요"]

        press = tg.press_button(offer, minsu, "추천 받기")
        await tg.wait_for(lambda f: len(f.bot_messages(MIN)) == 3, within=15)
        assert tg.callback(press).answer is not None  # the spinner stopped
        assert tg.keyboard(offer) == []  # pressed: the buttons are gone
        items = tg.bot_messages(MIN)[-1]
        assert items.text.startswith("파이썬·성능 최적화 관련 추천 자료예요")
        assert 1 <= len(_links(items.entities)) <= 3

        # Ann, in English, says no: the topic cools and the next turns about it offer nothing.
        tg.say(tg.chats[ANN], ann, "My Python script is slow, how do I profile it?")
        await telegram_scenario.answered(
            tg, ANN, "echo: My Python script is slow, how do I profile it?"
        )
        tg.say(tg.chats[ANN], ann, "Any tips to optimize Python loops?")
        await tg.wait_for(
            lambda f: bool(f.bot_messages(ANN)) and "Shall I" in f.bot_messages(ANN)[-1].text,
            within=15,
        )
        offer = tg.bot_messages(ANN)[-1]
        tg.press_button(offer, ann, "No, thanks")
        named = re.search(r"interested in (.+)\. Shall I", offer.text)
        assert named is not None and "Python" in named.group(1)
        declined = suggestion_text("declined", "en", topic=named.group(1))
        await telegram_scenario.answered(tg, ANN, declined)
        for text in ("How do I speed up pandas in Python?", "Python profiling tools?"):
            tg.say(tg.chats[ANN], ann, text)
            await telegram_scenario.answered(tg, ANN, f"echo: {text}")
            assert tg.keyboard(tg.bot_messages(ANN)[-1]) == []

        tg.say(tg.chats[MIN], minsu, "/interests")
        await tg.wait_for(lambda f: "자주 이야기한 주제" in f.bot_messages(MIN)[-1].text, 15)
        assert "파이썬" in tg.bot_messages(MIN)[-1].text
        tg.say(tg.chats[MIN], minsu, "/forget")
        await tg.wait_for(lambda f: "삭제했어요" in f.bot_messages(MIN)[-1].text, within=15)
        tg.say(tg.chats[MIN], minsu, "/interests")
        await tg.wait_for(lambda f: "아직" in f.bot_messages(MIN)[-1].text, within=15)
    assert tg.rejected() == []


async def test_slack_offer_accept_decline_interests_and_forget(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    async with slack_scenario.running(slack, glm, SUGGESTIONS_ENABLED="true") as bot:
        first = slack.say(DM_MINSU, slack_scenario.MINSU, PYTHON_1)
        await bot.send.events(first)
        await slack_scenario.answered(slack, DM_MINSU, thread_of(first), f"echo: {PYTHON_1}")
        second = slack.say(DM_MINSU, slack_scenario.MINSU, PYTHON_2)
        await bot.send.events(second)
        thread = thread_of(second)
        await slack.wait_for(
            lambda f: any(m.buttons for m in f.bot_messages(DM_MINSU, thread)), within=15
        )
        (offer,) = [m for m in slack.bot_messages(DM_MINSU, thread) if m.buttons]
        assert OFFER_KO in offer.shown and f"echo: {PYTHON_2}" in offer.shown
        press = slack.block_actions(DM_MINSU, offer.ts, slack_scenario.MINSU, label="추천 받기")
        pressed = await bot.send.action(press)
        assert pressed.status == 200 and pressed.elapsed < 3
        await slack.wait_for(
            lambda f: any("추천 자료예요" in m.shown for m in f.bot_messages(DM_MINSU)), 15
        )
        assert offer.buttons == []  # pressed: the buttons are gone, the text stays
        items = next(m for m in slack.bot_messages(DM_MINSU) if "추천 자료예요" in m.shown)
        assert 1 <= len(re.findall(r"https?://", items.shown)) <= 3

        # Ann declines; the topic cools.
        for text in ("My Python script is slow, how do I profile it?", "Python loop tips?"):
            envelopes = slack.say(DM_ANN, slack_scenario.ANN, text)
            await bot.send.events(envelopes)
        await slack.wait_for(lambda f: any(m.buttons for m in f.bot_messages(DM_ANN)), 15)
        (offer,) = [m for m in slack.bot_messages(DM_ANN) if m.buttons]
        # In a direct conversation the buttons are also the thread's suggested prompts; Ann
        # clicks "No, thanks" there, which posts its command as her message.
        await slack.wait_for(lambda f: (DM_ANN, offer.thread_ts) in f.prompts, 15)
        title, prompts = slack.prompts[(DM_ANN, offer.thread_ts)]
        assert title == "Suggested" and [p[0] for p in prompts] == ["Yes, show me", "No, thanks"]
        await bot.send.events(slack.choose_prompt(DM_ANN, offer.thread_ts, slack_scenario.ANN, 1))
        await slack.wait_for(
            lambda f: any("won't suggest" in m.shown for m in f.bot_messages(DM_ANN)), 15
        )
        envelopes = slack.say(DM_ANN, slack_scenario.ANN, "Python profiling tools?")
        await bot.send.events(envelopes)
        await slack_scenario.answered(
            slack, DM_ANN, thread_of(envelopes), "echo: Python profiling tools?"
        )

        def slash(command: str) -> dict[str, str]:
            return slack.slash(command, "", user=slack_scenario.MINSU, channel=DM_MINSU)

        def said(f: FakeSlack, words: str) -> bool:
            return any(words in str(r.get("text", "")) for r in f.responses)

        interests = await bot.send.command(slash("/interests"))
        assert interests.status == 200
        await slack.wait_for(lambda f: said(f, "파이썬") and said(f, "주제"), 15)
        await bot.send.command(slash("/forget"))
        await bot.send.command(slash("/interests"))
        await slack.wait_for(lambda f: said(f, "아직"), 15)
    assert slack.rate_limited() == [] and slack.refused() == []


async def test_an_external_engine_is_asked_first_and_the_catalog_answers_when_it_is_down(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    minsu, ann = tg.users[MIN], tg.users[ANN]
    external = {
        "id": "ext-1",
        "title": {"ko": "사내 파이썬 성능 가이드", "en": "Our Python performance guide"},
        "url": "https://wiki.example.com/python-perf",
        "topics": ["python"],
    }
    async with FakeRecommender() as engine:
        engine.answer = [external, "python-profilers"]
        async with telegram_scenario.running(
            tg, glm, SUGGESTIONS_ENABLED="true", RECOMMENDER_URL=engine.url
        ):
            tg.say(tg.chats[MIN], minsu, PYTHON_1)
            await telegram_scenario.answered(tg, MIN, f"echo: {PYTHON_1}")
            tg.say(tg.chats[MIN], minsu, PYTHON_2)
            await telegram_scenario.answered(tg, MIN, f"echo: {PYTHON_2}\n\n{OFFER_KO}")
            tg.press_button(tg.bot_messages(MIN)[-1], minsu, "추천 받기")
            await tg.wait_for(lambda f: len(f.bot_messages(MIN)) == 3, within=15)
            items = tg.bot_messages(MIN)[-1]
            assert "사내 파이썬 성능 가이드" in items.text
            assert _links(items.entities)[0] == "https://wiki.example.com/python-perf"
            assert "docs.python.org/3/library/profile" in " ".join(_links(items.entities))
            # Asked once, when the offer was prepared; the press used the cached answer.
            (asked,) = engine.requests
            assert asked.json["focus"] == "python" and asked.json["lang"] == "ko"
            assert asked.json["limit"] == 3 and asked.json["profile"]["python"] > 0
            user = asked.json["user"]
            assert str(MIN) not in user  # a pseudonym, not the Telegram id

            # The engine goes down: Ann's accept is answered from the catalog all the same.
            engine.mode = "down"
            first = "My Python script is slow, how do I profile it?"
            tg.say(tg.chats[ANN], ann, first)
            await telegram_scenario.answered(tg, ANN, f"echo: {first}")
            tg.say(tg.chats[ANN], ann, "Python loop tips?")
            await tg.wait_for(lambda f: "Shall I" in f.bot_messages(ANN)[-1].text, within=15)
            tg.press_button(tg.bot_messages(ANN)[-1], ann, "Yes, show me")
            await tg.wait_for(lambda f: len(f.bot_messages(ANN)) == 3, within=15)
            items = tg.bot_messages(ANN)[-1]
            assert 1 <= len(_links(items.entities)) <= 3
            assert "wiki.example.com" not in " ".join(_links(items.entities))
            # Asked when the offer was prepared and, as a failure is not cached, again at the
            # press; it answered neither time.
            assert len(engine.requests) == 3
            assert engine.requests[1].json["user"] == engine.requests[2].json["user"] != user
