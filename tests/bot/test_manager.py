"""ConversationManager end to end against the fake GLM server, with the in-memory store."""

from __future__ import annotations

import logging

import pytest

from bot.glm.breaker import CircuitBreaker
from bot.manager import ConversationManager, TurnResult
from bot.sessions.base import SessionStoreError
from bot.sessions.memory import MemorySessionStore
from bot.turn import SessionKey
from tests.bot.helpers import RecordingReply, make_manager, turn
from tests.fakes.glm import Drop, Error, FakeGlm, Reply, Sensitive, Stall


async def test_answer_is_streamed_then_finished_and_remembered(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    # Pieces apart in time reach the reply one by one (pieces read together arrive as one).
    fake.enqueue(Reply("서울은 맑아요.", chunks=["서울은 ", "맑아요."], delay=0.05))
    reply = RecordingReply()
    result = await manager.handle(turn("서울 날씨 알려줘"), reply)
    assert result is TurnResult.ANSWERED
    assert reply.events == [
        ("start", ""),
        ("append", "서울은 "),
        ("append", "맑아요."),
        ("finish", "서울은 맑아요."),
    ]
    session = await store.load(turn("x").session_key())
    assert [(m.role, m.content) for m in session.history] == [
        ("user", "서울 날씨 알려줘"),
        ("assistant", "서울은 맑아요."),
    ]


async def test_second_request_carries_the_first_exchange(
    fake: FakeGlm, manager: ConversationManager
) -> None:
    fake.enqueue(Reply("서울은 맑아요."), Reply("부산은 흐려요."))
    await manager.handle(turn("서울 날씨 알려줘"), RecordingReply())
    await manager.handle(turn("부산은?"), RecordingReply())
    messages = fake.requests[1].json["messages"]
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "서울 날씨 알려줘"),
        ("assistant", "서울은 맑아요."),
        ("user", "부산은?"),
    ]
    assert messages[0]["role"] == "system"
    assert fake.requests[1].json["user_id"] == str(turn("x").session_key())


async def test_two_users_never_see_each_others_history(
    fake: FakeGlm, manager: ConversationManager
) -> None:
    await manager.handle(turn("나는 민수야", user="1", chat="1"), RecordingReply())
    await manager.handle(turn("what is my name?", user="2", chat="2"), RecordingReply())
    second = fake.requests[1].json["messages"]
    assert all("민수" not in str(m["content"]) for m in second)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_empty_message_gets_a_hint_and_no_model_call(
    fake: FakeGlm, manager: ConversationManager, text: str
) -> None:
    reply = RecordingReply()
    assert await manager.handle(turn(text), reply) is TurnResult.EMPTY
    assert reply.final[0] == "finish" and reply.final[1]
    assert fake.requests == []


