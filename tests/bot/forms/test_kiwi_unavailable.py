"""When Kiwi (Korean morphology) cannot load, forms run on the gazetteer and patterns alone
and the bot keeps answering; the failure is logged once, as a warning."""

from __future__ import annotations

import asyncio
import logging

import kiwipiepy  # type: ignore[import-untyped]
import pytest

from bot.forms.builtin.intake import RecordSubmissionStore
from bot.forms.korean import KoreanAnalyzer
from bot.forms.stage import SlotFillingStage
from bot.manager import TurnResult
from bot.sessions.memory import MemorySessionStore
from tests.bot.forms.support import Clock, forms_on, open_meteo, registry
from tests.bot.helpers import RecordingReply, make_manager, turn
from tests.fakes.glm import FakeGlm
from tests.fakes.weather import FakeOpenMeteo


def _no_model(*args: object, **kwargs: object) -> object:
    raise RuntimeError("Kiwi model files not found")


def kiwi_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "kiwi" in r.getMessage().lower()
    ]


async def test_forms_and_answers_go_on_when_kiwi_fails_to_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kiwipiepy, "Kiwi", _no_model)
    store = MemorySessionStore()
    async with FakeGlm() as glm, FakeOpenMeteo() as weather:
        manager = make_manager(glm.base_url, glm.api_key, store, phrase_form_answers=False)
        with caplog.at_level(logging.INFO):
            forms = await forms_on(manager, weather)
            try:
                replies = []
                for user, text in [
                    ("1", "서울 날씨 알려줘"),  # the gazetteer still finds the city
                    ("2", "What's the weather in Busan?"),
                    ("3", "상담 예약하고 싶어요"),  # the booking form still starts
                    ("4", "안녕하세요"),  # no form: the model answers
                    ("1", "고마워"),
                ]:
                    reply = RecordingReply()
                    result = await manager.handle(turn(text, user=user, chat=user), reply)
                    replies.append((result, reply.final))
            finally:
                await forms.close()
                await manager.glm.client.close()
    (seoul, busan, booking, hello, thanks) = replies
    assert seoul[0] is TurnResult.FORM and seoul[1][1].startswith("서울 오늘 날씨")
    assert busan[0] is TurnResult.FORM and "Busan" in busan[1][1]
    assert booking[0] is TurnResult.FORM and "성함" in booking[1][1]
    assert hello == (TurnResult.ANSWERED, ("finish", "echo: 안녕하세요"))
    assert thanks == (TurnResult.ANSWERED, ("finish", "echo: 고마워"))
    assert len(weather.forecast_coordinates()) == 2
    assert len(kiwi_warnings(caplog)) == 1, caplog.text


async def test_stage_survives_a_failed_analyzer_future(caplog: pytest.LogCaptureFixture) -> None:
    # Another composition root may hand the stage a future that fails: same degradation.
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[KoreanAnalyzer | None] = loop.create_future()
    failed.set_exception(RuntimeError("Kiwi model files not found"))
    store = MemorySessionStore()
    async with FakeOpenMeteo() as weather:
        client = open_meteo(weather.geocoding_url)
        stage = SlotFillingStage(
            registry(client, RecordSubmissionStore(store)),
            analyzer=failed,
            clock=Clock(),
        )
        try:
            with caplog.at_level(logging.INFO):
                for _ in range(3):
                    session = await store.load(turn("x").session_key())
                    reply = await stage.handle(session, turn("대구 날씨"), "대구 날씨", "ko")
                    assert reply is not None and reply.text is not None
                    assert reply.text.startswith("대구 오늘 날씨")
        finally:
            await client.close()
    assert len(kiwi_warnings(caplog)) == 1, caplog.text
