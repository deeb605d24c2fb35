"""SessionOrderedProcessor: per-session order, a bounded queue per session, and global slots
that only running updates hold (no PTB network: the processor is driven directly)."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Hashable
from types import SimpleNamespace
from typing import Any

import pytest
from telegram import Update

from adapters.telegram import SessionOrderedProcessor, TelegramChannel
from adapters.telegram_convert import BotIdentity
from adapters.work_queue import SessionWorkQueue
from bot.i18n import t
from bot.journal import TurnJournal
from bot.observability import NO_METRICS
from bot.sessions.memory import MemorySessionStore
from bot.settings import Settings
from bot.turn import SessionScope, Turn
from tests.bot.helpers import RecordingReply
from tests.fakes.telegram import TOKEN

GROUP = -100


def update(update_id: int, user: int, text: str = "hi", *, chat: int | None = None) -> Update:
    chat_id = user if chat is None else chat
    data = {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": chat_id, "type": "private" if chat is None else "supergroup"},
            "from": {"id": user, "is_bot": False, "first_name": f"u{user}"},
            "text": text,
        },
    }
    if text.startswith("@"):
        mention = text.split()[0]
        data["message"]["entities"] = [{"type": "mention", "offset": 0, "length": len(mention)}]  # type: ignore[index]
    result = Update.de_json(data, None)
    assert result is not None
    return result


class Work:
    """Coroutines standing for PTB's handling of updates; each waits until released."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.done: list[int] = []
        self.gates: dict[int, asyncio.Event] = {}

    def __call__(self, n: int) -> Any:
        gate = self.gates.setdefault(n, asyncio.Event())

        async def handle() -> None:
            self.started.append(n)
            await gate.wait()
            self.done.append(n)

        return handle()

    def release(self, *ns: int) -> None:
        for n in ns:
            self.gates.setdefault(n, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def submit(
    processor: SessionOrderedProcessor, upd: Update, work: Work, n: int
) -> asyncio.Task[None]:
    # What PTB's Application does per update: a task calling process_update.
    return asyncio.get_running_loop().create_task(processor.process_update(upd, work(n)))


async def test_updates_waiting_for_their_session_hold_no_slot() -> None:
    processor = SessionOrderedProcessor(max_concurrent_updates=2)
    work = Work()
    tasks = [submit(processor, update(n, user=1), work, n) for n in range(1, 6)]
    await settle()
    assert work.started == [1]  # one at a time within the session
    other = submit(processor, update(10, user=2), work, 10)
    await settle()
    # The other user's update runs at once: user 1's four waiting updates hold no slot.
    assert work.started == [1, 10]
    assert processor.current_concurrent_updates == 2
    work.release(*range(1, 6), 10)
    await asyncio.gather(*tasks, other)
    assert [n for n in work.done if n != 10] == [1, 2, 3, 4, 5]


async def test_global_slots_still_bound_running_updates() -> None:
    processor = SessionOrderedProcessor(max_concurrent_updates=3)
    work = Work()
    tasks = [submit(processor, update(n, user=n), work, n) for n in range(1, 7)]
    await settle()
    assert work.started == [1, 2, 3]
    work.release(1)
    await settle()
    assert work.started == [1, 2, 3, 4]
    work.release(*range(1, 7))
    await asyncio.gather(*tasks)
    assert sorted(work.done) == [1, 2, 3, 4, 5, 6]


async def test_a_burst_of_sessions_all_start_while_earlier_answers_wait_for_their_finals() -> None:
    # 1,000 chats within a second: a turn keeps its slot until its final message is out, and
    # finals go out at 30 a second; the 1,000th chat must not wait for 900 of those to start.
    processor = SessionOrderedProcessor()
    assert processor.max_concurrent_updates >= 1000
    work = Work()
    tasks = [submit(processor, update(n, user=n), work, n) for n in range(1, 1001)]
    await settle()
    assert len(work.started) == 1000 and not work.done
    work.release(*range(1, 1001))
    await asyncio.gather(*tasks)


class Refusals:
    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    async def __call__(self, upd: object, notify: bool) -> None:
        assert isinstance(upd, Update)
        self.calls.append((upd.update_id, notify))


async def test_queue_per_session_is_bounded_and_a_burst_is_told_once() -> None:
    refusals = Refusals()
    processor = SessionOrderedProcessor(max_waiting=3, on_refused=refusals)
    work = Work()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a refused coroutine must be closed, not left unawaited
        tasks = [submit(processor, update(n, user=1), work, n) for n in range(1, 11)]
        await settle()
        assert work.started == [1]
        # One answering and three waiting; the other six are refused, the first with the notice.
        assert refusals.calls == [(5, True)] + [(n, False) for n in range(6, 11)]
        # Others are not affected.
        other = submit(processor, update(20, user=2), work, 20)
        await settle()
        assert 20 in work.started
        work.release(*range(1, 11), 20)
        await asyncio.gather(*tasks, other)
        gc.collect()
    assert [n for n in work.done if n != 20] == [1, 2, 3, 4]

    # The queue emptied, so the burst is over: the next overflow is told again.
    tasks = [submit(processor, update(n, user=1), work, n) for n in range(30, 36)]
    await settle()
    assert refusals.calls[-2:] == [(34, True), (35, False)]
    work.release(*range(30, 36))
    await asyncio.gather(*tasks)


async def test_cancelled_waiting_update_keeps_the_order_of_the_rest() -> None:
    processor = SessionOrderedProcessor()
    work = Work()
    first = submit(processor, update(1, user=1), work, 1)
    second = submit(processor, update(2, user=1), work, 2)
    third = submit(processor, update(3, user=1), work, 3)
    await settle()
    second.cancel()
    await settle()
    assert work.started == [1]  # the third still waits for the first
    work.release(1, 3)
    await asyncio.gather(first, third)
    with pytest.raises(asyncio.CancelledError):
        await second
    assert work.done == [1, 3]


async def test_a_flooding_session_takes_turns_with_others_for_free_slots() -> None:
    # The order, the bound and the cap are the Slack channel's queue's, fair turns included.
    processor = SessionOrderedProcessor(max_concurrent_updates=1)
    assert isinstance(processor.queue, SessionWorkQueue)
    work = Work()
    flood = [submit(processor, update(n, user=1), work, n) for n in range(1, 4)]
    await settle()
    other = submit(processor, update(10, user=2), work, 10)
    await settle()
    assert work.started == [1]
    work.release(1)
    await settle()
    # The other session waited for the slot: it goes before the flood's second update.
    assert work.started == [1, 10]
    work.release(2, 3, 10)
    await asyncio.gather(*flood, other)
    assert work.done == [1, 10, 2, 3]


async def test_process_update_returns_when_the_update_was_handled() -> None:
    # PTB counts an update handled when process_update returns.
    processor = SessionOrderedProcessor()
    work = Work()
    first = submit(processor, update(1, user=1), work, 1)
    second = submit(processor, update(2, user=1), work, 2)
    await settle()
    assert not first.done() and not second.done()
    work.release(2)
    await settle()
    assert not second.done()  # handled only after the first
    work.release(1)
    await asyncio.gather(first, second)
    assert work.done == [1, 2]


async def test_cancelled_update_being_handled_is_cut_and_the_session_goes_on() -> None:
    processor = SessionOrderedProcessor()
    work = Work()
    cut: list[int] = []

    async def handled_until_cut() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # closing what the user sees
            cut.append(1)
            raise

    first = asyncio.get_running_loop().create_task(
        processor.process_update(update(1, user=1), handled_until_cut())
    )
    second = submit(processor, update(2, user=1), work, 2)
    await settle()
    assert processor.running == 1
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert cut == [1]  # the cancelled update's handling ended before process_update did
    work.release(2)
    await second
    assert work.done == [2]
    assert processor.running == 0


async def test_cancel_running_cuts_the_updates_being_handled() -> None:
    processor = SessionOrderedProcessor(max_concurrent_updates=2)
    work = Work()
    tasks = [submit(processor, update(n, user=n), work, n) for n in range(1, 4)]
    await settle()
    assert processor.running == 2 and work.started == [1, 2]
    assert await processor.cancel_running() == 2
    await asyncio.gather(*tasks[:2])  # PTB's tasks end with the cut handling
    assert 1 not in work.done and 2 not in work.done
    work.release(3)  # a waiting update is left alone: it takes a freed slot
    await tasks[2]
    assert work.done == [3]


async def test_a_refusal_holds_no_slot() -> None:
    refusals = Refusals()
    processor = SessionOrderedProcessor(
        max_concurrent_updates=1, max_waiting=0, on_refused=refusals
    )
    work = Work()
    first = submit(processor, update(1, user=1), work, 1)
    await settle()
    # The only slot is taken, yet the refusal is told at once and PTB's task for it ends.
    await submit(processor, update(2, user=1), work, 2)
    assert refusals.calls == [(2, True)]
    assert not first.done()
    work.release(1)
    await first
    assert work.started == [1]


async def test_updates_without_a_session_are_not_queued() -> None:
    processor = SessionOrderedProcessor(max_waiting=1)
    work = Work()
    tasks = [
        asyncio.get_running_loop().create_task(processor.process_update(object(), work(n)))
        for n in range(1, 5)
    ]
    await settle()
    assert work.started == [1, 2, 3, 4]
    work.release(1, 2, 3, 4)
    await asyncio.gather(*tasks)


# ---- the channel's part: what queues, and the notice -----------------------------------------


class FakeManager:
    def __init__(self) -> None:
        self.config = SimpleNamespace(scope=SessionScope.USER, dedupe_ttl_seconds=60)
        self.commands = SimpleNamespace(admin_checks={})


def channel() -> tuple[TelegramChannel, list[tuple[Turn, RecordingReply]]]:
    settings = Settings(_env_file=None, telegram_bot_token=TOKEN)  # type: ignore[call-arg]
    manager = FakeManager()
    app = SimpleNamespace(
        settings=settings, manager=manager, store=None, journal=None, metrics=NO_METRICS
    )
    ch = TelegramChannel(app)  # type: ignore[arg-type]
    ch.me = BotIdentity(999, "glm_test_bot")
    sent: list[tuple[Turn, RecordingReply]] = []

    def stream_for(turn: Turn) -> RecordingReply:
        reply = RecordingReply()
        sent.append((turn, reply))
        return reply

    ch.stream_for = stream_for  # type: ignore[assignment,method-assign]
    return ch, sent


def test_channel_installs_its_queue_hooks() -> None:
    ch, _ = channel()
    processor = ch.application.update_processor
    assert isinstance(processor, SessionOrderedProcessor)
    assert processor.on_refused == ch.refused
    assert processor.key_of == ch.queue_key


def test_group_chatter_not_for_the_bot_is_not_queued() -> None:
    ch, _ = channel()
    chatter = update(1, user=5, text="just chatting", chat=GROUP)
    asked = update(2, user=5, text="@glm_test_bot 안녕", chat=GROUP)
    private = update(3, user=5, text="안녕")
    assert ch.queue_key(chatter) is None
    key: Hashable | None = ch.queue_key(asked)
    assert key == (GROUP, 5)
    assert ch.queue_key(private) == (5, 5)


@pytest.mark.parametrize(("text", "lang"), [("안녕하세요", "ko"), ("hello there", "en")])
async def test_refused_burst_gets_one_notice_in_the_users_language(text: str, lang: str) -> None:
    ch, sent = channel()
    await ch.refused(update(7, user=5, text=text), True)
    await ch.refused(update(8, user=5, text=text), False)
    assert len(sent) == 1
    turn, reply = sent[0]
    assert turn.chat_id == "5"
    assert reply.events == [("finish", t("queue_full", lang))]


# ---- each update is converted to Bot API JSON once --------------------------------------------


def counting_to_dict(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    to_dict = Update.to_dict

    def counted(self: Update, recursive: bool = True) -> dict[str, Any]:
        calls.append(self.update_id)
        return to_dict(self, recursive)

    monkeypatch.setattr(Update, "to_dict", counted)
    return calls


def journaled_channel() -> TelegramChannel:
    ch, _ = channel()
    ch.app.store = MemorySessionStore()  # type: ignore[misc]
    ch.journal = TurnJournal(ch.app.store)
    return ch


async def test_an_update_is_converted_once_from_record_to_handling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = counting_to_dict(monkeypatch)
    ch = journaled_channel()
    chatter = update(1, user=5, text="just chatting", chat=GROUP)
    assert await ch.record(chatter)
    assert ch.queue_key(chatter) is None
    await ch.on_update(chatter, None)  # type: ignore[arg-type]
    asked = update(2, user=5, text="안녕")
    assert await ch.record(asked)
    assert ch.queue_key(asked) == (5, 5)
    await ch.refused(asked, False)
    assert calls == [1, 2]
    # Handled or refused: nothing is kept.
    assert await ch.record(update(1, user=5, text="just chatting", chat=GROUP))
    assert calls == [1, 2, 1]


async def test_a_redelivered_update_does_not_disturb_the_queued_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = counting_to_dict(monkeypatch)
    ch = journaled_channel()
    first = update(3, user=5, text="안녕")
    assert await ch.record(first)
    again = update(3, user=5, text="안녕")  # the same delivery, fetched again
    assert not await ch.record(again)  # not queued
    assert ch.queue_key(first) == (5, 5)
    await ch.refused(first, False)
    assert calls == [3, 3]  # once each: the queued update kept its conversion to the end
