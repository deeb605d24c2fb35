"""The rolling summary: background folds over real HTTP (fake GLM), memory and Redis stores."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from bot.context.summary import (
    UPTO_KEY,
    Summarizer,
    apply,
    cap_tokens,
    fold_request,
    guarded_complete,
    needs_summary,
    offline_summary,
    pick,
    summary_upto,
    uncovered,
)
from bot.glm.breaker import CircuitBreaker
from bot.glm.budget import TurnBudget, use_budget
from bot.glm.client import GlmClient
from bot.glm.guarded import GuardedGlm
from bot.sessions import MemorySessionStore, Message, Session, SessionStore, SessionStoreError
from bot.sessions.redis import RedisSessionStore
from bot.turn import SessionKey
from tests.fakes.glm import (
    Error,
    FakeGlm,
    RecordedRequest,
    Reply,
    Sensitive,
    Stall,
    is_summary_request,
    summarising,
)

KEY = SessionKey("telegram", "", "100", "", "7")
DAYS_30 = 30 * 86_400

# The first exchanges carry the facts a summary must keep.
FACTS = [
    ("내 이름은 민수야", "반가워요, 민수 님!"),
    ("전화번호는 010-1234-5678 이야", "010-1234-5678 로 기억할게요."),
    ("3월 14일에 부산 여행을 가", "3월 14일 부산 여행, 좋네요."),
    ("예약은 2025-03-14 오후 2시로 해줘", "2025-03-14 오후 2시로 알겠습니다."),
    ("매운 음식은 싫어", "매운 음식은 피할게요."),
    ("호텔은 아직 못 정했어", "호텔은 나중에 같이 정해요."),
]


def exchanges(count: int, start: float) -> list[Message]:
    """``count`` exchanges, each question and answer sharing one ts (as the manager stores)."""
    history: list[Message] = []
    for i in range(count):
        question, answer = FACTS[i] if i < len(FACTS) else (f"질문 {i}", f"답변 {i}")
        history.append(Message("user", question, start + i))
        history.append(Message("assistant", answer, start + i))
    return history


def conversation(count: int = 10, start: float | None = None) -> Session:
    start = time.time() - 10_000 if start is None else start
    return Session(key=str(KEY), history=exchanges(count, start), meta={"language": "ko"})


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as server:
        server.default = summarising
        yield server


@pytest.fixture
async def glm(fake: FakeGlm) -> AsyncIterator[GuardedGlm]:
    client = GlmClient(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
    yield GuardedGlm(client, model="glm-4.5", breaker=CircuitBreaker())
    await client.close()


StoreFactory = Callable[[], SessionStore]


@pytest.fixture(params=["memory", "redis"])
async def new_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Stores of one backend. Memory: one shared store (one process). Redis: a new store with
    its own client each time (another bot process), all on the same server."""
    made: list[RedisSessionStore] = []
    if request.param == "memory":
        shared = MemorySessionStore()

        def memory() -> SessionStore:
            return shared

        yield memory
        return
    url = request.getfixturevalue("redis_url")

    def redis_store() -> SessionStore:
        store = RedisSessionStore.from_url(url, ttl_seconds=DAYS_30)
        made.append(store)
        return store

    yield redis_store
    for store in made:
        await store.close()


@pytest.fixture
def store(new_store: StoreFactory) -> SessionStore:
    return new_store()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def summarizer(store: SessionStore, glm: GuardedGlm, **kw: Any) -> Summarizer:
    return Summarizer(store, guarded_complete(glm), **kw)


async def saved(store: SessionStore, session: Session) -> Session:
    await store.save(session)
    return await store.load(KEY)


def slow(seconds: float) -> Callable[[RecordedRequest], Reply]:
    """The fact-keeping summary, after ``seconds``."""

    def behaviour(request: RecordedRequest) -> Reply:
        return replace(summarising(request), first_delay=seconds)

    return behaviour


async def never_called(messages: list[dict[str, Any]], model: str, max_tokens: int) -> str:
    raise AssertionError("the model must not be called")


# --- pure helpers -----------------------------------------------------------------------------


