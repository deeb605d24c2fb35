"""Forms stage figures: Kiwi's start-up, per-turn cost (median, p99), labelled-set accuracy."""

# Run from the project root: .venv/bin/python bench/bench_forms.py [--rounds N]
# The stage runs as the manager calls it, with a canned weather source (no network, down for
# the turns labelled so) and no model: what is measured is extraction, corrections and
# references, carry-over, the state machine and the template. The labelled set
# (tests/data/dialogues.understanding.jsonl) is checked turn by turn on the first round.

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import banner, summary  # noqa: E402
from bot.forms.builtin.intake import RecordSubmissionStore  # noqa: E402
from bot.forms.builtin.weather import (  # noqa: E402
    DayForecast,
    Forecast,
    Place,
    WeatherUnavailable,
)
from bot.forms.extractors import CityGazetteer  # noqa: E402
from bot.forms.korean import KoreanAnalyzer  # noqa: E402
from bot.forms.registry import FormDeps, build_registry  # noqa: E402
from bot.forms.stage import SlotFillingStage  # noqa: E402
from bot.i18n import detect_language  # noqa: E402
from bot.sessions.base import Session  # noqa: E402
from bot.sessions.memory import MemorySessionStore  # noqa: E402
from bot.turn import Turn  # noqa: E402

DIALOGUES = ROOT / "tests" / "data" / "dialogues.sample.jsonl"
LABELLED = ROOT / "tests" / "data" / "dialogues.understanding.jsonl"
TARGET_MEDIAN_MS = 1.0
ASKING = {"confirm": "__confirm__", "choose": "__choose__"}

UNRELATED = [
    "파이썬에서 리스트를 정렬하는 가장 빠른 방법이 뭐야? 키 함수를 쓰는 예시도 보여 줘.",
    "어제 본 영화 줄거리를 다시 설명해 줄 수 있어? 결말이 잘 이해가 안 됐어.",
    "Can you explain the difference between a process and a thread in simple terms?",
    "고마워!",
    "회의록을 세 문장으로 요약해 줘: " + "오늘 회의에서는 다음 분기 계획을 논의했다. " * 8,
]
INTAKE = [
    "상담 예약하고 싶어요",
    "홍길동이요",
    "010-1234-5678",
    "다음 주 화요일 오후 3시",
    "대출 상담이요",
    "네",
]


