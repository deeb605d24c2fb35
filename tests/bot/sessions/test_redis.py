"""RedisSessionStore against a real redis-server: documents, TTL, locks, claims, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis

from bot.sessions import (
    LockTimeout,
    Message,
    RedisSessionStore,
    Session,
    SessionStore,
    SessionStoreError,
)
from bot.turn import SessionKey
from tests.redis_servers import RedisServer

DAYS_30 = 30 * 86_400
ALICE = SessionKey("telegram", "", "100", "", "1")
BOB = SessionKey("telegram", "", "100", "", "2")
SLACK_THREAD = SessionKey("slack", "T01", "C02", "1712345678.123456", "")
# Keys whose strings try to break out of the hash tag or mimic another session's key.
HOSTILE = [
    SessionKey("telegram", "", "100}", "", "1"),
    SessionKey("telegram", "", "{100", "", "1"),
    SessionKey("telegram", "", "100", "", "1}:x"),
    SessionKey("telegram", "", "}bot:session:{telegram", "", "1"),
    SessionKey("telegram", "", "%7D", "", "1"),
    SessionKey("telegram", "", "*", "", "*"),
]


def session_for(key: SessionKey, *texts: str) -> Session:
    return Session(key=str(key), history=[Message("user", t) for t in texts])


def contents(session: Session) -> list[str]:
    return [m.content for m in session.history]


def new_store(
    url: str,
    *,
    cluster: bool = False,
    lock_timeout: float = 60.0,
    lock_wait: float = 30.0,
    renew_lock: bool = True,
) -> RedisSessionStore:
    return RedisSessionStore.from_url(
        url,
        cluster=cluster,
        ttl_seconds=DAYS_30,
        lock_timeout=lock_timeout,
        lock_wait=lock_wait,
        renew_lock=renew_lock,
    )


def assert_serialised(events: list[str]) -> None:
    """Every 'enter' is followed by the 'exit' of the same turn: no two turns overlapped."""
    assert len(events) % 2 == 0 and events
    for i in range(0, len(events), 2):
        assert events[i].startswith("enter "), events
        assert events[i + 1] == "exit " + events[i].removeprefix("enter "), events


def recording_turn(
    events: list[str], hold: float = 0.02
) -> Callable[[SessionStore, SessionKey, str], Awaitable[None]]:
    async def turn(store: SessionStore, key: SessionKey, name: str) -> None:
        async with store.lock(key):
            events.append(f"enter {name}")
            await asyncio.sleep(hold)
            events.append(f"exit {name}")

    return turn


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisSessionStore]:
    store = new_store(redis_url)
    yield store
    await store.close()


@pytest.fixture
async def other_store(redis_url: str) -> AsyncIterator[RedisSessionStore]:
    """A second store with its own client: what another bot process would have."""
    store = new_store(redis_url)
    yield store
    await store.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client to look at what the store wrote."""
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


def test_it_is_a_session_store(store: RedisSessionStore) -> None:
    assert isinstance(store, SessionStore)


async def test_round_trip_keeps_korean_text_and_every_field(store: RedisSessionStore) -> None:
    session = session_for(ALICE, "안녕하세요, 오늘 서울 날씨 어때요?")
    session.history.append(Message("assistant", "서울은 맑아요 ☀️"))
    session.form = {"name": "booking", "slots": {"도시": "부산"}}
    session.state = {"intent": "weather", "slots": {"city": "서울"}}
    session.summary = "사용자는 날씨를 물었다"
    session.meta = {"lang": "ko", "turns": 2}
    await store.save(session)
    assert await store.load(ALICE) == session


async def test_document_is_one_readable_json_value_under_the_documented_key(
    store: RedisSessionStore, raw: redis.Redis
) -> None:
    await store.save(session_for(ALICE, "안녕"))
    assert raw.keys("*") == ["bot:session:{telegram:-:100:-:1}"]
    assert "안녕" in str(raw.get("bot:session:{telegram:-:100:-:1}"))


async def test_absent_key_loads_an_empty_session_and_stores_nothing(
    store: RedisSessionStore, raw: redis.Redis
) -> None:
    loaded = await store.load(ALICE)
    assert loaded.key == str(ALICE)
    assert loaded.history == [] and loaded.form is None and loaded.summary == ""
    assert raw.dbsize() == 0