async def test_over_long_message_is_refused_and_nothing_is_sent(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    reply = RecordingReply()
    result = await manager.handle(turn("가" * 50_000), reply)
    assert result is TurnResult.TOO_LONG
    assert "50,000" in reply.final[1] and "4,000" in reply.final[1]
    assert fake.requests == []
    assert (await store.load(turn("x").session_key())).history == []


async def test_english_message_gets_english_notices(
    fake: FakeGlm, manager: ConversationManager
) -> None:
    reply = RecordingReply()
    await manager.handle(turn("a" * 4001), reply)
    assert "too long" in reply.final[1]


async def test_redelivered_message_is_answered_once(
    fake: FakeGlm, manager: ConversationManager
) -> None:
    first, second = RecordingReply(), RecordingReply()
    assert await manager.handle(turn("안녕", delivery_id="42"), first) is TurnResult.ANSWERED
    assert await manager.handle(turn("안녕", delivery_id="42"), second) is TurnResult.DUPLICATE
    assert second.events == []
    assert len(fake.requests) == 1


async def test_invalid_api_key_says_unavailable_and_logs_without_key(
    fake: FakeGlm, store: MemorySessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-wrong-key-1234567890"
    manager = make_manager(fake.base_url, secret, store)
    reply = RecordingReply()
    with caplog.at_level(logging.INFO):
        result = await manager.handle(turn("안녕"), reply)
    await manager.glm.client.close()
    assert result is TurnResult.FALLBACK
    assert reply.final[0] == "fail" and "사용할 수 없어요" in reply.final[1]
    assert "key was rejected" in caplog.text
    assert secret not in caplog.text and secret not in reply.final[1]


async def test_cut_stream_keeps_text_and_adds_a_notice(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    fake.enqueue(Drop("여기까지는 "))
    reply = RecordingReply()
    result = await manager.handle(turn("긴 답 부탁해"), reply)
    assert result is TurnResult.PARTIAL
    kind, text = reply.final
    assert kind == "finish" and text.startswith("여기까지는 ") and "연결이 끊겨" in text
    history = (await store.load(turn("x").session_key())).history
    assert history[-1].content == "여기까지는 "


async def test_stall_keeps_text_and_adds_a_notice(
    fake: FakeGlm, manager: ConversationManager
) -> None:
    fake.enqueue(Stall("멈추기 전까지 ", seconds=10))
    reply = RecordingReply()
    assert await manager.handle(turn("천천히"), reply) is TurnResult.PARTIAL
    assert reply.final[1].startswith("멈추기 전까지 ") and "멈춰" in reply.final[1]


async def test_sensitive_answer_is_retracted_and_not_stored(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    fake.enqueue(Sensitive("위험한 "))
    reply = RecordingReply()
    assert await manager.handle(turn("질문"), reply) is TurnResult.RETRACTED
    assert reply.final[0] == "retract"
    assert (await store.load(turn("x").session_key())).history == []


async def test_deadline_gives_the_fallback_in_the_users_language(
    fake: FakeGlm, store: MemorySessionStore
) -> None:
    manager = make_manager(fake.base_url, fake.api_key, store, first_token_timeout=0.2)
    fake.enqueue(Reply("late", first_delay=3))
    reply = RecordingReply()
    assert await manager.handle(turn("what's up?"), reply) is TurnResult.FALLBACK
    await manager.glm.client.close()
    assert reply.final == (
        "fail",
        "The AI model is slow to answer right now. Please ask again in a moment.",
    )


async def test_open_breaker_gives_fallback_without_a_call(
    fake: FakeGlm, store: MemorySessionStore
) -> None:
    breaker = CircuitBreaker(min_calls=1, failure_rate=0.5, open_seconds=60)
    manager = make_manager(fake.base_url, fake.api_key, store, breaker=breaker)
    fake.enqueue(
        Error(500, "", "boom"),
        Error(500, "", "boom"),
        Error(500, "", "boom"),
        Error(500, "", "boom"),
    )
    await manager.handle(turn("하나"), RecordingReply())
    calls = len(fake.requests)
    reply = RecordingReply()
    assert await manager.handle(turn("둘"), reply) is TurnResult.FALLBACK
    await manager.glm.client.close()
    assert len(fake.requests) == calls
    assert reply.final[0] == "fail"


async def test_reset_clears_history(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    await manager.handle(turn("기억해: 사과"), RecordingReply())
    reply = RecordingReply()
    assert await manager.handle(turn("/reset"), reply) is TurnResult.COMMAND
    assert "초기화" in reply.final[1] or "reset" in reply.final[1].lower()
    await manager.handle(turn("뭘 기억해?"), RecordingReply())
    last = fake.requests[-1].json["messages"]
    assert all("사과" not in str(m["content"]) for m in last)


async def test_reset_of_someone_else_needs_admin(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    group = {"chat": "-100", "is_private": False}
    await manager.handle(turn("안녕", user="1", **group), RecordingReply())
    reply = RecordingReply()
    await manager.handle(turn("/reset 1", user="2", **group), reply)
    assert "관리자" in reply.final[1]
    assert (await store.load(SessionKey("test", "", "-100", "", "1"))).history

    async def admin(t: object) -> bool:
        return True

    manager.commands.admin_checks["test"] = admin
    reply = RecordingReply()
    await manager.handle(turn("/reset 1", user="2", **group), reply)
    assert (await store.load(SessionKey("test", "", "-100", "", "1"))).history == []


class BrokenStore(MemorySessionStore):
    """A store whose backend went away."""

    down = True

    async def load(self, key):  # type: ignore[no-untyped-def]
        if self.down:
            raise SessionStoreError("connection refused")
        return await super().load(key)


async def test_store_down_gives_a_clear_error_and_recovers(fake: FakeGlm) -> None:
    store = BrokenStore()
    manager = make_manager(fake.base_url, fake.api_key, store)
    reply = RecordingReply()
    assert await manager.handle(turn("안녕"), reply) is TurnResult.STORE_ERROR
    assert reply.final[0] == "fail" and "저장소" in reply.final[1]
    store.down = False
    assert await manager.handle(turn("안녕"), RecordingReply()) is TurnResult.ANSWERED
    await manager.glm.client.close()


class BlinkingStore(MemorySessionStore):
    """A store whose backend restarts while an answer streams: the next saves fail."""

    failures = 0

    async def save(self, session):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise SessionStoreError("connection refused")
        await super().save(session)


async def test_an_answer_delivered_while_redis_restarts_is_still_remembered(
    fake: FakeGlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.manager.SAVE_RETRY_DELAYS", (0.01, 0.01, 0.01))
    store = BlinkingStore()
    manager = make_manager(fake.base_url, fake.api_key, store)
    store.failures = 2  # the server is back after two attempts
    reply = RecordingReply()
    assert await manager.handle(turn("레디스 재시작 중 질문"), reply) is TurnResult.ANSWERED
    session = await store.load(turn("x").session_key())
    assert session.history[0].content == "레디스 재시작 중 질문"
    store.failures = 10  # down for good: the user keeps the answer, only the memory is lost
    reply = RecordingReply()
    assert await manager.handle(turn("두 번째"), reply) is TurnResult.ANSWERED
    assert reply.final[0] == "finish"
    await manager.glm.client.close()


async def test_forget_deletes_the_callers_sessions_in_every_chat(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    group = {"chat": "-100", "is_private": False}
    await manager.handle(turn("개인 대화", user="1", chat="1"), RecordingReply())
    await manager.handle(turn("그룹 대화", user="1", **group), RecordingReply())
    await manager.handle(turn("남의 대화", user="2", **group), RecordingReply())
    reply = RecordingReply()
    assert await manager.handle(turn("/forget", user="1", chat="1"), reply) is TurnResult.COMMAND
    assert "삭제" in reply.final[1]
    left = sorted([k async for k in store.keys()])
    assert left == [str(SessionKey("test", "", "-100", "", "2"))]


@pytest.mark.parametrize(
    ("text", "named", "notices"),
    [
        ("東京の天気はどうですか", "Japanese", "English"),
        ("今天北京天气怎么样", "Chinese", "English"),
        ("Как дела?", "Russian", "English"),
        ("안녕하세요", "Korean", "Korean"),
        ("How are you?", "English", "English"),
    ],
)
async def test_system_prompt_names_the_users_language(
    fake: FakeGlm, manager: ConversationManager, text: str, named: str, notices: str
) -> None:
    reply = RecordingReply()
    assert await manager.handle(turn(text), reply) is TurnResult.ANSWERED
    system = fake.requests[0].json["messages"][0]
    assert system["role"] == "system"
    assert named in system["content"]
    for other in {"Korean", "English", "Japanese", "Chinese", "Russian"} - {named}:
        assert other not in system["content"], other
    # The bot's own strings: Korean or English only, English for everyone else.
    too_long = RecordingReply()
    await manager.handle(turn(text + "." * 4001), too_long)
    assert ("너무 길어요" in too_long.final[1]) is (notices == "Korean")
    assert ("too long" in too_long.final[1]) is (notices == "English")


async def test_system_prompt_without_a_sure_language_asks_for_the_users_own(
    fake: FakeGlm, manager: ConversationManager
) -> None:
    await manager.handle(turn("Où est la gare, s'il vous plaît ?"), RecordingReply())
    system = fake.requests[0].json["messages"][0]["content"]
    assert "English" not in system and "Korean" not in system
    assert "the language the user wrote in" in system


# ---- per-user rate limit ---------------------------------------------------------------------


class CountingLimiter:
    """A MemoryRateLimiter that also records who was counted."""

    def __init__(self, limit: int) -> None:
        from bot.ratelimit import MemoryRateLimiter

        self.inner = MemoryRateLimiter(limit=limit, period=60.0)
        self.keys: list[str] = []

    async def hit(self, key: str):  # type: ignore[no-untyped-def]
        self.keys.append(key)
        return await self.inner.hit(key)


def limited_manager(
    fake: FakeGlm, store: MemorySessionStore, limiter: object
) -> ConversationManager:
    base = make_manager(fake.base_url, fake.api_key, store)
    return ConversationManager(
        store=store,
        glm=base.glm,
        config=base.config,
        rate_limiter=limiter,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("text", "notice"),
    [("안녕하세요", "너무 빨리"), ("hello there", "too quickly")],
)
async def test_over_the_rate_limit_gets_a_notice_and_no_model_call(
    fake: FakeGlm, store: MemorySessionStore, text: str, notice: str
) -> None:
    manager = limited_manager(fake, store, CountingLimiter(limit=2))
    for _ in range(2):
        assert await manager.handle(turn(text), RecordingReply()) is TurnResult.ANSWERED
    reply = RecordingReply()
    assert await manager.handle(turn(text), reply) is TurnResult.RATE_LIMITED
    await manager.glm.client.close()
    assert len(fake.requests) == 2
    assert reply.events[-1][0] == "finish" and notice in reply.events[-1][1]
    assert "30" in reply.events[-1][1]  # 2 a minute: the next one in 30 seconds
    history = (await store.load(turn("x").session_key())).history
    assert len(history) == 4  # the refused message is not remembered


async def test_rate_limit_is_per_user_and_spares_commands_duplicates_and_empty_turns(
    fake: FakeGlm, store: MemorySessionStore
) -> None:
    limiter = CountingLimiter(limit=1)
    manager = limited_manager(fake, store, limiter)
    assert await manager.handle(turn("하나", delivery_id="1"), RecordingReply()) is (
        TurnResult.ANSWERED
    )
    assert await manager.handle(turn("하나", delivery_id="1"), RecordingReply()) is (
        TurnResult.DUPLICATE
    )
    assert await manager.handle(turn("   "), RecordingReply()) is TurnResult.EMPTY
    # Commands stay usable past the limit.
    help_reply = RecordingReply()
    assert await manager.handle(turn("/help"), help_reply) is TurnResult.COMMAND
    assert await manager.handle(turn("/reset"), RecordingReply()) is TurnResult.COMMAND
    assert await manager.handle(turn("둘"), RecordingReply()) is TurnResult.RATE_LIMITED
    # Another user, and the same user in another chat (the limit is per user).
    assert await manager.handle(turn("셋", user="8", chat="8"), RecordingReply()) is (
        TurnResult.ANSWERED
    )
    group = RecordingReply()
    assert await manager.handle(turn("넷", chat="-100", is_private=False), group) is (
        TurnResult.RATE_LIMITED
    )
    await manager.glm.client.close()
    assert limiter.keys == ["test::7", "test::7", "test::8", "test::7"]


async def test_no_rate_limiter_means_no_limit(fake: FakeGlm, manager: ConversationManager) -> None:
    assert manager.rate_limiter is None
    for n in range(25):
        assert await manager.handle(turn(f"질문 {n}"), RecordingReply()) is TurnResult.ANSWERED
