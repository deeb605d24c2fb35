"""The manager's memory end to end, over HTTP to the fake GLM: what a request carries."""

from __future__ import annotations

from bot.context.window import LEXICAL_MIN, ContextWindow, lexical_scores
from bot.manager import TurnResult
from bot.sessions.memory import MemorySessionStore
from tests.bot.helpers import RecordingReply, make_manager, turn
from tests.fakes.glm import FakeGlm, Reply


async def test_a_fact_from_the_first_turn_survives_six_long_answers(fake: FakeGlm) -> None:
    fake.default = lambda r: Reply("설명드릴게요. " + "가나다라마바사 아자차카 " * 500)
    store = MemorySessionStore()
    manager = make_manager(fake.base_url, fake.api_key, store)
    manager.context = ContextWindow(12_000, scorer=lexical_scores, min_relevance=LEXICAL_MIN)
    try:
        await manager.handle(turn("내 이름은 민수야"), RecordingReply())
        for n in range(6):
            reply = RecordingReply()
            assert await manager.handle(turn(f"긴 설명 {n} 부탁해"), reply) is TurnResult.ANSWERED
            assert len(reply.final[1]) >= 6_000
        await manager.handle(turn("내 이름이 뭐였지?"), RecordingReply())
    finally:
        await manager.glm.client.close()
    request = fake.requests[-1]
    texts = [str(m["content"]) for m in request.messages]
    assert "내 이름은 민수야" in texts
    assert texts[-1] == "내 이름이 뭐였지?"
    estimate = manager.context.estimator.count_messages(request.messages)
    assert estimate <= 12_000


async def test_the_token_factor_is_kept_per_session(fake: FakeGlm) -> None:
    store = MemorySessionStore()
    manager = make_manager(fake.base_url, fake.api_key, store)
    try:
        await manager.handle(turn("안녕하세요 반가워요", user="1", chat="1"), RecordingReply())
        await manager.handle(turn("hello there friend", user="2", chat="2"), RecordingReply())
    finally:
        await manager.glm.client.close()
    korean = (await store.load(turn("x", user="1", chat="1").session_key())).meta
    english = (await store.load(turn("x", user="2", chat="2").session_key())).meta
    assert "token_factor" in korean and "token_factor" in english
    assert korean["token_factor"] != english["token_factor"]


async def test_a_long_conversation_gets_a_summary_that_the_next_request_carries(
    fake: FakeGlm,
) -> None:
    from bot.context.summary import Summarizer, guarded_complete
    from bot.glm.breaker import CircuitBreaker
    from bot.glm.guarded import GuardedGlm
    from tests.fakes.glm import summarising

    fake.default = summarising
    store = MemorySessionStore()
    manager = make_manager(fake.base_url, fake.api_key, store)
    summary_glm = GuardedGlm(manager.glm.client, model="glm-4.5-flash", breaker=CircuitBreaker())
    summarizer = Summarizer(store, guarded_complete(summary_glm), threshold_messages=6)
    manager.summarizer = summarizer
    try:
        await manager.handle(
            turn("내 이름은 민수이고 전화번호는 010-1234-5678이야"), RecordingReply()
        )
        for n in range(10):
            await manager.handle(turn(f"잡담 {n}"), RecordingReply())
            await summarizer.drain()
        await manager.handle(turn("내 전화번호가 뭐였지?"), RecordingReply())
    finally:
        await manager.glm.client.close()
    summary_calls = [r for r in fake.requests if r.json.get("model") == "glm-4.5-flash"]
    assert summary_calls and all(r.json.get("stream") is not True for r in summary_calls)
    session = await store.load(turn("x").session_key())
    assert "010-1234-5678" in session.summary
    last = fake.requests[-1]
    assert any("Summary of the earlier conversation" in str(m["content"]) for m in last.messages)


async def test_exchange_vectors_are_stored_after_the_turn_and_recall_uses_them(
    fake: FakeGlm,
) -> None:
    import time

    from bot.context.embeddings import EmbeddingClient
    from bot.context.recall import EmbeddingRecall
    from tests.fakes.embeddings import Answer, FakeEmbeddings

    fake.default = lambda r: Reply("네, 알겠어요. " + "설명 " * 900)
    store = MemorySessionStore()
    manager = make_manager(fake.base_url, fake.api_key, store)
    manager.context = ContextWindow(6_000, scorer=lexical_scores, min_relevance=LEXICAL_MIN)
    async with FakeEmbeddings() as vectors:
        client = EmbeddingClient(vectors.base_url, vectors.api_key, dimensions=256)
        recall = EmbeddingRecall(client)
        manager.recall = recall
        try:
            await manager.handle(turn("우리 집 강아지 이름은 콩이야"), RecordingReply())
            for n in range(8):
                await manager.handle(turn(f"다른 이야기 {n}"), RecordingReply())
                await recall.drain()
            session = await store.load(turn("x").session_key())
            stored = session.meta["vectors"]
            assert stored["space"] == "embedding-3/256" and len(stored["items"]) == 9
            assert all(len(v) == 348 for v in stored["items"].values())  # int8, compact
            asked = len(vectors.requests)
            await manager.handle(turn("우리 강아지 이름 기억나?"), RecordingReply())
            assert len(vectors.requests) == asked + 1  # only the new message on the path
            assert "우리 집 강아지 이름은 콩이야" in fake.requests[-1].user_texts()

            # The endpoint slows down: the answer does not wait for it past the budget.
            vectors.default = Answer(delay=2.0)
            started = time.perf_counter()
            await manager.handle(turn("강아지 이름이 뭐였지?"), RecordingReply())
            assert time.perf_counter() - started < 1.5
            assert "우리 집 강아지 이름은 콩이야" in fake.requests[-1].user_texts()
        finally:
            await recall.close()
            await manager.glm.client.close()


def test_after_a_thousand_turns_the_document_stays_within_256_kib() -> None:
    from bot.context.bounds import bound_history
    from bot.context.embeddings import pack
    from bot.context.recall import MAX_VECTORS, exchange_id
    from bot.context.window import exchanges
    from bot.sessions.base import Message, Session

    history = []
    for n in range(1_000):
        history.append(Message("user", f"질문 {n}: " + "가나다" * 30, 2.0 * n))
        history.append(Message("assistant", f"답 {n}: " + "라마바사" * 200, 2.0 * n + 1))
    session = Session(key="test:-:1:-:1", history=history, summary="- 민수, 010-1234-5678\n" * 80)
    vector = pack([0.1] * 256)
    items = {exchange_id(u): vector for u in exchanges(history)[-MAX_VECTORS:]}
    session.meta["vectors"] = {"space": "embedding-3/256", "items": items}
    bounded = bound_history(session, 256 * 1024)
    session.history = bounded.history
    assert len(session.to_json().encode()) <= 256 * 1024
    assert session.history[-1].content.startswith("답 999")  # the newest stay
    assert "010-1234-5678" in session.summary  # the oldest live on in the summary
