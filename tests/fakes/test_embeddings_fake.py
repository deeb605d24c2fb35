"""The fake embeddings server is faithful: the official openai client parses its answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from tests.fakes.embeddings import Answer, Error, FakeEmbeddings, cosine, fake_vector


@pytest.fixture
async def fake() -> AsyncIterator[FakeEmbeddings]:
    async with FakeEmbeddings() as server:
        yield server


@pytest.fixture
async def oai(fake: FakeEmbeddings) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    yield client
    await client.close()


async def test_openai_parses_a_batch_in_its_default_base64_encoding(
    fake: FakeEmbeddings, oai: openai.AsyncOpenAI
) -> None:
    texts = ["내 이름은 민수야", "What's the weather in Seoul?", "東京に行きます"]
    answer = await oai.embeddings.create(model="embedding-3", input=texts, dimensions=256)
    assert answer.model == "embedding-3"
    assert [e.index for e in answer.data] == [0, 1, 2]
    for text, item in zip(texts, answer.data, strict=True):
        assert len(item.embedding) == 256
        expected = fake_vector(text, 256)
        assert max(abs(a - b) for a, b in zip(item.embedding, expected, strict=True)) < 1e-6
    assert answer.usage.prompt_tokens > 0
    assert fake.requests[-1].json["encoding_format"] == "base64"  # the client's default
    assert fake.requests[-1].headers["authorization"] == f"Bearer {fake.api_key}"


async def test_openai_parses_floats_and_a_single_string(
    fake: FakeEmbeddings, oai: openai.AsyncOpenAI
) -> None:
    answer = await oai.embeddings.create(
        model="embedding-3", input="민수는 커피를 좋아해", dimensions=512, encoding_format="float"
    )
    assert len(answer.data) == 1
    assert answer.data[0].embedding == fake_vector("민수는 커피를 좋아해", 512)
    # Without dimensions, embedding-3's default.
    answer = await oai.embeddings.create(model="embedding-3", input=["hello"])
    assert len(answer.data[0].embedding) == 2048


async def test_openai_sees_a_wrong_key_as_an_authentication_error(
    fake: FakeEmbeddings,
) -> None:
    client = openai.AsyncOpenAI(api_key="wrong", base_url=fake.base_url, max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as info:
            await client.embeddings.create(model="embedding-3", input=["x"], dimensions=256)
    finally:
        await client.close()
    assert info.value.status_code == 401
    assert info.value.code == "1000"
    assert info.value.body == {"code": "1000", "message": "Authentication Failed"}


async def test_openai_sees_the_batch_limit_and_bad_parameters_as_bad_requests(
    oai: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.embeddings.create(model="embedding-3", input=["x"] * 65, dimensions=256)
    assert info.value.code == "1214"
    assert "64" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        await oai.embeddings.create(model="embedding-3", input=["x"], dimensions=300)
    assert info.value.code == "1214"
    with pytest.raises(openai.BadRequestError) as info:
        await oai.embeddings.create(model="no-such-model", input=["x"])
    assert info.value.code == "1211"
    with pytest.raises(openai.BadRequestError):
        await oai.embeddings.create(model="embedding-3", input=[""])


async def test_openai_sees_a_scripted_server_error(
    fake: FakeEmbeddings, oai: openai.AsyncOpenAI
) -> None:
    fake.enqueue(Error(500, "500", "Internal Server Error"))
    with pytest.raises(openai.InternalServerError) as info:
        await oai.embeddings.create(model="embedding-3", input=["x"], dimensions=256)
    assert info.value.code == "500"
    # The script is used up: the next request is answered.
    answer = await oai.embeddings.create(model="embedding-3", input=["x"], dimensions=256)
    assert len(answer.data) == 1


async def test_openai_reorders_nothing_but_the_fake_can_reverse_the_data(
    fake: FakeEmbeddings, oai: openai.AsyncOpenAI
) -> None:
    fake.enqueue(Answer(reverse=True))
    answer = await oai.embeddings.create(
        model="embedding-3", input=["a", "b", "c"], dimensions=256, encoding_format="float"
    )
    assert [e.index for e in answer.data] == [2, 1, 0]
    assert answer.data[0].embedding == fake_vector("c", 256)


async def test_a_missing_key_is_zai_1001(fake: FakeEmbeddings) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{fake.base_url}/embeddings", json={"model": "embedding-3", "input": ["x"]}
        ) as resp,
    ):
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "1001"


def test_vectors_are_deterministic_unit_length_and_similar_for_shared_words() -> None:
    a = fake_vector("내 이름은 민수야", 256)
    assert a == fake_vector("내 이름은 민수야", 256)
    assert abs(sum(x * x for x in a) - 1.0) < 1e-9
    same_name = fake_vector("민수는 어디 있어?", 256)
    unrelated = fake_vector("The train leaves at noon", 256)
    assert cosine(a, same_name) > cosine(a, unrelated) + 0.1
    assert cosine(fake_vector("Paris trip", 256), fake_vector("trip to Paris", 256)) > 0.5
