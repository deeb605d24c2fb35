"""FakeOpenMeteo: Open-Meteo's geocoding and forecast APIs on real loopback HTTP, for tests.

Serves ``GET /v1/search`` (geocoding) and ``GET /v1/forecast`` with the real response shapes
and the real error shape ``{"error": true, "reason": "..."}`` (HTTP 400). ``mode`` switches to
an outage: ``"unavailable"`` answers 503 with an HTML page (a proxy in front of a dead API),
``"down"`` cuts every connection. Forecast values are a deterministic function of the
coordinates and the day, so a test can compute what the bot should have said.
"""

from __future__ import annotations

import asyncio
import math
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web

Mode = Literal["up", "unavailable", "down"]

DAILY_UNITS = {
    "time": "iso8601",
    "weather_code": "wmo code",
    "temperature_2m_max": "°C",
    "temperature_2m_min": "°C",
    "temperature_2m_mean": "°C",
    "precipitation_sum": "mm",
    "precipitation_probability_max": "%",
    "wind_speed_10m_max": "km/h",
    "sunrise": "iso8601",
    "sunset": "iso8601",
}
CURRENT_UNITS = {
    "time": "iso8601",
    "interval": "seconds",
    "temperature_2m": "°C",
    "weather_code": "wmo code",
    "relative_humidity_2m": "%",
    "wind_speed_10m": "km/h",
    "is_day": "",
}
_CODES = (0, 1, 2, 3, 45, 61, 63, 80, 71, 95)


@dataclass(frozen=True)
class FakePlace:
    """A geocoding entry: names by language ("en" required), as GeoNames has them."""

    id: int
    names: dict[str, str]
    latitude: float
    longitude: float
    country_code: str
    country: dict[str, str]
    timezone: str
    feature_code: str = "PPL"
    population: int = 0
    admin1: str = ""
    elevation: float = 10.0

    def result(self, language: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.names.get(language) or self.names["en"],
            "latitude": self.latitude,
            "longitude": self.longitude,
            "elevation": self.elevation,
            "feature_code": self.feature_code,
            "country_code": self.country_code,
            "admin1_id": self.id + 1,
            "timezone": self.timezone,
            "country_id": abs(hash(self.country_code)) % 10_000_000,
            "country": self.country.get(language) or self.country["en"],
        }
        if self.population:
            body["population"] = self.population
        if self.admin1:
            body["admin1"] = self.admin1
        return body


KOREA = {"en": "South Korea", "ko": "대한민국"}

DEFAULT_PLACES: tuple[FakePlace, ...] = (
    FakePlace(1835848, {"en": "Seoul", "ko": "서울"}, 37.566, 126.9784, "KR", KOREA,
              "Asia/Seoul", "PPLC", 10349312, "Seoul"),
    FakePlace(1838524, {"en": "Busan", "ko": "부산"}, 35.10168, 129.03004, "KR", KOREA,
              "Asia/Seoul", "PPLA", 3678555, "Busan"),
    FakePlace(1833105, {"en": "Uljin", "ko": "울진"}, 36.99306, 129.40028, "KR", KOREA,
              "Asia/Seoul", "PPLA2", 52000, "Gyeongsangbuk-do"),
    FakePlace(1839071, {"en": "Pohang", "ko": "포항"}, 36.03222, 129.365, "KR", KOREA,
              "Asia/Seoul", "PPLA2", 511390, "Gyeongsangbuk-do"),
    FakePlace(3413829, {"en": "Reykjavík", "ko": "레이캬비크"}, 64.13548, -21.89541, "IS",
              {"en": "Iceland", "ko": "아이슬란드"}, "Atlantic/Reykjavik", "PPLC", 118918,
              "Capital Region"),
    FakePlace(2988507, {"en": "Paris", "ko": "파리"}, 48.85341, 2.3488, "FR",
              {"en": "France", "ko": "프랑스"}, "Europe/Paris", "PPLC", 2138551,
              "Île-de-France"),
    # Not a town: a stream that shares a person's name; the bot must not take it for a city.
    FakePlace(9000001, {"en": "Minsu", "ko": "민수"}, 36.5, 127.5, "KR", KOREA, "Asia/Seoul",
              "STM"),
)  # fmt: skip


@dataclass(frozen=True)
class RecordedWeatherRequest:
    path: str
    query: dict[str, str]
    time: float = field(default_factory=time.monotonic)