async def test_delete_forgets_the_session(store: RedisSessionStore) -> None:
    await store.save(session_for(ALICE, "hi"))
    assert await store.delete(ALICE) is True
    assert (await store.load(ALICE)).history == []
    assert await store.delete(ALICE) is False


async def test_mutating_a_loaded_session_changes_nothing_until_save(
    store: RedisSessionStore,
) -> None:
    await store.save(session_for(ALICE, "first"))
    loaded = await store.load(ALICE)
    loaded.history.append(Message("assistant", "unsaved"))
    assert contents(await store.load(ALICE)) == ["first"]
    await store.save(loaded)
    assert contents(await store.load(ALICE)) == ["first", "unsaved"]


async def test_two_sessions_never_see_each_other(store: RedisSessionStore) -> None:
    await store.save(session_for(ALICE, "alice secret"))
    assert (await store.load(BOB)).history == []
    await store.save(session_for(BOB, "bob secret"))
    await store.delete(BOB)
    assert contents(await store.load(ALICE)) == ["alice secret"]


async def test_hostile_key_strings_cannot_reach_another_sessions_document(
    store: RedisSessionStore,
) -> None:
    await store.save(session_for(ALICE, "victim"))
    for key in HOSTILE:
        assert (await store.load(key)).history == [], key
        await store.save(session_for(key, f"attacker {key}"))
    for key in HOSTILE:
        assert await store.delete(key) is True
    assert contents(await store.load(ALICE)) == ["victim"]
    assert [k async for k in store.keys()] == [str(ALICE)]


async def test_keys_lists_every_session_with_its_original_key(store: RedisSessionStore) -> None:
    keys = [ALICE, BOB, SLACK_THREAD, *HOSTILE]
    for key in keys:
        await store.save(session_for(key, "x"))
    await store.claim_delivery("telegram::1")  # not a session
    async with store.lock(ALICE):  # nor is a lock
        found = [k async for k in store.keys()]
    assert sorted(found) == sorted(str(k) for k in keys)


async def test_save_sets_a_30_day_ttl_and_every_save_refreshes_it(
    store: RedisSessionStore, raw: redis.Redis
) -> None:
    name = store.session_key(ALICE)
    await store.save(session_for(ALICE, "one"))
    assert DAYS_30 - 60 <= raw.ttl(name) <= DAYS_30
    raw.expire(name, 100)  # as if most of the 30 days had passed
    await store.save(session_for(ALICE, "one", "two"))
    assert DAYS_30 - 60 <= raw.ttl(name) <= DAYS_30


async def test_unreadable_document_is_a_store_error(
    store: RedisSessionStore, raw: redis.Redis
) -> None:
    raw.set(store.session_key(ALICE), "{not json")
    with pytest.raises(SessionStoreError):
        await store.load(ALICE)


async def test_turns_of_one_session_are_serialised(store: RedisSessionStore) -> None:
    events: list[str] = []
    turn = recording_turn(events)
    await asyncio.gather(*(turn(store, ALICE, str(i)) for i in range(4)))
    assert_serialised(events)


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

    await asyncio.gather(turn(store, ALICE), turn(store, BOB), turn(other_store, SLACK_THREAD))
    assert both_inside.is_set()


async def test_lock_is_released_after_the_turn_even_when_it_fails(
    store: RedisSessionStore, raw: redis.Redis
) -> None:
    with pytest.raises(RuntimeError):
        async with store.lock(ALICE):
            assert raw.pttl(store.lock_key(ALICE)) > 0  # held in Redis, with an expiry
            raise RuntimeError("turn failed")
    assert raw.exists(store.lock_key(ALICE)) == 0


async def test_lock_wait_timeout_raises_lock_timeout(
    redis_url: str, other_store: RedisSessionStore
) -> None:
    impatient = new_store(redis_url, lock_wait=0.2)
    try:
        async with other_store.lock(ALICE):
            started = time.monotonic()
            with pytest.raises(LockTimeout):
                async with impatient.lock(ALICE):
                    pass
            assert 0.15 < time.monotonic() - started < 1.5
        async with impatient.lock(ALICE):  # free again once the holder left
            pass
    finally:
        await impatient.close()


