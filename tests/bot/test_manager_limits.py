"""The manager's bounds: answer length (max_tokens), session size, answers with no text.

End to end against the fake GLM server on loopback, with the in-memory store.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.manager import ConversationManager, TurnResult
from bot.sessions.base import Message, Session
from bot.sessions.memory import MemorySessionStore
from tests.bot.helpers import RecordingReply, make_manager, turn
from tests.fakes.glm import FakeGlm, Reply


async def stored(store: MemorySessionStore) -> Session:
    return await store.load(turn("x").session_key())


# ---- answers are bounded ---------------------------------------------------------------


async def test_every_answer_request_asks_for_at_most_max_tokens(
    fake: FakeGlm, store: MemorySessionStore
) -> None:
    manager = make_manager(fake.base_url, fake.api_key, store, max_answer_tokens=321)
    await manager.handle(turn("안녕"), RecordingReply())
    await manager.handle(turn("또 안녕"), RecordingReply())
    await manager.glm.client.close()
    assert [r.json.get("max_tokens") for r in fake.requests] == [321, 321]


async def test_answers_are_bounded_by_default(fake: FakeGlm, manager: ConversationManager) -> None:
    await manager.handle(turn("안녕"), RecordingReply())
    assert fake.requests[0].json.get("max_tokens") == 4096


async def test_an_answer_cut_for_length_keeps_its_text_and_says_so(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    fake.enqueue(Reply("아주 긴 답의 앞부분", finish_reason="length"))
    reply = RecordingReply()
    assert await manager.handle(turn("길게 설명해 줘"), reply) is TurnResult.PARTIAL
    kind, text = reply.final
    assert kind == "finish"
    assert text.startswith("아주 긴 답의 앞부분") and "잘렸어요" in text
    assert (await stored(store)).history[-1].content == "아주 긴 답의 앞부분"


# ---- a stream with no visible text --------------------------------------------------------


@pytest.mark.parametrize(
    "behaviour",
    [
        Reply("", reasoning="먼저 생각해 보면 이 질문은"),  # only reasoning_content
        Reply("", chunks=["", "", ""]),  # only empty deltas
        Reply(" \n", chunks=[" ", "\n"]),  # nothing visible
        Reply("", reasoning="생각이 길어져서", finish_reason="length"),  # thinking used it all
    ],
    ids=["reasoning-only", "empty-deltas", "whitespace", "reasoning-cut-for-length"],
)
async def test_an_answer_without_visible_text_gets_the_fallback_and_is_not_stored(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore, behaviour: Reply
) -> None:
    fake.enqueue(behaviour)
    reply = RecordingReply()
    assert await manager.handle(turn("안녕하세요"), reply) is TurnResult.FALLBACK
    kind, text = reply.final
    assert kind == "fail" and text.strip()
    assert "빈 답" in text
    assert (await stored(store)).history == []


async def test_an_empty_answer_in_english_gets_the_english_notice(
    fake: FakeGlm, manager: ConversationManager
) -> None:
    fake.enqueue(Reply("", reasoning="thinking only"))
    reply = RecordingReply()
    assert await manager.handle(turn("hello there"), reply) is TurnResult.FALLBACK
    assert reply.final[0] == "fail" and "empty answer" in reply.final[1]


# ---- the stored session document is bounded -----------------------------------------------


def _document_bytes(session: Session) -> int:
    return len(session.to_json().encode("utf-8"))


async def test_a_long_session_stays_under_the_byte_cap(
    fake: FakeGlm, manager: ConversationManager, store: MemorySessionStore
) -> None:
    key = turn("x").session_key()
    now = time.time()
    old = Session(key=str(key))
    for i in range(99):
        old.history.append(Message("user", f"질문 {i}", now))
        old.history.append(Message("assistant", f"{i}번 답 " + "가" * 18_000, now))
    await store.save(old)
    answer = "새 답 " + "나" * 18_000
    fake.enqueue(Reply(answer, chunks=[answer[i : i + 500] for i in range(0, len(answer), 500)]))

    assert await manager.handle(turn("새 질문"), RecordingReply()) is TurnResult.ANSWERED

    session = await stored(store)
    cap = manager.config.max_session_bytes
    assert cap == 256 * 1024
    assert _document_bytes(session) <= cap
    assert [(m.role, m.content) for m in session.history[-2:]] == [
        ("user", "새 질문"),
        ("assistant", answer),
    ]
    # Whole exchanges went, oldest first: the rest are the newest ones, in order.
    assert session.history[0].role == "user" and len(session.history) % 2 == 0
    kept = [m.content for m in session.history if m.role == "user"][:-1]
    assert kept == [f"질문 {i}" for i in range(99 - len(kept), 99)]
    assert len(kept) >= 2  # only what had to go went


async def test_one_answer_over_the_cap_is_clipped_head_and_tail(
    fake: FakeGlm, store: MemorySessionStore
) -> None:
    manager = make_manager(fake.base_url, fake.api_key, store, max_session_bytes=32 * 1024)
    answer = "처음 " + "가" * 30_000 + " 끝"
    fake.enqueue(Reply(answer, chunks=[answer[i : i + 1000] for i in range(0, len(answer), 1000)]))
    reply = RecordingReply()
    assert await manager.handle(turn("아주 길게"), reply) is TurnResult.ANSWERED
    await manager.glm.client.close()
    assert reply.final == ("finish", answer)  # the user saw all of it
    session = await stored(store)
    assert _document_bytes(session) <= 32 * 1024
    user, assistant = session.history
    assert user.content == "아주 길게"
    assert assistant.content.startswith("처음 가") and assistant.content.endswith("가 끝")
    assert "omitted" in assistant.content


# ---- the turn's deadline ----------------------------------------------------------------------


async def test_time_queued_behind_the_sessions_previous_answer_is_not_charged(
    fake: FakeGlm, store: MemorySessionStore
) -> None:
    manager = make_manager(fake.base_url, fake.api_key, store, first_token_timeout=0.5)
    pieces = [f"{i} " for i in range(20)]
    fake.enqueue(Reply("".join(pieces), chunks=pieces, delay=0.05), Reply("두 번째 답"))
    first, second = RecordingReply(), RecordingReply()
    long_answer = asyncio.create_task(manager.handle(turn("길게 답해 줘"), first))
    await fake.wait_for_requests(1)
    # Sent while the first answer streams (about 1 s, twice the first-token timeout).
    assert await manager.handle(turn("그리고?"), second) is TurnResult.ANSWERED
    assert await long_answer is TurnResult.ANSWERED
    await manager.glm.client.close()
    assert second.final == ("finish", "두 번째 답")
