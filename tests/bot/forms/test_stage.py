"""The forms stage through the manager: interruptions, cancel, expiry, isolation, restarts,
tool-call extraction, carry-over rules, unknown cities and weather outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.forms.machine import FormState
from bot.manager import TurnResult
from bot.sessions.base import Session, SessionStoreError
from bot.sessions.memory import MemorySessionStore
from tests.bot.forms.support import Rig, gazetteer, running
from tests.bot.helpers import RecordingReply, turn
from tests.fakes.glm import Error, Reply, ToolCall

CITY_QUESTION = "어느 도시의 날씨를 알려 드릴까요?"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running() as rig:
        yield rig


@pytest.fixture
async def rules_only() -> AsyncIterator[Rig]:
    async with running(model_extraction=False) as rig:
        yield rig


def fetched_city(rig: Rig, name: str) -> bool:
    city = gazetteer().lookup(name)
    assert city is not None
    return (round(city.lat, 4), round(city.lon, 4)) in rig.weather.forecast_coordinates()


async def session_of(rig: Rig, user: str = "7") -> Session:
    return await rig.store.load(turn("x", user=user, chat=user).session_key())


# ---- interruptions ---------------------------------------------------------------------------


async def test_interruption_is_answered_then_the_question_comes_again(rig: Rig) -> None:
    assert await rig.say("날씨 알려줘") == (TurnResult.FORM, CITY_QUESTION)
    rig.glm.enqueue(Reply("NONE"), Reply("sorted()를 쓰면 돼요."))
    result, text = await rig.say("파이썬 리스트 정렬은 어떻게 해?")
    assert result is TurnResult.ANSWERED
    assert text == f"sorted()를 쓰면 돼요.\n\n{CITY_QUESTION}"
    # The model was first asked whether the message answers the form (and told the question).
    extraction = rig.tool_requests()[0]
    assert extraction.json["tool_choice"] == "auto"
    assert extraction.json["tools"][0]["function"]["name"] == "weather"
    assert CITY_QUESTION in extraction.messages[0]["content"]
    result, text = await rig.say("부산")
    assert result is TurnResult.FORM and text.startswith("부산 오늘 날씨")
    assert fetched_city(rig, "부산")


async def test_interruption_without_model_extraction(rules_only: Rig) -> None:
    rig = rules_only
    await rig.say("날씨 알려줘")
    rig.glm.enqueue(Reply("저는 챗봇이에요."))
    assert await rig.say("너는 누구야?") == (
        TurnResult.ANSWERED,
        f"저는 챗봇이에요.\n\n{CITY_QUESTION}",
    )
    assert rig.tool_requests() == []
    assert (await session_of(rig)).form is not None


async def test_failed_tool_call_still_answers_and_asks_again(rig: Rig) -> None:
    await rig.say("날씨 알려줘")
    rig.glm.enqueue(Error(400, "1214", "Invalid API parameter"), Reply("좋은 하루예요!"))
    result, text = await rig.say("오늘 기분이 좋아")
    assert result is TurnResult.ANSWERED
    assert text == f"좋은 하루예요!\n\n{CITY_QUESTION}"


# ---- cancel and expiry ----------------------------------------------------------------------


@pytest.mark.parametrize("word", ["취소", "cancel", "그만할래", "취소해 주세요"])
async def test_cancel_words_leave_the_form(rig: Rig, word: str) -> None:
    await rig.say("상담 예약하고 싶어요")
    result, text = await rig.say(word)
    assert result is TurnResult.FORM
    assert "취소했어요" in text or "cancelled" in text
    assert (await session_of(rig)).form is None
    # The next message is not taken as an answer any more.
    assert await rig.say("홍길동") == (TurnResult.ANSWERED, "echo: 홍길동")


async def test_slash_cancel_leaves_the_form_in_the_form_language(rig: Rig) -> None:
    # Called as the manager will once "/cancel" is routed to the stage (see the report).
    await rig.say("날씨 알려줘")
    session = await session_of(rig)
    reply = await rig.stage.handle(session, turn("/cancel"), "/cancel", "en")
    assert reply is not None and reply.text == (
        "날씨 확인을 취소했어요. 필요하면 언제든 다시 말씀해 주세요."
    )
    assert session.form is None
    nothing = await rig.stage.handle(session, turn("/cancel"), "/cancel", "en")
    assert nothing is not None and nothing.text == "There is nothing in progress to cancel."


async def test_cancel_word_with_nothing_running_is_for_the_model(rig: Rig) -> None:
    assert await rig.say("취소") == (TurnResult.ANSWERED, "echo: 취소")


async def test_form_left_idle_for_30_minutes_expires(rig: Rig) -> None:
    await rig.say("날씨 알려줘")
    rig.clock.advance(29)
    result, text = await rig.say("인천")
    assert result is TurnResult.FORM and text.startswith("인천 오늘 날씨")
    await rig.say("날씨 알려줘")
    rig.clock.advance(31)
    result, text = await rig.say("부산")
    assert result is TurnResult.ANSWERED
    assert text.startswith("echo: 부산\n\n(날씨 확인 질문은 30분 동안 답이 없어 닫았어요.")
    assert not fetched_city(rig, "부산")
    assert (await session_of(rig)).form is None


async def test_idle_timeout_is_configurable() -> None:
    from bot.forms.stage import StageConfig

    async with running(config=StageConfig(idle_minutes=5)) as rig:
        await rig.say("날씨 알려줘")
        rig.clock.advance(6)
        result, _ = await rig.say("부산")
        assert result is TurnResult.ANSWERED
        assert not fetched_city(rig, "부산")


# ---- isolation and restarts -----------------------------------------------------------------


async def test_two_users_fill_forms_at_the_same_time(rig: Rig) -> None:
    first = await asyncio.gather(rig.say("상담 예약하고 싶어요", "1"), rig.say("날씨 알려줘", "2"))
    assert first[0][1].startswith("상담 예약을 도와드릴게요.")
    assert first[1][1] == CITY_QUESTION
    second = await asyncio.gather(rig.say("홍길동이요", "1"), rig.say("대전", "2"))
    assert second[0][1] == "연락받으실 전화번호를 알려 주세요. (예: 010-1234-5678)"
    assert second[1][1].startswith("대전 오늘 날씨")
    one, two = await session_of(rig, "1"), await session_of(rig, "2")
    assert one.form is not None and one.form["values"] == {"name": "홍길동"}
    assert two.form is None and two.state["intent"] == "weather"
    assert "intent" not in one.state


async def test_a_restart_in_the_middle_of_a_form_continues_it(rig: Rig) -> None:
    await rig.say("상담 예약하고 싶어요")
    await rig.say("홍길동이요")
    rig.restart()  # new manager and stage objects; only the store remains
    result, text = await rig.say("010-1234-5678")
    assert result is TurnResult.FORM
    assert text.startswith("상담 받고 싶은 날짜를 알려 주세요.")
    form = (await session_of(rig)).form
    assert form is not None and form["values"] == {"name": "홍길동", "phone": "010-1234-5678"}


async def test_form_state_survives_a_json_round_trip(rig: Rig) -> None:
    await rig.say("상담 예약하고 싶어요")
    await rig.say("김철수입니다")
    session = await session_of(rig)
    again = Session.from_json(session.to_json())
    assert again.form == session.form
    state = FormState.from_dict(again.form)
    assert state is not None and state.asking == "phone" and state.values == {"name": "김철수"}


async def test_unreadable_form_state_is_dropped_not_fatal(rig: Rig) -> None:
    session = await session_of(rig)
    session.form = {"v": 99, "whatever": True}
    await rig.store.save(session)
    result, text = await rig.say("서울 날씨 알려줘")
    assert result is TurnResult.FORM and text.startswith("서울 오늘 날씨")


# ---- the model as the second extractor --------------------------------------------------------


async def test_tool_call_fills_a_city_the_rules_cannot(rig: Rig) -> None:
    rig.glm.enqueue(ToolCall("weather", {"city": "Paris"}))
    result, text = await rig.say("에펠탑 있는 도시 날씨 알려줘")
    assert result is TurnResult.FORM
    assert text.startswith("파리 오늘 날씨")
    assert fetched_city(rig, "파리")
    assert len(rig.tool_requests()) == 1


async def test_tool_call_answers_the_pending_question(rig: Rig) -> None:
    await rig.say("날씨 알려줘")
    rig.glm.enqueue(ToolCall("weather", {"city": "Paris", "date": "2025-06-14"}))
    result, text = await rig.say("프랑스 수도")
    assert result is TurnResult.FORM
    assert text.startswith("파리 내일 날씨")
    # "프랑스 수도" was first looked up as a place name, then the model understood it.
    assert rig.weather.geocoding_requests()[0].query["name"] == "프랑스 수도"


async def test_a_hint_lets_the_model_start_a_form(rig: Rig) -> None:
    rig.glm.enqueue(ToolCall("weather", {"city": "Lisbon"}))
    result, text = await rig.say("리스본 가는데 우산 챙겨야 할까?")
    assert result is TurnResult.FORM
    assert text.startswith("리스본 오늘 날씨")
    tools = rig.tool_requests()[0].json["tools"]
    assert [t["function"]["name"] for t in tools] == ["weather"]


async def test_tool_arguments_are_validated_like_answers(rig: Rig) -> None:
    rig.glm.enqueue(ToolCall("weather", {"city": "Seoul", "date": "2025-07-30"}))
    result, text = await rig.say("우산 필요할까?")
    assert result is TurnResult.FORM
    assert text.startswith("날씨 예보는 6일 뒤까지만 볼 수 있어요.")
    assert rig.weather.forecast_requests() == []


async def test_without_hints_the_model_is_not_asked_to_extract(rig: Rig) -> None:
    assert await rig.say("파이썬 리스트 정렬하는 법 알려줘") == (
        TurnResult.ANSWERED,
        "echo: 파이썬 리스트 정렬하는 법 알려줘",
    )
    assert rig.tool_requests() == []


# ---- carry-over rules -----------------------------------------------------------------------


async def test_follow_up_after_small_talk_still_carries_over(rig: Rig) -> None:
    await rig.say("서울 날씨 알려줘")
    await rig.say("고마워")
    result, text = await rig.say("부산은?")
    assert result is TurnResult.FORM and text.startswith("부산 오늘 날씨")


async def test_follow_up_after_another_question_is_not_weather(rig: Rig) -> None:
    await rig.say("서울 날씨 알려줘")
    await rig.say("서울 인구는 몇 명이야?")
    assert await rig.say("부산은?") == (TurnResult.ANSWERED, "echo: 부산은?")
    assert not fetched_city(rig, "부산")


async def test_follow_up_long_after_is_not_weather(rig: Rig) -> None:
    await rig.say("서울 날씨 알려줘")
    rig.clock.advance(31)
    assert await rig.say("부산은?") == (TurnResult.ANSWERED, "echo: 부산은?")


async def test_follow_up_changes_the_date_and_keeps_the_city(rig: Rig) -> None:
    await rig.say("대구 날씨")
    _result, text = await rig.say("모레는 어때?")
    assert text.startswith("대구 모레 날씨")
    _result, text = await rig.say("What about tomorrow?")
    assert text.startswith("Tomorrow in Daegu:")


# ---- cities the gazetteer does not know ------------------------------------------------------


async def test_unknown_city_is_geocoded(rig: Rig) -> None:
    result, text = await rig.say("울진 날씨 알려줘")
    assert result is TurnResult.FORM and text.startswith("울진 오늘 날씨")
    search = rig.weather.geocoding_requests()[0].query
    assert search["name"] == "울진" and search["language"] == "ko"
    assert rig.weather.forecast_coordinates() == [(36.9931, 129.4003)]


async def test_follow_up_with_an_unknown_place_is_geocoded(rig: Rig) -> None:
    await rig.say("What's the weather in Seoul?")
    result, text = await rig.say("What about Reykjavik?")
    assert result is TurnResult.FORM and text.startswith("Today in Reykjavík:")


async def test_a_name_that_is_no_town_is_not_a_follow_up(rig: Rig) -> None:
    await rig.say("서울 날씨 알려줘")
    assert await rig.say("민수는?") == (TurnResult.ANSWERED, "echo: 민수는?")
    assert len(rig.weather.forecast_requests()) == 1


@pytest.mark.parametrize("place", ["호그와트", "아틀란티스"])
async def test_city_not_found_is_asked_again_with_the_reason(rules_only: Rig, place: str) -> None:
    result, text = await rules_only.say(f"{place} 날씨 알려줘")
    assert result is TurnResult.FORM
    assert text == f"'{place}'(이)라는 도시를 찾지 못했어요.\n{CITY_QUESTION}"
    result, text = await rules_only.say(place)
    assert text == f"'{place}'(이)라는 도시를 찾지 못했어요.\n{CITY_QUESTION}"


# ---- weather service outages ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["unavailable", "down"])
async def test_weather_service_down_is_said_honestly(rig: Rig, mode: str) -> None:
    rig.weather.mode = mode  # type: ignore[assignment]
    result, text = await rig.say("서울 날씨 알려줘")
    assert result is TurnResult.FORM
    assert text == (
        "지금 날씨 서비스(Open-Meteo)에 연결할 수 없어 서울 날씨를 확인하지 못했어요. "
        "잠시 후 다시 물어봐 주세요."
    )
    assert "°C" not in text
    # Back up: the follow-up retries with the remembered city.
    rig.weather.mode = "up"
    result, text = await rig.say("내일은?")
    assert text.startswith("서울 내일 날씨")


async def test_geocoding_down_is_said_honestly_and_the_question_stays(rules_only: Rig) -> None:
    rig = rules_only
    await rig.say("날씨 알려줘")
    rig.weather.mode = "unavailable"
    result, text = await rig.say("울진")
    assert result is TurnResult.FORM
    assert text == (
        "지금 날씨 서비스(Open-Meteo)에 연결할 수 없어 '울진'의 위치를 확인하지 못했어요. "
        f"잠시 후 다시 물어봐 주세요.\n{CITY_QUESTION}"
    )
    rig.weather.mode = "up"
    result, text = await rig.say("울진")
    assert text.startswith("울진 오늘 날씨")


# ---- one form inside another ----------------------------------------------------------------


async def test_weather_during_a_booking_is_answered_and_the_booking_goes_on(rig: Rig) -> None:
    await rig.say("상담 예약하고 싶어요")
    await rig.say("홍길동이요")
    result, text = await rig.say("서울 날씨 알려줘")
    assert result is TurnResult.FORM
    assert text.startswith("서울 오늘 날씨")
    assert text.endswith("\n\n연락받으실 전화번호를 알려 주세요. (예: 010-1234-5678)")
    form = (await session_of(rig)).form
    assert form is not None and form["form"] == "intake" and form["asking"] == "phone"


async def test_a_weather_question_is_replaced_by_a_new_request(rig: Rig) -> None:
    await rig.say("날씨 알려줘")
    _result, text = await rig.say("상담 예약하고 싶어요")
    assert text.startswith("상담 예약을 도와드릴게요.")
    form = (await session_of(rig)).form
    assert form is not None and form["form"] == "intake"


async def test_english_user_gets_english_questions(rig: Rig) -> None:
    assert await rig.say("weather please") == (
        TurnResult.FORM,
        "Which city's weather would you like?",
    )
    _result, text = await rig.say("Busan")
    assert text.startswith("Today in Busan:")


async def test_an_open_circuit_breaker_skips_model_extraction(rig: Rig) -> None:
    from bot.glm.breaker import CircuitBreaker

    breaker = CircuitBreaker()
    for _ in range(50):
        breaker.record_failure()
    assert not breaker.allow()
    rig.manager.glm.breaker = breaker  # the extraction goes through the answer path's guards
    result, text = await rig.say("에펠탑 있는 도시 날씨 알려줘")
    assert (result, text) == (TurnResult.FORM, CITY_QUESTION)
    assert rig.tool_requests() == []


async def test_a_request_needing_questions_waits_for_the_running_booking(rig: Rig) -> None:
    await rig.say("상담 예약하고 싶어요")
    result, text = await rig.say("날씨 알려줘")
    assert result is TurnResult.FORM
    assert text == (
        "지금은 상담 예약 중이에요. 먼저 마치거나 '취소'라고 보내 주세요.\n"
        "상담 예약을 도와드릴게요. 성함이 어떻게 되세요?"
    )
    assert rig.weather.forecast_requests() == []


async def test_a_failing_handler_gives_a_clear_message_and_closes_the_form(rig: Rig) -> None:
    class Boom(Exception):
        pass

    async def explode(lat: float, lon: float, *, days: int = 7) -> None:
        raise Boom("bug")

    rig.client.forecast = explode  # type: ignore[method-assign, assignment]
    assert await rig.say("서울 날씨 알려줘") == (
        TurnResult.FORM,
        "날씨 확인 처리 중에 문제가 생겼어요. 잠시 후 다시 시도해 주세요.",
    )
    assert (await session_of(rig)).form is None


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("날씨", True),
        ("날씨요", True),
        ("weather", True),
        ("내일 날씨", True),
        ("날씨가 좋네", False),  # small talk about the weather asks for nothing
        ("오늘 날씨 진짜 덥다", False),
    ],
)
async def test_when_a_weather_word_starts_the_form(rig: Rig, text: str, asks: bool) -> None:
    result, _ = await rig.say(text)
    assert (result is TurnResult.FORM) is asks


class _SaveFails(MemorySessionStore):
    """User sessions cannot be written (e.g. the turn lost its lock); the rest can."""

    async def save(self, session: Session) -> None:
        if session.key.startswith("test:"):
            raise SessionStoreError("session not saved: its lock passed to another turn")
        await super().save(session)


async def test_a_form_answer_whose_save_fails_is_not_followed_by_an_error_reply() -> None:
    async with running(store=_SaveFails()) as rig:
        reply = RecordingReply()
        result = await rig.manager.handle(turn("상담 예약하고 싶어요"), reply)
    assert result is TurnResult.FORM
    assert [kind for kind, _ in reply.events if kind in ("finish", "fail")] == ["finish"]
