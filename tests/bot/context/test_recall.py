"""EmbeddingRecall: stored vectors per exchange, model changes, lexical fallback (over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.context.embeddings import EmbeddingClient
from bot.context.recall import MAX_VECTORS, EmbeddingRecall, exchange_id
from bot.context.window import exchanges
from bot.sessions.base import Message, Session
from bot.sessions.memory import MemorySessionStore
from bot.turn import SessionKey
from tests.fakes.embeddings import Error, FakeEmbeddings

KEY = SessionKey("test", "", "1", "", "1")


def session(n: int) -> Session:
    history = []
    for i in range(n):
        history += [
            Message("user", f"질문 {i}", 2.0 * i),
            Message("assistant", f"답 {i}", 2.0 * i + 1),
        ]
    return Session(key=str(KEY), history=history)


@pytest.fixture
async def server() -> AsyncIterator[FakeEmbeddings]:
    async with FakeEmbeddings() as fake:
        yield fake


async def test_vectors_are_filled_after_the_turn_and_a_model_change_is_noticed(
    server: FakeEmbeddings,
) -> None:
    store = MemorySessionStore()
    await store.save(session(5))
    recall = EmbeddingRecall(EmbeddingClient(server.base_url, server.api_key, dimensions=256))
    try:
        recall.schedule(store, KEY)
        await recall.drain()
        stored = await store.load(KEY)
        assert len(recall.stored(stored)) == 5
        assert stored.meta["vectors"]["space"] == "embedding-3/256"
        other = EmbeddingRecall(EmbeddingClient(server.base_url, server.api_key, dimensions=512))
        assert other.stored(stored) == {}  # another space: ignored, computed again
        await other.close()
    finally:
        await recall.close()


async def test_only_the_newest_exchanges_keep_a_vector() -> None:
    recall = EmbeddingRecall(EmbeddingClient("http://127.0.0.1:9", "k"))
    s = session(MAX_VECTORS + 20)
    units = exchanges(s.history)
    recall.merge(s, {exchange_id(u): "AAAAAA==" for u in units})
    kept = recall.stored(s)
    assert len(kept) == MAX_VECTORS and exchange_id(units[0]) not in kept
    s.history = s.history[-10:]  # trimmed history: vectors of gone exchanges go too
    recall.merge(s, {})
    assert len(recall.stored(s)) == 5
    await recall.close()


async def test_a_failing_endpoint_leaves_the_lexical_score(server: FakeEmbeddings) -> None:
    s = session(6)
    recall = EmbeddingRecall(EmbeddingClient(server.base_url, server.api_key, dimensions=256))
    try:
        client = recall.client
        units = exchanges(s.history)
        vectors = await client.embed([u.text for u in units])
        from bot.context.embeddings import pack

        recall.merge(s, {exchange_id(u): pack(v) for u, v in zip(units, vectors, strict=True)})
        server.default = Error(500, "500", "down")
        scores = await recall.scores(s, "질문 3")
        assert scores is not None and len(scores) == 5
        assert max(range(5), key=lambda i: scores[i]) == 3  # the lexical score still finds it
    finally:
        await recall.close()
