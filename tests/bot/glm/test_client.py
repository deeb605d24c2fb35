"""GlmClient against the fake Z.AI server over loopback: payload, parsing, typed errors, retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.glm.client import GlmClient, coalesced
from bot.glm.errors import (
    GlmAccountError,
    GlmAuthError,
    GlmBadRequest,
    GlmDailyLimit,
    GlmProtocolError,
    GlmRateLimited,
    GlmServerError,
    GlmStreamInterrupted,
    GlmUnsafeInput,
)
from bot.glm.types import ChatRequest, Chunk, Usage
from bot.glm.types import ToolCall as Call
from tests.fakes.glm import (
    Drop,
    Error,
    FakeGlm,
    Malformed,
    Reply,
    Sensitive,
    StreamError,
    ToolCall,
)


@pytest.fixture
async def fake() -> FakeGlm:
    async with FakeGlm() as server:
        yield server


def client_for(fake: FakeGlm, **kw: object) -> GlmClient:
    kw.setdefault("backoff_factor", 0.01)
    kw.setdefault("backoff_max", 0.02)
    return GlmClient(base_url=fake.base_url, api_key=fake.api_key, **kw)  # type: ignore[arg-type]


def request(text: str = "안녕", **kw: object) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": text}], model="glm-4.5", user_id="tg:-:1:-:7", **kw
    )  # type: ignore[arg-type]


async def collect(client: GlmClient, req: ChatRequest) -> tuple[str, list[object]]:
    chunks = [c async for c in client.stream(req)]
    return "".join(c.content for c in chunks), chunks


async def test_stream_sends_the_documented_payload_and_parses_korean(fake: FakeGlm) -> None:
    fake.enqueue(Reply("서울은 맑아요. 기온은 21도예요.", reasoning="생각 중"))
    client = client_for(fake)
    try:
        text, chunks = await collect(client, request("서울 날씨 알려줘"))
    finally:
        await client.close()
    assert text == "서울은 맑아요. 기온은 21도예요."
    assert chunks[-1].finish_reason == "stop"
    assert any(c.usage is not None for c in chunks)
    assert "".join(c.reasoning for c in chunks) == "생각 중"
    sent = fake.last_request
    assert sent.path.endswith("/api/paas/v4/chat/completions")
    assert sent.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert sent.json["model"] == "glm-4.5"
    assert sent.json["stream"] is True
    assert sent.json["thinking"] == {"type": "disabled"}
    assert sent.json["user_id"] == "tg:-:1:-:7"
    assert sent.json["messages"] == [{"role": "user", "content": "서울 날씨 알려줘"}]


async def test_thinking_can_be_enabled(fake: FakeGlm) -> None:
    client = client_for(fake)
    try:
        await collect(client, request(thinking=True))
    finally:
        await client.close()
    assert fake.last_request.json["thinking"] == {"type": "enabled"}


async def test_complete_parses_json_answer_and_tool_calls(fake: FakeGlm) -> None:
    fake.enqueue(Reply("부산은 흐려요."), ToolCall("get_weather", {"city": "부산"}))
    client = client_for(fake)
    try:
        plain = await client.complete(request())
        tool = await client.complete(request(tools=[{"type": "function"}]))
    finally:
        await client.close()
    assert plain.content == "부산은 흐려요." and plain.finish_reason == "stop"
    assert plain.usage is not None and plain.usage.total_tokens > 0
    assert tool.finish_reason == "tool_calls"
    assert tool.tool_calls[0].name == "get_weather"
    assert '"부산"' in tool.tool_calls[0].arguments
    assert fake.requests[0].json["stream"] is False


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "1000", GlmAuthError),
        (401, "1002", GlmAuthError),
        (429, "1113", GlmAccountError),
        (400, "1214", GlmBadRequest),
        (400, "1301", GlmUnsafeInput),
        (429, "1304", GlmDailyLimit),
    ],
)
async def test_non_retryable_errors_are_typed_and_not_retried(
    fake: FakeGlm, status: int, code: str, kind: type[Exception]
) -> None:
    fake.enqueue(Error(status, code, "nope"), Reply("should not be reached"))
    client = client_for(fake)
    try:
        with pytest.raises(kind) as info:
            await collect(client, request())
    finally:
        await client.close()
    assert info.value.code == code  # type: ignore[attr-defined]
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "1302"), (429, "1303"), (429, "1305"), (429, "1312"), (500, "1234"), (503, "")],
)
async def test_retryable_errors_are_retried_before_the_first_token(
    fake: FakeGlm, status: int, code: str
) -> None:
    fake.enqueue(Error(status, code, "busy"), Error(status, code, "busy"), Reply("됐어요"))
    client = client_for(fake)
    try:
        text, _ = await collect(client, request())
    finally:
        await client.close()
    assert text == "됐어요"
    assert len(fake.requests) == 3


async def test_retries_are_bounded(fake: FakeGlm) -> None:
    for _ in range(5):
        fake.enqueue(Error(503, "", "down"))
    client = client_for(fake, max_retries=2)
    try:
        with pytest.raises(GlmServerError):
            await collect(client, request())
    finally:
        await client.close()
    assert len(fake.requests) == 3


async def test_connection_refused_is_retried_then_typed() -> None:
    client = GlmClient(
        base_url="http://127.0.0.1:9/api", api_key="k", max_retries=1, backoff_factor=0.01
    )
    try:
        with pytest.raises(Exception) as info:
            await collect(client, request())
    finally:
        await client.close()
    assert type(info.value).__name__ == "GlmConnectionError"
    assert "k" not in str(info.value).split()


@pytest.mark.parametrize("broken", [Drop("앞부분만 "), Malformed("앞부분만 ")])
async def test_a_stream_broken_after_text_is_not_retried(fake: FakeGlm, broken: object) -> None:
    fake.enqueue(broken, Reply("다시 보낸 답"))  # type: ignore[arg-type]
    client = client_for(fake)
    seen: list[str] = []
    try:
        with pytest.raises(GlmStreamInterrupted):
            async for chunk in client.stream(request()):
                seen.append(chunk.content)
    finally:
        await client.close()
    assert "".join(seen) == "앞부분만 "
    assert len(fake.requests) == 1  # a retry would repeat text the user already saw


async def test_a_stream_broken_before_text_is_retried(fake: FakeGlm) -> None:
    fake.enqueue(Drop(""), Malformed(""), Reply("괜찮아요"))
    client = client_for(fake)
    try:
        text, _ = await collect(client, request())
    finally:
        await client.close()
    assert text == "괜찮아요"
    assert len(fake.requests) == 3


async def test_provider_network_error_in_stream(fake: FakeGlm) -> None:
    fake.enqueue(StreamError("", code="1234"), Reply("재시도 성공"))
    client = client_for(fake)
    try:
        text, _ = await collect(client, request())
    finally:
        await client.close()
    assert text == "재시도 성공"


async def test_sensitive_finish_reason_is_reported(fake: FakeGlm) -> None:
    fake.enqueue(Sensitive("문제가 될 "))
    client = client_for(fake)
    try:
        text, chunks = await collect(client, request())
    finally:
        await client.close()
    assert text == "문제가 될 "
    assert chunks[-1].finish_reason == "sensitive"


async def test_malformed_json_answer_is_a_protocol_error(fake: FakeGlm) -> None:
    fake.enqueue(*[Malformed("x")] * 4)
    client = client_for(fake, max_retries=0)
    try:
        with pytest.raises(GlmProtocolError):
            await client.complete(request())
    finally:
        await client.close()


async def test_rate_limited_error_type(fake: FakeGlm) -> None:
    fake.enqueue(*[Error(429, "1302", "concurrency")] * 3)
    client = client_for(fake, max_retries=1)
    try:
        with pytest.raises(GlmRateLimited):
            await client.complete(request())
    finally:
        await client.close()
    assert len(fake.requests) == 2


# ---- chunks that arrive together -------------------------------------------------------------


def test_text_read_together_goes_on_as_one_chunk_per_run() -> None:
    call = Call(id="call_1", name="weather", arguments="{}")
    end = Chunk(finish_reason="stop", usage=Usage(3, 4, 7))
    read: list[Chunk | None] = [
        Chunk(content="서울은 "),
        Chunk(content="맑아요. "),
        Chunk(reasoning="생각 "),
        Chunk(reasoning="중"),
        Chunk(content="내일은 "),
        Chunk(tool_calls=(call,)),
        Chunk(content="비."),
        end,
        None,  # [DONE]
    ]
    assert list(coalesced(read)) == [
        Chunk(content="서울은 맑아요. "),
        Chunk(reasoning="생각 중"),
        Chunk(content="내일은 "),
        Chunk(tool_calls=(call,)),
        Chunk(content="비."),
        end,
        None,
    ]
    alone = [Chunk(content="하나")]
    assert list(coalesced(alone)) == alone


def test_a_failure_inside_a_read_comes_after_the_text_before_it() -> None:
    def read() -> Iterator[Chunk | None]:
        yield Chunk(content="앞부분")
        yield Chunk(content="만 ")
        raise GlmProtocolError("malformed JSON in stream")

    seen: list[Chunk | None] = []
    with pytest.raises(GlmProtocolError):
        for chunk in coalesced(read()):
            seen.append(chunk)
    assert seen == [Chunk(content="앞부분만 ")]
