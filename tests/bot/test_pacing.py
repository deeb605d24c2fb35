"""Pacing ledgers: in memory, and shared by replicas on a real redis-server and Redis Cluster.

Two ``RedisLedger`` objects on their own connections stand for two replicas of the bot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis

from bot.pacing import (
    Call,
    MemoryLedger,
    PaceLedger,
    RedisLedger,
    Rule,
    Stamp,
    WaitingLine,
    Window,
    build_ledger,
    rule_wait,
)
from bot.sessions.memory import MemorySessionStore
from bot.sessions.redis import RedisSessionStore, make_client
from tests.redis_servers import RedisServer, free_port

SCOPE = "telegram:0123456789abcdef"


ONE_IN_0_4_S = Window(0.4, 1)


def message(chat: int, *, interim: bool = False, per_chat: Window = ONE_IN_0_4_S) -> Call:
    """Like a Telegram group message: its chat, its group minute and the whole bot."""
    room = 3 if interim else 0
    return Call(
        SCOPE,
        (
            Rule(f"chat:{chat}", per_chat, steady=interim),
            Rule("bot", Window(2.0, 6)),
            Rule(f"group:{chat}", Window(2.0, 5), room=room, steady=interim),
        ),
        (f"chat:{chat}",),
    )


async def takes(ledger: PaceLedger, call: Call, count: int) -> list[Stamp]:
    got = [await ledger.take(call) for _ in range(count)]
    stamps = [g for g in got if isinstance(g, Stamp)]
    for stamp in stamps:
        await ledger.sent(stamp)
    return stamps


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- the rule itself -----------------------------------------------------------------------------


def test_rule_wait_counts_reservations_and_keeps_interims_steady() -> None:
    window = Window(60.0, 10)
    final, interim = Rule("m", window), Rule("m", window, room=7, steady=True)
    span = window.counted
    assert rule_wait(final, [], 0, 0.0) == 0
    assert rule_wait(final, [1.0] * 9, 0, 2.0) == 0
    assert rule_wait(final, [1.0] * 10, 0, 2.0) == pytest.approx(1.0 + span - 2.0)
    # A reservation takes a place: nine calls and one held fill the window for anyone else.
    assert rule_wait(final, [1.0] * 9, 1, 2.0) == pytest.approx(1.0 + span - 2.0)
    # Reservations alone filling the window: look again after a quarter of it.
    assert rule_wait(final, [], 10, 2.0) == pytest.approx(span / 4)
    # Interim: from half the window on, one call per span / limit after the last.
    assert rule_wait(interim, [1.0] * 4, 0, 1.5) == 0
    assert rule_wait(interim, [1.0] * 5, 0, 1.5) == pytest.approx(1.0 + span / 10 - 1.5)
    assert rule_wait(interim, [float(i) for i in range(7)], 0, 20.0) == pytest.approx(span - 20.0)


# ---- in memory ----------------------------------------------------------------------------------


async def test_memory_counts_calls_in_flight_as_now_until_answered() -> None:
    clock = Clock()
    ledger = MemoryLedger(clock=clock)
    call = message(1)
    stamp = await ledger.take(call)
    assert isinstance(stamp, Stamp)
    clock.now += 5.0  # a slow answer: the platform may count the call only now
    assert await ledger.wait_time(call) > 0.3
    await ledger.sent(stamp)
    assert await ledger.wait_time(call) > 0.3
    clock.now += 0.5
    assert await ledger.wait_time(call) == 0


async def test_memory_reservation_holds_a_place_until_taken_or_released() -> None:
    clock = Clock()
    ledger = MemoryLedger(clock=clock)
    stop = Call("slack:T1", (Rule("chat.stopStream", Window(60.0, 2)),), ("chat.stopStream",))
    first = await ledger.reserve(stop, "chat.stopStream")
    second = await ledger.reserve(stop, "chat.stopStream")
    assert first is not None and second is not None
    assert await ledger.reserve(stop, "chat.stopStream") is None
    assert not isinstance(await ledger.take(stop), Stamp)
    await ledger.release(second)
    await ledger.release(second)  # idempotent
    assert isinstance(await ledger.take(stop), Stamp)
    stamp = await ledger.take_reserved(first, stop)  # counted at once, no check
    await ledger.sent(stamp)
    assert await ledger.wait_time(stop) > 50


async def test_memory_block_holds_every_call_of_the_key() -> None:
    clock = Clock()
    ledger = MemoryLedger(clock=clock)
    await ledger.block(SCOPE, "chat:1", 3.0)
    assert await ledger.blocked_for(SCOPE, "chat:1") == pytest.approx(3.0)
    assert await ledger.take(message(1)) == pytest.approx(3.0)
    assert isinstance(await ledger.take(message(2)), Stamp)
    await ledger.block(SCOPE, "chat:1", 1.0)  # a shorter block never shortens the first
    clock.now += 2.9
    assert await ledger.blocked_for(SCOPE, "chat:1") == pytest.approx(0.1)


async def test_memory_forgets_idle_chats() -> None:
    clock = Clock()
    ledger = MemoryLedger(clock=clock)
    for chat in range(1000):
        clock.now += 1.0
        await takes(ledger, message(chat), 1)
    assert len(ledger._sends) < 20  # only the last few seconds' chats (and the bot) remain


async def test_build_ledger_follows_the_store(redis_url: str) -> None:
    assert isinstance(build_ledger(MemorySessionStore()), MemoryLedger)
    store = RedisSessionStore.from_url(redis_url, ttl_seconds=60)
    try:
        assert isinstance(build_ledger(store), RedisLedger)
    finally:
        await store.close()


# ---- on Redis: two replicas ---------------------------------------------------------------------


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[RedisLedger, RedisLedger]]:
    first, second = make_client(redis_url, cluster=False), make_client(redis_url, cluster=False)
    yield RedisLedger(first), RedisLedger(second)
    await first.aclose()
    await second.aclose()


async def test_redis_a_window_is_shared_by_two_replicas(
    replicas: tuple[RedisLedger, RedisLedger],
) -> None:
    a, b = replicas
    call = message(7, per_chat=Window(0.2, 10))  # the group's 5 in 2 s is the limit here
    assert len(await takes(a, call, 3)) == 3
    assert len(await takes(b, call, 3)) == 2
    assert 1.5 < await a.wait_time(call) <= 2.1
    assert await b.wait_time(message(8, per_chat=Window(0.2, 10))) == 0  # another group


async def test_redis_concurrent_takes_from_two_replicas_never_overfill(
    replicas: tuple[RedisLedger, RedisLedger],
) -> None:
    a, b = replicas
    call = message(9, per_chat=Window(0.2, 100))
    got = await asyncio.gather(*(r.take(call) for r in (a, b) * 20))
    assert sum(isinstance(g, Stamp) for g in got) == 5  # the group's window, not 5 each


async def test_redis_a_call_in_flight_counts_as_now_until_answered(
    replicas: tuple[RedisLedger, RedisLedger],
) -> None:
    a, b = replicas
    call = message(11)
    stamp = await a.take(call)
    assert isinstance(stamp, Stamp)
    await asyncio.sleep(0.6)  # longer than the chat's 0.4 s window: still in flight
    assert await b.wait_time(call) > 0.3
    await a.sent(stamp)
    assert 0.3 < await b.wait_time(call) <= 0.5
    await asyncio.sleep(0.5)
    assert await b.wait_time(call) == 0


async def test_redis_a_dead_replicas_call_in_flight_stops_holding_after_its_hold(
    redis_url: str,
) -> None:
    client = make_client(redis_url, cluster=False)
    try:
        dying, alive = RedisLedger(client, hold=0.3), RedisLedger(client, hold=0.3)
        call = message(12, per_chat=Window(0.2, 1))
        assert isinstance(await dying.take(call), Stamp)  # never sent(): the replica died
        assert await alive.wait_time(call) > 0
        await asyncio.sleep(0.3 + 0.3)  # the hold, then the chat window
        assert await alive.wait_time(call) == 0
    finally:
        await client.aclose()


async def test_redis_reservations_and_blocks_are_seen_by_every_replica(
    replicas: tuple[RedisLedger, RedisLedger],
) -> None:
    a, b = replicas
    stop = Call("slack:T1", (Rule("chat.stopStream", Window(60.0, 2)),), ("chat.stopStream",))
    held = await a.reserve(stop, "chat.stopStream")
    assert held is not None and await b.reserve(stop, "chat.stopStream") is not None
    assert await b.reserve(stop, "chat.stopStream") is None
    assert not isinstance(await b.take(stop), Stamp)
    stamp = await a.take_reserved(held, stop)
    await a.sent(stamp)
    assert not isinstance(await b.take(stop), Stamp)  # taken, still counted
    await b.block("slack:T1", "chat.update", 2.0)
    assert 1.5 < await a.blocked_for("slack:T1", "chat.update") <= 2.0
    update = Call("slack:T1", (Rule("chat.update", Window(60.0, 50)),), ("chat.update",))
    assert 1.5 < await a.wait_time(update) <= 2.0


async def test_redis_keys_share_one_hash_tag_and_expire(
    replicas: tuple[RedisLedger, RedisLedger], redis_url: str
) -> None:
    a, _ = replicas
    await takes(a, message(13), 1)
    held = await a.reserve(message(14), "group:14")
    assert held is not None
    await a.block(SCOPE, "chat:15", 1.0)
    with redis.Redis.from_url(redis_url, decode_responses=True) as raw:
        keys = sorted(raw.keys("*"))
        assert keys and all(k.startswith("bot:pace:{" + SCOPE + "}:") for k in keys)
        assert all(0 < raw.pttl(k) <= 300_000 for k in keys)


async def test_redis_down_paces_this_process_alone_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = make_client(f"redis://127.0.0.1:{free_port()}/0", cluster=False, connect_timeout=0.2)
    ledger = RedisLedger(dead)
    call = message(16, per_chat=Window(0.2, 10))
    try:
        with caplog.at_level(logging.WARNING, logger="bot.pacing"):
            assert len(await takes(ledger, call, 8)) == 5  # still the group's limit
            assert await ledger.reserve(call, "group:16") is None
    finally:
        await dead.aclose()
    assert caplog.text.count("shared pacing unavailable") == 1


async def test_redis_restart_goes_back_to_sharing(
    redis_server: RedisServer, redis_url: str
) -> None:
    c = make_client(redis_url, cluster=False, connect_timeout=0.2, socket_timeout=0.5)
    ledger = RedisLedger(c)
    try:
        redis_server.stop()
        stamp = await ledger.take(message(17))
        assert isinstance(stamp, Stamp) and stamp.local
        await ledger.sent(stamp)
        redis_server.start()
        stamp = await ledger.take(message(18))
        assert isinstance(stamp, Stamp) and not stamp.local
        await ledger.sent(stamp)
    finally:
        redis_server.start()
        await c.aclose()


async def test_redis_cluster(redis_cluster_url: str) -> None:
    first = make_client(redis_cluster_url, cluster=True)
    second = make_client(redis_cluster_url, cluster=True)
    try:
        a, b = RedisLedger(first), RedisLedger(second)
        for scope in ("telegram:1", "slack:T9", "x{y}z"):
            call = Call(
                scope,
                (Rule("chat:1", Window(2.0, 3)), Rule("bot", Window(2.0, 30))),
                ("chat:1",),
            )
            got = await asyncio.gather(*(r.take(call) for r in (a, b) * 4))
            assert sum(isinstance(g, Stamp) and not g.local for g in got) == 3
            whole_bot = Call(scope, (Rule("bot", Window(2.0, 30)),))
            held = await a.reserve(whole_bot, "bot")
            assert held is not None and not held.local
            await b.sent(await b.take_reserved(held, whole_bot))
    finally:
        await first.aclose()
        await second.aclose()


# ---- a line for a window many wait on --------------------------------------------------------


class CountingLedger(MemoryLedger):
    """A memory ledger that counts how often it is asked to take a call."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def take(self, call: Call) -> Stamp | float:
        self.asked += 1
        return await super().take(call)