def test_needs_summary_counts_uncovered_dialogue_beyond_the_recent_ones() -> None:
    session = conversation(9)  # 18 messages: 10 beyond the 8 most recent
    assert not needs_summary(session, threshold_messages=12)
    session.history.append(Message("system", "메모", time.time()))  # not dialogue
    assert not needs_summary(session, threshold_messages=12)
    session = conversation(10)  # 20 messages: 12 beyond the 8 most recent
    assert needs_summary(session, threshold_messages=12)
    assert not needs_summary(session, threshold_messages=12, keep_recent=10)
    # Covered messages no longer count.
    apply(session, "- 민수", session.history[1].ts, 1_000)
    assert uncovered(session) == session.history[2:]
    assert not needs_summary(session, threshold_messages=12)


def test_pick_takes_the_oldest_whole_exchanges_and_leaves_the_recent_ones() -> None:
    session = conversation(10)
    picked = pick(session, keep_recent=8)
    assert picked == session.history[:12]
    # An odd keep_recent never splits an exchange: its question waits with its answer.
    assert pick(session, keep_recent=7) == session.history[:12]
    assert pick(session, keep_recent=9) == session.history[:10]
    # At most max_messages per fold, still whole exchanges.
    assert pick(session, keep_recent=8, max_messages=5) == session.history[:4]
    # Covered messages are never picked again.
    apply(session, "- 요약", session.history[3].ts, 1_000)
    assert pick(session, keep_recent=8) == session.history[4:12]
    assert pick(conversation(4), keep_recent=8) == []


def test_fold_request_asks_for_the_users_language_and_keeps_the_facts() -> None:
    history = exchanges(3, 1_700_000_000.0)
    ko = fold_request("- 이전 요약", history, "ko", max_tokens=400)
    assert [m["role"] for m in ko] == ["system", "user"]
    system, user = ko[0]["content"], ko[1]["content"]
    assert "Korean" in system and "한국어" in system
    for word in ("name", "number", "date", "preference", "decision", "open question"):
        assert word in system
    assert "at most 200 words" in system and "plain text" in system.lower()
    assert "- 이전 요약" in user
    assert "user: 내 이름은 민수야" in user and "assistant: 반가워요, 민수 님!" in user
    assert "Japanese" in fold_request("", history, "ja", max_tokens=400)[0]["content"]
    assert "in English" in fold_request("", history, "xx", max_tokens=400)[0]["content"]
    assert "(none)" in fold_request("", history, "en", max_tokens=400)[1]["content"]


def test_apply_caps_the_summary_and_never_moves_coverage_back() -> None:
    session = conversation(2)
    apply(session, "\n".join(f"- 줄 {i}" for i in range(100)), 5.0, 40)
    assert len(session.summary) <= 40
    assert session.summary.endswith("- 줄 99")  # the newest lines are kept
    assert summary_upto(session) == 5.0
    apply(session, "- 다른 요약", 3.0, 40)
    assert session.meta[UPTO_KEY] == 5.0
    assert summary_upto(Session(key="k", meta={UPTO_KEY: "x"})) is None
    long_line = "가" * 2_000
    assert len(cap_tokens(long_line, 100)) < 200 and cap_tokens(long_line, 100).endswith("…")


# --- the background summary over HTTP -----------------------------------------------------------


async def test_threshold_triggers_one_background_summary_of_the_oldest_pairs(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore
) -> None:
    session = await saved(store, conversation(10))
    s = summarizer(store, glm)
    assert s.needs_summary(session)
    assert s.schedule(KEY, "ko")
    assert not s.schedule(KEY, "ko")  # at most one per session at a time
    await s.drain()

    assert len(fake.requests) == 1
    after = await store.load(KEY)
    assert after.history == session.history  # the history itself is never rewritten
    assert summary_upto(after) == session.history[11].ts  # 6 oldest exchanges covered
    assert uncovered(after) == session.history[12:]
    assert after.summary and not s.needs_summary(after)
    assert (s.stats.applied, s.stats.stale, s.stats.failed) == (1, 0, 0)
    # The exchanges folded are exactly the covered ones, none of the recent ones.
    sent = fake.last_request.messages[1]["content"]
    assert "민수" in sent and "호텔은 아직" in sent and "질문 6" not in sent


