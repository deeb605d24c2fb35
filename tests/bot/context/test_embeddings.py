"""EmbeddingClient against the fake /embeddings over real HTTP; pack, unpack, cosine."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.context.embeddings import (
    EmbeddingClient,
    EmbeddingError,
    EmbeddingUnavailable,
    VectorSpace,
    cosine,
    pack,
    unpack,
)
from bot.glm.breaker import CircuitBreaker
from tests.fakes.embeddings import Answer, Drop, Error, FakeEmbeddings, Malformed, fake_vector
from tests.fakes.glm import FakeGlm

KEY = "sk-test-5ecret-key-0123456789"


@pytest.fixture
async def fake() -> AsyncIterator[FakeEmbeddings]:
    async with FakeEmbeddings(api_key=KEY) as server:
        yield server


@pytest.fixture
async def client(fake: FakeEmbeddings) -> AsyncIterator[EmbeddingClient]:
    c = EmbeddingClient(fake.base_url, KEY, timeout=2.0)
    yield c
    await c.close()


def close_to(a: list[float], b: list[float]) -> bool:
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0) < 1e-9


# --- the client -----------------------------------------------------------------------------


async def test_embeds_in_order_with_the_model_dimensions_and_key(
    fake: FakeEmbeddings, client: EmbeddingClient
) -> None:
    texts = ["내 이름은 민수야", "What's my name?", "東京"]
    vectors = await client.embed(texts)
    assert [len(v) for v in vectors] == [256, 256, 256]
    for text, vector in zip(texts, vectors, strict=True):
        assert close_to(vector, fake_vector(text, 256))
    request = fake.requests[-1]
    assert request.path.endswith("/embeddings")
    assert request.json == {"model": "embedding-3", "input": texts, "dimensions": 256}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert client.space == VectorSpace("embedding-3", 256)


async def test_130_inputs_go_in_three_requests_of_at_most_64(
    fake: FakeEmbeddings, client: EmbeddingClient
) -> None:
    texts = [f"메시지 {i}번" for i in range(130)]
    vectors = await client.embed(texts)
    assert [len(batch) for batch in fake.batches()] == [64, 64, 2]
    assert [t for batch in fake.batches() for t in batch] == texts
    assert all(close_to(v, fake_vector(t, 256)) for t, v in zip(texts, vectors, strict=True))


async def test_data_is_put_in_index_order(fake: FakeEmbeddings, client: EmbeddingClient) -> None:
    fake.enqueue(Answer(reverse=True))
    texts = ["하나", "둘", "셋", "넷"]
    vectors = await client.embed(texts)
    assert all(close_to(v, fake_vector(t, 256)) for t, v in zip(texts, vectors, strict=True))


async def test_other_dimensions_are_asked_for(fake: FakeEmbeddings) -> None:
    client = EmbeddingClient(fake.base_url, KEY, "embedding-3", 1024)
    try:
        (vector,) = await client.embed(["hello"])
    finally:
        await client.close()
    assert len(vector) == 1024
    assert fake.requests[-1].dimensions == 1024
    assert client.space.tag == "embedding-3/1024"


async def test_blank_texts_are_not_sent_and_get_zero_vectors(
    fake: FakeEmbeddings, client: EmbeddingClient
) -> None:
    vectors = await client.embed(["", "민수", "   "])
    assert fake.batches() == [["민수"]]
    assert vectors[0] == vectors[2] == [0.0] * 256
    assert await client.embed([]) == []
    assert len(fake.requests) == 1


async def test_wrong_dimensions_in_the_answer_are_an_error(
    fake: FakeEmbeddings, client: EmbeddingClient
) -> None:
    fake.enqueue(Answer(dimensions=512))
    with pytest.raises(EmbeddingError, match="512 dimensions, expected 256"):
        await client.embed(["x"])


async def test_a_malformed_answer_is_an_error(
    fake: FakeEmbeddings, client: EmbeddingClient
) -> None:
    fake.enqueue(Malformed())
    with pytest.raises(EmbeddingError, match="not JSON"):
        await client.embed(["x"])


async def test_a_zai_error_body_becomes_an_error_without_the_key(fake: FakeEmbeddings) -> None:
    # A (misbehaving) server that echoes the key: it must still not reach the message.
    fake.enqueue(Error(429, "1302", f"Rate limit reached for key {KEY}"))
    client = EmbeddingClient(fake.base_url, KEY)
    try:
        with pytest.raises(EmbeddingError) as info:
            await client.embed(["x"])
    finally:
        await client.close()
    err = info.value
    assert (err.status, err.code) == (429, "1302")
    assert "Rate limit reached" in str(err)
    assert KEY not in str(err) and KEY not in repr(err) and KEY not in err.message
    assert err.counts_as_failure


async def test_a_wrong_key_is_an_error_without_the_key(fake: FakeEmbeddings) -> None:
    client = EmbeddingClient(fake.base_url, "sk-wrong-key-987654321")
    try:
        with pytest.raises(EmbeddingError) as info:
            await client.embed(["x"])
    finally:
        await client.close()
    assert (info.value.status, info.value.code) == (401, "1000")
    assert "sk-wrong-key" not in str(info.value)


async def test_a_bad_request_does_not_count_against_the_service(fake: FakeEmbeddings) -> None:
    breaker = CircuitBreaker(min_calls=1, failure_rate=0.5)
    client = EmbeddingClient(fake.base_url, KEY, "no-such-model", breaker=breaker)
    try:
        with pytest.raises(EmbeddingError) as info:
            await client.embed(["x"])
    finally:
        await client.close()
    assert (info.value.status, info.value.code) == (400, "1211")
    assert not info.value.counts_as_failure
    assert breaker.state == "closed" and breaker.failures_in_window == 0


async def test_a_slow_answer_times_out(fake: FakeEmbeddings) -> None:
    fake.enqueue(Answer(delay=5.0))
    client = EmbeddingClient(fake.base_url, KEY, timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(EmbeddingError, match="timed out"):
            await client.embed(["x"])
    finally:
        await client.close()
    assert time.monotonic() - started < 2.0


async def test_a_dropped_connection_is_an_error(
    fake: FakeEmbeddings, client: EmbeddingClient
) -> None:
    fake.enqueue(Drop())
    with pytest.raises(EmbeddingError):
        await client.embed(["x"])


async def test_an_unreachable_endpoint_is_an_error() -> None:
    client = EmbeddingClient("http://127.0.0.1:9/api", KEY, timeout=1.0)
    try:
        with pytest.raises(EmbeddingError) as info:
            await client.embed(["x"])
    finally:
        await client.close()
    assert KEY not in str(info.value)


async def test_the_breaker_opens_after_failures_and_then_refuses_fast(
    fake: FakeEmbeddings,
) -> None:
    now = [0.0]
    breaker = CircuitBreaker(min_calls=3, failure_rate=0.5, open_seconds=30, clock=lambda: now[0])
    client = EmbeddingClient(fake.base_url, KEY, breaker=breaker)
    try:
        fake.enqueue(*[Error(500, "500", "Internal Server Error")] * 3)
        for _ in range(3):
            with pytest.raises(EmbeddingError) as info:
                await client.embed(["x"])
            assert not isinstance(info.value, EmbeddingUnavailable)
        assert breaker.opened_at == 0.0
        sent = len(fake.requests)
        with pytest.raises(EmbeddingUnavailable) as refused:
            await client.embed(["x"])
        assert len(fake.requests) == sent  # nothing was sent
        assert refused.value.retry_after == pytest.approx(30.0)
        # After open_seconds one probe goes through; its success closes the breaker.
        now[0] += 30.0
        assert len(await client.embed(["x"])) == 1
        assert breaker.state == "closed" and breaker.opened_at is None
    finally:
        await client.close()


async def test_timeouts_count_as_failures(fake: FakeEmbeddings) -> None:
    breaker = CircuitBreaker(min_calls=2, failure_rate=0.5)
    client = EmbeddingClient(fake.base_url, KEY, timeout=0.1, breaker=breaker)
    fake.enqueue(Answer(delay=2.0), Answer(delay=2.0))
    try:
        for _ in range(2):
            with pytest.raises(EmbeddingError):
                await client.embed(["x"])
    finally:
        await client.close()
    assert breaker.state == "open"


async def test_a_cancelled_call_frees_the_probe_slot(fake: FakeEmbeddings) -> None:
    now = [0.0]
    breaker = CircuitBreaker(min_calls=1, open_seconds=10, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 10.0  # half-open: one probe allowed
    client = EmbeddingClient(fake.base_url, KEY, breaker=breaker)
    fake.enqueue(Answer(delay=5.0))
    try:
        task = asyncio.create_task(client.embed(["x"]))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.allow()  # the slot is free for the next probe
    finally:
        await client.close()


async def test_a_shared_session_is_used_and_not_closed(fake: FakeEmbeddings) -> None:
    async with aiohttp.ClientSession() as http:
        client = EmbeddingClient(fake.base_url, KEY, session=http)
        assert len(await client.embed(["x"])) == 1
        await client.close()
        assert not http.closed


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        EmbeddingClient("http://x", KEY, dimensions=0)
    with pytest.raises(ValueError):
        EmbeddingClient("http://x", KEY, batch_size=65)


# --- vector spaces --------------------------------------------------------------------------


def test_vector_spaces_match_only_the_same_model_and_dimensions() -> None:
    space = VectorSpace("embedding-3", 256)
    assert space.matches(VectorSpace("embedding-3", 256))
    assert not space.matches(VectorSpace("embedding-3", 512))
    assert not space.matches(VectorSpace("embedding-2", 256))
    assert not space.matches(None)
    assert VectorSpace.from_tag(space.tag) == space
    assert VectorSpace.from_tag("org/model-x/1024") == VectorSpace("org/model-x", 1024)
    for bad in ("", "embedding-3", "embedding-3/", "/256", "embedding-3/0", "e/-1", None, 3):
        assert VectorSpace.from_tag(bad) is None


# --- pack, unpack, cosine -------------------------------------------------------------------


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_pack_round_trip_error_is_under_one_percent_of_the_norm() -> None:
    rng = random.Random(7)
    vectors = [[rng.gauss(0, 1) for _ in range(256)] for _ in range(50)]
    vectors += [fake_vector(t, 256) for t in ("내 이름은 민수야", "hello world", "東京")]
    vectors.append([rng.gauss(0, 1) for _ in range(2048)])
    for vector in vectors:
        back = unpack(pack(vector))
        assert len(back) == len(vector)
        error = norm([a - b for a, b in zip(vector, back, strict=True)])
        assert error < 0.01 * norm(vector)
        assert cosine(vector, back) > 0.9999


def test_pack_is_compact() -> None:
    packed = pack([0.1] * 256)
    assert len(packed) == 348  # base64 of 4 + 256 bytes
    assert packed.isascii()


def test_pack_edge_cases() -> None:
    assert unpack(pack([])) == []
    assert unpack(pack([0.0, 0.0])) == [0.0, 0.0]
    assert unpack(pack([-3.0, 3.0])) == pytest.approx([-3.0, 3.0], rel=1e-6)
    with pytest.raises(ValueError):
        pack([1.0, math.nan])
    with pytest.raises(ValueError):
        pack([math.inf])
    for bad in ("", "not base64!", "AAA=", "AAAAAA=="[:2]):
        with pytest.raises(ValueError):
            unpack(bad)


def test_cosine() -> None:
    assert cosine([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 2.0]) == pytest.approx(0.0)
    assert cosine([1.0, 1.0], [-2.0, -2.0]) == pytest.approx(-1.0)
    assert cosine([3.0, 4.0], [4.0, 3.0]) == pytest.approx(24 / 25)
    assert cosine([0.0, 0.0], [1.0, 1.0]) == 0.0
    assert cosine([1.0], [1.0, 0.0]) == 0.0
    assert cosine([], []) == 0.0
    a, b = fake_vector("민수는 커피를 좋아해", 256), fake_vector("민수야 커피 마실래?", 256)
    c = fake_vector("The train leaves at noon", 256)
    assert cosine(a, b) > cosine(a, c)
    assert cosine(unpack(pack(a)), unpack(pack(b))) == pytest.approx(cosine(a, b), abs=0.01)


async def test_an_endpoint_that_is_not_there_opens_the_breaker() -> None:
    # A base URL without /embeddings (e.g. a proxy serving chat only) answers 404.
    async with FakeGlm() as glm:
        breaker = CircuitBreaker(min_calls=3, failure_rate=0.5, open_seconds=30)
        client = EmbeddingClient(glm.base_url, KEY, breaker=breaker)
        try:
            for _ in range(3):
                with pytest.raises(EmbeddingError) as info:
                    await client.embed(["x"])
                assert info.value.status == 404
            with pytest.raises(EmbeddingUnavailable):
                await client.embed(["x"])  # refused without a request
        finally:
            await client.close()