class OpenMeteoError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FakeOpenMeteo:
    """Both Open-Meteo APIs on ``http://127.0.0.1:PORT/v1``; every request is recorded."""

    def __init__(
        self,
        places: Sequence[FakePlace] = DEFAULT_PLACES,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.places = tuple(places)
        self.clock = clock
        self.mode: Mode = "up"
        self.delay = 0.0
        self.requests: list[RecordedWeatherRequest] = []
        self._runner: web.AppRunner | None = None
        self._base = ""

    # -- lifecycle --

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/v1/search", self._search)
        app.router.add_get("/v1/forecast", self._forecast)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._base = f"http://{host}:{port}/v1"
        return self._base

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeOpenMeteo:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def geocoding_url(self) -> str:
        return self._base

    @property
    def forecast_url(self) -> str:
        return self._base

    # -- observations --

    def forecast_requests(self) -> list[RecordedWeatherRequest]:
        return [r for r in self.requests if r.path.endswith("/forecast")]

    def geocoding_requests(self) -> list[RecordedWeatherRequest]:
        return [r for r in self.requests if r.path.endswith("/search")]

    def forecast_coordinates(self) -> list[tuple[float, float]]:
        return [
            (float(r.query["latitude"]), float(r.query["longitude"]))
            for r in self.forecast_requests()
        ]

    # -- the weather it reports --

    @staticmethod
    def daily(lat: float, lon: float, day: date) -> dict[str, Any]:
        """The fake's forecast for one place and day (deterministic)."""
        seed = int(abs(lat * 100) + abs(lon * 100)) + day.toordinal()
        tmax = round(18 + 10 * math.sin(seed) + (30 - abs(lat)) / 6, 1)
        return {
            "weather_code": _CODES[seed % len(_CODES)],
            "temperature_2m_max": tmax,
            "temperature_2m_min": round(tmax - 6 - seed % 4, 1),
            "temperature_2m_mean": round(tmax - 3, 1),
            "precipitation_sum": float(seed % 7),
            "precipitation_probability_max": (seed * 7) % 101,
            "wind_speed_10m_max": float(5 + seed % 20),
        }

    @staticmethod
    def current_temperature(lat: float, lon: float) -> float:
        return round(15 + 8 * math.cos(lat + lon), 1)

    # -- handlers --

    async def _gate(self, request: web.Request) -> web.StreamResponse | None:
        self.requests.append(RecordedWeatherRequest(request.path, dict(request.query)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "down":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never delivered: the connection is gone
        if self.mode == "unavailable":
            return web.Response(
                status=503,
                text="<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                content_type="text/html",
            )
        return None

    async def _search(self, request: web.Request) -> web.StreamResponse:
        gated = await self._gate(request)
        if gated is not None:
            return gated
        q = request.query
        started = time.perf_counter()
        name = q.get("name")
        if name is None:
            return _error("Parameter 'name' is required")
        if q.get("format", "json") != "json":
            return _error(f"Format '{q['format']}' is not supported by this fake")
        try:
            count = int(q.get("count", "10"))
        except ValueError:
            return _error(f"Parameter 'count' is invalid. Given: {q.get('count')}")
        if not 1 <= count <= 100:
            return _error(f"Parameter 'count' must be between 1 and 100. Given: {count}")
        language = q.get("language", "en").lower()
        term = name.strip().lower()
        body: dict[str, Any] = {}
        # As documented: under 2 characters nothing; 2 exact only; 3 and more also prefixes.
        if len(term) >= 2:
            hits = [p for p in self.places if _matches(p, term)]
            hits.sort(key=lambda p: -p.population)
            if hits:
                body["results"] = [p.result(language) for p in hits[:count]]
        body["generationtime_ms"] = round((time.perf_counter() - started) * 1000, 4)
        return web.json_response(body)

    async def _forecast(self, request: web.Request) -> web.StreamResponse:
        gated = await self._gate(request)
        if gated is not None:
            return gated
        try:
            return web.json_response(self._forecast_body(request.query))
        except OpenMeteoError as exc:
            return _error(exc.reason)

    def _forecast_body(self, q: Any) -> dict[str, Any]:
        started = time.perf_counter()
        if "latitude" not in q or "longitude" not in q:
            raise OpenMeteoError(
                "Parameter 'latitude' and 'longitude' must have the same number of elements"
            )
        lat, lon = _float(q["latitude"], "latitude"), _float(q["longitude"], "longitude")
        if not -90 <= lat <= 90:
            raise OpenMeteoError(f"Latitude must be in range of -90 to 90°. Given: {lat}.")
        if not -180 <= lon <= 180:
            raise OpenMeteoError(f"Longitude must be in range of -180 to 180°. Given: {lon}.")
        days = int(_float(q.get("forecast_days", "7"), "forecast_days"))
        if not 0 <= days <= 16:
            raise OpenMeteoError(f"Forecast days is invalid. Allowed range 0 to 16. Given {days}.")
        zone_name = q.get("timezone", "GMT")
        if zone_name == "auto":
            zone_name = self._zone_at(lat, lon)
        zone = ZoneInfo(zone_name) if zone_name != "GMT" else UTC
        local_now = datetime.fromtimestamp(self.clock(), UTC).astimezone(zone)
        offset = local_now.utcoffset() or timedelta(0)
        body: dict[str, Any] = {
            # The API answers for its grid cell, not the exact point asked for.
            "latitude": round(round(lat / 0.0625) * 0.0625, 6),
            "longitude": round(round(lon / 0.0625) * 0.0625, 6),
            "generationtime_ms": 0.0,
            "utc_offset_seconds": int(offset.total_seconds()),
            "timezone": zone_name,
            "timezone_abbreviation": local_now.tzname() or "GMT",
            "elevation": 38.0,
        }
        current = _variables(q.get("current"), CURRENT_UNITS, "ForecastVariable")
        if current:
            stamp = local_now.replace(minute=local_now.minute // 15 * 15, second=0, microsecond=0)
            values: dict[str, Any] = {"time": stamp.strftime("%Y-%m-%dT%H:%M"), "interval": 900}
            for name in current:
                if name == "temperature_2m":
                    values[name] = self.current_temperature(lat, lon)
                elif name == "weather_code":
                    values[name] = self.daily(lat, lon, local_now.date())["weather_code"]
                elif name == "is_day":
                    values[name] = int(6 <= local_now.hour < 19)
                else:
                    values[name] = 50.0
            body["current_units"] = {k: CURRENT_UNITS[k] for k in ("time", "interval", *current)}
            body["current"] = values
        daily = _variables(q.get("daily"), DAILY_UNITS, "ForecastVariableDaily")
        if daily:
            dates = [local_now.date() + timedelta(days=i) for i in range(days)]
            rows = [self.daily(lat, lon, d) for d in dates]
            series: dict[str, Any] = {"time": [d.isoformat() for d in dates]}
            for name in daily:
                if name in ("sunrise", "sunset"):
                    hour = "05:20" if name == "sunrise" else "19:50"
                    series[name] = [f"{d.isoformat()}T{hour}" for d in dates]
                else:
                    series[name] = [row[name] for row in rows]
            body["daily_units"] = {k: DAILY_UNITS[k] for k in ("time", *daily)}
            body["daily"] = series
        body["generationtime_ms"] = round((time.perf_counter() - started) * 1000, 4)
        return body

    def _zone_at(self, lat: float, lon: float) -> str:
        nearest = min(
            self.places,
            key=lambda p: (p.latitude - lat) ** 2 + (p.longitude - lon) ** 2,
            default=None,
        )
        if nearest is not None and abs(nearest.latitude - lat) + abs(nearest.longitude - lon) < 3:
            return nearest.timezone
        if 124 <= lon <= 132 and 33 <= lat <= 39:
            return "Asia/Seoul"
        return "GMT"


def _fold(text: str) -> str:
    # The real search is fuzzy; at least "reykjavik" finds "Reykjavík".
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _matches(place: FakePlace, term: str) -> bool:
    term = _fold(term)
    names = [_fold(n) for n in place.names.values()]
    if term in names:
        return True
    return len(term) >= 3 and any(n.startswith(term) for n in names)


def _float(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise OpenMeteoError(f"Parameter '{name}' is invalid. Given: {raw}") from None


def _variables(raw: str | None, known: dict[str, str], kind: str) -> list[str]:
    if not raw:
        return []
    names = [v.strip() for v in raw.split(",") if v.strip()]
    for name in names:
        if name not in known or name == "time":
            raise OpenMeteoError(
                f"Data corrupted at path ''. Cannot initialize {kind} from invalid String "
                f"value {name}."
            )
    return names


def _error(reason: str) -> web.Response:
    return web.json_response({"error": True, "reason": reason}, status=400)
