"""Shared pieces of the forms tests: one Kiwi per test process, a settable clock, builders."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.forms.builtin.intake import RecordSubmissionStore, SubmissionStore
from bot.forms.builtin.weather import OpenMeteoClient, WeatherSource
from bot.forms.extractors import CityGazetteer, Utterance
from bot.forms.korean import KoreanAnalyzer
from bot.forms.registry import FormDeps, FormRegistry, build_registry
from bot.forms.runtime import FormsRuntime, build_forms
from bot.forms.stage import SlotFillingStage, StageConfig
from bot.forms.toolcall import ToolExtractor
from bot.glm.guarded import GuardedGlm
from bot.manager import ConversationManager, TurnResult
from bot.sessions.base import SessionStore
from bot.sessions.memory import MemorySessionStore
from tests.bot.helpers import RecordingReply, make_manager, turn
from tests.fakes.glm import Behaviour, Echo, FakeGlm, RecordedRequest, Reply
from tests.fakes.weather import FakeOpenMeteo

SEOUL = ZoneInfo("Asia/Seoul")
# Friday 13 June 2025, 10:00 in Seoul: every date in the tests is relative to this.
NOW = datetime(2025, 6, 13, 10, 0, tzinfo=SEOUL)


@functools.cache
def gazetteer() -> CityGazetteer:
    return CityGazetteer.load()


@functools.cache
def korean() -> KoreanAnalyzer:
    # Kiwi takes seconds to load: once per test process, as the bot does once at start-up.
    return KoreanAnalyzer(proper_nouns=gazetteer().korean_names())


def utt(text: str, lang: str = "", now: datetime = NOW) -> Utterance:
    if not lang:
        lang = "en" if text.isascii() else "ko"
    return Utterance(text, lang, now, korean())


@dataclass
class Clock:
    """A wall clock the test moves by hand."""

    now: float = NOW.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


def registry(weather: WeatherSource, submissions: SubmissionStore) -> FormRegistry:
    return build_registry(FormDeps(gazetteer(), weather, submissions))


def open_meteo(base_url: str) -> OpenMeteoClient:
    return OpenMeteoClient(geocoding_url=base_url, forecast_url=base_url, timeout=2.0)


@contextmanager
def unreachable() -> Iterator[str]:
    """A base URL whose connections never complete, as with no network: a loopback listener
    that accepts nothing, its backlog already full, so the kernel drops every further SYN."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        for sock in (*fillers, listener):
            sock.close()


def stage(
    weather: WeatherSource,
    store: SessionStore,
    *,
    clock: Clock | None = None,
    glm: GuardedGlm | None = None,
    config: StageConfig | None = None,
) -> SlotFillingStage:
    tools = ToolExtractor(glm, model="glm-4.5", timeout=2.0) if glm is not None else None
    return SlotFillingStage(
        registry(weather, RecordSubmissionStore(store)),
        analyzer=korean(),
        tools=tools,
        config=config,
        clock=clock or Clock(),
    )


@dataclass
class Rig:
    """A manager with the forms stage, the GLM fake and the Open-Meteo fake, all on loopback."""

    manager: ConversationManager
    stage: SlotFillingStage
    glm: FakeGlm
    weather: FakeOpenMeteo
    store: SessionStore
    clock: Clock
    client: OpenMeteoClient

    async def say(self, text: str, user: str = "7") -> tuple[TurnResult, str]:
        """Send ``text`` as ``user``; the result and the text the user finally saw."""
        reply = RecordingReply()
        result = await self.manager.handle(turn(text, user=user, chat=user), reply)
        return result, reply.final[1]

    def restart(self, *, model_extraction: bool = True) -> None:
        """A new process: new manager and stage objects over the same store."""
        manager = make_manager(
            self.glm.base_url,
            self.glm.api_key,
            self.store,
            phrase_form_answers=self.manager.config.phrase_form_answers,
        )
        self.stage = stage(
            self.client,
            self.store,
            clock=self.clock,
            glm=manager.glm if model_extraction else None,
        )
        manager.forms = self.stage
        self.manager = manager

    def tool_requests(self) -> list[RecordedRequest]:
        return [r for r in self.glm.requests if "tools" in r.json]


_FACTS = "These facts were fetched just now; use only them and add nothing else: "


def phrasing_model(request: RecordedRequest) -> Behaviour:
    """A fake model that words the weather brief from its facts (and echoes anything else)."""
    system = str(request.messages[0].get("content", "")) if request.messages else ""
    if _FACTS not in system:
        return Echo()
    facts = json.JSONDecoder().raw_decode(system.split(_FACTS, 1)[1])[0]
    return Reply(
        f"[model] {facts['city']} {facts['day']}: {facts['condition']}, "
        f"{facts['min_celsius']}~{facts['max_celsius']}°C"
    )


@asynccontextmanager
async def running(
    *,
    model_extraction: bool = True,
    config: StageConfig | None = None,
    store: SessionStore | None = None,
    phrase_with_model: bool = False,
    first_token_timeout: float = 2.0,
) -> AsyncIterator[Rig]:
    clock = Clock()
    async with FakeGlm() as glm, FakeOpenMeteo(clock=clock) as weather:
        glm.default = phrasing_model
        store = store or MemorySessionStore()
        # Most tests read the template; test_phrasing.py turns the model's wording on.
        manager = make_manager(
            glm.base_url,
            glm.api_key,
            store,
            phrase_form_answers=phrase_with_model,
            first_token_timeout=first_token_timeout,
        )
        client = open_meteo(weather.geocoding_url)
        forms = stage(
            client,
            store,
            clock=clock,
            glm=manager.glm if model_extraction else None,
            config=config,
        )
        manager.forms = forms
        rig = Rig(manager, forms, glm, weather, store, clock, client)
        try:
            yield rig
        finally:
            await client.close()
            await rig.manager.glm.client.close()


async def forms_on(manager: ConversationManager, weather: FakeOpenMeteo) -> FormsRuntime:
    """The forms runtime as the app builds it (Kiwi loaded), on ``manager``'s store and model
    and this fake weather service, installed as the manager's forms stage."""
    forms = await build_forms(
        store=manager.store,
        glm=manager.glm,
        model="glm-4.5",
        geocoding_url=weather.geocoding_url,
        forecast_url=weather.forecast_url,
        offline=False,
    )
    manager.forms = forms.stage
    return forms
