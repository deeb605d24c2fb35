"""The turn journal on a real Redis and a real 3-master Cluster: record once, done, takeover of
a dead process's turns, order across processes, and the in-memory variant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from bench.common import free_port
from bot.journal import (
    GROUP,
    JournalEntry,
    JournalUnavailable,
    RedisTurnJournal,
    TurnJournal,
    note_answered,
)
from bot.sessions.base import Session
from bot.sessions.memory import MemorySessionStore
from bot.sessions.redis import RedisSessionStore
from bot.turn import SessionKey

SESSION = str(SessionKey("telegram", "", "111", "", "111"))
OTHER = str(SessionKey("telegram", "", "222", "", "222"))


@pytest.fixture(params=["redis", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisSessionStore]:
    if request.param == "redis":
        redis_store = RedisSessionStore.from_url(
            request.getfixturevalue("redis_url"), ttl_seconds=86_400
        )
    else:
        redis_store = RedisSessionStore.from_url(
            request.getfixturevalue("redis_cluster_url"), cluster=True, ttl_seconds=86_400
        )
    await redis_store.ping()
    yield redis_store
    await redis_store.close()


class Resumed:
    """A channel's side: what the journal handed back, and how."""

    def __init__(self) -> None:
        self.later: list[JournalEntry] = []
        self.now: list[JournalEntry] = []

    def resume_later(self, entry: JournalEntry) -> None:
        self.later.append(entry)

    async def resume_now(self, entry: JournalEntry) -> None:
        self.now.append(entry)


def journal(store: RedisSessionStore, name: str, **options: Any) -> RedisTurnJournal:
    return RedisTurnJournal(store, consumer=name, **options)


async def pending(store: RedisSessionStore, entry: JournalEntry) -> list[str]:
    rows = await store.client.xpending_range(entry.stream, GROUP, "-", "+", 100)
    return [str(r["message_id"]) for r in rows]


async def test_a_delivery_is_recorded_once_and_done_removes_it(store: RedisSessionStore) -> None:
    j = journal(store, "a")
    entry = await j.record("telegram", "telegram::1001", SESSION, {"update_id": 1001})
    assert entry is not None and entry.id
    assert await j.record("telegram", "telegram::1001", SESSION, {"update_id": 1001}) is None
    assert await pending(store, entry) == [entry.id]  # pending under our name from the start
    await j.done(entry)
    assert await pending(store, entry) == []
    assert await store.client.xlen(entry.stream) == 0  # the stream keeps only open turns


async def test_a_dead_consumers_turns_are_taken_over_with_their_payload(
    store: RedisSessionStore,
) -> None:
    dead = journal(store, "dead", takeover_seconds=0.3)
    await dead._beat()
    entry = await dead.record("telegram", "telegram::7", SESSION, {"update_id": 7, "k": "값"})
    assert entry is not None
    live = journal(store, "live")
    resumed = Resumed()
    live.register("telegram", resumed)
    assert await live.sweep() == []  # its heartbeat is fresh: still alive
    await asyncio.sleep(1.1)  # the heartbeat expired, and the entry is past the claim idle time
    (taken,) = await live.sweep()
    assert taken.id == entry.id and taken.recovered
    assert taken.payload == {"update_id": 7, "k": "값"}
    assert taken.session == SESSION and taken.delivery == "telegram::7"
    assert resumed.later == [taken]
    assert await live.sweep() == []  # claimed once
    rows = await store.client.xpending_range(entry.stream, GROUP, "-", "+", 10)
    assert [r["consumer"] for r in rows] == ["live"]


async def test_a_turn_answered_before_its_process_died_is_not_answered_again(
    store: RedisSessionStore,
) -> None:
    j = journal(store, "a")
    entry = await j.record("telegram", "telegram::9", SESSION, {"update_id": 9})
    assert entry is not None
    session = Session(key=SESSION)
    note_answered(session.meta, "telegram::9")
    await store.save(session)
    runs: list[str] = []

    async def run() -> None:
        runs.append("ran")

    await j.process(replace(entry, recovered=True), run)
    assert runs == []
    assert await pending(store, entry) == []  # and it is done


async def test_a_cancelled_turn_stays_for_the_next_process(store: RedisSessionStore) -> None:
    j = journal(store, "a")
    entry = await j.record("telegram", "telegram::10", SESSION, {"update_id": 10})
    assert entry is not None

    async def run() -> None:
        await asyncio.sleep(10)

    task = asyncio.create_task(j.process(entry, run))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pending(store, entry) == [entry.id]


