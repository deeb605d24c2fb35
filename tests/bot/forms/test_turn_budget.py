"""One deadline for the whole turn: tool-call extraction, phrasing and the answer share it,
and every model call goes through the answer path's bulkhead and breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.forms.toolcall import ToolExtractor
from bot.glm.breaker import Bulkhead, CircuitBreaker
from bot.glm.budget import use_budget
from bot.glm.client import GlmClient
from bot.glm.guarded import GuardedGlm
from bot.i18n import t
from bot.manager import TurnResult
from tests.bot.forms.support import running, utt
from tests.bot.helpers import RecordingReply, turn
from tests.fakes.glm import FakeGlm, Reply, ToolCall

SLOW = Reply("너무 늦은 답", first_delay=5.0)
TIMEOUT = 0.8  # the turn's first-token budget in these tests
SLACK = 0.25


# ---- through the manager ----------------------------------------------------------------


async def test_a_slow_model_everywhere_still_gives_the_fallback_within_the_deadline() -> None:
    async with running(first_token_timeout=TIMEOUT) as rig:
        rig.glm.default = SLOW
        reply = RecordingReply()
        started = time.perf_counter()
        # "book" hints at the booking form: the model is asked (tool call) before it answers.
        task = asyncio.create_task(rig.manager.handle(turn("recommend a good book"), reply))
        await rig.glm.wait_for(lambda f: f.streams_started >= 1, within=3 * TIMEOUT)
        result = await task
        elapsed = time.perf_counter() - started
        assert len(rig.tool_requests()) == 1  # the extraction was tried, and given up
        assert result is TurnResult.FALLBACK
        assert reply.final == ("fail", t("fallback_timeout", "en"))
        assert elapsed < TIMEOUT + SLACK, f"fallback after {elapsed:.2f}s"
        # The extraction gave up early enough for the answer to get a real chance.
        extraction, answer = rig.glm.requests
        assert answer.stream and answer.time - extraction.time >= TIMEOUT * 0.4


async def test_the_weather_answer_is_phrased_within_the_same_deadline() -> None:
    async with running(first_token_timeout=TIMEOUT, phrase_with_model=True) as rig:
        rig.glm.default = SLOW
        started = time.perf_counter()
        result, text = await rig.say("서울 날씨 알려줘")
        elapsed = time.perf_counter() - started
        assert result is TurnResult.FORM and text.startswith("서울 오늘 날씨")  # the template
        assert elapsed < TIMEOUT + SLACK


async def test_the_phrasing_request_is_bounded_by_max_tokens() -> None:
    async with running(phrase_with_model=True) as rig:
        result, text = await rig.say("서울 날씨 알려줘")
        assert result is TurnResult.FORM and text.startswith("[model] 서울")
        phrasing = [r for r in rig.glm.requests if "tools" not in r.json]
        assert phrasing and all(r.json.get("max_tokens") == 4096 for r in phrasing)


async def test_extraction_waits_in_the_answer_paths_bulkhead() -> None:
    async with running(first_token_timeout=0.5) as rig:
        rig.manager.glm.bulkhead = Bulkhead(1)
        rig.glm.enqueue(ToolCall("intake", {"name": "홍길동"}))
        async with rig.manager.glm.bulkhead.slot():  # every slot busy
            result = await rig.manager.handle(turn("book something for me"), RecordingReply())
        assert result is TurnResult.FALLBACK
        assert rig.glm.requests == []  # neither the extraction nor the answer got through


async def test_an_open_breaker_skips_the_extraction_too() -> None:
    async with running() as rig:
        breaker = CircuitBreaker(min_calls=1, failure_rate=0.5, open_seconds=60)
        breaker.record_failure()
        rig.manager.glm.breaker = breaker
        result = await rig.manager.handle(turn("recommend a good book"), RecordingReply())
        assert result is TurnResult.FALLBACK
        assert rig.glm.requests == []


# ---- the extractor on its own -------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as server:
        yield server


@pytest.fixture
async def guarded(fake: FakeGlm) -> AsyncIterator[GuardedGlm]:
    client = GlmClient(
        base_url=fake.base_url, api_key=fake.api_key, backoff_factor=0.01, backoff_max=0.02
    )
    yield GuardedGlm(client, model="glm-4.5", first_token_timeout=1.0)
    await client.close()


def extractor(glm: GuardedGlm) -> ToolExtractor:
    return ToolExtractor(glm, model="glm-4.5", timeout=4.0)


async def test_extraction_gives_up_halfway_through_the_turn(
    fake: FakeGlm, guarded: GuardedGlm
) -> None:
    fake.enqueue(SLOW)
    async with running(model_extraction=False) as rig:
        forms = list(rig.stage.registry)
    loop = asyncio.get_running_loop()
    with use_budget(guarded.budget()):
        started = loop.time()
        fill = await extractor(guarded).extract(forms, utt("book me a slot"))
        waited = loop.time() - started
    assert fill is None
    assert 0.45 <= waited < 0.6  # half of the 1 s budget, not the extractor's own 4 s
    assert len(fake.requests) == 1
    assert guarded.breaker.failures_in_window == 1


async def test_extraction_is_skipped_when_too_little_of_the_turn_is_left(
    fake: FakeGlm, guarded: GuardedGlm
) -> None:
    async with running(model_extraction=False) as rig:
        forms = list(rig.stage.registry)
    loop = asyncio.get_running_loop()
    tools = extractor(guarded)
    with use_budget(guarded.budget(started=loop.time() - 0.45)):
        assert await tools.extract(forms, utt("book me a slot")) is None
    assert fake.requests == []
    assert tools.calls == 0


async def test_extraction_outside_a_turn_keeps_its_own_timeout(
    fake: FakeGlm, guarded: GuardedGlm
) -> None:
    fake.enqueue(ToolCall("intake", {"name": "홍길동"}))
    async with running(model_extraction=False) as rig:
        forms = list(rig.stage.registry)
    fill = await extractor(guarded).extract(forms, utt("book me a slot"))
    assert fill is not None and fill.form.name == "intake"
    assert fake.last_request.json["max_tokens"] == 256