async def test_names_numbers_and_dates_survive_two_folds(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore
) -> None:
    await store.save(conversation(10))
    s = summarizer(store, glm)
    s.schedule(KEY, "ko")
    await s.drain()
    first = (await store.load(KEY)).summary
    for fact in ("민수", "010-1234-5678", "3월", "14일", "부산", "2025-03-14", "2시", "호텔"):
        assert fact in first

    # Six more exchanges: the second fold starts from the first summary and keeps its facts.
    session = await store.load(KEY)
    last = session.history[-1].ts
    for i in range(6):
        ts = last + 1 + i
        session.history += [Message("user", f"추가 질문 {i}", ts), Message("assistant", "네", ts)]
    await store.save(session)
    assert s.needs_summary(session)
    s.schedule(KEY, "ko")
    await s.drain()
    assert len(fake.requests) == 2
    sent = fake.last_request.messages[1]["content"]
    assert first in sent  # the old summary was sent to be folded into
    assert "질문 6" in sent and "추가 질문 1" in sent and "추가 질문 2" not in sent
    second = await store.load(KEY)
    assert summary_upto(second) == second.history[23].ts
    for fact in ("민수", "010-1234-5678", "2025-03-14"):
        assert fact in second.summary


async def test_the_request_uses_the_summary_model_unstreamed_without_thinking(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore
) -> None:
    await store.save(conversation(10))
    s = summarizer(store, glm, max_summary_tokens=300)
    s.schedule(KEY, "ko")
    await s.drain()
    request = fake.last_request
    assert is_summary_request(request)
    assert request.model == "glm-4.5-flash"
    assert request.stream is False and fake.streams_started == 0
    assert request.json["thinking"] == {"type": "disabled"}
    assert request.json["max_tokens"] == 300
    assert request.json["temperature"] <= 0.3
    assert "Korean" in request.messages[0]["content"]


async def test_an_overlong_summary_is_capped_in_tokens(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore
) -> None:
    await store.save(conversation(10))
    fake.enqueue(Reply("\n".join(f"- 사실 {i}: 민수는 {i}번째 이야기를 했다" for i in range(300))))
    s = summarizer(store, glm, max_summary_tokens=100)
    s.schedule(KEY, "ko")
    await s.drain()
    summary = (await store.load(KEY)).summary
    assert summary and len(summary) <= 400
    assert summary.endswith("299번째 이야기를 했다")  # the newest facts are kept
    assert cap_tokens(summary, 100) == summary


async def test_a_turn_saved_while_the_summary_runs_is_kept(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore
) -> None:
    session = await saved(store, conversation(10))
    fake.enqueue(slow(0.3))
    s = summarizer(store, glm)
    s.schedule(KEY, "ko")
    await fake.wait_for(lambda f: f.in_flight >= 1)

    # A turn of the user, as the manager runs it, while the model is writing the summary.
    async with store.lock(KEY):
        turn = await store.load(KEY)
        now = time.time()
        turn.history += [Message("user", "새 질문", now), Message("assistant", "새 답", now)]
        await store.save(turn)
    await s.drain()

    after = await store.load(KEY)
    assert after.history == session.history + turn.history[-2:]  # nothing lost
    assert summary_upto(after) == session.history[11].ts
    assert "민수" in after.summary
    assert [m.content for m in uncovered(after)][-2:] == ["새 질문", "새 답"]
    assert s.stats.applied == 1


async def test_the_summary_waits_for_a_turn_holding_the_lock_and_not_for_its_deadline(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore
) -> None:
    await store.save(conversation(10))
    s = summarizer(store, glm)
    loop = asyncio.get_running_loop()
    # Scheduled from inside a turn whose first-token deadline has long passed, under its lock.
    async with store.lock(KEY):
        with use_budget(TurnBudget(loop.time() - 100, 8.0)):
            started = loop.time()
            assert s.schedule(KEY, "ko")
            assert loop.time() - started < 0.05  # the user never waits for it
        await fake.wait_for_requests(1)
        await asyncio.sleep(0.1)
        assert s.running(KEY)  # answered, but waiting for the turn's lock
        turn = await store.load(KEY)
        turn.meta["turns"] = 11
        await store.save(turn)
    await s.drain()
    after = await store.load(KEY)
    assert s.stats.applied == 1 and after.summary and after.meta["turns"] == 11


