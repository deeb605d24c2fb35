"""The GLM breaker and bulkhead shared through Redis: two instances on one Redis (or one Redis
Cluster) play two replicas of the bot, each with its own client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.glm.breaker import Bulkhead, CircuitBreaker
from bot.glm.client import GlmClient
from bot.glm.errors import GlmUnavailable
from bot.glm.guarded import GuardedGlm, Outcome
from bot.glm.shared import RedisBreaker, RedisBulkhead, RedisFallback, build_guards
from bot.sessions.memory import MemorySessionStore
from bot.sessions.redis import RedisClient, RedisSessionStore, make_client
from bot.settings import Settings
from tests.fakes.glm import Error, FakeGlm, Reply
from tests.redis_servers import RedisServer, start_server

Pair = tuple[RedisClient, RedisClient]


@pytest.fixture(params=["redis", "cluster"])
def shared_url(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """An empty Redis, then an empty 3-master Redis Cluster: (url, cluster)."""
    if request.param == "redis":
        return request.getfixturevalue("redis_url"), False
    return request.getfixturevalue("redis_cluster_url"), True


@pytest.fixture
async def replicas(shared_url: tuple[str, bool]) -> AsyncIterator[Pair]:
    """The Redis clients of two replicas."""
    url, cluster = shared_url
    first, second = make_client(url, cluster=cluster), make_client(url, cluster=cluster)
    try:
        for client in (first, second):
            await client.ping()  # a cluster client learns the layout: not in a timed call
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


def breakers(pair: Pair, **options: Any) -> tuple[RedisBreaker, RedisBreaker]:
    options = {"min_calls": 4, "failure_rate": 0.5, "open_seconds": 60.0, **options}
    return RedisBreaker(pair[0], **options), RedisBreaker(pair[1], **options)


async def trip(breaker: RedisBreaker, failures: int = 4) -> None:
    for _ in range(failures):
        assert await breaker.admit()
        await breaker.report("failure")
    assert breaker.state == "open"


# ---- breaker -------------------------------------------------------------------------------


async def test_failures_through_one_replica_open_the_breaker_for_the_other(
    replicas: Pair,
) -> None:
    a, b = breakers(replicas)
    assert await b.admit()
    await trip(a)
    assert not await b.admit()  # b learnt nothing itself: the shared breaker refused
    assert b.state == "open"
    assert b.local.state == "closed"
    assert await b.peek() == "open"


async def test_the_failure_rate_counts_the_outcomes_of_every_replica(replicas: Pair) -> None:
    a, b = breakers(replicas)
    for _ in range(3):
        await a.report("success")
    for _ in range(2):
        await b.report("failure")
    assert await a.admit() and await b.admit()  # 2 of 5 failed
    await b.report("failure")  # 3 of 6
    assert not await a.admit()
    assert a.state == "open"


async def test_only_one_probe_across_replicas_when_half_open(replicas: Pair) -> None:
    a, b = breakers(replicas, open_seconds=0.5)
    await trip(a)
    assert not await b.admit()
    await asyncio.sleep(0.55)
    admitted = await asyncio.gather(*(r.admit() for r in (a, b) * 5))
    assert sum(admitted) == 1
    prober, other = (a, b) if admitted[0] else (b, a)
    assert other.state == "half_open"
    await other.report("ignored")  # an old call of the other replica: not the probe
    assert not await other.admit()
    await prober.report("ignored")  # the probe's user cancelled: the next may probe
    assert await other.admit()
    assert not await prober.admit()


async def test_a_probes_success_closes_the_breaker_for_both(replicas: Pair) -> None:
    a, b = breakers(replicas, open_seconds=0.2)
    await trip(a)
    await asyncio.sleep(0.25)
    assert await b.admit()
    await b.report("success")
    assert all([await a.admit() for _ in range(10)])
    assert await a.peek() == "closed"
    for _ in range(3):  # the window starts empty: min_calls again
        await a.report("failure")
    assert await b.admit()


async def test_a_probes_failure_opens_the_breaker_again_for_both(replicas: Pair) -> None:
    a, b = breakers(replicas, open_seconds=0.5)
    await trip(a)
    await asyncio.sleep(0.55)
    assert await b.admit()
    await b.report("failure")
    assert not await a.admit() and not await b.admit()
    assert a.state == "open"
    await asyncio.sleep(0.55)
    assert await a.admit()  # the next probe, after another open period


async def test_a_probe_whose_replica_died_is_given_up_after_probe_seconds(
    replicas: Pair,
) -> None:
    a, b = breakers(replicas, open_seconds=0.2, probe_seconds=0.6)
    await trip(a)
    await asyncio.sleep(0.25)
    assert await a.admit()  # a takes the probe, then dies without reporting
    assert not await b.admit()
    await asyncio.sleep(0.65)
    assert await b.admit()


async def test_outcomes_older_than_the_window_do_not_count(replicas: Pair) -> None:
    a, b = breakers(replicas, window_seconds=0.5)
    for _ in range(3):
        await a.report("failure")
    await asyncio.sleep(0.65)
    await b.report("failure")  # 1 of 1, but fewer than min_calls in the window
    assert await a.admit()
    for _ in range(3):
        await b.report("failure")
    assert not await a.admit()


async def test_outcomes_reported_while_open_are_ignored(replicas: Pair) -> None:
    a, b = breakers(replicas)
    await trip(a)
    await b.report("success")  # a call that started before it opened
    assert not await a.admit()
    assert await b.peek() == "open"


async def test_the_breaker_key_has_a_hash_tag_and_expires(redis_url: str) -> None:
    client = make_client(redis_url, cluster=False)
    try:
        breaker = RedisBreaker(
            client, min_calls=2, window_seconds=30.0, open_seconds=15.0, probe_seconds=10.0
        )
        await breaker.report("failure")
        with redis.Redis.from_url(redis_url, decode_responses=True) as raw:
            assert raw.keys("*") == ["bot:glm:breaker:{answer}"]
            assert 0 < raw.pttl("bot:glm:breaker:{answer}") <= (30 + 1 + 15 + 10 + 60) * 1000
            await breaker.report("failure")
            assert await breaker.peek() == "open"
            assert 0 < raw.pttl("bot:glm:breaker:{answer}") <= (30 + 1 + 15 + 10 + 60) * 1000
    finally:
        await client.aclose()


@pytest.mark.parametrize("options", [{"name": "a{b}"}, {"prefix": "bot}"}, {"probe_seconds": 0}])
def test_names_that_would_break_the_hash_tag_and_bad_settings_are_refused(
    options: dict[str, Any],
) -> None:
    client = make_client("redis://127.0.0.1:9/0", cluster=False)
    with pytest.raises(ValueError):
        RedisBreaker(client, **options)
    with pytest.raises(ValueError):
        RedisBulkhead(client, 0)


async def test_the_memory_breaker_is_a_breaker_too() -> None:
    breaker = CircuitBreaker(min_calls=2, failure_rate=0.5)
    assert await breaker.admit()
    await breaker.report("failure")
    await breaker.report("ignored")
    await breaker.report("failure")
    assert not await breaker.admit()
    assert breaker.state == "open"


# ---- bulkhead ------------------------------------------------------------------------------


class Holder:
    """Calls that hold a slot until told to end."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []
        self.ends: list[asyncio.Event] = []

    async def hold(self, bulkhead: RedisBulkhead | Bulkhead) -> None:
        held = asyncio.Event()
        end = asyncio.Event()

        async def call() -> None:
            async with bulkhead.slot(timeout=2.0):
                held.set()
                await end.wait()

        self.tasks.append(asyncio.create_task(call()))
        self.ends.append(end)
        await asyncio.wait_for(held.wait(), 2.0)

    async def end(self, index: int) -> None:
        self.ends[index].set()
        await self.tasks[index]

    async def cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def holder() -> AsyncIterator[Holder]:
    h = Holder()
    yield h
    await h.cancel_all()


