"""Deterministic extractors: what each recognises, and what it must leave alone."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.forms.extractors import (
    clean_person_name,
    find_date,
    find_number,
    find_person_name,
    find_phone,
    find_time,
    format_korean_phone,
    has_cue,
    is_cancel,
    josa,
    place_candidate,
    yes_or_no,
)
from tests.bot.forms.support import gazetteer, utt

TODAY = date(2025, 6, 13)  # a Friday


def city_ids(text: str) -> list[str]:
    return [str(f.value["id"]) for f in gazetteer().find(utt(text))]


# ---- cities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("서울 날씨 알려줘", ["kr-seoul"]),
        ("서울날씨", ["kr-seoul"]),
        ("부산은?", ["kr-busan"]),
        ("대구는요?", ["kr-daegu"]),
        ("안동은?", ["kr-andong"]),  # Kiwi alone reads "안동은" as one word; it was taught
        ("광주 날씨 어때?", ["kr-gwangju"]),
        ("경기 광주 날씨", ["kr-gwangju-gg"]),  # the longest name wins
        ("제주도 날씨", ["kr-jeju"]),
        ("서울특별시 기온", ["kr-seoul"]),
        ("What's the weather in Seoul?", ["kr-seoul"]),
        ("weather in tokyo and osaka", ["jp-tokyo", "jp-osaka"]),
        ("Seoul's weather", ["kr-seoul"]),
        ("뉴욕이랑 런던", ["us-new-york", "gb-london"]),
        ("진주 날씨", ["kr-jinju"]),
        ("진주 축제 날씨", ["kr-jinju"]),  # a festival in Jinju
        ("파리 내일 날씨", ["fr-paris"]),  # Kiwi reads 파리 as "fly" here; still Paris
    ],
)
def test_gazetteer_finds_city_names(text: str, ids: list[str]) -> None:
    assert city_ids(text) == ids


@pytest.mark.parametrize(
    "text",
    [
        "고양이는?",  # a cat, not the city 고양
        "고양이 날씨",
        "서울대 날씨",  # a university
        "진주 목걸이 날씨",  # a pearl necklace
        "진주 귀걸이 날씨",
        "진주 반지 날씨",
        "구리 냄비 날씨",  # a copper pot
        "부산행 기차",
        "Parisian style",
        "Seoulite",
    ],
)
def test_gazetteer_leaves_words_that_only_contain_a_name(text: str) -> None:
    assert city_ids(text) == []


def test_gazetteer_values_are_self_contained_json() -> None:
    found = gazetteer().first(utt("부산"))
    assert found is not None
    assert found.value == {
        "id": "kr-busan",
        "names": {"ko": "부산", "en": "Busan"},
        "lat": 35.1796,
        "lon": 129.0756,
        "country": "KR",
    }
    assert len(gazetteer()) > 150


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("울진 날씨 알려줘", "울진"),
        ("울진의 날씨", "울진"),
        ("What's the weather in Reykjavik?", "Reykjavik"),
        ("weather in new orleans tomorrow", "new orleans"),
        ("Reykjavik weather", "Reykjavik"),
    ],
)
def test_unknown_place_next_to_a_weather_word(text: str, name: str) -> None:
    found = place_candidate(utt(text), ("날씨", "weather"))
    assert found is not None and found.value == {"query": name}


@pytest.mark.parametrize(
    "text", ["오늘 날씨", "요즘 날씨 좋다", "우리 동네 날씨", "what's the weather like today"]
)
def test_no_place_in_ordinary_weather_talk(text: str) -> None:
    assert place_candidate(utt(text), ("날씨", "weather")) is None


# ---- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("오늘", "2025-06-13"),
        ("내일은?", "2025-06-14"),
        ("모레", "2025-06-15"),
        ("내일모레", "2025-06-15"),
        ("글피", "2025-06-16"),
        ("어제", "2025-06-12"),
        ("이번 주 금요일", "2025-06-13"),
        ("이번 주 월요일", "2025-06-09"),  # this week's, already past
        ("다음 주 월요일", "2025-06-16"),
        ("다음주 금요일 오후 3시", "2025-06-20"),
        ("다음 화요일", "2025-06-17"),
        ("금요일", "2025-06-13"),
        ("토요일", "2025-06-14"),
        ("목요일", "2025-06-19"),
        ("주말", "2025-06-14"),
        ("3일 후", "2025-06-16"),
        ("2주 뒤", "2025-06-27"),
        ("6월 20일", "2025-06-20"),
        ("6월 1일", "2026-06-01"),  # past this year: next year's
        ("2025년 12월 25일", "2025-12-25"),
        ("15일", "2025-06-15"),
        ("10일", "2025-07-10"),
        ("2025-06-20", "2025-06-20"),
        ("6/20", "2025-06-20"),
        ("today", "2025-06-13"),
        ("tomorrow", "2025-06-14"),
        ("the day after tomorrow", "2025-06-15"),
        ("next Monday", "2025-06-16"),
        ("next Friday", "2025-06-20"),
        ("this Friday", "2025-06-13"),
        ("on Sunday", "2025-06-15"),
        ("in 3 days", "2025-06-16"),
        ("in a week", "2025-06-20"),
        ("June 20", "2025-06-20"),
        ("20th of June", "2025-06-20"),
        ("next weekend", "2025-06-21"),
    ],
)
def test_dates(text: str, day: str) -> None:
    found = find_date(text, TODAY)
    assert found is not None and found.value == day


@pytest.mark.parametrize(
    "text",
    ["Is the sun out?", "we may 2 go", "3일 동안", "010-1234-5678", "서울 날씨", "2월 30일"],
)
def test_not_dates(text: str) -> None:
    assert find_date(text, TODAY) is None


# ---- times -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "clock"),
    [
        ("오후 3시", "15:00"),
        ("3시", "15:00"),  # an afternoon booking unless said otherwise
        ("10시", "10:00"),
        ("오전 10시 30분", "10:30"),
        ("세 시 반", "15:30"),
        ("밤 9시", "21:00"),
        ("오전 12시", "00:00"),
        ("15:45", "15:45"),
        ("3pm", "15:00"),
        ("10:30 am", "10:30"),
        ("at 4", "16:00"),
        ("noon", "12:00"),
        ("정오", "12:00"),
    ],
)
def test_times(text: str, clock: str) -> None:
    found = find_time(text)
    assert found is not None and found.value == clock


@pytest.mark.parametrize("text", ["한 시간 뒤", "3시간", "서울시", "시작하자", "in 3 days"])
def test_not_times(text: str) -> None:
    assert find_time(text) is None


# ---- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("010-1234-5678", "010-1234-5678"),
        ("01012345678", "010-1234-5678"),
        ("010 1234 5678", "010-1234-5678"),
        ("010.1234.5678", "010-1234-5678"),
        ("+82 10-1234-5678", "010-1234-5678"),
        ("+82 010 1234 5678", "010-1234-5678"),
        ("011-123-4567", "011-123-4567"),
        ("02-123-4567", "02-123-4567"),
        ("02-1234-5678", "02-1234-5678"),
        ("031-123-4567", "031-123-4567"),
        ("(051) 1234-5678", "051-1234-5678"),
        ("070-1234-5678", "070-1234-5678"),
        ("080-123-4567", "080-123-4567"),
        ("0505-123-4567", "0505-123-4567"),
        ("1588-1234", "1588-1234"),
        ("번호는 010-9876-5432예요", "010-9876-5432"),
    ],
)
def test_korean_phone_numbers(text: str, formatted: str) -> None:
    found = find_phone(text)
    assert found is not None
    assert format_korean_phone(str(found.value)) == formatted


@pytest.mark.parametrize(
    "raw", ["010-123-45", "0101234", "010-1234-56789", "099-123-4567", "+1 415 555 0100"]
)
def test_phone_like_but_invalid(raw: str) -> None:
    found = find_phone(raw)
    assert found is not None and found.value == raw
    assert format_korean_phone(raw) is None


@pytest.mark.parametrize("text", ["2025-06-14", "15:00", "3일 후", "123"])
def test_not_phone_numbers(text: str) -> None:
    assert find_phone(text) is None


@given(st.integers(0, 9999), st.integers(0, 9999), st.sampled_from(["-", " ", ".", ""]))
def test_any_010_number_formats_the_same_however_written(a: int, b: int, sep: str) -> None:
    written = f"010{sep}{a:04d}{sep}{b:04d}"
    found = find_phone(f"제 번호는 {written} 입니다")
    assert found is not None and found.value == written
    assert format_korean_phone(written) == f"010-{a:04d}-{b:04d}"


# ---- numbers, names, cues --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("사과 세 개", 3),
        ("열두 명", 12),
        ("스무 살", 20),
        ("삼십 명", 30),
        ("이천오백 원", 2500),
        ("1,000원", 1000),
        ("3.5", 3.5),
        ("twenty people", 20),
        ("42", 42),
    ],
)
def test_numbers(text: str, number: float) -> None:
    found = find_number(text)
    assert found is not None and found.value == number


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("제 이름은 김철수입니다", "김철수"),
        ("이름은 홍길동이에요", "홍길동"),
        ("저는 이영희예요", "이영희"),
        ("My name is Jane Doe", "Jane Doe"),
        ("I'm John Smith", "John Smith"),
    ],
)
def test_introduced_names(text: str, name: str) -> None:
    found = find_person_name(text)
    assert found is not None and found.value == name


@pytest.mark.parametrize(
    ("answer", "name"),
    [("홍길동이요", "홍길동"), ("김철수입니다", "김철수"), ("박지성", "박지성"), ("Jane", "Jane")],
)
def test_bare_name_answers(answer: str, name: str) -> None:
    assert clean_person_name(answer) == name


@pytest.mark.parametrize(
    "answer", ["왜 이름이 필요해요?", "I'm free tomorrow", "저는 내일이 좋아요", "010-1234-5678"]
)
def test_answers_that_are_no_names(answer: str) -> None:
    assert clean_person_name(answer) is None
    assert find_person_name(answer) is None


@pytest.mark.parametrize(
    ("text", "cancel"),
    [
        ("취소", True),
        ("/cancel", True),
        ("/cancel@MyBot", True),
        ("취소할래요", True),
        ("그만할래", True),
        ("Cancel", True),
        ("never mind", True),
        ("아 취소할게요", True),
        ("그냥 그만할래", True),
        ("예약 취소 정책이 뭐야?", False),
        ("취소 수수료 있어요?", False),
    ],
)
def test_cancel_is_the_whole_message(text: str, cancel: bool) -> None:
    assert is_cancel(text) is cancel


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("네", True),
        ("네 좋아요", True),
        ("응", True),
        ("yes please", True),
        ("ok", True),
        ("아니요", False),
        ("아뇨 바꿀래요", False),
        ("no", False),
        ("네이버", None),
        ("노래", None),
        ("음", None),
    ],
)
def test_yes_or_no(text: str, verdict: bool | None) -> None:
    assert yes_or_no(text) is verdict


@pytest.mark.parametrize(
    ("text", "cue"),
    [("날씨 알려줘", True), ("날씨 어때?", True), ("날씨가 좋네", False), ("weather please", True)],
)
def test_cues(text: str, cue: bool) -> None:
    assert has_cue(text) is cue


@pytest.mark.parametrize(
    ("word", "pair", "expected"),
    [
        ("부산", ("은", "는"), "부산은"),
        ("서울", ("은", "는"), "서울은"),
        ("대구", ("은", "는"), "대구는"),
        ("서울", ("으로", "로"), "서울로"),  # ㄹ takes 로
        ("부산", ("으로", "로"), "부산으로"),
        ("010-1234-5678", ("으로", "로"), "010-1234-5678로"),  # 팔
        ("010-1234-5673", ("으로", "로"), "010-1234-5673으로"),  # 삼
    ],
)
def test_josa_follows_the_last_sound(word: str, pair: tuple[str, str], expected: str) -> None:
    assert josa(word, *pair) == expected
