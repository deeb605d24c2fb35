"""MemorySessionStore: copies, isolation, TTL, LRU bound, locks and delivery claims."""

from __future__ import annotations

import asyncio

import pytest

from bot.sessions import LockTimeout, MemorySessionStore, Message, Session, SessionStore
from bot.turn import SessionKey

ALICE = SessionKey("telegram", "", "100", "", "1")
BOB = SessionKey("telegram", "", "100", "", "2")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def session_for(key: SessionKey, *texts: str) -> Session:
    return Session(key=str(key), history=[Message("user", t) for t in texts])


def test_it_is_a_session_store() -> None:
    assert isinstance(MemorySessionStore(), SessionStore)


async def test_round_trip_keeps_korean_text_and_every_field() -> None:
    store = MemorySessionStore()
    session = session_for(ALICE, "안녕하세요, 오늘 날씨 어때요?")
    session.form = {"name": "booking", "slots": {"도시": "서울"}}
    session.state = {"intent": "weather"}
    session.summary = "사용자는 서울 날씨를 물었다"
    session.meta = {"lang": "ko"}
    await store.save(session)
    loaded = await store.load(ALICE)
    assert loaded == session
    assert loaded is not session


async def test_absent_key_loads_an_empty_session_that_is_not_stored() -> None:
    store = MemorySessionStore()
    loaded = await store.load(ALICE)
    assert loaded.key == str(ALICE) and loaded.history == [] and loaded.form is None
    assert [k async for k in store.keys()] == []


async def test_delete_forgets_the_session() -> None:
    store = MemorySessionStore()
    await store.save(session_for(ALICE, "hi"))
    assert await store.delete(ALICE) is True
    assert (await store.load(ALICE)).history == []
    assert await store.delete(ALICE) is False


async def test_mutating_a_loaded_session_changes_nothing_until_save() -> None:
    store = MemorySessionStore()
    original = session_for(ALICE, "first")
    await store.save(original)
    original.history.append(Message("user", "after save"))  # the saved object itself
    loaded = await store.load(ALICE)
    loaded.history.append(Message("assistant", "not saved"))
    loaded.meta["x"] = 1
    again = await store.load(ALICE)
    assert [m.content for m in again.history] == ["first"]
    assert again.meta == {}
    await store.save(loaded)
    assert [m.content for m in (await store.load(ALICE)).history] == ["first", "not saved"]


async def test_sessions_never_see_each_other() -> None:
    store = MemorySessionStore()
    await store.save(session_for(ALICE, "alice secret"))
    assert (await store.load(BOB)).history == []
    await store.save(session_for(BOB, "bob secret"))
    assert [m.content for m in (await store.load(ALICE)).history] == ["alice secret"]
    assert [m.content for m in (await store.load(BOB)).history] == ["bob secret"]


async def test_expired_session_is_gone_and_save_refreshes_the_ttl() -> None:
    clock = FakeClock()
    store = MemorySessionStore(ttl_seconds=100, clock=clock)
    await store.save(session_for(ALICE, "hi"))
    clock.now += 90
    await store.save(session_for(ALICE, "hi", "again"))  # refreshes the TTL
    clock.now += 90
    assert len((await store.load(ALICE)).history) == 2
    clock.now += 11
    assert (await store.load(ALICE)).history == []
    assert [k async for k in store.keys()] == []


async def test_least_recently_used_session_is_evicted_first() -> None:
    store = MemorySessionStore(max_sessions=2)
    a, b, c = (SessionKey("slack", "T1", "C1", "", u) for u in ("a", "b", "c"))
    await store.save(session_for(a, "a"))
    await store.save(session_for(b, "b"))
    await store.load(a)  # a is now more recent than b
    await store.save(session_for(c, "c"))
    assert sorted([k async for k in store.keys()]) == sorted([str(a), str(c)])
    assert (await store.load(b)).history == []
    assert [m.content for m in (await store.load(a)).history] == ["a"]


async def test_turns_of_one_session_are_serialised() -> None:
    store = MemorySessionStore()
    events: list[str] = []

    async def turn(name: str) -> None:
        async with store.lock(ALICE):
            events.append(f"enter {name}")
            await asyncio.sleep(0.02)
            events.append(f"exit {name}")

    await asyncio.gather(turn("1"), turn("2"), turn("3"))
    assert events == ["enter 1", "exit 1", "enter 2", "exit 2", "enter 3", "exit 3"]


async def test_different_sessions_run_concurrently() -> None:
    store = MemorySessionStore()
    both_inside = asyncio.Event()
    inside = 0

    async def turn(key: SessionKey) -> None:
        nonlocal inside
        async with store.lock(key):
            inside += 1
            if inside == 2:
                both_inside.set()
            await asyncio.wait_for(both_inside.wait(), 1)

    await asyncio.gather(turn(ALICE), turn(BOB))
    assert both_inside.is_set()


async def test_lock_wait_timeout_raises_lock_timeout_and_locks_do_not_pile_up() -> None:
    store = MemorySessionStore(lock_wait=0.05)
    async with store.lock(ALICE):
        with pytest.raises(LockTimeout):
            async with store.lock(ALICE):
                pass
    async with store.lock(ALICE):  # free again after the holder left
        pass
    for i in range(100):
        async with store.lock(SessionKey("telegram", "", str(i), "", "1")):
            pass
    assert len(store._locks) == 0


async def test_claim_delivery_is_true_only_the_first_time_until_it_expires() -> None:
    clock = FakeClock()
    store = MemorySessionStore(clock=clock)
    assert await store.claim_delivery("telegram::1", ttl_seconds=60) is True
    assert await store.claim_delivery("telegram::1", ttl_seconds=60) is False
    assert await store.claim_delivery("telegram::2", ttl_seconds=60) is True
    clock.now += 61
    assert await store.claim_delivery("telegram::1", ttl_seconds=60) is True


async def test_concurrent_claims_of_one_delivery_have_one_winner() -> None:
    store = MemorySessionStore()
    results = await asyncio.gather(*(store.claim_delivery("slack:T1:Ev1") for _ in range(20)))
    assert results.count(True) == 1


async def test_delivery_map_is_bounded() -> None:
    store = MemorySessionStore(max_deliveries=10)
    for i in range(50):
        assert await store.claim_delivery(f"id{i}") is True
    assert len(store._deliveries) == 10
    assert await store.claim_delivery("id49") is False


async def test_a_record_is_read_back_by_id_until_it_expires_or_is_deleted() -> None:
    clock = FakeClock()
    store = MemorySessionStore(clock=clock)
    await store.put_record("web_answer", "t1:u1", "m-1", {"content": "안녕하세요"}, 60)
    assert await store.get_record("web_answer", "t1:u1", "m-1") == {"content": "안녕하세요"}
    assert await store.get_record("web_answer", "t1:u2", "m-1") is None  # another tenant
    assert await store.get_record("web_answer", "t1:u1", "m-2") is None
    clock.now += 61
    assert await store.get_record("web_answer", "t1:u1", "m-1") is None
    await store.put_record("web_answer", "t1:u1", "m-3", {"content": "x"}, 60)
    assert await store.delete_record("web_answer", "t1:u1", "m-3") is True
    assert await store.get_record("web_answer", "t1:u1", "m-3") is None
