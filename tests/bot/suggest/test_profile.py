"""Interest profiles (bot/suggest/profile.py): decayed scores, and the stores in memory, on a
real redis-server and on a real 3-master Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.sessions.memory import MemorySessionStore
from bot.sessions.redis import RedisSessionStore, make_client
from bot.suggest.profile import (
    MAX_ENTITIES,
    MAX_SEEN,
    MAX_TOPICS,
    InterestProfile,
    MemoryProfileStore,
    Offer,
    ProfileKey,
    ProfileStore,
    RedisProfileStore,
    build_profile_store,
)
from tests.bot.helpers import turn

DAY = 86_400.0
WEEK = 7 * DAY
NOW = 1_780_000_000.0
ALICE = ProfileKey("telegram", "", "1")
BOB = ProfileKey("telegram", "", "2")


def test_a_topic_grows_once_a_turn_and_halves_every_half_life() -> None:
    profile = InterestProfile()
    profile.add(["python", "python", "performance"], NOW, WEEK)
    assert profile.score("python", NOW, WEEK) == pytest.approx(1.0)  # once for the turn
    profile.add(["python"], NOW + DAY, WEEK)
    assert profile.score("python", NOW + DAY, WEEK) == pytest.approx(1 + 0.5 ** (1 / 7))
    assert profile.score("python", NOW + DAY + WEEK, WEEK) == pytest.approx(
        (1 + 0.5 ** (1 / 7)) / 2
    )
    assert profile.topics["python"].mentions == 2
    assert profile.score("rust", NOW, WEEK) == 0.0
    assert [t for t, _ in profile.ranked(NOW + DAY, WEEK)] == ["python", "performance"]


def test_the_weakest_topics_go_past_the_cap_and_the_ranking_is_deterministic() -> None:
    profile = InterestProfile()
    for i in range(MAX_TOPICS + 5):
        profile.add([f"t{i:02d}"], NOW + i, WEEK)  # later ones decayed less: stronger
    assert len(profile.topics) == MAX_TOPICS
    assert "t00" not in profile.topics and f"t{MAX_TOPICS + 4:02d}" in profile.topics
    tied = InterestProfile()
    tied.add(["b", "a"], NOW, WEEK)
    assert [t for t, _ in tied.ranked(NOW, WEEK)] == ["a", "b"]


def test_entities_and_seen_items_keep_the_newest() -> None:
    profile = InterestProfile()
    profile.note_entities([f"e{i}" for i in range(MAX_ENTITIES + 3)], NOW)
    profile.note_entities(["e0"], NOW + 1)  # seen again: now the newest
    assert len(profile.entities) == MAX_ENTITIES and "e0" in profile.entities
    profile.note_seen(f"i{i}" for i in range(MAX_SEEN + 10))
    profile.note_seen(["i15"])
    assert len(profile.seen) == MAX_SEEN and profile.seen[-1] == "i15"
    assert "i0" not in profile.seen


def test_a_profile_round_trips_through_json_and_an_unreadable_one_starts_afresh() -> None:
    profile = InterestProfile(enabled=False)
    profile.add(["python"], NOW, WEEK)
    profile.note_entities(["파이썬"], NOW)
    profile.offers["python"] = Offer(NOW, "declined", NOW + 5)
    profile.note_seen(["py-perf"])
    again = InterestProfile.from_dict(profile.to_dict())
    assert again.to_dict() == profile.to_dict()
    assert again.offers["python"].answer == "declined" and not again.enabled
    for broken in (None, [], {"v": 99}, {"v": 1, "topics": {"python": ["x"]}}):
        assert InterestProfile.from_dict(broken).to_dict() == InterestProfile().to_dict()


def test_the_key_is_the_user_of_a_platform_and_workspace_not_the_chat() -> None:
    in_private = turn("hi", user="7", chat="7")
    in_group = turn("hi", user="7", chat="-100", is_private=False)
    assert ProfileKey.of(in_private) == ProfileKey.of(in_group) == ProfileKey("test", "", "7")


@pytest.fixture(params=["memory", "redis", "cluster"])
async def profiles(request: pytest.FixtureRequest) -> AsyncIterator[ProfileStore]:
    if request.param == "memory":
        yield MemoryProfileStore()
        return
    cluster = request.param == "cluster"
    url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_url")
    client = make_client(url, cluster=cluster)
    yield RedisProfileStore(client, prefix=f"t{id(client)}")
    await client.aclose()


async def test_a_store_saves_loads_and_deletes_one_users_profile(profiles: ProfileStore) -> None:
    assert await profiles.load(ALICE) is None
    profile = InterestProfile()
    profile.add(["python"], NOW, WEEK)
    await profiles.save(ALICE, profile, 60)
    loaded = await profiles.load(ALICE)
    assert loaded is not None and loaded.to_dict() == profile.to_dict()
    assert await profiles.load(BOB) is None
    assert await profiles.delete(ALICE) is True
    assert await profiles.load(ALICE) is None
    assert await profiles.delete(ALICE) is False


async def test_on_redis_a_profile_has_the_ttl_and_one_hash_tag_per_user(redis_url: str) -> None:
    client = make_client(redis_url, cluster=False)
    try:
        store = RedisProfileStore(client, prefix="ttl")
        await store.save(ProfileKey("slack", "T{1}", "U1"), InterestProfile(), 120)
        key = store.key(ProfileKey("slack", "T{1}", "U1"))
        assert key == "ttl:interests:{slack:T%7B1%7D:U1}"  # braces escaped: one slot per user
        assert 0 < await client.ttl(key) <= 120
    finally:
        await client.aclose()


async def test_memory_profiles_expire_and_the_least_recent_go_past_the_bound() -> None:
    clock = [NOW]
    store = MemoryProfileStore(max_profiles=2, clock=lambda: clock[0])
    await store.save(ALICE, InterestProfile(), 10)
    clock[0] += 11
    assert await store.load(ALICE) is None
    for user in ("a", "b", "c"):
        await store.save(ProfileKey("t", "", user), InterestProfile(), 100)
    assert await store.load(ProfileKey("t", "", "a")) is None
    assert await store.load(ProfileKey("t", "", "c")) is not None


async def test_the_profile_store_follows_the_session_store(redis_url: str) -> None:
    assert isinstance(build_profile_store(MemorySessionStore()), MemoryProfileStore)
    store = RedisSessionStore.from_url(redis_url, ttl_seconds=60)
    try:
        assert isinstance(build_profile_store(store), RedisProfileStore)
    finally:
        await store.close()
