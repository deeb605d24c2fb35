"""The Open-Meteo client against the fake (real HTTP), the fake's protocol, and the reports."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import NoReturn

import aiohttp
import pytest

from bot.forms.builtin.weather import (
    DAILY_VARIABLES,
    DayForecast,
    Forecast,
    OpenMeteoClient,
    Place,
    WeatherHandler,
    WeatherUnavailable,
)
from bot.forms.spec import Filled
from tests.bot.forms.support import NOW, SEOUL, Clock, open_meteo, registry, unreachable
from tests.bot.helpers import turn
from tests.fakes.weather import FakeOpenMeteo


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenMeteo]:
    async with FakeOpenMeteo(clock=Clock()) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenMeteo) -> AsyncIterator[OpenMeteoClient]:
    c = open_meteo(fake.geocoding_url)
    yield c
    await c.close()


async def raw(fake: FakeOpenMeteo, path: str, **params: str) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fake.geocoding_url}{path}", params=params) as resp,
    ):
        return resp.status, json.loads(await resp.read())


# ---- the client ------------------------------------------------------------------------------


async def test_geocoding_finds_places_in_the_asked_language(client: OpenMeteoClient) -> None:
    places = await client.geocode("울진", lang="ko")
    assert places == [
        Place(
            id=1833105,
            name="울진",
            lat=36.99306,
            lon=129.40028,
            country_code="KR",
            country="대한민국",
            admin1="Gyeongsangbuk-do",
            feature_code="PPLA2",
            population=52000,
            timezone="Asia/Seoul",
        )
    ]
    english = await client.geocode("uljin", lang="en")
    assert english[0].name == "Uljin" and english[0].country == "South Korea"


async def test_geocoding_no_match_is_an_empty_list(client: OpenMeteoClient) -> None:
    assert await client.geocode("아틀란티스", lang="ko") == []


async def test_forecast_has_seven_local_days_and_the_current_temperature(
    client: OpenMeteoClient, fake: FakeOpenMeteo
) -> None:
    forecast = await client.forecast(35.1796, 129.0756)
    assert forecast.timezone == "Asia/Seoul"
    assert [d.day for d in forecast.days][:2] == [date(2025, 6, 13), date(2025, 6, 14)]
    assert len(forecast.days) == 7
    expected = fake.daily(35.1796, 129.0756, date(2025, 6, 13))
    assert forecast.days[0] == DayForecast(
        day=date(2025, 6, 13),
        code=expected["weather_code"],
        tmax=expected["temperature_2m_max"],
        tmin=expected["temperature_2m_min"],
        precipitation_probability=expected["precipitation_probability_max"],
    )
    assert forecast.current_temperature == fake.current_temperature(35.1796, 129.0756)
    query = fake.forecast_requests()[0].query
    assert query["daily"] == ",".join(DAILY_VARIABLES)
    assert query["timezone"] == "auto" and query["forecast_days"] == "7"


async def test_api_error_body_becomes_unavailable(client: OpenMeteoClient) -> None:
    with pytest.raises(WeatherUnavailable, match="Latitude must be in range"):
        await client.forecast(100.0, 0.0)


@pytest.mark.parametrize("mode", ["unavailable", "down"])
async def test_outage_becomes_unavailable(
    client: OpenMeteoClient, fake: FakeOpenMeteo, mode: str
) -> None:
    fake.mode = mode  # type: ignore[assignment]
    with pytest.raises(WeatherUnavailable):
        await client.forecast(37.5665, 126.978)
    with pytest.raises(WeatherUnavailable):
        await client.geocode("울진", lang="ko")


async def test_nothing_listening_becomes_unavailable() -> None:
    async with FakeOpenMeteo() as gone:
        url = gone.geocoding_url
    client = OpenMeteoClient(geocoding_url=url, forecast_url=url, timeout=1.0)
    with pytest.raises(WeatherUnavailable):
        await client.forecast(37.5665, 126.978)
    await client.close()


async def test_slow_service_times_out(fake: FakeOpenMeteo) -> None:
    fake.delay = 1.0
    client = OpenMeteoClient(
        geocoding_url=fake.geocoding_url, forecast_url=fake.forecast_url, timeout=0.2
    )
    with pytest.raises(WeatherUnavailable):
        await client.forecast(37.5665, 126.978)
    await client.close()


async def test_host_names_are_resolved(fake: FakeOpenMeteo) -> None:
    # The fake listens on 127.0.0.1; "localhost" goes through the client's own resolver.
    client = open_meteo(fake.geocoding_url.replace("127.0.0.1", "localhost"))
    try:
        places = await client.geocode("울진", lang="ko")
    finally:
        await client.close()
    assert places[0].name == "울진"


# ---- no network ------------------------------------------------------------------------------


async def test_an_unreachable_service_fails_within_the_connect_timeout_then_at_once() -> None:
    with unreachable() as url:
        client = OpenMeteoClient(geocoding_url=url, forecast_url=url)  # the bot's own timeouts
        try:
            started = time.perf_counter()
            with pytest.raises(WeatherUnavailable, match="ConnectionTimeoutError"):
                await client.forecast(37.5665, 126.978)
            waited = time.perf_counter() - started
            # Given up when the connection did not come, not after the request's whole 5 s.
            assert client.connect_timeout + 1.0 < client.timeout
            assert client.connect_timeout <= waited < client.connect_timeout + 1.0
            # Right after, nobody waits for it again: the answer is at once.
            started = time.perf_counter()
            with pytest.raises(WeatherUnavailable, match="not retried yet"):
                await client.geocode("울진", lang="ko")
            assert time.perf_counter() - started < 0.1
        finally:
            await client.close()


async def test_after_the_pause_the_service_is_tried_again() -> None:
    with unreachable() as url:
        client = OpenMeteoClient(
            geocoding_url=url, forecast_url=url, connect_timeout=0.2, unreachable_pause=0.5
        )
        try:
            waits = []
            for pause in (0.0, 0.0, 0.6):
                await asyncio.sleep(pause)
                started = time.perf_counter()
                with pytest.raises(WeatherUnavailable):
                    await client.forecast(37.5665, 126.978)
                waits.append(time.perf_counter() - started)
        finally:
            await client.close()
    tried, paused, tried_again = waits
    assert tried >= 0.2 and paused < 0.05 and tried_again >= 0.2


async def test_only_the_unreachable_host_is_paused(fake: FakeOpenMeteo) -> None:
    with unreachable() as url:
        client = OpenMeteoClient(
            geocoding_url=fake.geocoding_url, forecast_url=url, connect_timeout=0.2
        )
        try:
            with pytest.raises(WeatherUnavailable):
                await client.forecast(37.5665, 126.978)
            assert (await client.geocode("울진", lang="ko"))[0].name == "울진"
        finally:
            await client.close()


@pytest.mark.parametrize("mode", ["unavailable", "down"])
async def test_a_failing_service_is_asked_again_at_once(
    client: OpenMeteoClient, fake: FakeOpenMeteo, mode: str
) -> None:
    # It answered (an error page, a cut connection): no reason to stop asking it.
    fake.mode = mode  # type: ignore[assignment]
    with pytest.raises(WeatherUnavailable):
        await client.forecast(37.5665, 126.978)
    fake.mode = "up"
    assert len((await client.forecast(37.5665, 126.978)).days) == 7


def test_a_hanging_name_lookup_does_not_hold_up_the_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a network the system resolver can take many seconds to give up. The request
    # gives up at the connect timeout, and closing the event loop (``asyncio.run``, as the
    # terminal chat exits) must not wait for the lookup either.
    release = threading.Event()

    def hanging(*args: object, **kwargs: object) -> NoReturn:
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    async def ask() -> None:
        client = OpenMeteoClient(
            geocoding_url="https://geocoding-api.open-meteo.com/v1",
            forecast_url="https://api.open-meteo.com/v1",
            connect_timeout=0.3,
        )
        try:
            with pytest.raises(WeatherUnavailable, match="ConnectionTimeoutError"):
                await client.forecast(37.5665, 126.978)
        finally:
            await client.close()

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.perf_counter()
    try:
        asyncio.run(ask())
        assert time.perf_counter() - started < 2.0
    finally:
        release.set()


# ---- the fake speaks Open-Meteo's protocol -----------------------------------------------------


async def test_fake_geocoding_shapes(fake: FakeOpenMeteo) -> None:
    status, body = await raw(fake, "/search", name="Paris", count="1", language="fr")
    assert status == 200
    result = body["results"][0]  # type: ignore[index]
    assert set(result) >= {
        "id",
        "name",
        "latitude",
        "longitude",
        "elevation",
        "feature_code",
        "country_code",
        "timezone",
        "country",
    }
    status, body = await raw(fake, "/search", name="P")  # under two characters: nothing
    assert status == 200 and "results" not in body and "generationtime_ms" in body
    status, body = await raw(fake, "/search")
    assert status == 400 and body["error"] is True and "name" in str(body["reason"])


async def test_fake_forecast_shapes_and_errors(fake: FakeOpenMeteo) -> None:
    status, body = await raw(
        fake,
        "/forecast",
        latitude="37.57",
        longitude="126.98",
        daily="temperature_2m_max",
        current="temperature_2m",
        timezone="auto",
    )
    assert status == 200
    assert body["timezone"] == "Asia/Seoul" and body["utc_offset_seconds"] == 32400
    assert body["daily_units"] == {"time": "iso8601", "temperature_2m_max": "°C"}
    assert set(body["current"]) == {"time", "interval", "temperature_2m"}  # type: ignore[arg-type]
    status, body = await raw(fake, "/forecast", latitude="37.57")
    assert (status, body) == (
        400,
        {
            "error": True,
            "reason": "Parameter 'latitude' and 'longitude' must have the same number of elements",
        },
    )
    status, body = await raw(fake, "/forecast", latitude="1", longitude="2", daily="nope")
    assert status == 400 and "invalid String value nope" in str(body["reason"])
    status, body = await raw(fake, "/forecast", latitude="1", longitude="2", forecast_days="20")
    assert body == {
        "error": True,
        "reason": "Forecast days is invalid. Allowed range 0 to 16. Given 20.",
    }


# ---- the report --------------------------------------------------------------------------------


class Canned:
    """A weather source with fixed data."""

    def __init__(self, forecast: Forecast) -> None:
        self.answer = forecast

    async def geocode(self, name: str, *, lang: str, count: int = 5) -> list[Place]:
        return []

    async def forecast(self, lat: float, lon: float, *, days: int = 7) -> Forecast:
        return self.answer


SEOUL_VALUE = {
    "id": "kr-seoul",
    "names": {"ko": "서울", "en": "Seoul"},
    "lat": 37.5665,
    "lon": 126.978,
    "country": "KR",
}
CANNED = Forecast(
    timezone="Asia/Seoul",
    days=(
        DayForecast(date(2025, 6, 13), 61, 24.6, 18.2, 70),
        DayForecast(date(2025, 6, 14), 0, 29.0, 19.4, None),
    ),
    current_temperature=21.3,
)


def filled(day: str, lang: str) -> Filled:
    form = registry(Canned(CANNED), None).get("weather")  # type: ignore[arg-type]
    assert form is not None
    return Filled(form, {"city": SEOUL_VALUE, "date": day}, lang, NOW, turn("x"), "k")


async def test_report_in_korean_and_english() -> None:
    handler = WeatherHandler(Canned(CANNED))
    ko = await handler(filled("2025-06-13", "ko"))
    assert ko.text == (
        "서울 오늘 날씨: 약한 비, 최저 18°C / 최고 25°C, 강수확률 70%. 현재 21°C예요."
    )
    en = await handler(filled("2025-06-14", "en"))
    assert en.text == "Tomorrow in Seoul: clear sky, 19–29°C."


async def test_brief_gives_the_model_only_the_fetched_facts() -> None:
    result = await WeatherHandler(Canned(CANNED))(filled("2025-06-13", "ko"))
    assert result.brief is not None
    facts = json.loads(result.brief.split("add nothing else: ", 1)[1].split("}. ", 1)[0] + "}")
    assert facts == {
        "city": "서울",
        "day": "오늘",
        "date": "2025-06-13",
        "condition": "약한 비",
        "min_celsius": 18.2,
        "max_celsius": 24.6,
        "precipitation_probability_percent": 70,
        "current_celsius": 21.3,
        "source": "Open-Meteo",
    }
    assert "Answer in Korean" in result.brief


async def test_a_day_beyond_the_data_is_said_plainly() -> None:
    result = await WeatherHandler(Canned(CANNED))(filled("2025-06-18", "ko"))
    assert result.text == "서울의 6월 18일(수) 예보가 아직 없어요."
    assert result.brief is None


async def test_days_are_counted_in_the_users_calendar() -> None:
    late = datetime(2025, 6, 13, 23, 30, tzinfo=SEOUL)
    form = registry(Canned(CANNED), None).get("weather")  # type: ignore[arg-type]
    assert form is not None
    result = await WeatherHandler(Canned(CANNED))(
        Filled(form, {"city": SEOUL_VALUE, "date": "2025-06-14"}, "ko", late, turn("x"), "k")
    )
    assert result.text.startswith("서울 내일 날씨: 맑음")