def final(chat: int) -> Call:
    """A final message: its own chat's second and the whole bot's (here 50 a second)."""
    return Call(
        SCOPE,
        (Rule(f"chat:{chat}", Window(1.0, 1)), Rule("bot", Window(0.2, 10))),
        (f"chat:{chat}",),
    )


async def test_waiting_line_serves_many_waiters_in_order_asking_once_per_place() -> None:
    ledger = CountingLedger()
    line = WaitingLine()
    order: list[int] = []

    async def send(chat: int) -> None:
        stamp = await line.when_room(ledger, final(chat), "bot")
        order.append(chat)
        await ledger.sent(stamp)

    await asyncio.gather(*(send(chat) for chat in range(60)))
    assert order == list(range(60))  # first come, first sent
    # Waiting alone, every waiter asks again whenever places free (210 asks for these 60,
    # more the longer the line); in line only the first asks: one ask per send, plus one per
    # window that fills.
    assert ledger.asked <= 60 + 10
    assert not line._lines  # nothing left behind


async def test_waiting_line_a_caller_held_by_its_own_chat_steps_aside() -> None:
    ledger = MemoryLedger()
    line = WaitingLine()
    await ledger.block(SCOPE, "chat:1", 0.5)  # chat 1 was told to wait half a second
    done: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def send(chat: int) -> None:
        stamp = await line.when_room(ledger, final(chat), "bot")
        done[chat] = loop.time() - started
        await ledger.sent(stamp)

    await asyncio.gather(send(1), *(send(chat) for chat in range(2, 6)))
    assert all(done[chat] < 0.2 for chat in range(2, 6))  # not held behind chat 1
    assert 0.45 <= done[1] < 0.8