async def test_holder_whose_lock_expired_does_not_release_the_new_owners_lock(
    redis_url: str, raw: redis.Redis
) -> None:
    slow = new_store(redis_url, lock_timeout=0.1, renew_lock=False)  # a hung holder
    fast = new_store(redis_url, lock_wait=2.0)
    third = new_store(redis_url, lock_wait=0.1)
    try:
        slow_holds = asyncio.Event()
        new_owner_holds = asyncio.Event()

        async def slow_turn() -> None:
            async with slow.lock(ALICE):
                slow_holds.set()
                await asyncio.wait_for(new_owner_holds.wait(), 3)  # outlives its 0.1 s lock

        async def new_owner() -> None:
            await slow_holds.wait()
            async with fast.lock(ALICE):  # gets in once the slow turn's lock expired
                token = raw.get(fast.lock_key(ALICE))
                new_owner_holds.set()
                await asyncio.sleep(0.05)  # the slow turn exits and tries to release
                assert raw.get(fast.lock_key(ALICE)) == token
                with pytest.raises(LockTimeout):
                    async with third.lock(ALICE):
                        pass

        await asyncio.gather(slow_turn(), new_owner())
        assert raw.exists(fast.lock_key(ALICE)) == 0
    finally:
        for s in (slow, fast, third):
            await s.close()


async def test_a_long_turn_keeps_its_lock_by_renewing_it(redis_url: str, raw: redis.Redis) -> None:
    holder = new_store(redis_url, lock_timeout=0.3)
    impatient = new_store(redis_url, lock_wait=0.1)
    try:
        async with holder.lock(ALICE):
            for _ in range(4):  # 1.2 s: four lifetimes of a lock that was never renewed
                await asyncio.sleep(0.3)
                assert 0 < raw.pttl(holder.lock_key(ALICE)) <= 300
                with pytest.raises(LockTimeout):
                    async with impatient.lock(ALICE):
                        pass
        assert raw.exists(holder.lock_key(ALICE)) == 0
        async with impatient.lock(ALICE):
            pass
    finally:
        await holder.close()
        await impatient.close()


