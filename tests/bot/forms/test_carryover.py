"""Carry-over detection on the weather form: which short follow-ups change which slot."""

from __future__ import annotations

from typing import Any

import pytest

from bot.forms.builtin.weather import Forecast, Place, weather_form
from bot.forms.carryover import CarryOver
from tests.bot.forms.support import gazetteer, utt


class NoWeather:
    """Carry-over detection never fetches anything."""

    async def geocode(self, name: str, *, lang: str, count: int = 5) -> list[Place]:
        raise AssertionError("detection does no I/O")

    async def forecast(self, lat: float, lon: float, *, days: int = 7) -> Forecast:
        raise AssertionError("detection does no I/O")


FORM = weather_form(gazetteer(), NoWeather())
carry = CarryOver()


def detect(text: str) -> dict[str, Any] | None:
    return carry.detect(FORM, utt(text))


def city(values: dict[str, Any] | None) -> str | None:
    if values is None or "city" not in values:
        return None
    value = values["city"]
    return str(value.get("id") or value.get("query"))


@pytest.mark.parametrize(
    ("text", "city_id"),
    [
        ("부산은?", "kr-busan"),
        ("그럼 대전은?", "kr-daejeon"),
        ("울산은 어때?", "kr-ulsan"),
        ("성남은?", "kr-seongnam"),
        ("부산은요?", "kr-busan"),
        ("그러면 광주는 어때요?", "kr-gwangju"),
        ("부산도 알려줘", "kr-busan"),
        ("부산 쪽은?", "kr-busan"),
        ("부산", "kr-busan"),  # a bare known name is a follow-up too
        ("What about Busan?", "kr-busan"),
        ("and London?", "gb-london"),
        ("How about Paris?", "fr-paris"),
        ("ok, what about New York?", "us-new-york"),
        ("Tokyo", "jp-tokyo"),
    ],
)
def test_follow_up_changes_the_city(text: str, city_id: str) -> None:
    values = detect(text)
    assert city(values) == city_id
    assert values is not None and "date" not in values


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("내일은?", "2025-06-14"),
        ("모레는 어때?", "2025-06-15"),
        ("이번 주 일요일은?", "2025-06-15"),
        ("What about tomorrow?", "2025-06-14"),
        ("and on Sunday?", "2025-06-15"),
    ],
)
def test_follow_up_changes_the_date_and_keeps_the_city(text: str, day: str) -> None:
    assert detect(text) == {"date": day}


def test_follow_up_changes_both() -> None:
    values = detect("내일 부산은?")
    assert values is not None and values["date"] == "2025-06-14"
    assert city(values) == "kr-busan"


@pytest.mark.parametrize(
    "text",
    [
        "고마워",
        "고양이는?",
        "부산 맛집은?",  # a new question about Busan, not its weather
        "부산에서 서울까지 얼마나 걸려?",
        "그거는?",
        "what about you?",
        "how about pizza?",
        "thanks!",
        "파이썬 리스트 정렬하는 법 알려줘",
        "좋아",
        "",
    ],
)
def test_unrelated_messages_are_no_follow_up(text: str) -> None:
    assert detect(text) is None


@pytest.mark.parametrize(
    ("text", "query"),
    [("울진은?", "울진"), ("민수는?", "민수"), ("What about Reykjavik?", "Reykjavik")],
)
def test_unknown_proper_noun_is_left_to_the_resolver(text: str, query: str) -> None:
    # Geocoding decides: 울진 is a town, 민수 is not (see test_stage).
    assert detect(text) == {"city": {"query": query}}


def test_unknown_name_needs_a_follow_up_marker() -> None:
    assert detect("울진") is None  # bare and unknown: maybe not a place at all
    assert detect("Reykjavik") is None


def test_long_messages_are_never_follow_ups() -> None:
    assert detect("부산은? " + "그리고 " * 20) is None