async def test_two_concurrent_summaries_only_one_is_applied(
    fake: FakeGlm, glm: GuardedGlm, new_store: StoreFactory
) -> None:
    first_store, second_store = new_store(), new_store()
    await first_store.save(conversation(10))
    fake.enqueue(Reply("- 첫째 요약: 민수", first_delay=0.1), Reply("- 둘째 요약", first_delay=0.4))
    # Two summarizers (two bot processes) on one session.
    a = summarizer(first_store, glm)
    b = summarizer(second_store, glm)
    assert a.schedule(KEY, "ko")
    await fake.wait_for_requests(1)
    assert b.schedule(KEY, "ko")
    await asyncio.gather(a.drain(), b.drain())

    after = await first_store.load(KEY)
    assert len(fake.requests) == 2
    assert after.summary == "- 첫째 요약: 민수"
    assert (a.stats.applied, b.stats.applied, b.stats.stale) == (1, 0, 1)
    assert summary_upto(after) == after.history[11].ts


async def test_a_reset_while_the_summary_runs_drops_it(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore
) -> None:
    await store.save(conversation(10))
    fake.enqueue(slow(0.3))
    s = summarizer(store, glm)
    s.schedule(KEY, "ko")
    await fake.wait_for(lambda f: f.in_flight >= 1)
    async with store.lock(KEY):
        assert await store.delete(KEY)
    await s.drain()
    assert s.stats.stale == 1
    assert [k async for k in store.keys()] == []  # not brought back by the summary