async def refused(bulkhead: RedisBulkhead | Bulkhead) -> bool:
    try:
        async with bulkhead.slot(timeout=0):
            return False
    except GlmUnavailable:
        return True


async def test_the_cap_holds_across_replicas(replicas: Pair, holder: Holder) -> None:
    a, b = RedisBulkhead(replicas[0], 3), RedisBulkhead(replicas[1], 3)
    await holder.hold(a)
    await holder.hold(a)
    await holder.hold(b)
    assert (a.in_use, b.in_use, await a.leases()) == (2, 1, 3)
    assert await refused(a) and await refused(b)
    await holder.end(0)
    assert not await refused(b)
    assert await a.leases() == 2


async def test_many_calls_of_two_replicas_never_exceed_the_cap(replicas: Pair) -> None:
    a, b = RedisBulkhead(replicas[0], 3), RedisBulkhead(replicas[1], 3)
    running = peak = done = 0

    async def call(bulkhead: RedisBulkhead) -> None:
        nonlocal running, peak, done
        async with bulkhead.slot(timeout=None):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1
        done += 1

    await asyncio.wait_for(asyncio.gather(*(call(r) for r in (a, b) * 12)), 20)
    assert (peak, done) == (3, 24)
    assert await a.leases() == 0 and a.in_use == b.in_use == 0


async def test_a_waiter_gets_the_slot_another_replica_gives_back(
    replicas: Pair, holder: Holder
) -> None:
    a, b = RedisBulkhead(replicas[0], 1), RedisBulkhead(replicas[1], 1)
    await holder.hold(a)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, holder.ends[0].set)
    started = loop.time()
    async with b.slot(timeout=3.0):
        waited = loop.time() - started
        assert b.in_use == 1
    assert 0.19 <= waited < 0.2 + 0.2  # polled at most every 50 ms


