"""Quick-reply buttons with the real ``python -m bot run`` process, the fake Bot API (its real
limits) and the fake GLM: a keyboard a process sent before it restarted is still held to its
owner, because the owner travels in the button's callback_data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.telegram_convert import callback_data
from bot.i18n import t
from tests.fakes.glm import FakeGlm
from tests.fakes.telegram import FakeTelegram
from tests.scenarios.test_telegram import answered, running

MIN, ANN = 111, 222
GROUP = -1001234567890


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        minsu = fake.user(MIN, "민수")
        ann = fake.user(ANN, "Ann", language_code="en")
        fake.private_chat(minsu)
        fake.group(GROUP, "스터디", members=[minsu, ann])
        yield fake


@pytest.fixture
async def glm() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as fake:
        yield fake


async def test_a_keyboard_from_before_a_restart_is_still_its_owners(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    data = callback_data("부산 날씨 알려줘", str(MIN))
    assert data is not None
    offer = tg.bot_message(tg.chats[GROUP], "어느 도시요?", [("부산", data)])
    private = tg.bot_message(tg.chats[MIN], "더 볼까요?", [("더 보기", "더 알려줘")])
    async with running(tg, glm):
        other = tg.press_button(offer, tg.users[ANN], "부산")
        await tg.wait_for(lambda f: f.callback(other).answer is not None, within=10)
        await asyncio.sleep(0.3)
        assert glm.requests == [] and tg.keyboard(offer)  # no turn; the keyboard stays

        mine = tg.press_button(offer, tg.users[MIN], "부산")
        await answered(tg, GROUP, "echo: 부산 날씨 알려줘")
        again = tg.press_button(private, tg.users[MIN], "더 보기")
        await answered(tg, MIN, "echo: 더 알려줘")

    notice = tg.callback(other).answer
    assert notice is not None and notice.text == t("button_not_yours", "en")
    assert [tg.callback(p).answer is not None for p in (mine, again)] == [True, True]
    assert tg.keyboard(offer) == [] and tg.keyboard(private) == []
    assert [r.last_user_text() for r in glm.requests] == ["부산 날씨 알려줘", "더 알려줘"]
    assert tg.rejected() == []
