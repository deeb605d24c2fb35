"""Per-user rate limits: in memory, and on a real redis-server and Redis Cluster."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis

from bot.ratelimit import (
    ConcurrencyLimiter,
    MemoryConcurrencyLimiter,
    MemoryRateLimiter,
    RateLimiter,
    RedisConcurrencyLimiter,
    RedisRateLimiter,
    build_rate_limiter,
    rate_key,
)
from bot.sessions.memory import MemorySessionStore
from bot.sessions.redis import RedisSessionStore, make_client
from bot.settings import Settings
from tests.bot.helpers import turn
from tests.redis_servers import RedisServer, free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def hits(limiter: RateLimiter, key: str, count: int) -> list[bool]:
    return [(await limiter.hit(key)).allowed for _ in range(count)]


# ---- memory ----------------------------------------------------------------------------------


async def test_memory_allows_a_burst_of_the_limit_then_one_per_interval() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(limit=20, period=60.0, clock=clock)
    assert await hits(limiter, "u", 20) == [True] * 20
    refused = await limiter.hit("u")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(3.0)
    clock.now += 2.9
    assert not (await limiter.hit("u")).allowed  # a refused message does not count
    clock.now += 0.1
    assert (await limiter.hit("u")).allowed
    assert not (await limiter.hit("u")).allowed
    clock.now += 60
    assert await hits(limiter, "u", 21) == [True] * 20 + [False]


async def test_memory_limits_each_user_on_their_own() -> None:
    limiter = MemoryRateLimiter(limit=2, period=60.0, clock=Clock())
    assert await hits(limiter, "a", 3) == [True, True, False]
    assert await hits(limiter, "b", 2) == [True, True]


async def test_memory_keeps_a_bounded_number_of_users() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(limit=1, period=60.0, clock=clock, max_keys=100)
    for n in range(1000):
        await limiter.hit(f"user{n}")
    assert len(limiter) <= 100
    clock.now += 61
    await limiter.hit("late")
    assert len(limiter) <= 100


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(ValueError):
        MemoryRateLimiter(limit=limit)


def test_rate_key_is_per_user_across_chats() -> None:
    assert rate_key(turn("a", user="7", chat="1")) == rate_key(turn("b", user="7", chat="-100"))
    assert rate_key(turn("a", user="7")) != rate_key(turn("a", user="8"))
    assert rate_key(turn("a", user="7", team_id="T1")) != rate_key(turn("a", user="7"))


async def test_build_rate_limiter_follows_the_settings_and_the_store(redis_url: str) -> None:
    memory = MemorySessionStore()
    off = Settings(_env_file=None, user_rate_limit_per_minute=0)  # type: ignore[call-arg]
    assert build_rate_limiter(off, memory) is None
    on = Settings(_env_file=None)  # type: ignore[call-arg]
    assert on.user_rate_limit_per_minute == 20
    limiter = build_rate_limiter(on, memory)
    assert isinstance(limiter, MemoryRateLimiter) and limiter.limit == 20
    store = RedisSessionStore.from_url(redis_url, ttl_seconds=60)
    try:
        shared = build_rate_limiter(on, store)
        assert isinstance(shared, RedisRateLimiter) and shared.client is store.client
    finally:
        await store.close()


# ---- Redis -----------------------------------------------------------------------------------


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[object]:
    c = make_client(redis_url, cluster=False)
    yield c
    await c.aclose()


async def test_redis_allows_a_burst_of_the_limit_then_refuses(client: object) -> None:
    limiter = RedisRateLimiter(client, limit=5, period=60.0)  # type: ignore[arg-type]
    assert await hits(limiter, "telegram::7", 6) == [True] * 5 + [False]
    refused = await limiter.hit("telegram::7")
    assert not refused.allowed and 11.0 < refused.retry_after <= 12.0
    assert await hits(limiter, "telegram::8", 1) == [True]


async def test_redis_lets_one_more_through_after_an_interval(client: object) -> None:
    limiter = RedisRateLimiter(client, limit=3, period=0.3)  # type: ignore[arg-type]
    assert await hits(limiter, "u", 4) == [True, True, True, False]
    await asyncio.sleep(0.12)
    assert await hits(limiter, "u", 2) == [True, False]


async def test_redis_key_has_the_prefix_a_hash_tag_and_expires(
    client: object, redis_url: str
) -> None:
    limiter = RedisRateLimiter(client, limit=20, period=60.0)  # type: ignore[arg-type]
    await limiter.hit("slack:T1:U{1}")
    with redis.Redis.from_url(redis_url, decode_responses=True) as raw:
        keys = raw.keys("*")
        assert keys == ["bot:rate:{slack:T1:U%7B1%7D}"]
        ttl = raw.pttl(keys[0])
    assert 0 < ttl <= 3000  # one interval: the key lives only while it limits anything


async def test_redis_limit_is_shared_between_processes(redis_url: str) -> None:
    first, second = make_client(redis_url, cluster=False), make_client(redis_url, cluster=False)
    try:
        a = RedisRateLimiter(first, limit=4, period=60.0)
        b = RedisRateLimiter(second, limit=4, period=60.0)
        results = [(await (a if n % 2 else b).hit("u")).allowed for n in range(6)]
        assert results == [True] * 4 + [False] * 2
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_lets_messages_through_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = make_client(f"redis://127.0.0.1:{free_port()}/0", cluster=False, connect_timeout=0.2)
    limiter = RedisRateLimiter(dead, limit=1, period=60.0)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.ratelimit"):
            assert await hits(limiter, "u", 3) == [True, True, True]
    finally:
        await dead.aclose()
    assert "rate limit unavailable" in caplog.text


async def test_redis_restart_recovers(redis_server: RedisServer, redis_url: str) -> None:
    c = make_client(redis_url, cluster=False, connect_timeout=0.2, socket_timeout=0.5)
    limiter = RedisRateLimiter(c, limit=1, period=60.0)
    try:
        assert await hits(limiter, "u", 2) == [True, False]
        redis_server.stop()
        assert (await limiter.hit("u")).allowed  # fail open
        redis_server.start()
        assert (await limiter.hit("v")).allowed
        assert not (await limiter.hit("v")).allowed
    finally:
        redis_server.start()
        await c.aclose()


async def test_redis_cluster(redis_cluster_url: str) -> None:
    c = make_client(redis_cluster_url, cluster=True)
    try:
        limiter = RedisRateLimiter(c, limit=2, period=60.0)
        for user in ("telegram::1", "telegram::2", "slack:T9:U3", "x{y}z"):
            assert await hits(limiter, user, 3) == [True, True, False]
    finally:
        await c.aclose()


# ---- answers in progress at once (the web channel's cap per key) ------------------------------


async def takes(limiter: ConcurrencyLimiter, key: str, leases: list[str]) -> list[bool]:
    return [await limiter.acquire(key, lease) for lease in leases]


async def test_memory_concurrency_caps_each_key_and_a_release_frees_a_place() -> None:
    limiter = MemoryConcurrencyLimiter(2)
    assert await takes(limiter, "k1", ["a", "b", "c"]) == [True, True, False]
    assert await takes(limiter, "k2", ["a", "b"]) == [True, True]  # another tenant
    await limiter.release("k1", "a")
    assert await takes(limiter, "k1", ["d", "e"]) == [True, False]
    await limiter.release("k1", "unknown")  # harmless
    with pytest.raises(ValueError):
        MemoryConcurrencyLimiter(0)


async def test_redis_concurrency_is_shared_between_processes(redis_url: str) -> None:
    first, second = make_client(redis_url, cluster=False), make_client(redis_url, cluster=False)
    try:
        a = RedisConcurrencyLimiter(first, 3)
        b = RedisConcurrencyLimiter(second, 3)
        assert [await (a if n % 2 else b).acquire("k", f"l{n}") for n in range(5)] == [
            True,
            True,
            True,
            False,
            False,
        ]
        await a.release("k", "l0")  # one process releases what the other took
        assert await takes(b, "k", ["l5", "l6"]) == [True, False]
        assert await takes(b, "other", ["x"]) == [True]
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_concurrency_lease_of_a_dead_process_lapses(
    client: object, redis_url: str
) -> None:
    limiter = RedisConcurrencyLimiter(client, 1, lease_seconds=0.2)  # type: ignore[arg-type]
    assert await takes(limiter, "k{1}", ["dead", "next"]) == [True, False]
    with redis.Redis.from_url(redis_url, decode_responses=True) as raw:
        (key,) = raw.keys("*")
        assert key == "bot:inflight:{k%7B1%7D}" and 0 < raw.pttl(key) <= 200
    await asyncio.sleep(0.25)  # "dead" never released its lease
    assert await takes(limiter, "k{1}", ["next"]) == [True]


async def test_redis_concurrency_fails_open_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = make_client(f"redis://127.0.0.1:{free_port()}/0", cluster=False, connect_timeout=0.2)
    limiter = RedisConcurrencyLimiter(dead, 1)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.ratelimit"):
            assert await takes(limiter, "k", ["a", "b"]) == [True, True]
            await limiter.release("k", "a")
    finally:
        await dead.aclose()
    assert "concurrency limit unavailable" in caplog.text


async def test_redis_concurrency_on_a_cluster(redis_cluster_url: str) -> None:
    c = make_client(redis_cluster_url, cluster=True)
    try:
        limiter = RedisConcurrencyLimiter(c, 1)
        for tenant in ("k1", "k2", "k{3}"):
            assert await takes(limiter, tenant, ["a", "b"]) == [True, False]
    finally:
        await c.aclose()