async def test_renewal_stops_when_the_lock_was_taken_over(
    redis_url: str, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    holder = new_store(redis_url, lock_timeout=0.3)
    try:
        async with holder.lock(ALICE):
            raw.set(holder.lock_key(ALICE), "someone-else", px=5000)  # e.g. the loop hung
            await asyncio.sleep(0.25)
            assert raw.get(holder.lock_key(ALICE)) == "someone-else"
        assert raw.get(holder.lock_key(ALICE)) == "someone-else"  # not released either
        assert "was lost while its turn ran" in caplog.text
    finally:
        await holder.close()


async def test_a_turn_that_lost_its_lock_cannot_overwrite_the_session(
    store: RedisSessionStore, raw: redis.Redis
) -> None:
    await store.save(session_for(ALICE, "첫 질문"))  # outside any lock: a plain write
    async with store.lock(ALICE):
        mine = await store.load(ALICE)
        mine.history.append(Message("user", "내 턴"))
        await store.save(mine)  # still the holder: saved
        raw.set(store.lock_key(ALICE), "next-turn", px=5000)  # expired and taken meanwhile
        mine.history.append(Message("assistant", "늦은 답"))
        with pytest.raises(SessionStoreError, match="not saved"):
            await store.save(mine)
    assert contents(await store.load(ALICE)) == ["첫 질문", "내 턴"]


async def test_cancelled_waiters_leave_the_lock_usable(
    store: RedisSessionStore, other_store: RedisSessionStore, raw: redis.Redis
) -> None:
    async with store.lock(ALICE):
        # One waiter queued in this process, one polling Redis from the other process.
        waiters = [asyncio.create_task(s.lock(ALICE).__aenter__()) for s in (store, other_store)]
        await asyncio.sleep(0.05)
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with pytest.raises(asyncio.CancelledError):
                await waiter
    assert raw.exists(store.lock_key(ALICE)) == 0
    async with asyncio.timeout(1):
        async with other_store.lock(ALICE):
            pass
    assert len(store._local) == len(other_store._local) == 0  # no per-key locks left behind


async def test_claim_delivery_first_true_then_false_across_processes(
    store: RedisSessionStore, other_store: RedisSessionStore, raw: redis.Redis
) -> None:
    assert await store.claim_delivery("telegram::42", ttl_seconds=600) is True
    assert await store.claim_delivery("telegram::42", ttl_seconds=600) is False
    assert await other_store.claim_delivery("telegram::42", ttl_seconds=600) is False
    assert await other_store.claim_delivery("telegram::43", ttl_seconds=600) is True
    assert 540 <= raw.ttl("bot:delivery:telegram::42") <= 600


async def test_concurrent_claims_of_one_delivery_have_exactly_one_winner(
    store: RedisSessionStore, other_store: RedisSessionStore
) -> None:
    results = await asyncio.gather(
        *(s.claim_delivery("slack:T01:Ev123") for s in [store, other_store] * 10)
    )
    assert len(results) == 20 and results.count(True) == 1


async def test_redis_down_fails_fast_and_the_same_store_recovers(
    redis_server: RedisServer,
) -> None:
    redis_server.start()
    password = "s3cret-Pa55-word"
    with redis_server.client() as admin:
        admin.acl_setuser(
            "botuser",
            enabled=True,
            passwords=[f"+{password}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
    url = f"redis://botuser:{password}@127.0.0.1:{redis_server.port}/0"
    store = new_store(url)
    try:
        await store.save(session_for(ALICE, "before the outage"))  # authenticated and working
        redis_server.stop()
        for attempt in (
            lambda: store.load(ALICE),
            lambda: store.save(session_for(ALICE, "lost")),
            lambda: store.claim_delivery("telegram::1"),
            store.ping,
        ):
            started = time.monotonic()
            with pytest.raises(SessionStoreError) as caught:
                await attempt()
            assert time.monotonic() - started < 3
            assert password not in str(caught.value)
            assert password not in repr(caught.value.__cause__)
        started = time.monotonic()
        with pytest.raises(SessionStoreError) as caught:
            async with store.lock(ALICE):
                pass
        assert time.monotonic() - started < 3
        assert password not in str(caught.value)

        redis_server.start()  # empty: --save "" means the data and the ACL user are gone
        with redis_server.client() as admin:
            admin.acl_setuser(
                "botuser",
                enabled=True,
                passwords=[f"+{password}"],
                keys=["*"],
                channels=["*"],
                commands=["+@all"],
            )
        # The very first call after the restart works: no rebuild, no retry by the caller.
        assert (await store.load(ALICE)).history == []
        await store.save(session_for(ALICE, "after the outage"))
        async with store.lock(ALICE):
            assert contents(await store.load(ALICE)) == ["after the outage"]
        await store.ping()
    finally:
        await store.close()
        redis_server.start()
        with redis_server.client() as admin:
            admin.acl_deluser("botuser")


async def test_wrong_password_is_a_store_error_that_does_not_show_it(redis_url: str) -> None:
    password = "wrong-Pa55-word-123"
    url = redis_url.replace("redis://", f"redis://nobody:{password}@")
    store = new_store(url)
    try:
        with pytest.raises(SessionStoreError) as caught:
            await store.load(ALICE)
        assert password not in str(caught.value)
        assert password not in repr(caught.value.__cause__)
    finally:
        await store.close()


def test_bad_url_is_a_store_error_that_does_not_show_the_password() -> None:
    with pytest.raises(SessionStoreError) as caught:
        new_store("redis://user:Hidden-Pa55@127.0.0.1:notaport/0")
    assert "Hidden-Pa55" not in str(caught.value)


async def test_a_record_is_read_back_by_id_from_any_process_and_expires(
    store: RedisSessionStore, other_store: RedisSessionStore, raw: redis.Redis
) -> None:
    await store.put_record("web_answer", "t1:u1", "m-1", {"content": "안녕하세요"}, 60)
    assert await other_store.get_record("web_answer", "t1:u1", "m-1") == {"content": "안녕하세요"}
    assert await other_store.get_record("web_answer", "t1:u2", "m-1") is None
    assert 0 < raw.ttl(store.record_key("web_answer", "t1:u1", "m-1")) <= 60
    assert await store.delete_record("web_answer", "t1:u1", "m-1") is True
    assert await other_store.get_record("web_answer", "t1:u1", "m-1") is None
