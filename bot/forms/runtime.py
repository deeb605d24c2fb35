"""Builds the forms stage and what it owns, for the composition root (one call, one close)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

from bot.forms.builtin.intake import RecordSubmissionStore, SubmissionsCommand
from bot.forms.builtin.weather import OpenMeteoClient
from bot.forms.extractors import CityGazetteer
from bot.forms.korean import KoreanAnalyzer, load_analyzer
from bot.forms.registry import FormDeps, build_registry
from bot.forms.stage import SlotFillingStage, StageConfig
from bot.forms.toolcall import ToolExtractor
from bot.glm.guarded import GuardedGlm
from bot.notify import AdminNotices
from bot.sessions.base import SessionStore
from bot.sessions.index import StoredIndex


@dataclass(slots=True)
class FormsRuntime:
    stage: SlotFillingStage
    submissions_command: SubmissionsCommand
    weather: OpenMeteoClient
    analyzer: asyncio.Future[KoreanAnalyzer | None]

    async def close(self) -> None:
        await self.weather.close()
        if not self.analyzer.done():
            self.analyzer.cancel()


def _load_in_background(names: list[str]) -> asyncio.Future[KoreanAnalyzer | None]:
    """Kiwi loads in a daemon thread: a process stopped while it loads (Ctrl-C in the
    terminal chat, SIGTERM) exits at once, where a worker of ``asyncio.to_thread`` would be
    waited for (seconds) at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[KoreanAnalyzer | None] = loop.create_future()

    def deliver(analyzer: KoreanAnalyzer | None) -> None:
        if not future.done():  # ``FormsRuntime.close`` may have cancelled it
            future.set_result(analyzer)

    def load() -> None:
        analyzer = load_analyzer(names)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(deliver, analyzer)

    threading.Thread(target=load, name="kiwi-loader", daemon=True).start()
    return future


async def build_forms(
    *,
    store: SessionStore,
    glm: GuardedGlm | None,
    model: str,
    geocoding_url: str,
    forecast_url: str,
    offline: bool,
    idle_minutes: float = 30.0,
    timezone: str = "Asia/Seoul",
    index: StoredIndex | None = None,
    notices: AdminNotices | None = None,
) -> FormsRuntime:
    """Everything the forms need. Kiwi's model starts loading here (seconds, in a worker
    thread) without holding up start-up. Offline, the model neither extracts nor phrases.

    ``glm`` is the answer path's ``GuardedGlm``: tool-call extraction shares its breaker,
    its bulkhead and the turn's deadline."""
    gazetteer = CityGazetteer.load()
    # Loaded in a thread while the bot starts; the stage awaits it on first use. ``None``
    # when Kiwi cannot load: the forms then run on the gazetteer and patterns alone.
    analyzer = _load_in_background(gazetteer.korean_names())
    weather = OpenMeteoClient(geocoding_url=geocoding_url, forecast_url=forecast_url)
    submissions = RecordSubmissionStore(store, index=index, notices=notices)
    registry = build_registry(FormDeps(gazetteer, weather, submissions))
    tools = ToolExtractor(glm, model=model) if glm is not None and not offline else None
    stage = SlotFillingStage(
        registry,
        analyzer=analyzer,
        tools=tools,
        config=StageConfig(
            idle_minutes=idle_minutes, timezone=timezone, phrase_with_model=not offline
        ),
    )
    return FormsRuntime(stage, SubmissionsCommand(submissions), weather, analyzer)
