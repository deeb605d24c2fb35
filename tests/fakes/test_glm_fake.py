"""The fake GLM and the offline model are faithful: the official SDKs parse their answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
import zai
from zai.core import _errors as zai_errors

from bot.glm.offline import OfflineModel, offline_answer
from tests.fakes.glm import (
    Drop,
    Error,
    FakeGlm,
    Malformed,
    Reply,
    Sensitive,
    Stall,
    StreamError,
    ToolCall,
)

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as server:
        yield server


@pytest.fixture
async def oai(fake: FakeGlm) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    yield client
    await client.close()


def zai_client(base_url: str, api_key: str = "test-key") -> zai.ZaiClient:
    # The SDK retries 429/5xx three times by default; tests want the first answer.
    return zai.ZaiClient(api_key=api_key, base_url=base_url, max_retries=0, timeout=10)


async def raw_stream(base_url: str, api_key: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """POST a streaming request with plain aiohttp; returns the status and every byte read."""
    got = bytearray()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base_url}/chat/completions",
            json={**body, "stream": True},
            headers={"Authorization": f"Bearer {api_key}"},
        ) as resp,
    ):
        async for data in resp.content.iter_any():
            got += data
        return resp.status, bytes(got)


def sse_data(raw: bytes) -> list[str]:
    return [line[len("data: ") :] for line in raw.decode().split("\n") if line.startswith("data: ")]


# --- the fake through the openai client ------------------------------------------------------


async def test_openai_parses_plain_answer(fake: FakeGlm, oai: openai.AsyncOpenAI) -> None:
    fake.enqueue(
        Reply(
            "Hi! How can I help?",
            usage={"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
        )
    )
    answer = await oai.chat.completions.create(model="glm-4.5", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Hi! How can I help?"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 12
    req = fake.last_request
    assert req.path == "/api/paas/v4/chat/completions"
    assert req.headers["authorization"] == "Bearer test-key"
    assert req.json["model"] == "glm-4.5" and not req.stream


async def test_openai_collects_streamed_text_and_reasoning(
    fake: FakeGlm, oai: openai.AsyncOpenAI
) -> None:
    fake.enqueue(Reply("Seoul is sunny today.", reasoning="User asks weather."))
    stream = await oai.chat.completions.create(
        model="glm-4.5",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    text, reasoning, finish, usage, events = "", "", None, None, 0
    async for chunk in stream:
        events += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            finish = choice.finish_reason or finish
    assert text == "Seoul is sunny today."
    assert reasoning == "User asks weather."
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0
    assert events > 3  # really streamed, not one blob
    assert fake.last_request.stream


async def test_openai_parses_tool_call_streamed_and_not(
    fake: FakeGlm, oai: openai.AsyncOpenAI
) -> None:
    call = ToolCall("get_weather", {"city": "서울"}, call_id="call_42")
    fake.enqueue(call, call)
    answer = await oai.chat.completions.create(
        model="glm-4.5",
        messages=MESSAGES,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    (tc,) = answer.choices[0].message.tool_calls or []
    assert answer.choices[0].finish_reason == "tool_calls"
    assert tc.id == "call_42" and tc.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(tc.function.arguments) == {"city": "서울"}  # type: ignore[union-attr]

    stream = await oai.chat.completions.create(
        model="glm-4.5",
        messages=MESSAGES,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    names, args, pieces, finish = [], "", 0, None
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                pieces += 1
                if delta.function and delta.function.name:
                    names.append(delta.function.name)
                args += (delta.function.arguments or "") if delta.function else ""
    assert names == ["get_weather"]
    assert pieces == 2  # the arguments really came split
    assert json.loads(args) == {"city": "서울"}
    assert finish == "tool_calls"


@pytest.mark.parametrize(
    ("status", "code", "error_type"),
    [
        (429, "1302", openai.RateLimitError),
        (400, "1261", openai.BadRequestError),
        (500, "1234", openai.InternalServerError),
        (503, "1305", openai.InternalServerError),
    ],
)
async def test_openai_raises_typed_error(
    fake: FakeGlm,
    oai: openai.AsyncOpenAI,
    status: int,
    code: str,
    error_type: type[openai.APIStatusError],
) -> None:
    fake.enqueue(Error(status, code, "nope"), Error(status, code, "nope"))
    for stream in (False, True):
        with pytest.raises(error_type) as info:
            await oai.chat.completions.create(
                model="glm-4.5",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=stream,
            )
        assert info.value.status_code == status
        assert info.value.body == {"code": code, "message": "nope"}


async def test_wrong_or_missing_key_is_401(fake: FakeGlm) -> None:
    bad = openai.AsyncOpenAI(api_key="wrong", base_url=fake.base_url, max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as info:
            await bad.chat.completions.create(model="glm-4.5", messages=MESSAGES)  # type: ignore[arg-type]
    finally:
        await bad.close()
    assert info.value.body == {"code": "1000", "message": "Authentication Failed"}

    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.base_url}/chat/completions", json={"messages": MESSAGES}) as resp,
    ):
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "1001"
    assert fake.pending == 0 and len(fake.requests) == 2  # recorded, script untouched


async def test_default_echoes_and_can_be_replaced(fake: FakeGlm, oai: openai.AsyncOpenAI) -> None:
    msgs = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": "안녕"},
    ]
    answer = await oai.chat.completions.create(model="glm-4.5", messages=msgs)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "echo: 안녕"
    fake.default = Reply("always this")
    answer = await oai.chat.completions.create(model="glm-4.5", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "always this"
    assert fake.last_user_messages() == ["안녕", "Hello there"]


# --- the fake through the zai-sdk client -------------------------------------------------------


async def test_zai_parses_plain_streamed_and_tool_answers(fake: FakeGlm) -> None:
    fake.enqueue(
        Reply("Plain answer.", reasoning="think"),
        Reply("Streamed answer, in pieces.", reasoning="hmm, weather"),
        ToolCall("get_weather", {"city": "Busan"}),
    )

    def run() -> tuple[Any, str, str, str | None, Any]:
        client = zai_client(fake.base_url)
        with client:
            plain = client.chat.completions.create(model="glm-4.5", messages=MESSAGES)
            text, reasoning, finish = "", "", None
            for chunk in client.chat.completions.create(
                model="glm-4.5", messages=MESSAGES, stream=True
            ):
                delta = chunk.choices[0].delta
                text += delta.content or ""
                reasoning += delta.reasoning_content or ""
                finish = chunk.choices[0].finish_reason or finish
            tool = client.chat.completions.create(
                model="glm-4.5", messages=MESSAGES, tools=[WEATHER_TOOL]
            )
        return plain, text, reasoning, finish, tool

    plain, text, reasoning, finish, tool = await asyncio.to_thread(run)
    assert plain.choices[0].message.content == "Plain answer."
    assert plain.choices[0].message.reasoning_content == "think"
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
    assert (text, reasoning, finish) == ("Streamed answer, in pieces.", "hmm, weather", "stop")
    (call,) = tool.choices[0].message.tool_calls
    assert tool.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Busan"}
    # The SDK builds {base}/chat/completions and sends the key as a plain bearer token.
    assert {r.path for r in fake.requests} == {"/api/paas/v4/chat/completions"}
    assert fake.requests[0].headers["Authorization"] == "Bearer test-key"


async def test_zai_raises_its_error_types(fake: FakeGlm) -> None:
    fake.enqueue(Error(429, "1302", "Too many"), StreamError("partial ", "1234", "Network error"))

    def run() -> tuple[BaseException, BaseException, BaseException, str]:
        client = zai_client(fake.base_url)
        with client:
            try:
                client.chat.completions.create(model="glm-4.5", messages=MESSAGES)
            except zai_errors.ZaiError as exc:
                limited = exc
            bad = zai_client(fake.base_url, api_key="wrong")
            with bad:
                try:
                    bad.chat.completions.create(model="glm-4.5", messages=MESSAGES)
                except zai_errors.ZaiError as exc:
                    auth = exc
            text = ""
            try:
                for chunk in client.chat.completions.create(
                    model="glm-4.5", messages=MESSAGES, stream=True
                ):
                    text += chunk.choices[0].delta.content or ""
            except zai_errors.ZaiError as exc:
                streamed = exc
        return limited, auth, streamed, text

    limited, auth, streamed, text = await asyncio.to_thread(run)
    assert isinstance(limited, zai_errors.APIReachLimitError)
    assert limited.status_code == 429 and "1302" in str(limited)
    assert isinstance(auth, zai_errors.APIAuthenticationError) and auth.status_code == 401
    # An error event inside a stream: shown text arrived first, then the SDK raises.
    assert text == "partial "
    assert isinstance(streamed, zai_errors.APIResponseError)
    assert streamed.json_data == {"code": "1234", "message": "Network error"}


# --- failure behaviours, seen on the wire ------------------------------------------------------


async def test_stall_is_cancelled_when_client_gives_up(fake: FakeGlm) -> None:
    fake.enqueue(Stall("Hello"))

    async def read_until_stall() -> None:
        await raw_stream(fake.base_url, fake.api_key, {"messages": MESSAGES})

    task = asyncio.create_task(read_until_stall())
    await fake.wait_for(lambda f: f.in_flight == 1)
    await asyncio.sleep(0.05)
    assert not task.done()  # the stream really hangs
    task.cancel()
    await fake.wait_cancelled(1, within=2)
    assert fake.in_flight == 0 and fake.completed == 0


async def test_short_stall_finishes_late(fake: FakeGlm, oai: openai.AsyncOpenAI) -> None:
    fake.enqueue(Stall("slow", seconds=0.2))
    loop = asyncio.get_running_loop()
    start = loop.time()
    stream = await oai.chat.completions.create(
        model="glm-4.5",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "slow" and loop.time() - start >= 0.2
    assert fake.cancelled == 0


async def test_drop_cuts_connection_without_done(fake: FakeGlm, oai: openai.AsyncOpenAI) -> None:
    fake.enqueue(Drop("Half an ans"))
    stream = await oai.chat.completions.create(
        model="glm-4.5",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    text = ""
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert text == "Half an ans"
    assert fake.cancelled == 0  # our own drop is not a client cancellation

    fake.enqueue(Drop("x"))
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(model="glm-4.5", messages=MESSAGES)  # type: ignore[arg-type]


async def test_malformed_sensitive_and_stream_error_on_the_wire(fake: FakeGlm) -> None:
    fake.enqueue(Malformed("ok "), Sensitive("bad "), StreamError("so far "))
    _, raw = await raw_stream(fake.base_url, fake.api_key, {"messages": MESSAGES})
    events = sse_data(raw)
    assert events[-2:] == ['{"choices": [', "[DONE]"]
    assert "".join(json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-2]) == "ok "

    _, raw = await raw_stream(fake.base_url, fake.api_key, {"messages": MESSAGES})
    events = sse_data(raw)
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"][0]["finish_reason"] == "sensitive" and "usage" in last

    status, raw = await raw_stream(fake.base_url, fake.api_key, {"messages": MESSAGES})
    events = sse_data(raw)
    assert status == 200
    assert json.loads(events[-1]) == {"error": {"code": "1234", "message": "Network error"}}
    assert "[DONE]" not in events


async def test_sdk_sees_sensitive_finish_and_broken_json(
    fake: FakeGlm, oai: openai.AsyncOpenAI
) -> None:
    fake.enqueue(Sensitive("The answer "), Malformed("ok"))
    stream = await oai.chat.completions.create(
        model="glm-4.5",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    finishes = [c.choices[0].finish_reason async for c in stream]
    assert finishes[-1] == "sensitive"
    stream = await oai.chat.completions.create(
        model="glm-4.5",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    with pytest.raises(json.JSONDecodeError):
        async for _ in stream:
            pass


async def test_first_delay_and_concurrency_are_observable(
    fake: FakeGlm, oai: openai.AsyncOpenAI
) -> None:
    fake.default = Reply("late", first_delay=0.15)
    loop = asyncio.get_running_loop()
    start = loop.time()
    answers = await asyncio.gather(
        *(
            oai.chat.completions.create(model="glm-4.5", messages=MESSAGES)  # type: ignore[arg-type]
            for _ in range(3)
        )
    )
    elapsed = loop.time() - start
    assert [a.choices[0].message.content for a in answers] == ["late"] * 3
    assert 0.15 <= elapsed < 1.0  # delayed, and served concurrently
    assert fake.max_in_flight == 3 and fake.in_flight == 0 and fake.completed == 3
    assert fake.requests[0].time <= fake.requests[-1].time


# --- the offline model ------------------------------------------------------------------------


async def test_offline_model_answers_in_korean_and_counts_history() -> None:
    history = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "서울 날씨 알려줘"},
    ]
    async with OfflineModel(delay=0.001) as model:
        client = openai.AsyncOpenAI(api_key="anything", base_url=model.base_url, max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model="glm-4.5",
                messages=history,  # type: ignore[arg-type]
                stream=True,
            )
            pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        finally:
            await client.close()
    text = "".join(pieces)
    assert len([p for p in pieces if p]) > 5  # word by word
    assert "오프라인" in text and "GLM_API_KEY" in text
    assert "«서울 날씨 알려줘»" in text
    assert "2개" in text


async def test_offline_model_english_plain_answer_via_zai() -> None:
    long_text = "Please tell me about the weather in Seoul tomorrow " * 4
    async with OfflineModel() as model:

        def run() -> Any:
            with zai_client(model.base_url, api_key="whatever") as client:
                return client.chat.completions.create(
                    model="glm-4.5", messages=[{"role": "user", "content": long_text}]
                )

        answer = await asyncio.to_thread(run)
    text = answer.choices[0].message.content
    assert text.startswith("I'm answering in offline mode (GLM_API_KEY is not set).")
    assert "1 message from you" in text
    quote = text.split("«")[1].split("»")[0]
    assert quote.startswith("Please tell me about") and quote.endswith("…")
    assert len(quote) <= 80
    assert answer.choices[0].finish_reason == "stop" and answer.usage.completion_tokens > 0


def test_offline_answer_reads_text_parts() -> None:
    msgs = [{"role": "user", "content": [{"type": "text", "text": "사진 설명해줘"}]}]
    assert "«사진 설명해줘»" in offline_answer(msgs)