async def test_a_dead_replicas_slots_free_after_their_lease(replicas: Pair, holder: Holder) -> None:
    dead = RedisBulkhead(replicas[0], 2, lease_seconds=0.5, renew=False)
    live = RedisBulkhead(replicas[1], 2)
    await holder.hold(dead)
    await holder.hold(dead)
    assert await refused(live)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with live.slot(timeout=3.0):
        waited = loop.time() - started
    assert 0.35 <= waited < 1.0


async def test_a_running_calls_lease_is_renewed(replicas: Pair, holder: Holder) -> None:
    a = RedisBulkhead(replicas[0], 1, lease_seconds=0.3)
    b = RedisBulkhead(replicas[1], 1, lease_seconds=0.3)
    await holder.hold(a)
    await asyncio.sleep(1.0)  # three leases long
    assert await refused(b)
    assert await a.leases() == 1
    await holder.end(0)
    assert await a.leases() == 0
    assert not await refused(b)


async def test_a_cancelled_wait_leaves_no_lease_behind(replicas: Pair, holder: Holder) -> None:
    a, b = RedisBulkhead(replicas[0], 1), RedisBulkhead(replicas[1], 1)
    await holder.hold(a)

    async def wait() -> None:
        async with b.slot(timeout=None):
            pytest.fail("got a slot that was never free")

    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await holder.end(0)
    assert await a.leases() == 0 and b.in_use == 0
    assert not await refused(b)


async def test_the_slots_key_has_a_hash_tag_and_expires_with_its_leases(
    redis_url: str, holder: Holder
) -> None:
    client = make_client(redis_url, cluster=False)
    try:
        bulkhead = RedisBulkhead(client, 2, lease_seconds=6.0)
        await holder.hold(bulkhead)
        with redis.Redis.from_url(redis_url, decode_responses=True) as raw:
            assert raw.keys("*") == ["bot:glm:slots:{answer}"]
            assert 0 < raw.pttl("bot:glm:slots:{answer}") <= 6000
            await holder.end(0)
            assert raw.keys("*") == []
    finally:
        await client.aclose()


# ---- Redis failing -------------------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop and start."""
    server = start_server(tmp_path, [])
    try:
        yield server
    finally:
        server.stop()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.glm.shared" and r.levelno == logging.WARNING
    ]


