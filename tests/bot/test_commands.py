"""/forget, /reset and /submissions keep their promises, on every store (memory, Redis, Cluster).

Each test checks what is stored afterwards, not the reply text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bot.commands import CommandRouter
from bot.forms.builtin.intake import RecordSubmissionStore, SubmissionsCommand
from bot.manager import ConversationManager, TurnResult
from bot.notify import AdminNotices
from bot.sessions.base import SessionStore
from bot.sessions.index import StoredIndex
from bot.sessions.memory import MemorySessionStore
from bot.sessions.redis import RedisSessionStore
from bot.turn import SessionKey, SessionScope, Turn
from tests.bot.helpers import RecordingReply, book, make_manager
from tests.fakes.glm import FakeGlm

MINSU, ANN, BOSS, OTHER = "MINSU77", "ANN88", "BOSS99", "OTHER55"
GROUP, GROUP_B = "-1001", "-1002"
SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemorySessionStore()
        return
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        redis_store = RedisSessionStore.from_url(url, ttl_seconds=30 * 86_400)
    else:
        url = request.getfixturevalue("redis_cluster_url")
        redis_store = RedisSessionStore.from_url(url, cluster=True, ttl_seconds=30 * 86_400)
    await redis_store.ping()  # connected before use, as the app does
    yield redis_store
    await redis_store.close()


_open: list[ConversationManager] = []


@pytest.fixture(autouse=True)
async def _close_managers() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().glm.client.close()


def make(fake: FakeGlm, store: SessionStore, **config: Any) -> ConversationManager:
    manager = make_manager(fake.base_url, fake.api_key, store, **config)
    _open.append(manager)
    commands: CommandRouter = manager.commands
    commands.admin_ids = {"test": frozenset({BOSS})}
    submissions = RecordSubmissionStore(store, index=commands.index)
    command = SubmissionsCommand(submissions)
    commands.extra["submissions"] = command
    return manager


def msg(text: str, user: str, chat: str = "", **kw: Any) -> Turn:
    private = not chat
    return Turn(
        platform="test",
        chat_id=chat or user,
        user_id=user,
        text=text,
        is_private=private,
        **kw,
    )


async def say(manager: ConversationManager, turn: Turn) -> str:
    reply = RecordingReply()
    await manager.handle(turn, reply)
    return reply.final[1]


async def everything_stored(store: SessionStore) -> str:
    """Every key and value in the store, as one text (to look for a user's traces)."""
    if isinstance(store, MemorySessionStore):
        parts = [repr(store._sessions), repr(store._indexes), repr(store._records)]
        return "\n".join(parts)
    assert isinstance(store, RedisSessionStore)
    client = store.client
    parts = []
    async for raw in client.scan_iter(match="*", count=1000):
        key = raw if isinstance(raw, str) else raw.decode()
        kind = await client.type(key)
        if kind == "string":
            value: Any = await client.get(key)
        elif kind == "set":
            value = sorted(await client.smembers(key))
        elif kind == "zset":
            value = await client.zrange(key, 0, -1)
        else:
            value = kind
        parts.append(f"{key} = {value}")
    return "\n".join(parts)


# ---- /forget -----------------------------------------------------------------------------


async def test_forget_leaves_nothing_that_identifies_the_user(
    fake: FakeGlm, store: SessionStore
) -> None:
    manager = make(fake, store, scope=SessionScope.THREAD)
    await say(manager, msg("내 이름은 민수야 (private)", MINSU))
    await say(manager, msg("그룹에서 민수 말함", MINSU, GROUP, thread_id="t1"))
    await say(manager, msg("Ann in the same thread", ANN, GROUP, thread_id="t1"))
    await say(manager, msg("Ann own thread", ANN, GROUP, thread_id="t2"))
    await say(manager, msg("Ann privately", ANN))
    await book(store, manager.commands.index, MINSU, "김민수")
    await book(store, manager.commands.index, ANN, "Ann Lee")
    before = await everything_stored(store)
    assert MINSU in before and "김민수" in before

    reply = RecordingReply()
    assert await manager.handle(msg("/forget", MINSU), reply) is TurnResult.COMMAND

    after = await everything_stored(store)
    assert MINSU not in after
    assert "민수" not in after  # the shared thread he wrote in is dropped, so is his booking
    assert "Ann privately" in after and "Ann own thread" in after and "Ann Lee" in after
    # The reply says what was done: two conversations (one shared), one booking.
    assert "2" in reply.final[1] and "1" in reply.final[1]
    shared = await store.load(SessionKey("test", "", GROUP, "t1", ""))
    assert shared.history == []


async def test_forget_also_removes_form_state_and_is_limited_to_the_caller(
    fake: FakeGlm, store: SessionStore
) -> None:
    manager = make(fake, store)
    await say(manager, msg("hello", MINSU, GROUP))
    key = SessionKey("test", "", GROUP, "", MINSU)
    session = await store.load(key)
    session.form = {"name": "intake", "values": {"phone": "010-9999-8888"}}
    await store.save(session)
    await say(manager, msg("hello", OTHER, GROUP))
    await say(manager, msg("/forget", MINSU, GROUP))
    assert (await store.load(key)).form is None
    assert (await store.load(SessionKey("test", "", GROUP, "", OTHER))).history


# ---- /reset ------------------------------------------------------------------------------


async def test_reset_all_by_a_group_admin_resets_every_member_in_per_user_scope(
    fake: FakeGlm, store: SessionStore
) -> None:
    manager = make(fake, store)  # default scope: one session per user in a group

    async def group_admin(turn: Turn) -> bool:
        return turn.user_id == "GADMIN" and turn.chat_id == GROUP

    manager.commands.admin_checks["test"] = group_admin
    for user in (MINSU, ANN):
        await say(manager, msg(f"{user} says hi", user, GROUP))
        await say(manager, msg(f"{user} in B", user, GROUP_B))

    await say(manager, msg("/reset all", MINSU, GROUP))  # a member: refused, nothing deleted
    assert (await store.load(SessionKey("test", "", GROUP, "", ANN))).history

    await say(manager, msg("/reset all", "GADMIN", GROUP))
    for user in (MINSU, ANN):
        assert (await store.load(SessionKey("test", "", GROUP, "", user))).history == []
        # The admin of GROUP has no rights in GROUP_B.
        assert (await store.load(SessionKey("test", "", GROUP_B, "", user))).history
    await say(manager, msg(f"/reset {ANN}", "GADMIN", GROUP_B))
    assert (await store.load(SessionKey("test", "", GROUP_B, "", ANN))).history

    # The bot's configured admin may, anywhere; and only that user's session goes.
    await say(manager, msg(f"/reset {ANN}", BOSS, GROUP_B))
    assert (await store.load(SessionKey("test", "", GROUP_B, "", ANN))).history == []
    assert (await store.load(SessionKey("test", "", GROUP_B, "", MINSU))).history


async def test_own_reset_in_a_shared_thread_is_allowed_and_resets_that_thread(
    fake: FakeGlm, store: SessionStore
) -> None:
    manager = make(fake, store, scope=SessionScope.THREAD)
    await say(manager, msg("first", ANN, GROUP, thread_id="t1"))
    await say(manager, msg("other thread", ANN, GROUP, thread_id="t2"))
    await say(manager, msg("/reset", MINSU, GROUP, thread_id="t1"))
    assert (await store.load(SessionKey("test", "", GROUP, "t1", ""))).history == []
    assert (await store.load(SessionKey("test", "", GROUP, "t2", ""))).history


async def test_a_slash_reset_in_a_channel_resets_the_callers_conversations_there(
    fake: FakeGlm, store: SessionStore
) -> None:
    manager = make(fake, store, scope=SessionScope.USER_IN_THREAD)
    await say(manager, msg("a", MINSU, GROUP, thread_id="t1"))
    await say(manager, msg("b", MINSU, GROUP, thread_id="t2"))
    await say(manager, msg("c", ANN, GROUP, thread_id="t1"))
    await say(manager, msg("d", MINSU, GROUP_B, thread_id="t9"))
    # Slack sends a slash command without a thread, answered ephemerally.
    text = await say(manager, msg("/reset", MINSU, GROUP, ephemeral=True))
    assert "2" in text
    for thread in ("t1", "t2"):
        assert (await store.load(SessionKey("test", "", GROUP, thread, MINSU))).history == []
    assert (await store.load(SessionKey("test", "", GROUP, "t1", ANN))).history
    assert (await store.load(SessionKey("test", "", GROUP_B, "t9", MINSU))).history


# ---- /submissions ------------------------------------------------------------------------


async def test_submissions_are_for_the_bots_admins_in_private_and_their_tenant_only(
    fake: FakeGlm, store: SessionStore
) -> None:
    manager = make(fake, store)

    async def everyone_admins_a_group(turn: Turn) -> bool:
        return True  # a stranger who made his own group is its admin

    manager.commands.admin_checks["test"] = everyone_admins_a_group
    index = manager.commands.index
    await book(store, index, MINSU, "김민수")
    await book(store, index, ANN, "[click](https://evil.example) **Ann**", team="T2")

    stranger = await say(manager, msg("/submissions@bot", OTHER, "-999"))
    assert "김민수" not in stranger and "010" not in stranger
    in_group = await say(manager, msg("/submissions", BOSS, GROUP))
    assert "김민수" not in in_group and "010" not in in_group
    private = await say(manager, msg("/submissions", BOSS))
    assert "김민수" in private and "Ann" not in private  # the other tenant's stays hidden
    odd = await say(manager, msg("/submissions ²", BOSS))
    assert "/submissions" in odd and "김민수" not in odd
    other_tenant = await say(manager, msg("/submissions", BOSS, team_id="T2"))
    assert "`[click](https://evil.example) **Ann**`" in other_tenant  # shown as plain text


async def test_bookings_outlive_the_lru_and_expire_after_the_appointment() -> None:
    store = MemorySessionStore(max_sessions=1)
    index = StoredIndex(store, session_ttl_seconds=86_400)
    await book(store, index, MINSU, "김민수")
    for n in range(5):  # many other sessions push everything else out of the LRU
        from bot.sessions.base import Session

        await store.save(Session(key=str(SessionKey("test", "", str(n)))))
    assert [r["name"] for r in await store.recent_records("intake", "test:", 10)] == ["김민수"]


async def test_a_booking_is_kept_until_its_appointment_plus_grace(redis_url: str) -> None:
    store = RedisSessionStore.from_url(redis_url, ttl_seconds=86_400)
    try:
        notices = AdminNotices()
        told: list[tuple[str, str]] = []

        async def tell(team: str, text: str) -> None:
            told.append((team, text))

        notices.register("test", tell)
        submissions = RecordSubmissionStore(store, notices=notices)
        record = {"id": "1-x", "name": "민수", "phone": "010", "date": "2030-01-02"}
        record |= {"time": "10:00", "topic": "t", "lang": "ko"}
        await submissions.add("intake", record, msg("네", MINSU), 40 * 86_400)
        await notices.drain()
        client = store.client
        assert isinstance(client, Redis | RedisCluster)
        ttl = await client.ttl(store.record_key("intake", "test:", "1-x"))
        assert 39 * 86_400 < ttl <= 40 * 86_400  # not the session TTL (one day here)
        assert told and "`민수`" in told[0][1]
    finally:
        await store.close()


async def test_help_says_when_the_offline_model_answers(fake: FakeGlm) -> None:
    manager = make(fake, MemorySessionStore())
    online = await say(manager, msg("/help", MINSU))
    manager.commands.offline = True
    offline = await say(manager, msg("/help", MINSU))
    assert offline.startswith(online) and len(offline) > len(online)


async def test_sessions_stored_before_the_indexes_are_found_after_the_backfill(
    fake: FakeGlm, store: SessionStore
) -> None:
    from bot.sessions.base import Message, Session

    manager = make(fake, store)
    legacy = [SessionKey("test", "", MINSU, "", MINSU), SessionKey("test", "", GROUP, "", MINSU)]
    for key in legacy:  # saved by an older version: in no index
        await store.save(Session(key=str(key), history=[Message("user", "옛날 비밀")]))
    assert await manager.commands.index.backfill() == 2
    assert await manager.commands.index.backfill() == 0  # once per store
    await say(manager, msg("/forget", MINSU))
    assert "옛날 비밀" not in await everything_stored(store)


async def test_forget_also_drops_the_users_rate_limit_counter(fake: FakeGlm) -> None:
    from bot.ratelimit import MemoryRateLimiter

    store = MemorySessionStore()
    limiter = MemoryRateLimiter(20)
    manager = make_manager(fake.base_url, fake.api_key, store)
    _open.append(manager)
    manager = ConversationManager(
        store=store, glm=manager.glm, config=manager.config, rate_limiter=limiter
    )
    await say(manager, msg("hello", MINSU))
    assert len(limiter) == 1
    await say(manager, msg("/forget", MINSU))
    assert len(limiter) == 0


@pytest.mark.parametrize("scope", list(SessionScope))
async def test_own_reset_empties_the_conversation_the_next_message_continues(
    fake: FakeGlm, scope: SessionScope
) -> None:
    store = MemorySessionStore()
    manager = make(fake, store, scope=scope)
    where = {"thread_id": "t1"}
    await say(manager, msg("기억해: 사과", MINSU, GROUP, **where))
    await say(manager, msg("Ann too", ANN, GROUP, **where))
    await say(manager, msg("/reset", MINSU, GROUP, **where))
    nxt = msg("다음 메시지", MINSU, GROUP, **where)
    assert (await store.load(nxt.session_key(scope))).history == []
    # Ann's own conversation stays where it is not shared with him.
    ann = msg("x", ANN, GROUP, **where).session_key(scope)
    shared = scope in (SessionScope.CHAT, SessionScope.THREAD)
    assert ((await store.load(ann)).history == []) is shared


async def test_a_bare_command_answers_in_the_language_the_user_last_wrote(
    fake: FakeGlm,
) -> None:
    manager = make(fake, MemorySessionStore())
    korean_help = await say(manager, msg("/help", MINSU))
    await say(manager, msg("What can you do?", MINSU))
    english_help = await say(manager, msg("/help", MINSU))
    assert korean_help != english_help
    assert english_help.isascii() or "Hi" in english_help


async def test_memory_shows_what_is_kept_and_reset_clears_it(fake: FakeGlm) -> None:
    store = MemorySessionStore()
    manager = make(fake, store)
    assert "nothing" in await say(manager, msg("/memory", MINSU, language="en"))
    await say(manager, msg("My name is Minsu", MINSU))
    session = await store.load(SessionKey("test", "", MINSU, "", MINSU))
    session.summary = "The user is Minsu from Gangneung."
    await store.save(session)
    shown = await say(manager, msg("/memory", MINSU))
    assert "2 message" in shown and "Minsu from Gangneung" in shown
    await say(manager, msg("/reset", MINSU))
    assert "nothing" in await say(manager, msg("/memory", MINSU, language="en"))
