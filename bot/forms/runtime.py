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
    analyzer: KoreanAnalyzer | None  # None: Kiwi could not load (gazetteer and patterns only)

    async def close(self) -> None:
        await self.weather.close()


async def load_analyzer_before_serving(names: list[str]) -> KoreanAnalyzer | None:
    """Kiwi, loaded while start-up waits for it, before any turn is served.

    kiwipiepy holds the GIL for as long as it reads its model and builds its tables (about a
    second in stretches of up to 0.6 s, bench/bench_startup.py): loaded beside a running
    event loop it freezes the loop, and no thread can make the loading overlap with Python
    work. So it is loaded once, here, and the adapters start serving afterwards.

    In a daemon thread all the same, awaited: a process stopped while Kiwi loads (Ctrl-C in
    the terminal chat, SIGTERM) exits at once, where a worker of ``asyncio.to_thread`` would
    be waited for at exit, and the event loop still takes the signal."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[KoreanAnalyzer | None] = loop.create_future()

    def deliver(analyzer: KoreanAnalyzer | None) -> None:
        if not future.done():  # start-up was cancelled meanwhile
            future.set_result(analyzer)

    def load() -> None:
        analyzer = load_analyzer(names)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(deliver, analyzer)

    threading.Thread(target=load, name="kiwi-loader", daemon=True).start()
    return await future


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
    """Everything the forms need, Kiwi loaded (about a second, see
    ``load_analyzer_before_serving``). Offline, the model neither extracts nor phrases.

    ``glm`` is the answer path's ``GuardedGlm``: tool-call extraction shares its breaker,
    its bulkhead and the turn's deadline."""
    gazetteer = CityGazetteer.load()
    # ``None`` when Kiwi cannot load: the forms then run on the gazetteer and patterns alone.
    analyzer = await load_analyzer_before_serving(gazetteer.korean_names())
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