async def test_a_later_turn_waits_for_an_earlier_one_of_its_session(
    store: RedisSessionStore,
) -> None:
    dead = journal(store, "dead", takeover_seconds=60)
    await dead._beat()
    first = await dead.record("telegram", "telegram::20", SESSION, {"n": 1})
    unrelated = await dead.record("telegram", "telegram::21", OTHER, {"n": 2})
    assert first is not None and unrelated is not None
    live = journal(store, "live", order_wait_seconds=0.4)
    resumed = Resumed()
    live.register("telegram", resumed)
    second = await live.record("telegram", "telegram::22", SESSION, {"n": 3})
    assert second is not None

    # The earlier turn's process is alive: wait (bounded), then go on.
    started = asyncio.get_running_loop().time()
    assert await live.earlier(second) == []
    assert asyncio.get_running_loop().time() - started >= 0.4

    await store.client.delete(dead.alive_key("dead"))  # it died
    await asyncio.sleep(1.0)  # past the claim idle time
    ran: list[str] = []

    async def run() -> None:
        ran.append("second")

    await live.process(second, run)
    assert [e.id for e in resumed.now] == [first.id]  # the earlier one first, and only it
    assert ran == ["second"]


async def test_recording_without_redis_raises_so_the_platform_is_not_told(
    store: RedisSessionStore,
) -> None:
    down = RedisSessionStore.from_url(f"redis://127.0.0.1:{free_port()}/0", ttl_seconds=60)
    j = journal(down, "a")
    with pytest.raises(JournalUnavailable):
        await j.record("telegram", "telegram::30", SESSION, {})
    await down.close()


async def test_in_memory_the_journal_only_deduplicates() -> None:
    j = TurnJournal(MemorySessionStore())
    entry = await j.record("slack", "slack:T1:Ev1", SESSION, {"event_id": "Ev1"})
    assert entry is not None and not entry.id
    assert await j.record("slack", "slack:T1:Ev1", SESSION, {"event_id": "Ev1"}) is None
    runs: list[int] = []

    async def run() -> None:
        runs.append(1)

    await j.process(entry, run)
    assert runs == [1]
    assert not j.durable


async def test_a_lease_has_one_holder_until_it_closes(store: RedisSessionStore) -> None:
    a, b = journal(store, "a"), journal(store, "b")
    assert await a.lease("telegram-poller:1") is None
    assert await a.lease("telegram-poller:1") is None  # held already: still ours
    assert await b.lease("telegram-poller:1") == "a"
    assert await b.lease("telegram-poller:2") is None  # another bot: another lease
    await a.close()
    assert await b.lease("telegram-poller:1") is None
    await b.close()


async def test_entries_of_two_streams_with_the_same_id_are_both_answered(
    store: RedisSessionStore,
) -> None:
    # Stream ids are unique within a stream only: two Cluster masters give out the same id
    # in the same millisecond. Both turns must run (one was silently skipped before).
    j = journal(store, "a")
    ran: list[str] = []
    for platform, session in (("telegram", SESSION), ("telegram", OTHER)):
        stream = j.stream_key(platform, session) + ":same-id-test"
        entry = JournalEntry(platform, session, f"d-{session}", {}, stream, "1700000000000-0")

        async def run(session: str = session) -> None:
            ran.append(session)

        await j.process(entry, run)
    assert ran == [SESSION, OTHER]


async def test_a_stopping_process_takes_no_more_turns_but_keeps_its_heartbeat(
    store: RedisSessionStore,
) -> None:
    dead = journal(store, "dead", takeover_seconds=0.3)
    await dead._beat()
    assert await dead.record("telegram", "telegram::40", SESSION, {}) is not None
    stopping = journal(store, "stopping", takeover_seconds=0.6, sweep_seconds=0.1)
    resumed = Resumed()
    stopping.register("telegram", resumed)
    await stopping.start()
    stopping.stop_taking_over()  # SIGTERM arrived
    await asyncio.sleep(1.5)  # the dead one's turn is claimable, and two heartbeats passed
    assert resumed.later == []
    assert await store.client.exists(stopping.alive_key("stopping"))
    await stopping.close()
