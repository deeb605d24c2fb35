"""The model words the weather answer from the fetched facts; the template when it cannot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.manager import TurnResult
from tests.bot.forms.support import Rig, running
from tests.bot.helpers import RecordingReply, turn
from tests.fakes.glm import Error


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running(phrase_with_model=True) as rig:
        yield rig


async def test_weather_answer_is_streamed_in_the_models_words(rig: Rig) -> None:
    reply = RecordingReply()
    result = await rig.manager.handle(turn("서울 날씨 알려줘"), reply)
    assert result is TurnResult.FORM
    kind, text = reply.final
    assert kind == "finish" and text.startswith("[model] 서울 ") and "°C" in text
    assert reply.streamed == text  # streamed as it was written, then finished
    phrasing = [r for r in rig.glm.requests if "tools" not in r.json][-1]
    system = phrasing.messages[0]["content"]
    assert "Open-Meteo" in system and "서울" in system  # the facts went to the model
    # the follow-up still carries over, and is worded by the model too
    result, text = await rig.say("부산은?")
    assert result is TurnResult.FORM and text.startswith("[model] 부산 ")


async def test_template_is_shown_when_the_model_fails(rig: Rig) -> None:
    rig.glm.enqueue(*[Error(401, "1000", "Authentication Failed")] * 4)
    result, text = await rig.say("서울 날씨 알려줘")
    assert result is TurnResult.FORM
    assert text.startswith("서울 오늘 날씨") and "°C" in text
