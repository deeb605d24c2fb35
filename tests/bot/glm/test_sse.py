"""Tests of the incremental SSE parser, the GLM chunk decoder and the event encoder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.glm.errors import (
    GlmBadRequest,
    GlmError,
    GlmProtocolError,
    GlmRateLimited,
    GlmServerError,
    GlmUnsafeInput,
)
from bot.glm.sse import (
    SseEvent,
    SseParser,
    ToolCallAccumulator,
    encode_event,
    parse_chunk,
    parse_chunk_with_raw_tools,
)
from bot.glm.types import (
    FINISH_CONTEXT_EXCEEDED,
    FINISH_LENGTH,
    FINISH_NETWORK_ERROR,
    FINISH_SENSITIVE,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    Chunk,
    ToolCall,
    Usage,
)


def feed_all(data: bytes) -> list[SseEvent]:
    parser = SseParser()
    return parser.feed(data) + parser.close()


def feed_pieces(data: bytes, cuts: list[int]) -> list[SseEvent]:
    parser = SseParser()
    events: list[SseEvent] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
    return events + parser.close()


# --------------------------------------------------------------------------- hypothesis model

# Korean, emoji (4-byte UTF-8) and characters that other "line" notions treat as line breaks
# but SSE does not (NEL, LS, PS, VT, FF), so a splitlines() shortcut would be caught.
SPECIAL = "안녕하세요한국어😀🎉\x85\u2028\u2029\x0b\x0c\x00 :"
line_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_characters="\r\n"),
        st.sampled_from(SPECIAL),
    ),
    max_size=12,
)
id_text = line_text.filter(lambda s: "\0" not in s)
ENDINGS = ("\n", "\r\n", "\r")


@dataclass
class Block:
    """One generated block of lines ended by a blank line (or not, for the trailing one)."""

    data: list[str]
    event: str | None
    id: str | None
    retry: str | None
    lines: list[str]


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    data = draw(st.lists(line_text, max_size=3))
    event = draw(st.none() | line_text)
    id_ = draw(st.none() | id_text)
    retry = draw(st.none() | st.sampled_from(["0", "1500", "12a", "-5", ""]))
    lines: list[str] = []
    for value in data:
        if value == "" and draw(st.booleans()):
            lines.append("data")  # a field without a colon has an empty value
        elif value.startswith(" ") or draw(st.booleans()):
            lines.append("data: " + value)  # only the first space is stripped
        else:
            lines.append("data:" + value)
    extras = []
    if event is not None:
        extras.append("event: " + event)
    if id_ is not None:
        extras.append("id: " + id_)
    if retry is not None:
        extras.append("retry: " + retry)
    extras += [":" + c for c in draw(st.lists(line_text, max_size=2))]  # comments
    extras.append(draw(st.sampled_from(["", "unknown: field", "Data: case matters"])))
    for extra in extras:
        if extra:
            lines.insert(draw(st.integers(0, len(lines))), extra)
    return Block(data, event, id_, retry, lines)


@dataclass
class Stream:
    raw: bytes
    expected: list[SseEvent]


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    complete = draw(st.lists(blocks(), max_size=5))
    tail = draw(st.none() | blocks())
    text = "\ufeff" if draw(st.booleans()) else ""
    prev_ending = ""
    expected: list[SseEvent] = []
    last_id: str | None = None
    retry: int | None = None

    def emit(line: str) -> None:
        nonlocal text, prev_ending
        ending = draw(st.sampled_from(ENDINGS))
        if line == "" and prev_ending == "\r" and ending == "\n":
            ending = "\r\n"  # "\r" + "\n" would be read as one line ending, not two
        text += line + ending
        prev_ending = ending

    for block in complete:
        for line in block.lines:
            emit(line)
        emit("")
        if block.id is not None:
            last_id = block.id or None
        if block.retry is not None and block.retry.isdigit():
            retry = int(block.retry)
        if block.data:
            expected.append(
                SseEvent("\n".join(block.data), block.event or "message", last_id, retry)
            )
    if tail is not None and tail.lines:
        for line in tail.lines[:-1]:
            emit(line)
        # The last line of an unterminated event may lack its line ending too.
        text += tail.lines[-1] + draw(st.sampled_from(["", *ENDINGS]))
    return Stream(text.encode("utf-8"), expected)


@given(streams(), st.lists(st.integers(0, 10_000), max_size=30))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_split_gives_the_expected_events(stream: Stream, cuts: list[int]) -> None:
    cuts = [c % (len(stream.raw) + 1) for c in cuts]
    assert feed_all(stream.raw) == stream.expected
    assert feed_pieces(stream.raw, cuts) == stream.expected


@given(streams())
@settings(max_examples=100)
def test_byte_by_byte_gives_the_expected_events(stream: Stream) -> None:
    assert feed_pieces(stream.raw, list(range(len(stream.raw)))) == stream.expected


finish_reasons = st.sampled_from(
    [
        None,
        FINISH_STOP,
        FINISH_LENGTH,
        FINISH_TOOL_CALLS,
        FINISH_SENSITIVE,
        FINISH_NETWORK_ERROR,
        FINISH_CONTEXT_EXCEEDED,
    ]
)
any_text = st.text(alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(SPECIAL)))


@given(
    content=any_text,
    reasoning=any_text,
    finish=finish_reasons,
    usage=st.none() | st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_parse_chunk_round_trips_encoded_chunks(
    content: str,
    reasoning: str,
    finish: str | None,
    usage: tuple[int, int] | None,
    cuts: list[int],
) -> None:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "glm-4.5",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": content, "reasoning_content": reasoning},
                "finish_reason": finish,
            }
        ],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    raw = encode_event(body) + encode_event("[DONE]")
    events = feed_pieces(raw, [c % (len(raw) + 1) for c in cuts])
    assert len(events) == 2
    expected_usage = None if usage is None else Usage(usage[0], usage[1], sum(usage))
    assert parse_chunk(events[0].data) == Chunk(
        content=content, reasoning=reasoning, finish_reason=finish, usage=expected_usage
    )
    assert parse_chunk(events[1].data) is None


@given(any_text)
def test_encode_event_of_a_string_round_trips_with_normalised_line_endings(text: str) -> None:
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert feed_all(encode_event(text)) == [SseEvent(expected)]


# --------------------------------------------------------------------------- parser examples


def test_leading_bom_is_dropped_even_when_split() -> None:
    raw = "\ufeffdata: 안녕\n\n".encode()
    assert feed_pieces(raw, [1, 2]) == [SseEvent("안녕")]


def test_only_the_first_bom_is_dropped() -> None:
    # A second BOM is ordinary text: here it makes the field name "\ufeffdata", which is unknown.
    assert feed_all("\ufeff\ufeffdata: x\n\ndata: y\n\n".encode()) == [SseEvent("y")]


def test_comments_are_ignored() -> None:
    raw = b": keep-alive\ndata: a\n:\n: another\ndata: b\n\n: trailing\n\n"
    assert feed_all(raw) == [SseEvent("a\nb")]


def test_data_without_space_and_only_one_space_stripped() -> None:
    assert feed_all(b"data:x\n\ndata:  y\n\n") == [SseEvent("x"), SseEvent(" y")]


def test_empty_data_field_dispatches_an_empty_event() -> None:
    # Per spec a `data:` line appends "\n", so the buffer is not empty and the event fires.
    assert feed_all(b"data:\n\ndata\n\n") == [SseEvent(""), SseEvent("")]


def test_block_without_data_is_not_dispatched_and_resets_event_type() -> None:
    raw = b"event: ping\n\ndata: x\n\n"
    assert feed_all(raw) == [SseEvent("x", event="message")]


def test_event_type_and_multiline_data() -> None:
    raw = b"event: delta\ndata: line 1\ndata: line 2\n\n"
    assert feed_all(raw) == [SseEvent("line 1\nline 2", event="delta")]


def test_id_persists_and_empty_id_resets_it_and_nul_is_ignored() -> None:
    raw = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x00\ndata: c\n\nid\ndata: d\n\n"
    events = feed_all(raw)
    assert [e.id for e in events] == ["1", "1", "1", None]


def test_retry_only_when_all_ascii_digits() -> None:
    parser = SseParser()
    events = parser.feed(
        "retry: 3000\ndata: a\n\nretry: 12x\ndata: b\n\nretry: ٣\ndata: c\n\n".encode()
    )
    assert [e.retry for e in events] == [3000, 3000, 3000]
    assert parser.retry == 3000


def test_cr_at_end_of_feed_then_lf_is_one_line_ending() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []  # the LF belongs to the CR: no blank line yet
    assert parser.feed(b"\r") == [SseEvent("a")]
    assert parser.feed(b"\ndata: b\r\r") == [SseEvent("b")]


def test_lone_cr_line_endings() -> None:
    assert feed_all(b"data: a\rdata: b\r\rdata: c\r\r") == [SseEvent("a\nb"), SseEvent("c")]


def test_korean_split_inside_a_character() -> None:
    raw = "data: 안녕하세요\n\n".encode()
    parser = SseParser()
    assert parser.feed(raw[:7]) == []  # "data: " plus one byte of "안"
    assert parser.feed(raw[7:9]) == []
    assert parser.feed(raw[9:]) == [SseEvent("안녕하세요")]


def test_invalid_utf8_is_replaced() -> None:
    assert feed_all(b"data: \xff ok \xed\x95\n\n") == [SseEvent("\ufffd ok \ufffd")]


def test_unterminated_last_event_is_discarded_at_close() -> None:
    parser = SseParser()
    assert parser.feed(b"data: whole\n\ndata: cut") == [SseEvent("whole")]
    assert parser.has_pending
    assert parser.close() == []
    assert not parser.has_pending


def test_event_missing_only_the_blank_line_is_discarded_too() -> None:
    parser = SseParser()
    assert parser.feed(b"data: almost\n") == []
    assert parser.has_pending
    assert parser.close() == []


def test_parser_is_reusable_after_close() -> None:
    parser = SseParser()
    parser.feed(b"data: cut")
    parser.close()
    assert parser.feed(b"data: next\n\n") == [SseEvent("next")]


def test_several_events_in_one_feed() -> None:
    raw = b"".join(encode_event(str(i)) for i in range(5))
    assert [e.data for e in feed_all(raw)] == ["0", "1", "2", "3", "4"]


def test_overlong_line_raises_protocol_error() -> None:
    parser = SseParser(max_pending_chars=10)
    with pytest.raises(GlmProtocolError):
        parser.feed(b"data: " + b"x" * 20)


# --------------------------------------------------------------------------- chunk examples


def chunk_json(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    body = {
        "id": "1",
        "created": 1,
        "model": "glm-4.5",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return json.dumps(body, ensure_ascii=False)


def test_done_is_none() -> None:
    assert parse_chunk("[DONE]") is None
    assert parse_chunk(" [DONE] ") is None
    assert parse_chunk_with_raw_tools("[DONE]") == (None, [])


def test_content_chunk() -> None:
    chunk = parse_chunk(chunk_json({"role": "assistant", "content": "안녕"}))
    assert chunk == Chunk(content="안녕")


def test_reasoning_content_chunk() -> None:
    chunk = parse_chunk(chunk_json({"reasoning_content": "먼저 생각", "content": None}))
    assert chunk == Chunk(reasoning="먼저 생각")


def test_final_chunk_with_finish_reason_and_usage() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    chunk = parse_chunk(chunk_json({"content": ""}, "stop", usage=usage))
    assert chunk == Chunk(finish_reason="stop", usage=Usage(10, 5, 15))


def test_usage_only_chunk_with_empty_choices() -> None:
    data = json.dumps({"id": "1", "choices": [], "usage": {"prompt_tokens": 3, "total_tokens": 3}})
    assert parse_chunk(data) == Chunk(usage=Usage(prompt_tokens=3, total_tokens=3))


def test_chunk_without_delta_is_empty() -> None:
    data = json.dumps({"choices": [{"index": 0, "finish_reason": "length"}]})
    assert parse_chunk(data) == Chunk(finish_reason="length")


def test_complete_tool_call_in_one_chunk() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Seoul"}'},
    }
    chunk = parse_chunk(chunk_json({"tool_calls": [call]}, "tool_calls"))
    assert chunk is not None
    assert chunk.finish_reason == FINISH_TOOL_CALLS
    assert chunk.tool_calls == (ToolCall("call_1", "get_weather", '{"city": "Seoul"}'),)


def test_tool_call_arguments_as_object_become_json_text() -> None:
    call = {"index": 0, "id": "c", "function": {"name": "f", "arguments": {"도시": "서울"}}}
    chunk = parse_chunk(chunk_json({"tool_calls": [call]}))
    assert chunk is not None
    assert json.loads(chunk.tool_calls[0].arguments) == {"도시": "서울"}


def test_tool_call_pieces_are_emitted_as_received_and_merged_by_index() -> None:
    pieces = [
        [
            {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}},
            {"index": 1, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}},
        ],
        [{"index": 0, "function": {"arguments": '{"city": '}}],
        [{"index": 0, "function": {"arguments": '"서울"}'}}],
    ]
    acc = ToolCallAccumulator()
    assert not acc
    received = []
    for tool_calls in pieces:
        chunk, raw = parse_chunk_with_raw_tools(chunk_json({"tool_calls": tool_calls}))
        assert chunk is not None
        received.append(chunk.tool_calls)
        acc.add(raw)
    assert received[1] == (ToolCall("", "", '{"city": '),)
    assert acc.result() == (
        ToolCall("call_1", "get_weather", '{"city": "서울"}'),
        ToolCall("call_2", "get_time", "{}"),
    )


def test_accumulator_merges_tool_call_objects_by_id_or_continuation() -> None:
    acc = ToolCallAccumulator()
    acc.add([ToolCall("a", "f", '{"x":'), ToolCall("", "", "1}")])
    acc.add([ToolCall("b", "g", "{}"), ToolCall("a", "", "")])
    assert acc.result() == (ToolCall("a", "f", '{"x":1}'), ToolCall("b", "g", "{}"))


def test_no_tool_calls_gives_empty_raw_list() -> None:
    chunk, raw = parse_chunk_with_raw_tools(chunk_json({"content": "x", "tool_calls": None}))
    assert chunk == Chunk(content="x")
    assert raw == []


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        ("1301", GlmUnsafeInput),
        ("1234", GlmServerError),
        ("1302", GlmRateLimited),
        ("1214", GlmBadRequest),
    ],
)
def test_error_object_in_stream_raises_typed_error(code: str, error_type: type[GlmError]) -> None:
    data = json.dumps({"error": {"code": code, "message": "문제가 있습니다"}}, ensure_ascii=False)
    with pytest.raises(error_type) as info:
        parse_chunk(data)
    assert info.value.code == code
    assert info.value.message == "문제가 있습니다"


def test_error_with_unknown_code_is_a_plain_glm_error() -> None:
    with pytest.raises(GlmError) as info:
        parse_chunk('{"error": {"code": "9999", "message": "odd"}}')
    assert type(info.value) is GlmError


def test_null_error_field_is_not_an_error() -> None:
    data = json.dumps({"error": None, "choices": [{"delta": {"content": "ok"}}]})
    assert parse_chunk(data) == Chunk(content="ok")


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        "",
        '{"id": "1", "choices": [',
        "[1, 2]",
        '"text"',
        "42",
        '{"id": "1"}',
        '{"choices": {"0": {}}}',
        '{"choices": ["x"]}',
        '{"choices": [{"delta": "x"}]}',
        '{"choices": [{"delta": {"content": 5}}]}',
        '{"choices": [{"delta": {"tool_calls": ["x"]}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"function": "f"}]}}]}',
        '{"choices": [], "usage": {"prompt_tokens": "many"}}',
    ],
)
def test_malformed_chunks_raise_protocol_error(data: str) -> None:
    with pytest.raises(GlmProtocolError):
        parse_chunk(data)


# --------------------------------------------------------------------------- encoder examples


def test_encode_event_bytes() -> None:
    assert encode_event("[DONE]") == b"data: [DONE]\n\n"
    assert encode_event({"content": "안녕"}) == 'data: {"content":"안녕"}\n\n'.encode()
    assert encode_event({"t": "a\nb"}) == b'data: {"t":"a\\nb"}\n\n'
    assert encode_event("a\nb") == b"data: a\ndata: b\n\n"
