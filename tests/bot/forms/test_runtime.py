"""Kiwi is loaded before anything is served: loading it holds the GIL for up to 0.6 s at a
stretch, so the event loop must never share its time with the loading while turns run."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bot.forms.korean import KoreanAnalyzer
from bot.forms.runtime import load_analyzer_before_serving
from bot.manager import TurnResult
from bot.sessions.memory import MemorySessionStore
from tests.bot.forms.support import forms_on, gazetteer
from tests.bot.helpers import RecordingReply, make_manager, turn
from tests.fakes.glm import FakeGlm
from tests.fakes.weather import FakeOpenMeteo

MAX_LAG = 0.1  # seconds the event loop may go without running a ready callback


class LoopLag:
    """The longest the event loop took to wake a task that asked to sleep 5 ms."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> float:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.worst

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, loop.time() - before - 0.005)


async def test_turns_find_kiwi_loaded_and_the_loop_never_freezes() -> None:
    store = MemorySessionStore()
    async with FakeGlm() as glm, FakeOpenMeteo() as weather:
        manager = make_manager(glm.base_url, glm.api_key, store, phrase_form_answers=False)
        forms = await forms_on(manager, weather)
        lag = LoopLag()
        try:
            # Loaded by the time the bot is built: no turn waits for it, none shares the GIL.
            assert isinstance(forms.analyzer, KoreanAnalyzer)
            assert forms.stage.analyzer is forms.analyzer
            lag.start()
            results = []
            for text in ["서울 날씨 알려줘", "부산은?", "내일은?", "안녕하세요", "고양이는?"]:
                reply = RecordingReply()
                results.append(await manager.handle(turn(text), reply))
            worst = await lag.stop()
        finally:
            await forms.close()
            await manager.glm.client.close()
    assert results[:3] == [TurnResult.FORM] * 3
    assert len(weather.forecast_coordinates()) == 3
    assert worst < MAX_LAG, f"the event loop stalled {worst:.3f}s while turns were served"


async def test_start_up_stopped_while_kiwi_loads_is_not_held_by_it() -> None:
    # SIGTERM or Ctrl-C during start-up cancels it: the wait ends at once (Kiwi may hold the
    # GIL until the end of its current stretch), and the loading thread cannot hold up the
    # process's exit.
    task = asyncio.create_task(load_analyzer_before_serving(gazetteer().korean_names()))
    await asyncio.sleep(0.05)
    loaders = [t for t in threading.enumerate() if t.name == "kiwi-loader"]
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped = time.perf_counter() - started
    assert loaders and all(t.daemon for t in loaders)
    for loader in loaders:  # done before the next test, whose timings it would disturb
        loader.join(timeout=60)
    assert stopped < 1.5
