"""The sample dialogues through the real manager, with the GLM fake and the Open-Meteo fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.manager import TurnResult
from tests.bot.forms.support import Rig, gazetteer, running

DIALOGUES_PATH = Path(__file__).resolve().parents[2] / "data" / "dialogues.sample.jsonl"
DIALOGUES: list[dict[str, Any]] = [
    json.loads(line) for line in DIALOGUES_PATH.read_text(encoding="utf-8").splitlines() if line
]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running() as rig:
        yield rig


def test_the_sample_file_has_the_dialogues_of_the_issue() -> None:
    assert [d["id"] for d in DIALOGUES] == [f"w{i}" for i in range(1, 11)]


@pytest.mark.parametrize("dialogue", DIALOGUES, ids=lambda d: str(d["id"]))
async def test_sample_dialogue_fetches_the_expected_cities(
    rig: Rig, dialogue: dict[str, Any]
) -> None:
    for step in dialogue["turns"]:
        already = len(rig.weather.forecast_requests())
        result, text = await rig.say(step["user"])
        fetched = rig.weather.forecast_coordinates()[already:]
        expected = step["weather_city"]
        if expected is None:
            assert fetched == [], step["user"]
            continue
        city = gazetteer().lookup(expected)
        assert city is not None
        assert fetched == [(round(city.lat, 4), round(city.lon, 4))], step["user"]
        assert result is TurnResult.FORM
        assert expected in text and "°C" in text, text
    # Every extraction was done by the rules: no request offered the model a tool.
    assert rig.tool_requests() == []


async def test_unrelated_message_after_weather_goes_to_the_model(rig: Rig) -> None:
    await rig.say("제주 날씨 알려줘")
    result, text = await rig.say("고마워")
    assert result is TurnResult.ANSWERED
    assert text == "echo: 고마워"
    assert len(rig.weather.forecast_requests()) == 1
