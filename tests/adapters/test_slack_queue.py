"""Slack's work queue: a global cap on running answers, per-session order and bound, no task per
waiting event; and the channel's "slow down" notice (no network: the queue is driven directly)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import logging
import warnings
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.slack import SlackChannel
from adapters.slack_convert import BotIdentity
from adapters.work_queue import Admission, SessionWorkQueue
from bot.i18n import t
from bot.observability import NO_METRICS
from bot.reply import ReplyStream
from bot.settings import Settings
from bot.turn import SessionScope, Turn
from tests.bot.helpers import RecordingReply
from tests.fakes.slack import SIGNING_SECRET, TOKEN

ME = BotIdentity(user_id="UBOT", bot_id="BBOT", team_id="T1")


class Work:
    """Coroutines that wait until released, recording the order they start and end in."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.done: list[Any] = []
        self.gates: dict[Any, asyncio.Event] = {}

    def __call__(self, n: Any) -> Coroutine[Any, Any, None]:
        gate = self.gates.setdefault(n, asyncio.Event())

        async def run() -> None:
            self.started.append(n)
            await gate.wait()
            self.done.append(n)

        return run()

    def release(self, *ns: Any) -> None:
        for n in ns:
            self.gates.setdefault(n, asyncio.Event()).set()

    def release_all(self) -> None:
        for gate in self.gates.values():
            gate.set()


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(predicate: Any, within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - a test polling plain state
            await asyncio.sleep(0.001)


# ---- the channel's spawn -------------------------------------------------------------------


class BlockingManager:
    """Stands for the ConversationManager: each turn waits until the test releases it."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(scope=SessionScope.USER, dedupe_ttl_seconds=60)
        self.commands = SimpleNamespace(admin_checks={})
        self.gate = asyncio.Event()
        self.turns: list[str] = []

    async def handle(self, turn: Turn, reply: ReplyStream, *, deduplicated: bool = False) -> None:
        self.turns.append(turn.text)
        await self.gate.wait()
        await reply.finish("answer to " + turn.text)


def channel(**queue: int) -> tuple[SlackChannel, BlockingManager, list[tuple[Turn, Any]]]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token=TOKEN,
        slack_signing_secret=SIGNING_SECRET,
    )
    manager = BlockingManager()
    app = SimpleNamespace(
        settings=settings, manager=manager, store=None, journal=None, metrics=NO_METRICS
    )
    work = SessionWorkQueue(**queue) if queue else None
    ch = SlackChannel(app, work=work)  # type: ignore[arg-type]
    ch.me = ME
    ch.threads.me = ME
    streams: list[tuple[Turn, Any]] = []

    def stream_for(turn: Turn) -> RecordingReply:
        reply = RecordingReply()
        streams.append((turn, reply))
        return reply

    ch.stream_for = stream_for  # type: ignore[assignment,method-assign]
    return ch, manager, streams


async def test_running_answers_are_capped_and_waiting_ones_have_no_task() -> None:
    ch, _, _ = channel()  # the defaults
    cap = ch.work.max_running
    work = Work()
    before = len(asyncio.all_tasks())
    for n in range(cap + 100):
        ch._spawn(("session", n), work(n))
    await settle()
    assert len(work.started) == cap
    assert len(asyncio.all_tasks()) - before <= cap
    work.release_all()
    await until(lambda: len(work.done) == cap + 100)
    await ch.work.join()
    assert ch.work.running == 0 and ch.work.waiting == 0


def dm(n: int, text: str, user: str = "U1") -> dict[str, Any]:
    return {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": f"Ev{user}{n}",
        "event": {
            "type": "message",
            "channel": f"D{user}",
            "channel_type": "im",
            "user": user,
            "text": text,
            "ts": f"1700000000.{n:06d}",
        },
    }


def thread_reply(n: int, text: str, thread: str = "1699999999.000001") -> dict[str, Any]:
    envelope = dm(n, text)
    envelope["event"].update(channel="C1", channel_type="channel", thread_ts=thread)
    return envelope


@pytest.mark.parametrize(("text", "lang"), [("안녕하세요", "ko"), ("hello there", "en")])
async def test_a_flood_from_one_user_gets_one_notice_and_the_rest_is_answered(
    text: str, lang: str
) -> None:
    ch, manager, streams = channel(max_running=4, max_waiting=3)
    for n in range(1, 31):
        await ch.on_event(dm(n, f"{text} {n}"))
    await settle()
    assert manager.turns == [f"{text} 1"]  # one at a time per session
    notices = [(turn, r) for turn, r in streams if r.events]
    assert len(notices) == 1
    assert notices[0][1].events == [("finish", t("queue_full", lang))]
    assert notices[0][0].text == f"{text} 5"  # the first one refused

    # Someone else is not held up by the flood.
    await ch.on_event(dm(1, "other user", user="U2"))
    await settle()
    assert "other user" in manager.turns

    manager.gate.set()
    await ch.work.join()
    assert [x for x in manager.turns if x != "other user"] == [f"{text} {n}" for n in range(1, 5)]
    # Every refused message was covered by the notice, every admitted one was answered.
    answered = [r for _, r in streams if r.events and r.events[0][1].startswith("answer to")]
    assert len(answered) == 5

    # The queue drained: the burst is over, the next overflow is told again.
    manager.gate.clear()
    for n in range(40, 46):
        await ch.on_event(dm(n, f"{text} {n}"))
    await settle()
    notices = [r for _, r in streams if r.events and r.events[0][1] == t("queue_full", lang)]
    assert len(notices) == 2
    manager.gate.set()
    await ch.work.join()


async def test_refused_thread_reply_in_a_thread_without_the_bot_gets_no_notice() -> None:
    ch, manager, streams = channel(max_running=4, max_waiting=1)
    gate = asyncio.Event()
    lookups = 0

    async def not_ours(team: str, channel: str, thread_ts: str) -> bool:
        nonlocal lookups
        lookups += 1
        if lookups == 1:
            await gate.wait()  # the first reply's look-up is slow, so the others pile up
        return False

    ch.threads.takes_part = not_ours  # type: ignore[method-assign]
    await ch.on_event(thread_reply(1, "chatting among ourselves"))
    await settle()  # its answer is looking the thread up
    for n in range(2, 6):
        await ch.on_event(thread_reply(n, "chatting among ourselves"))
    await settle()
    gate.set()
    await ch.work.join()
    assert manager.turns == []
    assert all(not r.events for _, r in streams)
    assert lookups >= 3  # the refused one asked too, and stayed quiet


async def test_slash_commands_are_not_refused_by_the_bound() -> None:
    ch, _, _ = channel(max_running=2, max_waiting=1)
    work = Work()
    for n in range(5):
        assert ch._spawn(("command", "C1", "U1"), work(n)) is Admission.QUEUED
    work.release_all()
    await ch.work.join()
    assert work.done == [0, 1, 2, 3, 4]


# ---- the queue itself ------------------------------------------------------------------------


async def test_work_of_one_session_runs_in_order_one_at_a_time() -> None:
    queue = SessionWorkQueue(max_running=10, max_waiting=10)
    work = Work()
    for n in range(5):
        queue.submit("a", work(("a", n)))
    queue.submit("b", work(("b", 0)))
    await settle()
    assert work.started == [("a", 0), ("b", 0)]
    for n in range(5):
        work.release(("a", n))
    await until(lambda: len(work.done) == 5)
    assert work.done == [("a", n) for n in range(5)]
    work.release(("b", 0))
    await queue.join()


async def test_waiting_sessions_take_turns_for_free_slots() -> None:
    queue = SessionWorkQueue(max_running=1, max_waiting=10)
    work = Work()
    for n in range(3):
        queue.submit("flood", work(("flood", n)))
    queue.submit("other", work(("other", 0)))
    await settle()
    work.release(("flood", 0))
    await until(lambda: len(work.started) == 2)
    # The other session was waiting for a slot: it goes before the flood's second message.
    assert work.started[1] == ("other", 0)
    work.release_all()
    await queue.join()


async def test_bound_and_one_notice_per_burst() -> None:
    queue = SessionWorkQueue(max_running=10, max_waiting=2)
    work = Work()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = []
        for n in range(6):
            coro = work(n)
            result = queue.submit("a", coro)
            if result is not Admission.QUEUED:
                coro.close()
            results.append(result)
        gc.collect()
    assert results == [Admission.QUEUED] * 3 + [Admission.REFUSED_NOTIFY] + [Admission.REFUSED] * 2
    assert queue.waiting == 2 and queue.running == 1
    # Unbounded submissions (slash commands) are always queued.
    assert queue.submit("a", work(9), bounded=False) is Admission.QUEUED
    work.release_all()
    await queue.join()
    # The backlog is gone: the burst is over, and the session takes work again.
    assert queue.submit("a", work(10)) is Admission.QUEUED
    work.release(10)
    await queue.join()


async def test_submit_and_wait_waits_for_the_work_and_its_cancellation_withdraws_it() -> None:
    # Telegram's update processor waits on its updates' work this way.
    queue = SessionWorkQueue(max_running=1, max_waiting=5)
    work = Work()
    loop = asyncio.get_running_loop()
    first = loop.create_task(queue.submit_and_wait("a", work(0)))
    dropped_work = work(1)
    dropped = loop.create_task(queue.submit_and_wait("b", dropped_work))  # waits for a slot
    later = loop.create_task(queue.submit_and_wait("a", work(2)))
    await settle()
    dropped.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert inspect.getcoroutinestate(dropped_work) == inspect.CORO_CLOSED  # never run
    assert queue.waiting == 1 and not first.done()
    work.release(0)
    assert await first is Admission.QUEUED
    await settle()
    assert work.started == [0, 2]
    later.cancel()  # while it runs: the work is cut, and waited for
    with pytest.raises(asyncio.CancelledError):
        await later
    assert queue.running == 0 and work.done == [0]
    await queue.join()


async def test_work_runs_in_its_submitters_context_whoever_frees_the_slot() -> None:
    queue = SessionWorkQueue(max_running=1)
    who: contextvars.ContextVar[str] = contextvars.ContextVar("who")
    gate = asyncio.Event()
    seen: list[str] = []

    async def answer() -> None:
        seen.append(who.get())
        await gate.wait()

    def submit_as(name: str) -> None:
        who.set(name)
        queue.submit(name, answer())

    contextvars.copy_context().run(submit_as, "a")
    contextvars.copy_context().run(submit_as, "b")  # started when a's work ends
    gate.set()
    await queue.join()
    assert seen == ["a", "b"]


async def test_failing_work_is_logged_and_the_session_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = SessionWorkQueue(max_running=2, max_waiting=5)
    work = Work()

    async def boom() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        queue.submit("a", boom())
        queue.submit("a", work(1))
        work.release(1)
        await queue.join()
    assert work.done == [1]
    assert "boom" in caplog.text


async def test_shutdown_cancels_running_and_closes_waiting_work() -> None:
    queue = SessionWorkQueue(max_running=1, max_waiting=5)
    work = Work()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in range(4):
            queue.submit(n % 2, work(n))
        await settle()
        await queue.shutdown(grace=0.05)
        gc.collect()
    assert work.started == [0]
    assert queue.running == 0 and queue.waiting == 0
    # Nothing more is taken after shutdown.
    coro = work(99)
    assert queue.submit("late", coro) is Admission.REFUSED
    coro.close()


async def test_shutdown_lets_work_finish_within_the_grace() -> None:
    queue = SessionWorkQueue(max_running=1, max_waiting=5)
    work = Work()
    for n in range(3):
        queue.submit("a", work(n))
    work.release_all()
    await queue.shutdown(grace=2.0)
    assert work.done == [0, 1, 2]
