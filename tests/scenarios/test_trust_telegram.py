"""Privacy and authorisation, end to end: the real bot process, the fake Bot API, real Redis.

What each command promises is checked in Redis afterwards, not in the reply text.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import redis

from bot.sessions.index import StoredIndex
from bot.sessions.redis import RedisSessionStore
from tests.bot.helpers import book
from tests.fakes.glm import FakeGlm
from tests.fakes.telegram import FakeTelegram
from tests.scenarios.test_telegram import ANN, BOSS, GROUP, JI, MIN, answered, glm, running, tg

__all__ = ["glm", "tg"]  # the fixtures, shared with the Telegram scenarios

STRANGER = 555
HIS_GROUP = -1009999999999
SEOUL = ZoneInfo("Asia/Seoul")


def dump(url: str) -> str:
    """Every key and value in Redis, as one text."""
    client = redis.Redis.from_url(url, decode_responses=True)
    parts = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == "string":
                value: object = client.get(key)
            elif kind == "set":
                value = sorted(client.smembers(key))
            elif kind == "zset":
                value = client.zrange(key, 0, -1)
            else:
                value = kind
            parts.append(f"{key} = {value}")
    finally:
        client.close()
    return "\n".join(parts)


async def seed_booking(url: str, user: int, name: str, *, platform: str = "telegram") -> None:
    """A booking as the intake form stores it (the form itself has its own tests)."""
    store = RedisSessionStore.from_url(url, ttl_seconds=30 * 86_400)
    try:
        await book(store, StoredIndex(store, session_ttl_seconds=30 * 86_400), user, name, platform)
    finally:
        await store.close()


async def test_submissions_never_leak_to_a_group_or_a_stranger(
    tg: FakeTelegram, glm: FakeGlm, redis_url: str
) -> None:
    stranger = tg.user(STRANGER, "Mallory", language_code="en")
    tg.private_chat(stranger)
    tg.group(HIS_GROUP, "Mallory's group", members=[], admins=[stranger])
    await seed_booking(redis_url, MIN, "[김민수](https://evil.example) **VIP**")
    await seed_booking(redis_url, 9, "Slack Person", platform="slack")
    env = {"REDIS_URL": redis_url, "FORMS_ENABLED": "true", "TELEGRAM_ADMIN_IDS": str(BOSS)}
    async with running(tg, glm, **env):
        # The stranger administers his own group: he is no admin of this bot.
        tg.say(tg.chats[HIS_GROUP], stranger, "/submissions@glm_test_bot")
        await tg.wait_for(lambda f: bool(f.bot_texts(HIS_GROUP)), within=20)
        tg.say(tg.chats[STRANGER], stranger, "/submissions")
        await tg.wait_for(lambda f: bool(f.bot_texts(STRANGER)), within=20)
        # The bot's own admin, in a group: not there, where everyone reads.
        tg.say(tg.chats[GROUP], tg.users[BOSS], "/submissions@glm_test_bot")
        await tg.wait_for(lambda f: bool(f.bot_texts(GROUP)), within=20)
        # In private: the bookings of this bot's tenant, user text shown as plain text.
        tg.say(tg.chats[BOSS], tg.users[BOSS], "/submissions")
        await tg.wait_for(lambda f: bool(f.bot_texts(BOSS)), within=20)
        tg.say(tg.chats[BOSS], tg.users[BOSS], "/submissions ²")
        await tg.wait_for(lambda f: len(f.bot_texts(BOSS)) == 2, within=20)

    for chat in (HIS_GROUP, STRANGER, GROUP):
        (text,) = tg.bot_texts(chat)
        assert "김민수" not in text and "010" not in text, text
    listing, usage = tg.bot_texts(BOSS)
    assert "[김민수](https://evil.example) **VIP**" in listing  # shown verbatim
    assert "Slack Person" not in listing  # another tenant's booking
    message = tg.bot_messages(BOSS)[0]
    kinds = {e["type"] for e in message.entities or []}
    assert "text_link" not in kinds and "bold" not in kinds and "url" not in kinds
    assert "/submissions" in usage and "김민수" not in usage


async def test_forget_leaves_no_trace_of_the_user_in_redis(
    tg: FakeTelegram, glm: FakeGlm, redis_url: str
) -> None:
    await seed_booking(redis_url, MIN, "김민수")
    async with running(tg, glm, REDIS_URL=redis_url, GROUP_SESSION_SCOPE="chat"):
        tg.say(tg.chats[MIN], tg.users[MIN], "내 비밀은 고양이야")
        await answered(tg, MIN, "echo: 내 비밀은 고양이야")
        tg.say(tg.chats[GROUP], tg.users[MIN], "@glm_test_bot 그룹 비밀은 강아지야")
        await answered(tg, GROUP, "echo: 그룹 비밀은 강아지야")
        tg.say(tg.chats[ANN], tg.users[ANN], "Ann's note: tomato")
        await answered(tg, ANN, "echo: Ann's note: tomato")
        assert "고양이" in dump(redis_url) and "김민수" in dump(redis_url)
        tg.say(tg.chats[MIN], tg.users[MIN], "/forget")
        await tg.wait_for(lambda f: len(f.bot_texts(MIN)) == 2, within=20)

    stored = dump(redis_url)
    for trace in ("고양이", "강아지", "김민수", f":{MIN}", f"|{MIN}", f'"{MIN}"'):
        assert trace not in stored, trace
    assert "tomato" in stored  # another user's memory stays
    reply = tg.bot_texts(MIN)[1]
    assert "1" in reply and "2" in reply  # two conversations (one shared), one booking


async def test_reset_all_by_a_group_admin_resets_every_member(
    tg: FakeTelegram, glm: FakeGlm, redis_url: str
) -> None:
    group = tg.chats[GROUP]
    async with running(tg, glm, REDIS_URL=redis_url):  # default scope: per user in groups
        for user, text in ((MIN, "감자"), (ANN, "tomato"), (JI, "오이")):
            tg.say(group, tg.users[user], f"@glm_test_bot {text}")
            await answered(tg, GROUP, f"echo: {text}")
        tg.say(group, tg.users[MIN], "/reset all")  # a member: refused
        await tg.wait_for(lambda f: len(f.bot_texts(GROUP)) == 4, within=20)
        assert "tomato" in dump(redis_url)
        tg.say(group, tg.users[BOSS], "/reset@glm_test_bot all")  # the group's admin
        await tg.wait_for(lambda f: len(f.bot_texts(GROUP)) == 5, within=20)

    stored = dump(redis_url)
    for text in ("감자", "tomato", "오이"):
        assert text not in stored


async def test_a_new_booking_is_stored_for_its_appointment_and_told_to_the_admins(
    tg: FakeTelegram, glm: FakeGlm, redis_url: str
) -> None:
    steps = [
        "상담 예약하고 싶어요",
        "홍길동",
        "010-1234-5678",
        "내일",
        "오후 4시",
        "이사 문제",
        "네",
    ]
    env = {"REDIS_URL": redis_url, "FORMS_ENABLED": "true", "TELEGRAM_ADMIN_IDS": str(BOSS)}
    async with running(tg, glm, **env):
        for n, text in enumerate(steps, 1):
            tg.say(tg.chats[MIN], tg.users[MIN], text)
            await tg.wait_for(lambda f, n=n: len(f.bot_texts(MIN)) == n, within=30)
        await tg.wait_for(lambda f: bool(f.bot_texts(BOSS)), within=15)

    assert tg.bot_texts(MIN)[-1].startswith("상담 예약을 접수했어요.")
    (notice,) = tg.bot_texts(BOSS)
    assert notice.startswith("새 상담 예약:") and "홍길동" in notice and "010-1234-5678" in notice
    assert tg.bot_texts(ANN) == []
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        (key,) = [k for k in client.scan_iter(match="bot:record:*")]
        # Tomorrow 16:00 plus the 30-day grace period: well beyond a day, at most 32 days.
        assert 30 * 86_400 < client.ttl(key) <= 32 * 86_400
    finally:
        client.close()
