"""Reading a message for a form before its extractors do (bot/forms/understanding.py): negation,
references, corrections, declining the form, retries; the typo matching of gazetteer cities; the
machine's cleared slots; and the stage remembering a failed request."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.forms.builtin.intake import RecordSubmissionStore, intake_form
from bot.forms.builtin.weather import CONTEXT_WORDS, Forecast, Place, weather_form
from bot.forms.extractors import Found, Utterance, misspelt_city
from bot.forms.machine import CONFIRM, Answer, Ask, Complete, Confirm, FormMachine, NoProgress
from bot.forms.registry import FormRegistry
from bot.forms.spec import Filled, Form, HandlerResult, Slot, Triggers
from bot.forms.stage import SlotFillingStage
from bot.forms.understanding import REFERENCE, Reading, is_retry, read
from bot.manager import TurnResult
from bot.sessions.base import Session
from bot.sessions.memory import MemorySessionStore
from tests.bot.forms.support import NOW, Clock, Rig, gazetteer, korean, running, utt
from tests.bot.helpers import turn


class NoWeather:
    """Reading a message does no I/O."""

    async def geocode(self, name: str, *, lang: str, count: int = 5) -> list[Place]:
        raise AssertionError("reading does no I/O")

    async def forecast(self, lat: float, lon: float, *, days: int = 7) -> Forecast:
        raise AssertionError("reading does no I/O")


WEATHER = weather_form(gazetteer(), NoWeather())
INTAKE = intake_form(RecordSubmissionStore(MemorySessionStore()))
# What a booking holds so far (for "홍길동 말고 ...", "이름 홍길순이에요").
BOOKING = {
    "name": "홍길동",
    "phone": "010-1234-5678",
    "date": "2025-06-16",
    "time": "15:00",
    "topic": "취업 상담",
}
TODAY, TOMORROW, AFTER = "2025-06-13", "2025-06-14", "2025-06-15"


def city(name: str) -> dict[str, Any]:
    found = gazetteer().lookup(name)
    assert found is not None, name
    return found.to_value()


def city_id(value: Any) -> str | None:
    return str(value["id"]) if isinstance(value, dict) and "id" in value else None


def found_at(form: Form, slot: str, reading: Reading) -> Found | None:
    return form.slot(slot).find(reading.utt)


def assert_offsets_kept(said: str, reading: Reading) -> None:
    assert len(reading.utt.text) == len(said)
    assert reading.utt.original == said
    # Only blanks were put in: every other character is where it was.
    assert all(m == o or m == " " for m, o in zip(reading.utt.text, said, strict=True))


# ---- read(): no cue ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["부산 날씨 알려줘", "What's the weather in Seoul?", "내일 날씨 어때?", "전부 고마워요"]
)
def test_a_message_with_no_cue_is_read_unchanged(text: str) -> None:
    said = utt(text)
    reading = read(WEATHER, said, {"city": city("서울"), "date": TODAY})
    assert reading.utt is said
    assert (reading.negated, reading.replaced, reading.referred) == ({}, {}, frozenset())
    assert not reading.correcting and not reading.declined and not reading.changed


# ---- read(): negated values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "negated", "replacement"),
    [
        ("부산 말고 울산 날씨 알려줘", "kr-busan", "울산"),
        ("광주 아니고 광명 날씨 알려줘", "kr-gwangju", "광명"),
        ("제주 대신 서귀포 날씨는?", "kr-jeju", "서귀포"),
        ("서울, 아니 인천이요", "kr-seoul", "인천"),
        ("목포 날씨 말고 여수 날씨 알려줘", "kr-mokpo", "여수"),  # the context word in between
        ("Seoul 말고 Busan 날씨 알려줘", "kr-seoul", "Busan"),
        ("weather in Ulsan, not Busan", "kr-busan", "Ulsan"),
        ("What's the weather in Daejeon instead of Daegu?", "kr-daegu", "Daejeon"),
        ("Seoul rather than Busan", "kr-busan", "Seoul"),
        ("Busan, no wait, Ulsan", "kr-busan", "Ulsan"),
        ("Busan, I mean Ulsan", "kr-busan", "Ulsan"),
    ],
)
def test_a_negated_city_is_taken_back_and_blanked_out(
    text: str, negated: str, replacement: str
) -> None:
    reading = read(WEATHER, utt(text))
    assert city_id(reading.negated.get("city")) == negated
    assert_offsets_kept(text, reading)
    # The extractor now finds the replacement, where it was said.
    found = found_at(WEATHER, "city", reading)
    assert found is not None and city_id(found.value) == city(replacement)["id"]
    assert found.start == text.index(replacement)
    assert reading.correcting and reading.changed and not reading.declined
    assert reading.referred == frozenset()


def test_not_with_nothing_after_it_leaves_no_city() -> None:
    reading = read(WEATHER, utt("not Busan"))
    assert city_id(reading.negated["city"]) == "kr-busan"
    assert reading.utt.text.strip() == ""
    assert found_at(WEATHER, "city", reading) is None


def test_a_negated_value_alone_leaves_nothing_for_the_extractors() -> None:
    reading = read(WEATHER, utt("광주 말고요"))
    assert city_id(reading.negated["city"]) == "kr-gwangju"
    assert reading.utt.text.strip() == "" and reading.replaced == {}


@pytest.mark.parametrize(
    ("text", "negated", "meant"),
    [
        ("내일 말고 모레 부산 날씨 알려줘", TOMORROW, AFTER),
        ("아니 오늘 말고 내일", TODAY, TOMORROW),
        ("내일 아니고 모레 부산", TOMORROW, AFTER),
    ],
)
def test_a_negated_date_is_taken_back(text: str, negated: str, meant: str) -> None:
    reading = read(WEATHER, utt(text))
    assert reading.negated == {"date": negated}
    assert_offsets_kept(text, reading)
    found = found_at(WEATHER, "date", reading)
    assert found is not None and found.value == meant


def test_a_reference_word_can_be_negated_too() -> None:
    reading = read(WEATHER, utt("거기 말고 전주"))
    assert reading.negated == {"city": REFERENCE}
    assert reading.referred == frozenset()  # taken back, so it stands for nothing
    found = found_at(WEATHER, "city", reading)
    assert found is not None and city_id(found.value) == "kr-jeonju"


@pytest.mark.parametrize(
    ("text", "slot", "negated", "meant"),
    [
        ("3시 말고 4시요", "time", "15:00", "16:00"),
        ("3시, 아니 4시요", "time", "15:00", "16:00"),
        ("3시 대신 4시", "time", "15:00", "16:00"),
        ("not 3pm, 4pm", "time", "15:00", "16:00"),
        ("010-1234-5678 말고 010-9999-8888이요", "phone", "010-1234-5678", "010-9999-8888"),
        ("월요일 말고 화요일", "date", "2025-06-16", "2025-06-17"),
    ],
)
def test_intake_values_of_every_kind_are_negated(
    text: str, slot: str, negated: str, meant: str
) -> None:
    reading = read(INTAKE, utt(text), BOOKING)
    assert reading.negated == {slot: negated}
    assert_offsets_kept(text, reading)
    found = found_at(INTAKE, slot, reading)
    assert found is not None and found.value == meant


def test_a_name_no_extractor_finds_is_negated_through_the_current_values() -> None:
    text = "홍길동 말고 김민지요"
    reading = read(INTAKE, utt(text), BOOKING)
    assert reading.negated == {"name": "홍길동"}
    assert reading.replaced == {"name": "김민지"}  # the slot's parser, after the cue
    assert "홍길동" not in reading.utt.text and "김민지" in reading.utt.text
    assert_offsets_kept(text, reading)
    # With nothing said so far there is no name to take back.
    assert read(INTAKE, utt(text)).negated == {}


# ---- read(): named values, references, corrections, declining ------------------------------------


def test_a_slot_named_with_a_new_value_is_read() -> None:
    assert read(INTAKE, utt("아, 이름 홍길순이에요"), BOOKING).replaced == {"name": "홍길순"}
    # Only a change: with no name so far the extractors' and the question's business.
    assert read(INTAKE, utt("아, 이름 홍길순이에요")).replaced == {}
    # Never a question about the slot.
    assert read(INTAKE, utt("이름이 뭐였죠?"), BOOKING).replaced == {}


def test_a_change_of_a_free_text_slot_drops_how_it_is_handed_over() -> None:
    reading = read(INTAKE, utt("주제는 전세 대출로 바꿔 주세요"), BOOKING)
    assert reading.replaced == {"topic": "전세 대출"}
    assert reading.correcting and reading.negated == {}


@pytest.mark.parametrize(
    ("form", "text", "referred", "word"),
    [
        (WEATHER, "거기 내일은?", {"city"}, "거기"),
        (WEATHER, "그곳은 어때?", {"city"}, "그곳"),
        (WEATHER, "그날 부산은?", {"date"}, "그날"),
        (WEATHER, "what about there tomorrow?", {"city"}, "there"),
        (WEATHER, "that day in Busan", {"date"}, "that day"),
        (INTAKE, "그날 3시요", {"date"}, "그날"),
        (INTAKE, "그 시간에 가능해요", {"time"}, "그 시간"),
    ],
)
def test_reference_words_stand_for_their_slots_and_are_blanked(
    form: Form, text: str, referred: set[str], word: str
) -> None:
    reading = read(form, utt(text))
    assert reading.referred == frozenset(referred)
    assert word not in reading.utt.text
    assert_offsets_kept(text, reading)
    assert reading.negated == {} and not reading.changed


def test_the_other_values_of_a_message_with_a_reference_are_still_found() -> None:
    text = "거기 내일은?"
    found = found_at(WEATHER, "date", read(WEATHER, utt(text)))
    assert found is not None and found.value == TOMORROW and found.start == text.index("내일")
    found = found_at(INTAKE, "time", read(INTAKE, utt("그날 3시요")))
    assert found is not None and found.value == "15:00"


@pytest.mark.parametrize("text", ["therefore Busan", "thereafter", "Busan, anywhere"])
def test_reference_words_inside_other_words_are_not_references(text: str) -> None:
    assert read(WEATHER, utt(text)).referred == frozenset()


@pytest.mark.parametrize(
    ("form", "text"),
    [
        (WEATHER, "sorry, I meant Suwon"),
        (WEATHER, "actually Busan"),
        (WEATHER, "Make it Busan"),
        (WEATHER, "잘못 말했어요"),
        (WEATHER, "부산으로 바꿔 주세요"),
        (INTAKE, "전화번호 잘못 말했어요, 010-2222-3333"),
        (INTAKE, "시간 변경하고 싶어요"),
    ],
)
def test_correction_cues_mark_the_message_as_correcting(form: Form, text: str) -> None:
    reading = read(form, utt(text))
    assert reading.correcting and reading.changed
    assert reading.negated == {}
    assert reading.utt.text == text  # nothing to blank out: the extractors read it all


def test_declining_the_form_itself() -> None:
    reading = read(WEATHER, utt("날씨 말고 뉴스 알려줘"))
    assert reading.declined
    assert reading.negated == {} and not reading.correcting
    # A value taken back next to the trigger word is a correction, not a decline.
    assert not read(WEATHER, utt("목포 날씨 말고 여수 날씨 알려줘")).declined


@pytest.mark.parametrize(
    "text",
    [
        "I'm not sure",
        "not now, thanks",
        "not bad",
        "아니 괜찮아요",
        "말고 다른 건 없어?",
        "대신 뭐 할까?",
        "내일 아니면 모레",  # "아니면" is "or else", no cue
    ],
)
def test_cues_with_no_value_next_to_them_take_nothing_back(text: str) -> None:
    reading = read(WEATHER, utt(text), {"city": city("부산"), "date": TODAY})
    assert reading.negated == {} and reading.replaced == {}
    assert not reading.declined
    assert reading.utt.text == text


# ---- is_retry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "다시 알려줘",
        "다시",
        "다시요",
        "다시 한번 알려줘",
        "다시 한 번 알려줘",
        "한 번 더",
        "재시도",
        "그럼 다시 알려줘",
        "다시 알려주세요",
        "다시 확인해줘",
        "try again",
        "Try again please",
        "please try again",
        "Try it again!",
        "again?",
        "retry",
        "one more time",
    ],
)
def test_retry_phrases(text: str) -> None:
    assert is_retry(text)


@pytest.mark.parametrize(
    "text",
    [
        "다시는 안 물어볼게",
        "다시 생각해보니 괜찮아",
        "부산 다시 알려줘",  # a new value: a follow-up, not the same request
        "아까 거 다시",
        "try again later",
        "I will try again",
        "again and again",
        "고마워",
        "",
    ],
)
def test_not_retry_phrases(text: str) -> None:
    assert not is_retry(text)


# ---- CityGazetteer.near --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("부싼", "kr-busan"),
        ("서을", "kr-seoul"),
        ("인쳔", "kr-incheon"),
        ("대졘", "kr-daejeon"),
        ("광쥬", "kr-gwangju"),
        ("Busna", "kr-busan"),  # two neighbours swapped
        ("Incheonn", "kr-incheon"),  # one letter too many
        ("Seuol", "kr-seoul"),
        ("londn", "gb-london"),  # case does not matter
    ],
)
def test_near_matches_a_misspelt_city(word: str, expected: str) -> None:
    found = gazetteer().near(word)
    assert found is not None and found.id == expected


@pytest.mark.parametrize(
    "word",
    [
        "부산",  # exact names are the gazetteer's own business
        "Busan",
        "busan",
        "서",  # too short
        "산",
        "Bus",
        "Rom",
        "",
        "학교",  # far from every name
        "Xyzzy",
        "Manchesterr United",
    ],
)
def test_near_refuses_exact_short_and_far_words(word: str) -> None:
    assert gazetteer().near(word) is None


def _jamo_distance(a: str, b: str) -> int:
    """Levenshtein distance of two Korean words spelt out in jamo (independent of the bot's)."""
    x, y = unicodedata.normalize("NFD", a), unicodedata.normalize("NFD", b)
    row = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        prev, row[0] = row[0], i
        for j, cy in enumerate(y, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (cx != cy))
    return row[-1]


def _between(a: str, b: str) -> str:
    """A misspelling as near to ``a`` as to ``b`` (two names differing in their last syllable):
    the first consonant of ``a``'s last syllable with the vowel and final of ``b``'s."""
    code_a, code_b = ord(a[-1]) - 0xAC00, ord(b[-1]) - 0xAC00
    return a[:-1] + chr(0xAC00 + (code_a // 588) * 588 + code_b % 588)


def test_near_refuses_a_word_equally_near_two_cities() -> None:
    g = gazetteer()
    ambiguous = []
    for a in g.cities:
        for b in g.cities:
            if a.id != b.id and len(a.ko) == len(b.ko) == 2 and a.ko[0] == b.ko[0]:
                word = _between(a.ko, b.ko)
                if word not in (a.ko, b.ko) and _jamo_distance(word, a.ko) == 1:
                    if _jamo_distance(word, b.ko) == 1:
                        ambiguous.append((word, a, b))
    assert "부선" in {word for word, _, _ in ambiguous}  # one letter from 부산 and from 부천
    for word, _a, _b in ambiguous:
        assert g.near(word) is None, word
    # One letter from a single city is still matched.
    busan = g.near("부싼")
    assert busan is not None and busan.id == "kr-busan"


# ---- misspelt_city -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "word"),
    [
        ("부싼 날씨", "kr-busan", "부싼"),  # before the context word
        ("부싼 날씨 알려줘", "kr-busan", "부싼"),
        ("내일 부싼 날씨", "kr-busan", "부싼"),  # a date between is skipped over
        ("부싼", "kr-busan", "부싼"),  # the whole of a short message
        ("서을은?", "kr-seoul", "서을"),  # with a particle after it
        ("그럼 인쳔은?", "kr-incheon", "인쳔"),  # after a leader word
        ("아니 대졘", "kr-daejeon", "대졘"),
    ],
)
def test_misspelt_city_where_a_city_is_expected(text: str, expected: str, word: str) -> None:
    found = misspelt_city(gazetteer(), utt(text), CONTEXT_WORDS)
    assert found is not None and city_id(found.value) == expected
    assert text[found.start : found.end] == word


@pytest.mark.parametrize(
    "text",
    [
        "부상 당했어요",  # an injury (Kiwi knows 부상), not 부산
        "부상",
        "전부 알려줘",  # "all of it" (Kiwi knows 전부), not 전주
        "전부",
        "오늘 부싼에 가서 친구를 만나고 밥을 먹을 거예요",  # long, with no context word
        "오늘 부싼에 가서 친구를 만나고 밥을 먹을 거예요 날씨",  # "날씨" not right after it
        "아니",  # nothing but a leader word
        "",
    ],
)
def test_misspelt_city_refusals(text: str) -> None:
    assert misspelt_city(gazetteer(), utt(text), CONTEXT_WORDS) is None


def test_misspelt_city_needs_kiwi_to_tell_a_typo_from_a_word() -> None:
    # Without morphology "부상 당했어요" (an injury) would read as 부산: no typo is guessed.
    for text in ("부싼 날씨", "부상 당했어요", "전부 알려줘"):
        assert misspelt_city(gazetteer(), Utterance(text, "ko", NOW, None), CONTEXT_WORDS) is None


# ---- KoreanAnalyzer.known_word -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "known"),
    [
        ("부상", True),
        ("전부", True),
        ("학교", True),
        ("사과", True),
        ("서울", True),
        ("부싼", False),  # a guess at a word Kiwi does not know
        ("대졘", False),
        ("인쳔", False),
        ("학교에", True),  # a word and its particle
        ("통역이요", True),
        ("구려", True),  # 구리 + 어: an adjective's ending, not the city 구리
        ("서을", False),  # 서 + 을: pieces that make no word
        ("부상 당했어요", False),
    ],
)
def test_known_word(word: str, known: bool) -> None:
    assert korean().known_word(word) is known


# ---- Utterance.masked ----------------------------------------------------------------------------


def test_masked_blanks_spans_and_drops_their_tokens() -> None:
    said = utt("부산 말고 울산 날씨 알려줘")
    assert any(t.form == "부산" for t in said.tokens())
    masked = said.masked([(0, 5)])
    assert masked.text == "      울산 날씨 알려줘"
    assert len(masked.text) == len(said.text)
    assert masked.original == said.text and said.original == said.text
    assert all(t.start >= 5 for t in masked.tokens())
    assert {"울산", "날씨"} <= {t.form for t in masked.tokens()}
    # Offsets still hold: the gazetteer finds 울산 where it was said.
    found = gazetteer().first(masked)
    assert found is not None and (found.start, found.end) == (6, 8)
    # Masking again still remembers the message as written.
    twice = masked.masked([(6, 8)])
    assert twice.original == said.text
    assert gazetteer().first(twice) is None
    assert (twice.lang, twice.now, twice.analyzer) == (said.lang, said.now, said.analyzer)


def test_masked_clips_spans_and_ignores_empty_ones() -> None:
    said = utt("weather in Busan")
    masked = said.masked([(-3, 2), (11, 11), (14, 99)])
    assert masked.text == "  ather in Bus  "
    assert masked.original == "weather in Busan"
    assert said.masked([]).text == said.text


# ---- FormMachine: cleared slots ------------------------------------------------------------------


async def _never(filled: Filled) -> HandlerResult:
    raise AssertionError("the machine never runs handlers")


def trip_form(*, confirm: bool = False) -> Form:
    return Form(
        name="trip",
        title={"ko": "여행", "en": "trip"},
        description="Plan a trip.",
        slots=(
            Slot("where", {"ko": "장소", "en": "place"}, {"ko": "어디로?", "en": "Where?"}),
            Slot(
                "when",
                {"ko": "날짜", "en": "day"},
                {"ko": "언제?", "en": "When?"},
                required=False,
                default=lambda ctx: ctx.today.isoformat(),
            ),
            Slot("who", {"ko": "인원", "en": "party"}, {"ko": "몇 명?", "en": "How many?"}),
        ),
        handler=_never,
        triggers=Triggers(keywords=("trip",)),
        confirm=confirm,
    )


TS = NOW.timestamp()
machine = FormMachine(max_retries=3)


def test_a_cleared_optional_slot_is_asked_first() -> None:
    form = trip_form()
    state, step = machine.start(form, Answer({"where": "부산"}), now=NOW, lang="ko", ts=TS)
    assert step == Ask("who", "몇 명?")
    state.values["when"] = TOMORROW
    step = machine.advance(
        form, state, Answer({}, "내일 말고요", cleared=frozenset({"when"})), now=NOW, ts=TS
    )
    # Optional, and "who" is still missing: the taken-back answer comes first all the same.
    assert step == Ask("when", "언제?")
    assert "when" not in state.values and state.asking == "when"


def test_starting_with_a_cleared_slot_asks_it() -> None:
    form = trip_form()
    answer = Answer({"where": "부산", "who": 2}, cleared=frozenset({"when"}))
    state, step = machine.start(form, answer, now=NOW, lang="en", ts=TS)
    assert step == Ask("when", "When?")
    assert state.values == {"where": "부산", "who": 2}


def test_a_cleared_slot_with_a_new_value_is_not_asked() -> None:
    form = trip_form()
    answer = Answer({"where": "울산", "who": 2}, cleared=frozenset({"where"}))
    _state, step = machine.start(form, answer, now=NOW, lang="ko", ts=TS)
    assert step == Complete({"where": "울산", "who": 2, "when": TODAY})


def test_clearing_a_required_slot_is_progress() -> None:
    form = trip_form()
    state, _ = machine.start(form, Answer({"where": "부산"}), now=NOW, lang="ko", ts=TS)
    step = machine.advance(
        form, state, Answer({}, "부산 말고요", cleared=frozenset({"where"})), now=NOW, ts=TS
    )
    assert step == Ask("where", "어디로?")
    assert state.values == {} and state.retries == 0


def test_clearing_a_slot_the_form_does_not_have_is_no_progress() -> None:
    form = trip_form()
    state, _ = machine.start(form, Answer({"where": "부산"}), now=NOW, lang="ko", ts=TS)
    step = machine.advance(
        form, state, Answer({}, "x", cleared=frozenset({"colour"})), now=NOW, ts=TS
    )
    assert step == NoProgress("몇 명?")
    assert state.values == {"where": "부산"}


def test_at_the_confirmation_a_cleared_slot_is_asked() -> None:
    form = trip_form(confirm=True)
    state, step = machine.start(
        form, Answer({"where": "부산", "who": 2}), now=NOW, lang="ko", ts=TS
    )
    assert isinstance(step, Confirm) and state.asking == CONFIRM
    step = machine.advance(
        form, state, Answer({}, "2명 말고요", cleared=frozenset({"who"})), now=NOW, ts=TS
    )
    assert step == Ask("who", "몇 명?")
    assert "who" not in state.values
    step = machine.advance(form, state, Answer({"who": 3}, "3명"), now=NOW, ts=TS)
    assert isinstance(step, Confirm) and "• 인원: 3" in step.text


# ---- the stage: a failed request is remembered ---------------------------------------------------


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running() as rig:
        yield rig


async def last_state(rig: Rig) -> tuple[dict[str, Any], dict[str, Any] | None]:
    session = await rig.store.load(turn("x").session_key())
    return dict(session.state), session.form


def short(values: dict[str, Any]) -> dict[str, Any]:
    return {k: city_id(v) or v for k, v in values.items()}


async def test_a_forecast_outage_keeps_the_request_as_failed_and_a_retry_fetches_it(
    rig: Rig,
) -> None:
    rig.weather.mode = "down"
    result, text = await rig.say("서울 내일 날씨 알려줘")
    assert result is TurnResult.FORM and "Open-Meteo" in text
    state, form = await last_state(rig)
    assert form is None
    assert state["intent"] == "weather" and state["failed"] is True
    assert short(state["values"]) == {"city": "kr-seoul", "date": TOMORROW}
    # Still down: tried again, still failed, still remembered.
    tried = len(rig.weather.forecast_requests())
    await rig.say("다시 알려줘")
    assert len(rig.weather.forecast_requests()) > tried
    state, _ = await last_state(rig)
    assert state["failed"] is True and short(state["values"])["city"] == "kr-seoul"
    # Back up: the same request, answered; the failure is forgotten.
    rig.weather.mode = "up"
    result, text = await rig.say("다시 알려줘")
    assert result is TurnResult.FORM and text.startswith("서울 내일 날씨")
    seoul = gazetteer().lookup("서울")
    assert seoul is not None
    assert rig.weather.forecast_coordinates()[-1] == (round(seoul.lat, 4), round(seoul.lon, 4))
    state, _ = await last_state(rig)
    assert "failed" not in state
    assert short(state["values"]) == {"city": "kr-seoul", "date": TOMORROW}
    assert rig.tool_requests() == []


@pytest.mark.parametrize("again", ["다시 알려줘", "try again", "재시도"])
async def test_a_retry_phrase_after_a_good_answer_goes_to_the_model(rig: Rig, again: str) -> None:
    await rig.say("부산 날씨 알려줘")
    fetched = len(rig.weather.forecast_requests())
    result, text = await rig.say(again)
    assert result is TurnResult.ANSWERED and text == f"echo: {again}"
    assert len(rig.weather.forecast_requests()) == fetched
    state, form = await last_state(rig)
    assert form is None and "failed" not in state


async def test_an_unrelated_message_after_a_failure_keeps_the_failure(rig: Rig) -> None:
    rig.weather.mode = "down"
    await rig.say("부산 날씨")
    rig.weather.mode = "up"
    fetched = len(rig.weather.forecast_requests())
    for said in ("고마워", "다시 생각해보니 괜찮아"):
        result, _ = await rig.say(said)
        assert result is TurnResult.ANSWERED
    assert len(rig.weather.forecast_requests()) == fetched
    state, _ = await last_state(rig)
    assert state["failed"] is True and short(state["values"])["city"] == "kr-busan"


class FlakyHandler:
    """Raises while ``broken``; records every run."""

    def __init__(self) -> None:
        self.broken = True
        self.runs: list[dict[str, Any]] = []

    async def __call__(self, filled: Filled) -> HandlerResult:
        self.runs.append(dict(filled.values))
        if self.broken:
            raise RuntimeError("the lamp controller is unplugged")
        return HandlerResult(f"The {filled.values['room']} lamp is on.")


def lamp_form(handler: FlakyHandler) -> Form:
    def room(u: Utterance) -> Found | None:
        m = re.search(r"\b(kitchen|bedroom|garden)\b", u.text, re.IGNORECASE)
        return Found(m.group(1).lower(), m.start(), m.end()) if m else None

    return Form(
        name="lamp",
        title={"ko": "조명", "en": "lamp switch"},
        description="Switch a lamp on.",
        slots=(Slot("room", {"en": "room"}, {"en": "Which room?"}, extract=room),),
        handler=handler,
        triggers=Triggers(keywords=(r"\blamp\b",)),
        carry_over=True,
    )


async def test_a_handler_that_raises_keeps_the_request_as_failed() -> None:
    handler = FlakyHandler()
    stage = SlotFillingStage(FormRegistry([lamp_form(handler)]), analyzer=None, clock=Clock())
    session = Session(key="test:lamp")

    async def say(text: str) -> str | None:
        reply = await stage.handle(session, turn(text), text, "en")
        return None if reply is None else reply.text

    text = await say("switch on the kitchen lamp")
    assert text == "Something went wrong with the lamp switch. Please try again in a moment."
    assert session.form is None
    assert session.state == {
        "intent": "lamp",
        "values": {"room": "kitchen"},
        "at": NOW.timestamp(),
        "gap": 0,
        "lang": "en",
        "failed": True,
    }
    handler.broken = False
    assert await say("try again") == "The kitchen lamp is on."
    assert handler.runs == [{"room": "kitchen"}, {"room": "kitchen"}]
    assert "failed" not in session.state and session.state["values"] == {"room": "kitchen"}
    # Not failed any more: "again" is no longer the lamp's business.
    assert await say("try again") is None
    assert len(handler.runs) == 2


async def test_a_reference_reaches_into_the_last_request_of_another_form() -> None:
    async with running(model_extraction=False) as rig:
        await rig.say("내일 부산 날씨 알려줘")
        result, text = await rig.say("그날 상담 예약하고 싶어요")
        assert result is TurnResult.FORM and "성함" in text
        _, form = await last_state(rig)
        assert form is not None and form["form"] == "intake"
        assert form["values"] == {"date": TOMORROW}


# ---- the stage: messages that must change nothing ------------------------------------------------


@pytest.mark.parametrize(
    "said",
    [
        "I'm not sure",
        "not now, thanks",
        "not today, thanks",
        "No, thanks",
        "no problem",
        "Thanks, not bad",
        "I'm not in Busan anymore",
        "Not Busan, I live in Seoul",
        "I've never been there",
        "there you go",
        "아니",
        "아니요",
        "아니 괜찮아요",
        "아니야, 고마워",
        "거기 가 봤어?",
        "거기 맛집 알려줘",
        "거기서 뭐 먹을까?",
        "그날 정말 재밌었어",
        "그때 좋았지",
        "그곳은 어때?",  # the same place: nothing to change
        "전부 고마워요",
        "부상 당했어요",
        "말고 다른 건 없어?",
        "대신 뭐 할까?",
        "부산 말고는 어디가 좋아?",
        "대구 말고 다른 얘기 하자",
        "내일 말고 다른 날 만나자",
        "내일 아니면 모레",
        "그거 말고 다른 거 물어볼게",
        # Values that were never said are not taken back; "not today" is a polite no.
        "대구 말고요",
        "not Daegu",
        "서울 아니야?",
        "내일 말고요",
        "not today",
        # Words of their own, one letter from a city: 구려 (it's lame) is not 구리, 통역 not 통영.
        "구려",
        "통역이요",
        # Farewells are no retry (and nothing failed here anyway).
        "다시 만나요",
    ],
)
async def test_after_a_weather_answer_these_go_to_the_model(rig: Rig, said: str) -> None:
    await rig.say("부산 날씨 알려줘")
    before, _ = await last_state(rig)
    fetched = len(rig.weather.forecast_requests())
    result, text = await rig.say(said)
    assert result is TurnResult.ANSWERED and text == f"echo: {said}"
    assert len(rig.weather.forecast_requests()) == fetched
    after, form = await last_state(rig)
    assert form is None
    assert after["values"] == before["values"] and "failed" not in after


@pytest.mark.parametrize(
    "said", ["다시 알려줘", "아니요", "부산 말고 다른 데 가고 싶어", "not Busan"]
)
async def test_with_nothing_remembered_these_start_no_form(rig: Rig, said: str) -> None:
    result, _ = await rig.say(said)
    assert result is TurnResult.ANSWERED
    state, form = await last_state(rig)
    assert form is None and "intent" not in state
    assert rig.weather.forecast_requests() == []


BOOKING_ANSWERS = ("상담 예약하고 싶어요", "홍길동", "010-1234-5678", "다음 주 월요일", "3시")


@pytest.mark.parametrize("no", ["아니요", "아뇨", "아니 잠깐만요"])
@pytest.mark.parametrize(("answered", "asking"), [(2, "phone"), (3, "date"), (4, "time")])
async def test_a_bare_no_at_a_booking_question_changes_nothing(
    no: str, answered: int, asking: str
) -> None:
    async with running(model_extraction=False) as rig:
        for said in BOOKING_ANSWERS[:answered]:
            await rig.say(said)
        _, before = await last_state(rig)
        assert before is not None and before["asking"] == asking
        result, text = await rig.say(no)
        # An interruption: the model answers, then the same question comes again.
        assert result is TurnResult.ANSWERED and text.startswith(f"echo: {no}\n\n")
        _, after = await last_state(rig)
        assert after is not None
        assert after["values"] == before["values"] and after["asking"] == asking


async def test_a_bare_no_at_the_booking_confirmation_asks_what_to_change() -> None:
    async with running(model_extraction=False) as rig:
        for said in (*BOOKING_ANSWERS, "전세 대출 상담"):
            await rig.say(said)
        result, text = await rig.say("아니요")
        assert result is TurnResult.FORM and text.startswith("어떤 항목을 바꿀까요?")
        _, form = await last_state(rig)
        assert form is not None and form["values"]["time"] == "15:00"


@pytest.mark.parametrize("said", ["날씨 구려", "날씨 구려?"])
async def test_slang_next_to_the_weather_is_no_misspelt_city(rig: Rig, said: str) -> None:
    await rig.say(said)
    assert rig.weather.forecast_requests() == []


async def test_a_word_at_the_city_question_is_no_misspelt_city(rig: Rig) -> None:
    await rig.say("날씨 알려줘")
    for said in ("구려", "통역이요"):
        await rig.say(said)
        assert rig.weather.forecast_requests() == [], said


async def test_taking_back_the_city_held_asks_for_another(rig: Rig) -> None:
    await rig.say("부산 날씨 알려줘")
    result, text = await rig.say("부산 말고요")
    assert result is TurnResult.FORM and "어느 도시" in text
    _, form = await last_state(rig)
    assert form is not None and form["asking"] == "city"


@pytest.mark.parametrize("farewell", ["다시 만나요", "다시 봐요"])
async def test_a_farewell_after_a_failure_is_no_retry(rig: Rig, farewell: str) -> None:
    rig.weather.mode = "down"
    await rig.say("부산 날씨")
    rig.weather.mode = "up"
    fetched = len(rig.weather.forecast_requests())
    result, _ = await rig.say(farewell)
    assert result is TurnResult.ANSWERED
    assert len(rig.weather.forecast_requests()) == fetched


@pytest.mark.parametrize(
    "again", ["다시 알려 주세요", "다시 해 주세요", "다시 시도해 줄래?", "can you try again?"]
)
async def test_the_usual_ways_of_asking_again_retry(rig: Rig, again: str) -> None:
    rig.weather.mode = "down"
    await rig.say("부산 날씨")
    rig.weather.mode = "up"
    result, text = await rig.say(again)
    assert result is TurnResult.FORM and ("부산" in text or "Busan" in text) and "°C" in text


@pytest.mark.parametrize(("no", "asking"), [("아니요", "name"), ("아니 잠깐만요", "topic")])
async def test_a_bare_no_is_neither_a_name_nor_a_topic(no: str, asking: str) -> None:
    async with running(model_extraction=False) as rig:
        answers = () if asking == "name" else BOOKING_ANSWERS[1:]
        for said in (BOOKING_ANSWERS[0], *answers):
            await rig.say(said)
        _, before = await last_state(rig)
        assert before is not None and before["asking"] == asking
        await rig.say(no)
        _, after = await last_state(rig)
        assert after is not None and after["asking"] == asking
        assert after["values"] == before["values"]


async def test_no_then_the_answer_takes_the_answer() -> None:
    async with running(model_extraction=False) as rig:
        await rig.say("상담 예약하고 싶어요")
        await rig.say("아니요, 홍길동이에요")
        _, form = await last_state(rig)
        assert form is not None and form["values"]["name"] == "홍길동"