class CannedWeather:
    """Instant forecasts; records the coordinates it was asked for (for the accuracy check)."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []
        self.down = False

    async def geocode(self, name: str, *, lang: str, count: int = 5) -> list[Place]:
        return []

    async def forecast(self, lat: float, lon: float, *, days: int = 7) -> Forecast:
        if self.down:
            raise WeatherUnavailable("down (as labelled)")
        self.asked.append((lat, lon))
        today = date(2025, 6, 13)
        return Forecast(
            "Asia/Seoul",
            tuple(DayForecast(today + timedelta(days=i), 2, 25.0, 17.0, 20) for i in range(days)),
            current_temperature=21.0,
        )


async def run(rounds: int) -> int:
    logging.getLogger("bot").setLevel(logging.ERROR)  # the labelled outages log warnings
    banner("forms stage (extraction, carry-over, machine, template)")
    started = time.perf_counter()
    gazetteer = CityGazetteer.load()
    analyzer = KoreanAnalyzer(proper_nouns=gazetteer.korean_names())
    print(f"   Kiwi + gazetteer load (once, at start-up): {time.perf_counter() - started:.2f} s")

    weather = CannedWeather()
    submissions = RecordSubmissionStore(MemorySessionStore())
    registry = build_registry(FormDeps(gazetteer, weather, submissions))
    clock = [1749776400.0]  # Friday 13 June 2025, 10:00 KST
    stage = SlotFillingStage(registry, analyzer=analyzer, clock=lambda: clock[0])
    dialogues = [json.loads(line) for line in DIALOGUES.read_text("utf-8").splitlines() if line]
    labelled = [json.loads(line) for line in LABELLED.read_text("utf-8").splitlines() if line]
    today = datetime.fromtimestamp(clock[0], ZoneInfo("Asia/Seoul")).date()

    async def labelled_right(session: Session, step: dict[str, object]) -> bool:
        """The turn did what its label says (tests/bot/forms/test_understanding_set.py)."""
        before = len(weather.asked)
        weather.down = step.get("service") == "down"
        cost = await turn_cost(session, str(step["user"]))
        weather.down = False
        labelled_turns.append(cost)
        right = True
        expected = step.get("weather")
        if isinstance(expected, list):
            city = gazetteer.lookup(str(expected[0]))
            values = session.state.get("values") or {}
            right = (
                city is not None
                and weather.asked[before:] == [(city.lat, city.lon)]
                and values.get("date") == (today + timedelta(days=int(expected[1]))).isoformat()
            )
        elif "weather" in step:
            right = weather.asked[before:] == []
        if "asks" in step:
            asking = None if session.form is None else session.form["asking"]
            wanted = step["asks"]
            right = right and asking == ASKING.get(str(wanted), wanted)
        values = step.get("values")
        if isinstance(values, dict):
            held = session.form["values"] if session.form is not None else {}
            right = right and all(held.get(k) == v for k, v in values.items())
        submitted = step.get("submitted")
        if isinstance(submitted, dict):
            records = await submissions.recent("intake", "bench:", 10_000)
            got = next((x for x in records if x["session"] == session.key), {})
            right = right and all(got.get(k) == v for k, v in submitted.items())
        return right

    async def turn_cost(session: Session, text: str) -> float:
        turn = Turn(platform="bench", chat_id="1", user_id="1", text=text)
        lang = detect_language(text)
        t0 = time.perf_counter()
        await stage.handle(session, turn, text, lang)
        return time.perf_counter() - t0

    form_turns: list[float] = []
    other_turns: list[float] = []
    labelled_turns: list[float] = []
    labelled_ok = labelled_total = 0
    correct = total = 0
    for r in range(rounds):
        for dialogue in dialogues:
            session = Session(key=f"bench:{r}:{dialogue['id']}")
            for step in dialogue["turns"]:
                before = len(weather.asked)
                cost = await turn_cost(session, step["user"])
                fetched = weather.asked[before:]
                expected = step["weather_city"]
                (form_turns if expected else other_turns).append(cost)
                if r == 0:
                    total += 1
                    city = gazetteer.lookup(expected) if expected else None
                    want = [] if city is None else [(city.lat, city.lon)]
                    correct += fetched == want
        for dialogue in labelled:
            session = Session(key=f"bench:{r}:{dialogue['id']}")
            right = True
            for step in dialogue["turns"]:
                right = await labelled_right(session, step) and right
            if r == 0:
                labelled_total += 1
                labelled_ok += right
                if not right:
                    print(f"   labelled dialogue {dialogue['id']}: not as labelled")
        session = Session(key=f"bench:{r}:intake")
        for text in INTAKE:
            form_turns.append(await turn_cost(session, text))
        for text in UNRELATED:
            other_turns.append(await turn_cost(Session(key=f"bench:{r}:other"), text))

    every = form_turns + other_turns + labelled_turns
    print(f"   per turn, all:               {summary(every)}")
    print(f"   per turn, form turns:        {summary(form_turns)}")
    print(f"   per turn, labelled set:      {summary(labelled_turns)}")
    print(f"   per turn, unrelated turns:   {summary(other_turns)}")
    print(f"   sample dialogues: {correct}/{total} turns fetched the expected city")
    print(
        f"   labelled set (corrections, negation, references, failures, typos): "
        f"{labelled_ok}/{labelled_total} dialogues right, no model call"
    )
    median_ms = sorted(every)[len(every) // 2] * 1000
    ok = median_ms <= TARGET_MEDIAN_MS and correct == total and labelled_ok == labelled_total
    print(f"   target: median <= {TARGET_MEDIAN_MS} ms, accuracy 100%: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200, help="passes over the dialogues")
    args = parser.parse_args()
    return asyncio.run(run(args.rounds))


if __name__ == "__main__":
    raise SystemExit(main())
