"""Builds the forms stage and what it owns, for the composition root (one call, one close)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.forms.builtin.intake import SessionSubmissionStore, SubmissionsCommand
from bot.forms.builtin.weather import OpenMeteoClient
from bot.forms.extractors import CityGazetteer
from bot.forms.korean import KoreanAnalyzer
from bot.forms.registry import FormDeps, build_registry
from bot.forms.stage import SlotFillingStage, StageConfig
from bot.forms.toolcall import Breaker, CompletionClient, ToolExtractor
from bot.sessions.base import SessionStore


@dataclass(slots=True)
class FormsRuntime:
    stage: SlotFillingStage
    submissions_command: SubmissionsCommand
    weather: OpenMeteoClient
    analyzer: asyncio.Future[KoreanAnalyzer]

    async def close(self) -> None:
        await self.weather.close()
        if not self.analyzer.done():
            self.analyzer.cancel()


async def build_forms(
    *,
    store: SessionStore,
    glm: CompletionClient | None,
    model: str,
    geocoding_url: str,
    forecast_url: str,
    offline: bool,
    breaker: Breaker | None = None,
    idle_minutes: float = 30.0,
    timezone: str = "Asia/Seoul",
) -> FormsRuntime:
    """Everything the forms need. Kiwi's model starts loading here (seconds, in a worker
    thread) without holding up start-up. Offline, the model neither extracts nor phrases."""
    gazetteer = CityGazetteer.load()
    # Loaded in a worker thread while the bot starts; the stage awaits it on first use.
    analyzer: asyncio.Future[KoreanAnalyzer] = asyncio.ensure_future(
        asyncio.to_thread(lambda: KoreanAnalyzer(proper_nouns=gazetteer.korean_names()))
    )
    weather = OpenMeteoClient(geocoding_url=geocoding_url, forecast_url=forecast_url)
    submissions = SessionSubmissionStore(store)
    registry = build_registry(FormDeps(gazetteer, weather, submissions))
    tools = (
        ToolExtractor(glm, model=model, breaker=breaker)
        if glm is not None and not offline
        else None
    )
    stage = SlotFillingStage(
        registry,
        analyzer=analyzer,
        tools=tools,
        config=StageConfig(
            idle_minutes=idle_minutes, timezone=timezone, phrase_with_model=not offline
        ),
    )
    return FormsRuntime(stage, SubmissionsCommand(submissions), weather, analyzer)
