"""GuardedGlm: first-token deadline, stall timeout, breaker, bulkhead, fallback model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable

import pytest

from bot.glm.breaker import Bulkhead, CircuitBreaker
from bot.glm.budget import use_budget
from bot.glm.client import GlmClient
from bot.glm.errors import (
    GlmAuthError,
    GlmContextTooLong,
    GlmEmptyAnswer,
    GlmTimeout,
    GlmUnavailable,
)
from bot.glm.guarded import GuardedGlm, Outcome
from bot.glm.types import ChatRequest, Chunk
from tests.fakes.glm import Drop, Error, FakeGlm, Reply, Sensitive, Stall


@pytest.fixture
async def fake() -> FakeGlm:
    async with FakeGlm() as server:
        yield server


@pytest.fixture
async def client(fake: FakeGlm) -> GlmClient:
    c = GlmClient(
        base_url=fake.base_url, api_key=fake.api_key, backoff_factor=0.01, backoff_max=0.02
    )
    yield c
    await c.close()


def guarded(client: GlmClient, **kw: object) -> GuardedGlm:
    kw.setdefault("first_token_timeout", 0.5)
    kw.setdefault("stall_timeout", 0.3)
    return GuardedGlm(client, model="glm-4.5", **kw)  # type: ignore[arg-type]


def user(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": text}]


async def test_chunks_reach_on_text_in_order(fake: FakeGlm, client: GlmClient) -> None:
    pieces = ["하나 ", "둘 ", "셋 ", "넷"]
    fake.enqueue(Reply("하나 둘 셋 넷", chunks=pieces, delay=0.05))
    seen: list[str] = []
    g = guarded(client)
    answer = await g.stream_answer(g.request(user("세어 봐")), seen.append)
    # Each piece as it came; pieces read together (a slow reader) come as one, in order.
    assert "".join(seen) == "하나 둘 셋 넷" and len(seen) > 1
    assert all(any("".join(pieces[i:j]) == s for i in range(4) for j in range(i, 5)) for s in seen)
    assert answer.outcome is Outcome.COMPLETE and answer.text == "하나 둘 셋 넷"


async def test_no_first_token_before_the_deadline_gives_timeout_and_cancels(
    fake: FakeGlm, client: GlmClient
) -> None:
    fake.enqueue(Reply("늦은 답", first_delay=5.0))
    g = guarded(client, first_token_timeout=0.3)
    started = time.perf_counter()
    answer = await g.stream_answer(g.request(user("빨리")), lambda _t: None)
    elapsed = time.perf_counter() - started
    assert answer.outcome is Outcome.TIMEOUT
    assert 0.3 <= elapsed < 0.45
    await fake.wait_cancelled(1)  # the late stream was closed, not left running
    assert fake.in_flight == 0


async def test_a_long_answer_that_keeps_flowing_is_never_cut(
    fake: FakeGlm, client: GlmClient
) -> None:
    pieces = [f"{i} " for i in range(40)]
    fake.enqueue(Reply("".join(pieces), chunks=pieces, delay=0.02))  # 0.8 s in all
    g = guarded(client, first_token_timeout=0.3, stall_timeout=0.2)
    answer = await g.stream_answer(g.request(user("길게")), lambda _t: None)
    assert answer.outcome is Outcome.COMPLETE
    assert answer.text == "".join(pieces)


async def test_a_stall_keeps_what_arrived(fake: FakeGlm, client: GlmClient) -> None:
    fake.enqueue(Stall("여기까지 왔어요", seconds=10))
    g = guarded(client, stall_timeout=0.2)
    answer = await g.stream_answer(g.request(user("멈춤")), lambda _t: None)
    assert answer.outcome is Outcome.STALLED
    assert answer.text == "여기까지 왔어요"
    await fake.wait_cancelled(1)


async def test_a_drop_after_text_is_interrupted_with_text(fake: FakeGlm, client: GlmClient) -> None:
    fake.enqueue(Drop("반쯤 "))
    g = guarded(client)
    answer = await g.stream_answer(g.request(user("끊김")), lambda _t: None)
    assert answer.outcome is Outcome.INTERRUPTED and answer.text == "반쯤 "


async def test_sensitive_outcome(fake: FakeGlm, client: GlmClient) -> None:
    fake.enqueue(Sensitive("보이면 안 되는 "))
    g = guarded(client)
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.SENSITIVE


async def test_auth_error_fails_without_retry(fake: FakeGlm, client: GlmClient) -> None:
    fake.enqueue(Error(401, "1000", "Authentication Failed"))
    g = guarded(client)
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.FAILED
    assert isinstance(answer.error, GlmAuthError)
    assert len(fake.requests) == 1


async def test_open_breaker_answers_in_milliseconds_without_calling(
    fake: FakeGlm, client: GlmClient
) -> None:
    breaker = CircuitBreaker(min_calls=2, failure_rate=0.5, open_seconds=60)
    g = guarded(client, breaker=breaker)
    for _ in range(2):
        fake.enqueue(Error(401, "1000", "Authentication Failed"))
        await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert breaker.state == "open"
    before = len(fake.requests)
    started = time.perf_counter()
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert time.perf_counter() - started < 0.005
    assert answer.outcome is Outcome.UNAVAILABLE
    assert isinstance(answer.error, GlmUnavailable)
    assert len(fake.requests) == before


async def test_timeouts_open_the_breaker(fake: FakeGlm, client: GlmClient) -> None:
    breaker = CircuitBreaker(min_calls=2, failure_rate=0.5, open_seconds=60)
    g = guarded(client, breaker=breaker, first_token_timeout=0.1)
    for _ in range(2):
        fake.enqueue(Reply("late", first_delay=2))
        answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
        assert answer.outcome is Outcome.TIMEOUT
    assert breaker.state == "open"


async def test_fallback_model_is_tried_within_the_deadline(
    fake: FakeGlm, client: GlmClient
) -> None:
    fake.enqueue(Error(400, "1211", "model not found"), Reply("빠른 모델의 답"))
    g = guarded(client, fallback_model="glm-4.5-flash")
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.COMPLETE and answer.text == "빠른 모델의 답"
    assert [r.json["model"] for r in fake.requests] == ["glm-4.5", "glm-4.5-flash"]


async def test_bulkhead_full_fails_fast_within_deadline(fake: FakeGlm, client: GlmClient) -> None:
    fake.default = Reply("slow", first_delay=1.0)
    g = guarded(client, bulkhead=Bulkhead(1), first_token_timeout=0.3)
    first = asyncio.create_task(g.stream_answer(g.request(user("a")), lambda _t: None))
    await asyncio.sleep(0.05)
    second = await g.stream_answer(g.request(user("b")), lambda _t: None)
    assert second.outcome in (Outcome.FAILED, Outcome.TIMEOUT)
    await first
    assert fake.max_in_flight == 1


async def test_streamed_tool_call_pieces_are_merged(fake: FakeGlm, client: GlmClient) -> None:
    from tests.fakes.glm import ToolCall

    fake.enqueue(ToolCall("get_weather", {"city": "부산", "date": "내일"}))
    g = guarded(client)
    answer = await g.stream_answer(g.request(user("부산 내일 날씨")), lambda _t: None)
    assert answer.outcome is Outcome.COMPLETE and answer.text == ""
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("get_weather", '{"city": "부산", "date": "내일"}')
    ]


async def test_cancelling_the_turn_cancels_the_stream(fake: FakeGlm, client: GlmClient) -> None:
    fake.enqueue(Stall("반쯤 ", seconds=10))
    g = guarded(client, stall_timeout=5.0)
    shown = asyncio.Event()
    task = asyncio.create_task(g.stream_answer(g.request(user("x")), lambda _t: shown.set()))
    await asyncio.wait_for(shown.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_cancelled(1)
    assert fake.in_flight == 0
    assert g.breaker.state == "closed"


async def test_an_error_in_on_text_is_the_callers_not_a_glm_failure(
    fake: FakeGlm, client: GlmClient
) -> None:
    fake.enqueue(Reply("하나 둘", chunks=["하나 ", "둘"]))
    g = guarded(client)

    def broken(_text: str) -> None:
        raise ValueError("bug in the reply")

    with pytest.raises(ValueError, match="bug in the reply"):
        await g.stream_answer(g.request(user("x")), broken)
    await fake.wait_for(lambda f: f.in_flight == 0)  # the response was closed, not leaked


async def test_an_unexpected_client_bug_becomes_a_failed_answer(client: GlmClient) -> None:
    class Broken(GlmClient):
        async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
            raise KeyError("parser bug")
            yield Chunk()  # pragma: no cover - makes this an async generator

    g = guarded(Broken(base_url="http://127.0.0.1:9", api_key="k"))
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.FAILED
    assert answer.error is not None and "KeyError" in str(answer.error)


class _Scripted(GlmClient):
    """A client whose stream is scripted in-process: for races no server can time exactly."""

    def __init__(self, script: Callable[[], AsyncGenerator[Chunk, None]]) -> None:
        super().__init__(base_url="http://127.0.0.1:9", api_key="k")
        self.script = script

    def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:  # type: ignore[override]
        return self.script()


async def test_a_slot_freed_as_the_deadline_passes_still_ends_in_the_fallback() -> None:
    async def late() -> AsyncGenerator[Chunk, None]:
        await asyncio.sleep(0.2)
        yield Chunk(content="늦은 답")
        yield Chunk(finish_reason="stop")

    loop = asyncio.get_running_loop()
    bulkhead = Bulkhead(1)
    # The only slot is busy; it frees at a set loop time (the semaphore directly: the slot's
    # context manager cannot be left from a timer callback).
    await bulkhead._sem.acquire()
    g = GuardedGlm(_Scripted(late), model="m", first_token_timeout=0.5, bulkhead=bulkhead)
    start = loop.time()
    loop.call_at(start + 0.45, bulkhead._sem.release)
    # The loop lags over the deadline, so the slot and the deadline fire in one iteration.
    loop.call_at(start + 0.40, time.sleep, 0.2)
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome in (Outcome.TIMEOUT, Outcome.FAILED)
    assert bulkhead.in_use == 0


async def test_a_stream_left_early_is_closed_at_once_inside_its_slot() -> None:
    closed: list[int] = []
    bulkhead = Bulkhead(2)

    class Endless(GlmClient):
        # Stands in for the HTTP response body, under the real retrying GlmClient.stream.
        async def _stream_once(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
            try:
                yield Chunk(content="하나")
                await asyncio.sleep(10)
            finally:
                closed.append(bulkhead.in_use)

    g = GuardedGlm(
        Endless(base_url="http://127.0.0.1:9", api_key="k"), model="m", bulkhead=bulkhead
    )

    def broken(_text: str) -> None:
        raise ValueError("reply broke")

    with pytest.raises(ValueError):
        await g.stream_answer(g.request(user("x")), broken)
    assert closed == [1]  # closed before the slot was given back, not by the collector
    assert bulkhead.in_use == 0


# ---- answer length, empty answers ------------------------------------------------------------


async def test_requests_ask_for_at_most_max_answer_tokens(fake: FakeGlm, client: GlmClient) -> None:
    g = guarded(client, max_answer_tokens=512)
    await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert fake.last_request.json["max_tokens"] == 512
    default = guarded(client)
    await default.stream_answer(default.request(user("x")), lambda _t: None)
    assert fake.last_request.json["max_tokens"] == 4096


async def test_a_stream_without_visible_text_is_an_empty_answer(
    fake: FakeGlm, client: GlmClient
) -> None:
    g = guarded(client)
    for behaviour in (
        Reply("", reasoning="생각만 하고 끝"),
        Reply("", chunks=["", ""]),
        Reply("\n \n", chunks=["\n", " \n"]),
    ):
        fake.enqueue(behaviour)
        answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
        assert answer.outcome is Outcome.FAILED, behaviour
        assert isinstance(answer.error, GlmEmptyAnswer)
    assert g.breaker.state == "closed"


async def test_reasoning_that_uses_up_max_tokens_is_an_empty_answer(
    fake: FakeGlm, client: GlmClient
) -> None:
    fake.enqueue(Reply("", reasoning="너무 오래 생각함", finish_reason="length"))
    g = guarded(client)
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.FAILED and isinstance(answer.error, GlmEmptyAnswer)


async def test_a_full_context_window_before_any_text_is_context_too_long(
    fake: FakeGlm, client: GlmClient
) -> None:
    fake.enqueue(Reply("", reasoning="...", finish_reason="model_context_window_exceeded"))
    g = guarded(client)
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.FAILED and isinstance(answer.error, GlmContextTooLong)


async def test_text_cut_for_length_is_truncated(fake: FakeGlm, client: GlmClient) -> None:
    fake.enqueue(Reply("앞부분만", finish_reason="length"))
    g = guarded(client)
    answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.TRUNCATED and answer.text == "앞부분만"


# ---- one deadline for the whole turn ----------------------------------------------------------


async def test_within_a_turn_the_first_token_deadline_counts_from_the_turn_start(
    fake: FakeGlm, client: GlmClient
) -> None:
    fake.enqueue(Reply("늦은 답", first_delay=5.0))
    g = guarded(client, first_token_timeout=0.6)
    loop = asyncio.get_running_loop()
    with use_budget(g.budget(started=loop.time() - 0.3)):  # 0.3 s went to earlier stages
        started = loop.time()
        answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.TIMEOUT
    assert 0.25 <= loop.time() - started < 0.4


async def test_a_spent_turn_budget_calls_nothing_and_blames_no_one(
    fake: FakeGlm, client: GlmClient
) -> None:
    g = guarded(client, first_token_timeout=0.5)
    loop = asyncio.get_running_loop()
    with use_budget(g.budget(started=loop.time() - 0.6)):
        answer = await g.stream_answer(g.request(user("x")), lambda _t: None)
    assert answer.outcome is Outcome.TIMEOUT
    assert fake.requests == []
    assert g.breaker.calls_in_window == 0


def tools_request() -> ChatRequest:
    return ChatRequest(messages=user("x"), model="glm-4.5", max_tokens=64)


async def test_complete_answers_through_the_guards(fake: FakeGlm, client: GlmClient) -> None:
    fake.enqueue(Reply("NONE"))
    g = guarded(client)
    completion = await g.complete(tools_request())
    assert completion.content == "NONE"
    assert fake.last_request.json["max_tokens"] == 64
    assert g.breaker.calls_in_window == 1


async def test_complete_gives_up_at_its_deadline_and_counts_a_failure(
    fake: FakeGlm, client: GlmClient
) -> None:
    fake.enqueue(Reply("late", first_delay=5.0))
    g = guarded(client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(GlmTimeout):
        await g.complete(tools_request(), deadline=started + 0.3)
    assert 0.28 <= loop.time() - started < 0.45
    assert g.breaker.failures_in_window == 1
    await fake.wait_cancelled(1)


async def test_complete_is_refused_by_an_open_breaker_without_a_call(
    fake: FakeGlm, client: GlmClient
) -> None:
    breaker = CircuitBreaker(min_calls=1, failure_rate=0.5, open_seconds=60)
    breaker.record_failure()
    g = guarded(client, breaker=breaker)
    with pytest.raises(GlmUnavailable):
        await g.complete(tools_request())
    assert fake.requests == []


async def test_complete_waits_for_a_bulkhead_slot_only_until_its_deadline(
    fake: FakeGlm, client: GlmClient
) -> None:
    bulkhead = Bulkhead(1)
    g = guarded(client, bulkhead=bulkhead)
    loop = asyncio.get_running_loop()
    async with bulkhead.slot():
        started = loop.time()
        with pytest.raises(GlmUnavailable):
            await g.complete(tools_request(), deadline=started + 0.2)
        assert loop.time() - started < 0.3
    assert fake.requests == []
    assert g.breaker.calls_in_window == 0
