"""Built-in weather form: city (gazetteer, else Open-Meteo geocoding) and day → Open-Meteo."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.forms.extractors import (
    CityGazetteer,
    Found,
    Utterance,
    extract_date,
    has_cue,
    has_hangul,
    josa,
    misspelt_city,
    parse_date,
    place_candidate,
)
from bot.forms.korean import Token
from bot.forms.spec import (
    Filled,
    Form,
    HandlerResult,
    InvalidValue,
    ServiceUnavailable,
    Slot,
    SlotContext,
    Triggers,
    Validator,
    pick,
)
from bot.forms.understanding import DAY_REFERENCES, PLACE_REFERENCES

log = logging.getLogger(__name__)

FORECAST_DAYS = 7  # today and the six days after it
DAILY_VARIABLES = (
    "weather_code",
    "temperature_2m_max",
    "temperature_2m_min",
    "precipitation_probability_max",
)
CURRENT_VARIABLES = ("temperature_2m", "weather_code")
CONTEXT_WORDS = ("날씨", "기온", "예보", "weather", "forecast", "temperature")

# WMO weather interpretation codes, as Open-Meteo documents them.
WMO: dict[int, tuple[str, str]] = {
    0: ("맑음", "clear sky"),
    1: ("대체로 맑음", "mainly clear"),
    2: ("구름 조금", "partly cloudy"),
    3: ("흐림", "overcast"),
    45: ("안개", "fog"),
    48: ("짙은 안개(서리)", "depositing rime fog"),
    51: ("약한 이슬비", "light drizzle"),
    53: ("이슬비", "moderate drizzle"),
    55: ("강한 이슬비", "dense drizzle"),
    56: ("약한 어는 이슬비", "light freezing drizzle"),
    57: ("강한 어는 이슬비", "dense freezing drizzle"),
    61: ("약한 비", "slight rain"),
    63: ("비", "moderate rain"),
    65: ("강한 비", "heavy rain"),
    66: ("약한 어는 비", "light freezing rain"),
    67: ("강한 어는 비", "heavy freezing rain"),
    71: ("약한 눈", "slight snow"),
    73: ("눈", "moderate snow"),
    75: ("강한 눈", "heavy snow"),
    77: ("싸락눈", "snow grains"),
    80: ("약한 소나기", "slight rain showers"),
    81: ("소나기", "moderate rain showers"),
    82: ("강한 소나기", "violent rain showers"),
    85: ("약한 눈 소나기", "slight snow showers"),
    86: ("강한 눈 소나기", "heavy snow showers"),
    95: ("뇌우", "thunderstorm"),
    96: ("약한 우박을 동반한 뇌우", "thunderstorm with slight hail"),
    99: ("강한 우박을 동반한 뇌우", "thunderstorm with heavy hail"),
}
_KO_WEEKDAYS = "월화수목금토일"

TEXT: dict[str, dict[str, str]] = {
    "title": {"ko": "날씨 확인", "en": "weather check"},
    "city_label": {"ko": "도시", "en": "city"},
    "city_question": {
        "ko": "어느 도시의 날씨를 알려 드릴까요?",
        "en": "Which city's weather would you like?",
    },
    "date_label": {"ko": "날짜", "en": "date"},
    "date_question": {
        "ko": "언제 날씨를 알려 드릴까요? (오늘부터 {last}일 뒤까지)",
        "en": "For which day? (today up to {last} days ahead)",
    },
    "date_past": {
        "ko": "지난 날씨는 알려 드릴 수 없어요.",
        "en": "I can't look up past weather.",
    },
    "date_far": {
        "ko": "날씨 예보는 {last}일 뒤까지만 볼 수 있어요.",
        "en": "Forecasts only reach {last} days ahead.",
    },
    "city_unknown": {
        "ko": "'{name}'(이)라는 도시를 찾지 못했어요.",
        "en": "I couldn't find a city called '{name}'.",
    },
    "service_down": {
        "ko": "지금 날씨 서비스(Open-Meteo)에 연결할 수 없어 {what} 확인하지 못했어요. "
        "잠시 후 다시 물어봐 주세요.",
        "en": "I can't reach the weather service (Open-Meteo) right now, so I couldn't check "
        "{what}. Please ask again in a moment.",
    },
    "no_data": {
        "ko": "{city}의 {day} 예보가 아직 없어요.",
        "en": "There is no forecast for {city} {day} yet.",
    },
    "report": {
        "ko": "{city} {day} 날씨: {condition}, 최저 {tmin}°C / 최고 {tmax}°C{rain}.{current}",
        "en": "{day_cap} in {city}: {condition}, {tmin}–{tmax}°C{rain}.{current}",
    },
    "rain": {"ko": ", 강수확률 {pop}%", "en": ", {pop}% chance of precipitation"},
    "current": {"ko": " 현재 {temp}°C예요.", "en": " It's {temp}°C right now."},
    "brief": {
        "ko": "Korean",
        "en": "English",
    },
}


# ---- the Open-Meteo client -----------------------------------------------------------------


class WeatherUnavailable(Exception):
    """Open-Meteo could not be reached or answered with an error."""


@dataclass(frozen=True, slots=True)
class Place:
    """One geocoding result."""

    id: int
    name: str
    lat: float
    lon: float
    country_code: str = ""
    country: str = ""
    admin1: str = ""
    feature_code: str = ""
    population: int = 0
    timezone: str = ""


@dataclass(frozen=True, slots=True)
class DayForecast:
    day: date
    code: int | None
    tmax: float | None
    tmin: float | None
    precipitation_probability: int | None


@dataclass(frozen=True, slots=True)
class Forecast:
    timezone: str
    days: tuple[DayForecast, ...]
    current_temperature: float | None = None
    current_code: int | None = None


class WeatherSource(Protocol):
    """Where forecasts and coordinates come from (``OpenMeteoClient``, or a stub in benches)."""

    async def geocode(self, name: str, *, lang: str, count: int = 5) -> list[Place]: ...

    async def forecast(self, lat: float, lon: float, *, days: int = FORECAST_DAYS) -> Forecast: ...


_T = TypeVar("_T")

# The service could not be reached at all (no DNS answer, refused, no route, TLS, the connect
# timeout), as opposed to an answer that is slow or an error.
_UNREACHABLE = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


async def _in_daemon_thread(work: Callable[[], _T]) -> _T:
    """``work()`` in a daemon thread of its own, awaited."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def deliver(settle: Callable[[], None]) -> None:
        if not future.done():  # else the awaiting task was cancelled (the connect timeout)
            settle()

    def run() -> None:
        settle: Callable[[], None]
        try:
            settle = functools.partial(future.set_result, work())
        except BaseException as exc:
            settle = functools.partial(future.set_exception, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(deliver, settle)

    threading.Thread(target=run, name="open-meteo-dns", daemon=True).start()
    return await future


class DaemonThreadResolver(AbstractResolver):
    """aiohttp's threaded resolver, each lookup in a daemon thread rather than the loop's
    default executor.

    Without a network a lookup can hang for the system resolver's own timeouts (5 s and more
    per nameserver). The connect timeout gives the request up in time, but a lookup left
    running in the default executor is waited for when the event loop closes
    (``asyncio.run``): the terminal chat would answer, then not exit. A daemon thread is
    not waited for. (One thread per lookup: the connector keeps what it found for 5 minutes.)"""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await _in_daemon_thread(lambda: _lookup(host, port, family))
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=number,
                family=kind,
                proto=proto,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for kind, proto, address, number in found
        ]

    async def close(self) -> None:
        return None