async def test_redis_stopped_midway_calls_go_on_with_the_local_guards(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(own_server.url, cluster=False, connect_timeout=0.2, socket_timeout=0.5)
    fallback = RedisFallback(retry_after=0.2)
    breaker = RedisBreaker(client, min_calls=4, open_seconds=60.0, fallback=fallback)
    bulkhead = RedisBulkhead(client, 1, fallback=fallback)
    holder = Holder()
    try:
        caplog.set_level(logging.WARNING, logger="bot.glm.shared")
        assert await breaker.admit()
        async with bulkhead.slot(timeout=1.0):
            assert await bulkhead.leases() == 1
            own_server.stop()  # in the middle of a call: its slot cannot be given back
        await breaker.report("success")

        for _ in range(5):  # answers go on, each call on this process's own guards
            assert await breaker.admit()
            async with bulkhead.slot(timeout=1.0):
                assert bulkhead.in_use == 1
            await breaker.report("success")
            await asyncio.sleep(0.1)  # past retry_after now and then: Redis is tried again
        assert len(warnings(caplog)) == 1
        assert "Redis failed for the shared GLM" in warnings(caplog)[0]
        assert fallback.failing

        # The local guards guard: the bulkhead's cap, and the breaker (6 successes so far).
        await holder.hold(bulkhead)
        assert await refused(bulkhead)
        await holder.end(0)
        for _ in range(6):
            assert await breaker.admit()
            await breaker.report("failure")
        assert not await breaker.admit()
        assert breaker.state == "open"

        own_server.start()  # empty: the shared breaker is closed
        await asyncio.sleep(0.25)
        assert await breaker.admit()
        assert breaker.state == "closed" and not fallback.failing
        async with bulkhead.slot(timeout=1.0):
            assert await bulkhead.leases() == 1
        assert len(warnings(caplog)) == 1
    finally:
        await holder.cancel_all()
        await client.aclose()


async def test_a_hung_redis_costs_a_call_at_most_the_timeout(own_server: RedisServer) -> None:
    client = make_client(own_server.url, cluster=False, socket_timeout=5.0)
    breaker = RedisBreaker(client, timeout=0.2)
    bulkhead = RedisBulkhead(client, 2, timeout=0.2, fallback=breaker.fallback)
    try:
        assert await breaker.admit()
        with own_server.client() as raw:
            # Every script and write waits (UNPAUSE does not): a Redis that does not answer.
            raw.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await breaker.admit()
        assert loop.time() - started < 0.5
        started = loop.time()
        async with bulkhead.slot(timeout=1.0):  # Redis is left alone for a second now
            assert loop.time() - started < 0.05
    finally:
        with own_server.client() as raw:
            raw.execute_command("CLIENT", "UNPAUSE")
        await client.aclose()


def test_redis_failing_is_warned_about_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    fallback = RedisFallback(retry_after=1.0, clock=lambda: now[0], hidden=["s3cret"])
    caplog.set_level(logging.DEBUG, logger="bot.glm.shared")
    assert not fallback.skip()
    for step in range(6):  # 50 seconds of failures
        now[0] = 100.0 + step * 10
        fallback.failed("bulkhead (answer)", ConnectionError("auth s3cret refused"))
        assert fallback.skip()
    now[0] += 1.0
    assert not fallback.skip()  # Redis is tried again a second after it failed
    assert len(warnings(caplog)) == 1
    now[0] = 161.0
    fallback.failed("bulkhead (answer)", ConnectionError("refused"))
    assert len(warnings(caplog)) == 2
    assert "s3cret" not in caplog.text and "****" in caplog.text


# ---- GuardedGlm on two replicas ------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as server:
        yield server


@contextlib.asynccontextmanager
async def glm_replicas(
    fake: FakeGlm, pair: Pair, **guards: Any
) -> AsyncIterator[tuple[GuardedGlm, GuardedGlm]]:
    clients = [GlmClient(base_url=fake.base_url, api_key=fake.api_key) for _ in pair]
    try:
        yield tuple(  # type: ignore[misc]
            GuardedGlm(
                client,
                model="glm-4.5",
                first_token_timeout=2.0,
                breaker=RedisBreaker(redis_client, min_calls=2, open_seconds=60.0),
                bulkhead=RedisBulkhead(redis_client, guards.get("max_concurrent", 100)),
            )
            for client, redis_client in zip(clients, pair, strict=True)
        )
    finally:
        for client in clients:
            await client.close()


def user(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": text}]


async def test_one_replicas_failures_make_the_other_answer_with_the_fallback_at_once(
    fake: FakeGlm, replicas: Pair
) -> None:
    async with glm_replicas(fake, replicas) as (first, second):
        for _ in range(2):
            fake.enqueue(Error(401, "1000", "Authentication Failed"))
            answer = await first.stream_answer(first.request(user("x")), lambda _t: None)
            assert answer.outcome is Outcome.FAILED
        calls = len(fake.requests)
        started = time.perf_counter()
        answer = await second.stream_answer(second.request(user("x")), lambda _t: None)
        assert time.perf_counter() - started < 0.05
        assert answer.outcome is Outcome.UNAVAILABLE
        assert len(fake.requests) == calls  # the model was not called


async def test_the_replicas_model_calls_share_the_concurrency_cap(
    fake: FakeGlm, replicas: Pair
) -> None:
    fake.default = Reply("천천히", first_delay=0.2)
    async with glm_replicas(fake, replicas, max_concurrent=2) as (first, second):
        answers = await asyncio.gather(
            *(g.stream_answer(g.request(user("x")), lambda _t: None) for g in (first, second) * 3)
        )
    assert [a.outcome for a in answers] == [Outcome.COMPLETE] * 6
    assert fake.max_in_flight == 2


# ---- wiring --------------------------------------------------------------------------------


async def test_build_guards_shares_them_through_a_redis_store_only(redis_url: str) -> None:
    settings = Settings(_env_file=None, glm_max_concurrency=7)  # type: ignore[call-arg]
    local = build_guards(settings, MemorySessionStore())
    assert isinstance(local.breaker, CircuitBreaker)
    assert isinstance(local.bulkhead, Bulkhead) and local.bulkhead.max_concurrent == 7
    assert isinstance(local.summary_breaker, CircuitBreaker)
    assert local.summary_breaker is not local.breaker

    store = RedisSessionStore.from_url(redis_url, ttl_seconds=60)
    try:
        shared = build_guards(settings, store)
        breaker, bulkhead = shared.breaker, shared.bulkhead
        assert isinstance(breaker, RedisBreaker) and breaker.client is store.client
        assert isinstance(bulkhead, RedisBulkhead) and bulkhead.client is store.client
        assert bulkhead.max_concurrent == 7
        assert isinstance(shared.summary_breaker, RedisBreaker)
        assert shared.summary_breaker.key != breaker.key
        assert isinstance(shared.summary_bulkhead, Bulkhead)  # per process: see build_guards
        assert breaker.fallback is bulkhead.fallback is shared.summary_breaker.fallback
    finally:
        await store.close()
