"""RedisSessionStore on a real 3-master Redis Cluster: same behaviour, one slot per session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.sessions import LockTimeout, Message, RedisSessionStore
from bot.turn import SessionKey
from tests.bot.sessions.test_redis import (
    ALICE,
    BOB,
    DAYS_30,
    HOSTILE,
    SLACK_THREAD,
    assert_serialised,
    contents,
    new_store,
    recording_turn,
    session_for,
)
from tests.redis_servers import RedisClusterServers


@pytest.fixture
async def store(redis_cluster_url: str) -> AsyncIterator[RedisSessionStore]:
    store = new_store(redis_cluster_url, cluster=True)
    await store.ping()  # connected before use, as the app does before serving
    yield store
    await store.close()


@pytest.fixture
async def other_store(redis_cluster_url: str) -> AsyncIterator[RedisSessionStore]:
    store = new_store(redis_cluster_url, cluster=True)
    await store.ping()
    yield store
    await store.close()


def many_keys(n: int) -> list[SessionKey]:
    return [SessionKey("telegram", "", str(1000 + i), "", str(i)) for i in range(n)]


async def test_round_trip_delete_and_isolation(store: RedisSessionStore) -> None:
    session = session_for(ALICE, "안녕하세요, 클러스터!")
    session.form = {"name": "booking", "slots": {"도시": "부산"}}
    await store.save(session)
    assert await store.load(ALICE) == session
    assert (await store.load(BOB)).history == []
    for key in HOSTILE:
        await store.save(session_for(key, "attacker"))
        assert await store.delete(key) is True
    assert contents(await store.load(ALICE)) == ["안녕하세요, 클러스터!"]
    assert await store.delete(ALICE) is True
    assert (await store.load(ALICE)).history == []


async def test_ttl_is_30_days_and_refreshed_by_save(store: RedisSessionStore) -> None:
    name = store.session_key(ALICE)
    await store.save(session_for(ALICE, "one"))
    assert DAYS_30 - 60 <= await store.client.ttl(name) <= DAYS_30
    await store.client.expire(name, 100)
    await store.save(session_for(ALICE, "one", "two"))
    assert DAYS_30 - 60 <= await store.client.ttl(name) <= DAYS_30


async def test_keys_of_one_session_share_one_slot(
    store: RedisSessionStore, redis_cluster: RedisClusterServers
) -> None:
    slots = set()
    with redis_cluster.nodes[0].client() as admin:
        for key in [ALICE, BOB, SLACK_THREAD, *HOSTILE]:
            session_slot = admin.execute_command("CLUSTER KEYSLOT", store.session_key(key))
            lock_slot = admin.execute_command("CLUSTER KEYSLOT", store.lock_key(key))
            assert session_slot == lock_slot, key
            slots.add(session_slot)
    assert len(slots) > 1  # sessions themselves are spread out


async def test_keys_finds_sessions_on_all_three_masters(
    store: RedisSessionStore, redis_cluster: RedisClusterServers
) -> None:
    keys = many_keys(50)
    await asyncio.gather(*(store.save(session_for(k, "x")) for k in keys))
    per_node = []
    for node in redis_cluster.nodes:
        with node.client() as client:
            per_node.append(client.dbsize())
    assert sum(per_node) == 50 and all(n > 0 for n in per_node), per_node
    assert sorted([k async for k in store.keys()]) == sorted(str(k) for k in keys)


async def test_turns_are_serialised_across_two_processes(
    store: RedisSessionStore, other_store: RedisSessionStore
) -> None:
    events: list[str] = []
    turn = recording_turn(events)
    await asyncio.gather(*(turn(store if i % 2 else other_store, ALICE, str(i)) for i in range(6)))
    assert_serialised(events)
    assert len(events) == 12


async def test_different_sessions_run_concurrently(
    store: RedisSessionStore, other_store: RedisSessionStore
) -> None:
    both_inside = asyncio.Event()
    inside = 0

    async def turn(s: RedisSessionStore, key: SessionKey) -> None:
        nonlocal inside
        async with s.lock(key):
            inside += 1
            if inside == 2:
                both_inside.set()
            await asyncio.wait_for(both_inside.wait(), 2)

    await asyncio.gather(turn(store, ALICE), turn(other_store, BOB))
    assert both_inside.is_set()


async def test_only_the_owner_releases_and_waiters_time_out(redis_cluster_url: str) -> None:
    slow = new_store(redis_cluster_url, cluster=True, lock_timeout=0.1, renew_lock=False)
    fast = new_store(redis_cluster_url, cluster=True, lock_wait=2.0)
    third = new_store(redis_cluster_url, cluster=True, lock_wait=0.1)
    new_owner = fast.lock(ALICE)
    try:
        async with slow.lock(ALICE):
            await asyncio.sleep(0.2)  # the slow turn outlives its 0.1 s lock
            await new_owner.__aenter__()
            token = await fast.client.get(fast.lock_key(ALICE))
        # The slow turn has left and tried to release: the new owner's lock must survive.
        assert token is not None
        assert await fast.client.get(fast.lock_key(ALICE)) == token
        with pytest.raises(LockTimeout):
            async with third.lock(ALICE):
                pass
        await new_owner.__aexit__(None, None, None)
        assert await fast.client.exists(fast.lock_key(ALICE)) == 0
    finally:
        for s in (slow, fast, third):
            await s.close()


async def test_claim_delivery_across_processes_has_one_winner(
    store: RedisSessionStore, other_store: RedisSessionStore
) -> None:
    assert await store.claim_delivery("telegram::7") is True
    assert await other_store.claim_delivery("telegram::7") is False
    results = await asyncio.gather(
        *(s.claim_delivery("slack:T01:Ev9") for s in [store, other_store] * 10)
    )
    assert results.count(True) == 1


async def test_ping_works_and_loaded_sessions_are_copies(store: RedisSessionStore) -> None:
    await store.ping()
    await store.save(session_for(ALICE, "still here"))
    loaded = await store.load(ALICE)
    loaded.history.append(Message("assistant", "unsaved"))
    assert contents(await store.load(ALICE)) == ["still here"]