def _lookup(host: str, port: int, family: int) -> list[tuple[int, int, str, int]]:
    """(family, proto, numeric address, port) for ``host``, as aiohttp's resolver gives them."""
    found: list[tuple[int, int, str, int]] = []
    for kind, _, proto, _, address in socket.getaddrinfo(
        host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG
    ):
        if kind == socket.AF_INET6:
            if len(address) < 4:  # IPv6 disabled in this Python or on this host
                continue
            if address[3]:  # link-local: the scope goes into the address ("fe80::1%eth0")
                numeric, service = socket.getnameinfo(
                    address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
                )
                found.append((kind, proto, numeric, int(service)))
                continue
        found.append((kind, proto, str(address[0]), int(address[1])))
    return found


class OpenMeteoClient:
    """Open-Meteo's geocoding (``/search``) and forecast (``/forecast``) APIs; no key needed.

    ``timeout`` bounds a whole request, ``connect_timeout`` the part before the service
    answers at all (DNS, TCP, TLS). When it cannot be reached, the next requests fail at once
    for ``unreachable_pause`` seconds: with no network every weather question is answered
    "unavailable" at once instead of after another wait."""

    def __init__(
        self,
        *,
        geocoding_url: str,
        forecast_url: str,
        timeout: float = 5.0,
        connect_timeout: float = 2.5,
        unreachable_pause: float = 15.0,
        max_connections: int = 20,
    ) -> None:
        self.geocoding_url = geocoding_url.rstrip("/")
        self.forecast_url = forecast_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.unreachable_pause = unreachable_pause
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # host -> (until when, by time.monotonic(); why) for hosts that could not be reached
        self._unreachable: dict[str, tuple[float, str]] = {}

    def _http(self) -> aiohttp.ClientSession:
        # Created lazily inside the running loop; one connection pool for every request.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_connections,
                    ttl_dns_cache=300,
                    resolver=DaemonThreadResolver(),
                ),
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.connect_timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def geocode(self, name: str, *, lang: str, count: int = 5) -> list[Place]:
        data = await self._get(
            f"{self.geocoding_url}/search",
            {"name": name, "count": str(count), "language": lang, "format": "json"},
        )
        results = data.get("results") or []  # no match: the key is simply absent
        places = []
        for r in results if isinstance(results, list) else []:
            try:
                places.append(
                    Place(
                        id=int(r["id"]),
                        name=str(r["name"]),
                        lat=float(r["latitude"]),
                        lon=float(r["longitude"]),
                        country_code=str(r.get("country_code") or ""),
                        country=str(r.get("country") or ""),
                        admin1=str(r.get("admin1") or ""),
                        feature_code=str(r.get("feature_code") or ""),
                        population=int(r.get("population") or 0),
                        timezone=str(r.get("timezone") or ""),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue  # one malformed entry must not hide the others
        return places

    async def forecast(self, lat: float, lon: float, *, days: int = FORECAST_DAYS) -> Forecast:
        data = await self._get(
            f"{self.forecast_url}/forecast",
            {
                "latitude": f"{lat:.4f}",
                "longitude": f"{lon:.4f}",
                "daily": ",".join(DAILY_VARIABLES),
                "current": ",".join(CURRENT_VARIABLES),
                "timezone": "auto",  # daily values are the city's own calendar days
                "forecast_days": str(days),
            },
        )
        try:
            return _parse_forecast(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise WeatherUnavailable(f"unexpected forecast body: {exc!r}"[:200]) from exc

    async def _get(self, url: str, params: Mapping[str, str]) -> dict[str, Any]:
        host = urlsplit(url).netloc
        until, why = self._unreachable.get(host, (0.0, ""))
        if time.monotonic() < until:
            raise WeatherUnavailable(f"{why} (not retried yet)")
        try:
            async with self._http().get(url, params=params) as resp:
                body = await resp.read()
                status = resp.status
        except _UNREACHABLE as exc:
            why = f"{type(exc).__name__}: {exc}"[:200]
            self._unreachable[host] = (time.monotonic() + self.unreachable_pause, why)
            raise WeatherUnavailable(why) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WeatherUnavailable(f"{type(exc).__name__}: {exc}"[:200]) from exc
        try:
            data = json.loads(body)
        except ValueError:
            raise WeatherUnavailable(f"HTTP {status}: body is not JSON") from None
        if not isinstance(data, dict):
            raise WeatherUnavailable(f"HTTP {status}: body is not an object")
        if status != 200 or data.get("error"):
            # Open-Meteo's error shape: {"error": true, "reason": "..."}
            raise WeatherUnavailable(f"HTTP {status}: {data.get('reason') or 'error'}"[:200])
        return data


def _parse_forecast(data: Mapping[str, Any]) -> Forecast:
    daily = data["daily"]
    times = daily["time"]

    def column(name: str) -> list[Any]:
        values = daily.get(name)
        return list(values) if isinstance(values, list) else [None] * len(times)

    codes, tmax, tmin, pop = (column(name) for name in DAILY_VARIABLES)
    days = tuple(
        DayForecast(
            day=date.fromisoformat(str(t)),
            code=None if c is None else int(c),
            tmax=None if hi is None else float(hi),
            tmin=None if lo is None else float(lo),
            precipitation_probability=None if p is None else int(p),
        )
        for t, c, hi, lo, p in zip(times, codes, tmax, tmin, pop, strict=False)
    )
    current = data.get("current") or {}
    temp = current.get("temperature_2m")
    code = current.get("weather_code")
    return Forecast(
        timezone=str(data.get("timezone") or ""),
        days=days,
        current_temperature=None if temp is None else float(temp),
        current_code=None if code is None else int(code),
    )


# ---- slot values ------------------------------------------------------------------------------


def city_name(value: Mapping[str, Any], lang: str) -> str:
    names = value.get("names") or {}
    if isinstance(names, Mapping) and names:
        return str(names.get(lang) or names.get("en") or next(iter(names.values())))
    return str(value.get("query") or "?")


def _place_value(place: Place, lang: str) -> dict[str, Any]:
    return {
        "id": f"om-{place.id}",
        "names": {lang: place.name},
        "lat": place.lat,
        "lon": place.lon,
        "country": place.country_code,
    }


_NOT_A_PLACE = frozenset(
    {"i", "you", "don't", "dont", "know", "not", "sure", "no", "yes", "what", "why", "how"}
    | {"the", "a", "it", "is", "idk", "anywhere", "here", "there", "somewhere"}
)


def _looks_like_place(text: str, utt: Utterance) -> str | None:
    """A bare answer that can only be a name ("울진", "울진이요", "Reykjavik"), else None."""
    text = text.strip(" .!?~")
    if not text or len(text) > 40 or has_cue(text):
        return None
    if has_hangul(text):
        tokens = utt.derive(text).tokens()
        names: list[Token] = []
        for tok in tokens:
            if tok.tag in ("NNP", "NNG", "SL"):
                if names and tok.start > names[-1].end + 1:
                    return None
                names.append(tok)
            elif tok.particle or tok.tag.startswith(("E", "S", "VCP")):
                continue
            else:
                return None
        return text[names[0].start : names[-1].end] if names else None
    words = text.split()
    if len(words) > 3 or any(w.lower() in _NOT_A_PLACE for w in words):
        return None
    return text if all(w[:1].isalpha() for w in words) else None


class CitySlot:
    """Extraction, parsing and resolution of the city slot."""

    def __init__(self, gazetteer: CityGazetteer, source: WeatherSource) -> None:
        self.gazetteer = gazetteer
        self.source = source

    def extract(self, utt: Utterance) -> Found | None:
        found = self.gazetteer.first(utt)
        if found is not None:
            return found
        typo = misspelt_city(self.gazetteer, utt, CONTEXT_WORDS)
        place = place_candidate(utt, CONTEXT_WORDS)
        if place is None or typo is None:
            return place or typo
        # "부싼 날씨": a place the geocoder may know, else the city it misspells (``resolve``).
        return Found({**place.value, "misspelt": typo.value}, place.start, place.end)

    def parse(self, text: str, utt: Utterance) -> Any:
        city = self.gazetteer.lookup(text)
        if city is not None:
            return city.to_value()
        answer = utt.derive(text)
        found = self.gazetteer.first(answer)
        if found is not None:
            return found.value
        typo = misspelt_city(self.gazetteer, answer, CONTEXT_WORDS)
        name = _looks_like_place(text, utt)
        if name is None:
            return typo.value if typo is not None else None
        return {"query": name, "misspelt": typo.value} if typo is not None else {"query": name}

    async def resolve(self, value: Any, lang: str) -> Any:
        if not isinstance(value, Mapping) or "query" not in value or "lat" in value:
            return value
        query = str(value["query"]).strip()
        known = self.gazetteer.lookup(query)
        if known is not None:
            return known.to_value()
        search_lang = "ko" if has_hangul(query) else ("en" if lang not in ("ko", "en") else lang)
        # A real place of that name comes first ("홍성" is not a typo of 횡성); a name the
        # geocoder does not know may be a typo of a city the gazetteer knows: a Korean one as
        # Kiwi told it from a word when the message was read ("부싼", see misspelt_city), a
        # capitalised Latin one here ("Busna").
        misspelt: Any = value.get("misspelt")
        if misspelt is None and query[:1].isupper():
            near = self.gazetteer.near(query)
            misspelt = near.to_value() if near is not None else None
        try:
            places = await self.source.geocode(query, lang=search_lang)
        except WeatherUnavailable as exc:
            if misspelt is not None:
                return dict(misspelt)
            log.warning("geocoding unavailable: %s", exc)
            raise ServiceUnavailable(
                TEXT["service_down"], what=_what(query, lang, geocoding=True)
            ) from exc
        # Populated places only: "민수" must not resolve to a stream or a mountain of that name.
        towns = [p for p in places if p.feature_code.startswith("PPL")]
        if towns:
            return _place_value(towns[0], search_lang)
        if misspelt is not None:
            return dict(misspelt)
        raise InvalidValue(TEXT["city_unknown"], name=query)


def _what(city: str, lang: str, *, geocoding: bool = False) -> str:
    if lang == "ko":
        return f"'{city}'의 위치를" if geocoding else josa(f"{city} 날씨", "을", "를")
    return f"where '{city}' is" if geocoding else f"the weather in {city}"


def _validate_city(value: Any, ctx: SlotContext) -> Any:
    if isinstance(value, Mapping) and "lat" in value and "lon" in value:
        return dict(value)
    name = value.get("query") if isinstance(value, Mapping) else value
    raise InvalidValue(TEXT["city_unknown"], name=str(name))


def _date_validator(days: int) -> Validator:
    last = days - 1

    def validate(value: Any, ctx: SlotContext) -> str:
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            raise InvalidValue(TEXT["date_far"], last=last) from None
        if day < ctx.today:
            raise InvalidValue(TEXT["date_past"])
        if day > ctx.today + timedelta(days=last):
            raise InvalidValue(TEXT["date_far"], last=last)
        return day.isoformat()

    return validate


def day_label(day: date, today: date, lang: str) -> str:
    offset = (day - today).days
    if lang == "ko":
        named = {0: "오늘", 1: "내일", 2: "모레"}
        return named.get(offset) or f"{day.month}월 {day.day}일({_KO_WEEKDAYS[day.weekday()]})"
    named_en = {0: "today", 1: "tomorrow"}
    return named_en.get(offset) or f"on {day:%a}, {day:%B} {day.day}"


def _degrees(value: float | None) -> str:
    return "?" if value is None else str(round(value))


class WeatherHandler:
    """Fetches the forecast of the completed form's city and day and reports it."""

    def __init__(self, source: WeatherSource, *, days: int = FORECAST_DAYS) -> None:
        self.source = source
        self.days = days

    async def __call__(self, filled: Filled) -> HandlerResult:
        city = filled.values["city"]
        lang = filled.lang
        name = city_name(city, lang)
        today = filled.now.date()
        day = date.fromisoformat(str(filled.values["date"]))
        try:
            forecast = await self.source.forecast(
                float(city["lat"]), float(city["lon"]), days=self.days
            )
        except WeatherUnavailable as exc:
            log.warning("forecast unavailable session=%s: %s", filled.session_key, exc)
            # No brief: with no data the model must not be asked to talk about the weather.
            return HandlerResult(
                pick(TEXT["service_down"], lang, what=_what(name, lang)),
                values={"city": city, "date": day.isoformat()},
                failed=True,
            )
        # Index by offset: "today" is the city's own today (daily values are local days).
        offset = (day - today).days
        label = day_label(day, today, lang)
        if not 0 <= offset < len(forecast.days):
            return HandlerResult(pick(TEXT["no_data"], lang, city=name, day=label))
        daily = forecast.days[offset]
        condition = WMO.get(daily.code if daily.code is not None else -1, ("?", "?"))
        pop = daily.precipitation_probability
        current = forecast.current_temperature if offset == 0 else None
        text = pick(
            TEXT["report"],
            lang,
            city=name,
            day=label,
            day_cap=label[:1].upper() + label[1:],
            condition=condition[0] if lang == "ko" else condition[1],
            tmin=_degrees(daily.tmin),
            tmax=_degrees(daily.tmax),
            rain="" if pop is None else pick(TEXT["rain"], lang, pop=pop),
            current="" if current is None else pick(TEXT["current"], lang, temp=_degrees(current)),
        )
        facts = {
            "city": name,
            "day": label,
            "date": daily.day.isoformat(),
            "condition": condition[0] if lang == "ko" else condition[1],
            "min_celsius": daily.tmin,
            "max_celsius": daily.tmax,
            "precipitation_probability_percent": pop,
            "current_celsius": current,
            "source": "Open-Meteo",
        }
        brief = (
            "The user asked about the weather. These facts were fetched just now; use only them "
            "and add nothing else: "
            f"{json.dumps(facts, ensure_ascii=False)}. Answer in {pick(TEXT['brief'], lang)} "
            "in one or two friendly sentences, naming the city and the day."
        )
        return HandlerResult(text, brief=brief, values={"city": city, "date": day.isoformat()})


def weather_form(
    gazetteer: CityGazetteer, source: WeatherSource, *, days: int = FORECAST_DAYS
) -> Form:
    """The weather form: "서울 날씨 알려줘", "weather in Tokyo", then "부산은?", "내일은?"."""
    city = CitySlot(gazetteer, source)
    last = days - 1
    return Form(
        name="weather",
        title=TEXT["title"],
        description=(
            "Current weather and the daily forecast for a city (today up to "
            f"{last} days ahead). Use when the user asks about weather, temperature, rain, "
            "snow or what to wear outside in a place."
        ),
        slots=(
            Slot(
                name="city",
                label=TEXT["city_label"],
                question=TEXT["city_question"],
                extract=city.extract,
                parse=city.parse,
                resolve=city.resolve,
                validate=_validate_city,
                display=city_name,
                description="The city or town, as the user named it (any language).",
                keywords=("도시", "지역", "city", "place"),
                refers=PLACE_REFERENCES,
            ),
            Slot(
                name="date",
                label=TEXT["date_label"],
                question={k: v.format(last=last) for k, v in TEXT["date_question"].items()},
                extract=extract_date,
                parse=lambda text, utt: parse_date(text, utt.today),
                required=False,
                default=lambda ctx: ctx.today.isoformat(),
                validate=_date_validator(days),
                description="The day, as YYYY-MM-DD (default: today).",
                keywords=("날짜", "언제", "date", "day"),
                refers=DAY_REFERENCES,
            ),
        ),
        handler=WeatherHandler(source, days=days),
        triggers=Triggers(
            keywords=(
                r"날씨",
                r"기온",
                r"일기\s*예보",
                r"\bweather\b",
                r"\bforecast\b",
                r"\btemperature\b",
            ),
            hints=(
                r"우산",
                r"비\s*(?:가\s*)?(?:와|올|오|내리)",
                r"눈\s*(?:이\s*)?(?:와|올|오|내리)",
                r"추워|추울|춥|더워|더울|덥|쌀쌀|맑|흐려|흐릴|몇\s*도",
                r"\b(?:rain|raining|umbrella|sunny|snow|snowing|cold|hot|jacket)\b",
            ),
        ),
        carry_over=True,
        context_words=CONTEXT_WORDS,
    )