async def test_a_failure_keeps_the_history_and_backs_off(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    before = await saved(store, conversation(10))
    clock = Clock()
    s = summarizer(store, glm, retry_base=30.0, clock=clock)
    fake.enqueue(Error(500, "500", "Internal error"))
    with caplog.at_level(logging.WARNING, logger="bot.context.summary"):
        assert s.schedule(KEY, "ko")
        await s.drain()
    assert "history kept" in caplog.text
    assert (await store.load(KEY)).to_json() == before.to_json()
    assert s.stats.failed == 1

    # No second call before the backoff has passed, however many turns arrive.
    assert not s.schedule(KEY, "ko")
    clock.now += 29.9
    assert not s.schedule(KEY, "ko")
    await s.drain()
    assert len(fake.requests) == 1

    # It doubles with every failure in a row...
    clock.now += 0.1
    fake.enqueue(Error(500, "500", "Internal error"))
    assert s.schedule(KEY, "ko")
    await s.drain()
    assert s.backing_off(KEY) == pytest.approx(60.0)
    assert (await store.load(KEY)).to_json() == before.to_json()

    # ...and a later success applies the summary and clears it.
    clock.now += 60.0
    assert s.schedule(KEY, "ko")
    await s.drain()
    assert len(fake.requests) == 3
    assert "민수" in (await store.load(KEY)).summary
    assert s.backing_off(KEY) == 0.0


async def test_backoff_is_capped_at_ten_minutes(store: SessionStore) -> None:
    await store.save(conversation(10))
    clock = Clock()

    async def failing(messages: list[dict[str, Any]], model: str, max_tokens: int) -> str:
        raise ConnectionError("down")

    s = Summarizer(store, failing, retry_base=30.0, clock=clock)
    waits = []
    for _ in range(8):
        assert s.schedule(KEY, "ko")
        await s.drain()
        waits.append(s.backing_off(KEY))
        clock.now += waits[-1]
    assert waits == [30.0, 60.0, 120.0, 240.0, 480.0, 600.0, 600.0, 600.0]


@pytest.mark.parametrize("where", ["summarizer", "client"])
async def test_a_slow_summary_times_out_keeps_the_history_and_backs_off(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore, where: str
) -> None:
    before = await saved(store, conversation(10))
    fake.enqueue(Stall("- 늦은 요약", seconds=5.0))
    if where == "summarizer":
        s = summarizer(store, glm, timeout=0.3)
    else:
        s = Summarizer(store, guarded_complete(glm, timeout=0.3), timeout=10.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert s.schedule(KEY, "ko")
    assert loop.time() - started < 0.05  # the user never waits for it
    await s.drain()
    assert loop.time() - started < 2.0
    await fake.wait_cancelled(1)
    assert (await store.load(KEY)).to_json() == before.to_json()
    assert s.stats.failed == 1 and s.backing_off(KEY) > 0
    assert not s.schedule(KEY, "ko")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("answer", [Reply("   "), Sensitive("- 민수")])
async def test_an_empty_or_blocked_summary_is_a_failure(
    fake: FakeGlm, glm: GuardedGlm, store: SessionStore, answer: Reply | Sensitive
) -> None:
    before = await saved(store, conversation(10))
    fake.enqueue(answer)
    s = summarizer(store, glm)
    s.schedule(KEY, "ko")
    await s.drain()
    assert s.stats.failed == 1
    assert (await store.load(KEY)).to_json() == before.to_json()


async def test_a_failing_store_never_raises_out_of_the_task(fake: FakeGlm, glm: GuardedGlm) -> None:
    class Broken(MemorySessionStore):
        async def load(self, key: SessionKey) -> Session:
            raise SessionStoreError("redis down")

    s = summarizer(Broken(), glm)
    assert s.schedule(KEY, "ko")
    await s.drain()  # nothing raised
    assert s.stats.failed == 1 and s.backing_off(KEY) > 0
    assert fake.requests == []


async def test_nothing_to_fold_makes_no_call(fake: FakeGlm, glm: GuardedGlm) -> None:
    store = MemorySessionStore()
    await store.save(conversation(3))
    s = summarizer(store, glm)
    s.schedule(KEY, "ko")
    await s.drain()
    assert fake.requests == [] and s.stats.applied == 0 and s.backing_off(KEY) == 0


# --- offline ----------------------------------------------------------------------------------


def test_the_offline_rule_is_deterministic_and_capped() -> None:
    history = exchanges(6, 1_700_000_000.0)
    first = offline_summary("", history, 2_000)
    assert first == offline_summary("", list(history), 2_000)
    assert first.splitlines() == [f"- {q}" for q, _ in FACTS]  # the user's messages, in order
    again = offline_summary(first, exchanges(8, 1_800_000_000.0)[12:], 2_000)
    assert again == first + "\n- 질문 6\n- 질문 7"
    capped = offline_summary(first, exchanges(8, 1_800_000_000.0)[12:], 60)
    assert len(capped) <= 60 and capped.endswith("- 질문 7")  # the oldest lines go first
    long = offline_summary("", [Message("user", "가 " * 500, 1.0)], 2_000)
    assert len(long) <= 130 and long.endswith("…")


async def test_the_offline_summarizer_runs_the_whole_path_without_the_model(
    store: SessionStore,
) -> None:
    session = await saved(store, conversation(10))
    s = Summarizer(store, never_called, offline=True)
    assert s.schedule(KEY, "ko")
    await s.drain()
    after = await store.load(KEY)
    assert after.summary == offline_summary("", session.history[:12], s.max_summary_chars)
    assert summary_upto(after) == session.history[11].ts
    assert "- 전화번호는 010-1234-5678 이야" in after.summary
    assert s.stats.applied == 1


async def test_drain_waits_and_cancel_stops(fake: FakeGlm, glm: GuardedGlm) -> None:
    store = MemorySessionStore()
    await store.save(conversation(10))
    fake.enqueue(Stall("- 요약", seconds=5.0))
    s = summarizer(store, glm, timeout=10.0)
    s.schedule(KEY, "ko")
    await fake.wait_for(lambda f: f.in_flight >= 1)
    await asyncio.wait_for(s.cancel(), 1.0)
    assert not s.running(KEY) and (await store.load(KEY)).summary == ""
