"""Incremental Server-Sent Events parser and the GLM chat-completion chunk decoder on top of it."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.glm.errors import GlmProtocolError, error_from_body
from bot.glm.types import Chunk, ToolCall, Usage

__all__ = [
    "SseEvent",
    "SseParser",
    "ToolCallAccumulator",
    "encode_event",
    "parse_chunk",
    "parse_chunk_with_raw_tools",
]

# Order matters: "\r\n" must win over a lone "\r" so that CRLF is one line ending.
_LINE_END = re.compile(r"\r\n|\r|\n")
_DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event.

    ``id`` and ``retry`` are stream state, not per-event values (as in the WHATWG spec): ``id`` is
    the last event ID seen so far (``None`` if none, or if it was reset with an empty ``id:``) and
    ``retry`` the last valid reconnection time in milliseconds.
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SseParser:
    """Turns a byte stream into :class:`SseEvent` objects, for any split of the bytes into feeds.

    Follows the WHATWG "event stream interpretation": UTF-8 (invalid bytes replaced), one leading
    BOM ignored, CRLF / LF / CR line endings, ``:`` comments, ``field: value`` with one leading
    space stripped, a line without a colon is a field with an empty value, several ``data`` lines
    joined with ``\\n``, a blank line dispatches, and a block without any ``data`` line is dropped.
    """

    __slots__ = (
        "_data",
        "_decoder",
        "_event",
        "_last_id",
        "_max_pending",
        "_parts",
        "_pending_len",
        "_retry",
        "_skip_lf",
    )

    def __init__(self, *, max_pending_chars: int | None = 4_000_000) -> None:
        # "utf-8-sig" drops one leading BOM even when it arrives split over several feeds, and
        # only at the very start of the stream, as the spec asks.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        # Text after the last line ending, as pieces: joined only once a line ending arrives, so
        # a long line fed in many small pieces costs linear, not quadratic, time.
        self._parts: list[str] = []
        self._pending_len = 0
        self._skip_lf = False  # previous feed ended with "\r": a leading "\n" now belongs to it
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None
        # A peer that never sends a line ending would otherwise grow the buffer without bound.
        self._max_pending = max_pending_chars

    @property
    def last_event_id(self) -> str | None:
        return self._last_id or None

    @property
    def retry(self) -> int | None:
        return self._retry

    @property
    def has_pending(self) -> bool:
        """True while a started line or event has not been terminated (a truncated stream)."""
        return bool(self._parts or self._data or self._event)

    def feed(self, data: bytes) -> list[SseEvent]:
        """Parse more bytes; return the events that this data completed (often none or one)."""
        text = self._decoder.decode(data)
        if not text:
            # E.g. only the first byte of a multi-byte character: keep ``_skip_lf`` as it is.
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        has_cr = "\r" in text
        if not has_cr and "\n" not in text:
            self._keep(text)
            return []
        if self._parts:
            self._parts.append(text)
            text = "".join(self._parts)
            self._parts = []
            self._pending_len = 0
        # Fast path: GLM sends LF only, and str.split is several times faster than a regex.
        # (The kept parts hold no line ending, so looking for "\r" in the new text is enough.)
        if has_cr:
            self._skip_lf = text[-1] == "\r"
            lines = _LINE_END.split(text)
        else:
            lines = text.split("\n")
        rest = lines.pop()  # the unterminated rest ("" when the text ended with a line ending)
        if rest:
            self._keep(rest)
        return self._process(lines)

    def _keep(self, text: str) -> None:
        self._parts.append(text)
        self._pending_len += len(text)
        if self._max_pending is not None and self._pending_len > self._max_pending:
            raise GlmProtocolError(f"SSE line longer than {self._max_pending} characters")

    def close(self) -> list[SseEvent]:
        """End of stream. Always returns ``[]``.

        Per spec, an event whose terminating blank line never arrived is discarded, not
        dispatched; check :attr:`has_pending` before calling to tell a truncated stream. The
        parser is reset, so it may be reused for a new stream (the last event ID is kept).
        """
        self._decoder.decode(b"", final=True)
        self._decoder.reset()
        self._parts = []
        self._pending_len = 0
        self._skip_lf = False
        self._data = []
        self._event = ""
        return []

    def _process(self, lines: list[str]) -> list[SseEvent]:
        events: list[SseEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(
                        SseEvent(
                            "\n".join(data),
                            self._event or "message",
                            self._last_id or None,
                            self._retry,
                        )
                    )
                    data = self._data = []
                self._event = ""
                continue
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            if value and value[0] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\0" not in value:
                    self._last_id = value
            elif name == "retry":
                if value.isascii() and value.isdigit():
                    self._retry = int(value)
            # Unknown fields are ignored.
        return events


# --------------------------------------------------------------------------- GLM chunks


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise GlmProtocolError(f"stream chunk: {what} is {type(value).__name__}, not a string")


def _tool_call(raw: Mapping[str, Any]) -> ToolCall:
    fn = raw.get("function")
    if fn is None:
        fn = {}
    elif not isinstance(fn, dict):
        raise GlmProtocolError("stream chunk: tool_calls[].function is not an object")
    args = fn.get("arguments")
    if isinstance(args, dict | list):
        # Some OpenAI-compatible servers send parsed arguments; ToolCall keeps JSON text.
        args = json.dumps(args, ensure_ascii=False)
    return ToolCall(
        id=_text(raw.get("id"), "tool call id"),
        name=_text(fn.get("name"), "tool call name"),
        arguments=_text(args, "tool call arguments"),
    )


def parse_chunk_with_raw_tools(data: str) -> tuple[Chunk | None, list[dict[str, Any]]]:
    """Like :func:`parse_chunk`, plus the raw ``delta.tool_calls`` dicts (with their ``index``).

    Feed the raw list to :meth:`ToolCallAccumulator.add` to merge tool calls whose arguments are
    streamed in pieces; ``ToolCall`` itself has no ``index`` to merge by.
    """
    # Cheap test first: every real chunk starts with "{".
    if data[:1] != "{" and data.strip() == _DONE:
        return None, []
    try:
        obj: Any = json.loads(data)
    except ValueError as exc:
        raise GlmProtocolError(f"malformed JSON in stream: {data[:200]!r}") from exc
    if not isinstance(obj, dict):
        raise GlmProtocolError(f"stream chunk is not a JSON object: {data[:200]!r}")
    if obj.get("error"):
        raise error_from_body(200, data)
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise GlmProtocolError(f"stream chunk without choices: {data[:200]!r}")
    try:
        usage = Usage.from_dict(obj.get("usage"))
    except (TypeError, ValueError) as exc:
        raise GlmProtocolError(f"stream chunk with bad usage: {data[:200]!r}") from exc
    if not choices:
        return Chunk(usage=usage), []  # the usage-only final chunk
    # GLM answers with n=1; a second choice would be another answer, not more of this one.
    choice = choices[0]
    if not isinstance(choice, dict):
        raise GlmProtocolError("stream chunk: choices[0] is not an object")
    delta = choice.get("delta")
    if delta is None:
        delta = {}
    elif not isinstance(delta, dict):
        raise GlmProtocolError("stream chunk: delta is not an object")
    raw_tools = delta.get("tool_calls")
    tool_calls: tuple[ToolCall, ...] = ()
    if raw_tools:
        if not isinstance(raw_tools, list) or not all(isinstance(t, dict) for t in raw_tools):
            raise GlmProtocolError("stream chunk: tool_calls is not a list of objects")
        tool_calls = tuple(_tool_call(t) for t in raw_tools)
    else:
        raw_tools = []
    chunk = Chunk(
        content=_text(delta.get("content"), "content"),
        reasoning=_text(delta.get("reasoning_content"), "reasoning_content"),
        finish_reason=_text(choice.get("finish_reason"), "finish_reason") or None,
        usage=usage,
        tool_calls=tool_calls,
    )
    return chunk, raw_tools


def parse_chunk(data: str) -> Chunk | None:
    """Decode the ``data`` of one GLM stream event; ``None`` for the final ``[DONE]``.

    Raises the typed :class:`~bot.glm.errors.GlmError` for an ``{"error": ...}`` object sent
    inside the stream and :class:`~bot.glm.errors.GlmProtocolError` for anything unparseable.
    ``Chunk.tool_calls`` holds the pieces exactly as received (see :class:`ToolCallAccumulator`).
    """
    return parse_chunk_with_raw_tools(data)[0]


class _Slot:
    __slots__ = ("args", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.args: list[str] = []


class ToolCallAccumulator:
    """Merges streamed tool-call pieces into whole calls.

    Raw dicts (from :func:`parse_chunk_with_raw_tools`) merge by their ``index``; a dict without
    one merges by ``id``, or continues the latest call when it has no ``id`` either. ``ToolCall``
    pieces (no index) merge the same way as an index-less dict. The first non-empty id and name
    win; arguments are concatenated in arrival order.
    """

    __slots__ = ("_by_id", "_last", "_slots")

    def __init__(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._by_id: dict[str, int] = {}
        self._last: int | None = None

    def add(self, pieces: Iterable[Mapping[str, Any] | ToolCall]) -> None:
        for piece in pieces:
            if isinstance(piece, ToolCall):
                self._merge(None, piece)
            else:
                index = piece.get("index")
                self._merge(index if isinstance(index, int) else None, _tool_call(piece))

    def _merge(self, index: int | None, call: ToolCall) -> None:
        if index is None:
            if call.id and call.id in self._by_id:
                index = self._by_id[call.id]
            elif not call.id and self._last is not None:
                index = self._last
            else:
                index = max(self._slots, default=-1) + 1
        slot = self._slots.get(index)
        if slot is None:
            slot = self._slots[index] = _Slot()
        if call.id and not slot.id:
            slot.id = call.id
            self._by_id[call.id] = index
        if call.name and not slot.name:
            slot.name = call.name
        if call.arguments:
            slot.args.append(call.arguments)
        self._last = index

    def result(self) -> tuple[ToolCall, ...]:
        """The merged calls, ordered by index."""
        return tuple(
            ToolCall(id=s.id, name=s.name, arguments="".join(s.args))
            for _, s in sorted(self._slots.items())
        )

    def __bool__(self) -> bool:
        return bool(self._slots)


# --------------------------------------------------------------------------- encoding


def encode_event(obj: dict[str, Any] | str) -> bytes:
    """One SSE ``data`` event as bytes: a dict as compact JSON, a string as it is.

    A string containing line breaks becomes several ``data:`` lines, which the parser joins back
    with ``\\n``. ``"[DONE]"`` gives ``b"data: [DONE]\\n\\n"``.
    """
    if isinstance(obj, str):
        text = obj
        if "\n" in text or "\r" in text:
            text = "\ndata: ".join(_LINE_END.split(text))
    else:
        # JSON escapes CR/LF inside strings, so the JSON text is always one line.
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + text.encode("utf-8") + b"\n\n"
