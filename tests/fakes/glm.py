"""FakeGlm: a scriptable Z.AI chat-completions server on real loopback HTTP, for tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.zai import (
    API_PREFIX,
    DEFAULT_MODEL,
    LoopbackServer,
    bearer_token,
    chunk_body,
    completion_body,
    error_body,
    estimate_usage,
    json_response,
    message_text,
    new_id,
    open_event_stream,
    read_json,
    request_error,
    split_every,
    tool_call_entry,
    write_event,
)

__all__ = [
    "Behaviour",
    "Drop",
    "Echo",
    "Error",
    "FakeGlm",
    "Malformed",
    "RecordedRequest",
    "Reply",
    "Script",
    "Sensitive",
    "Stall",
    "StreamError",
    "ToolCall",
]

# Z.AI's business codes for a missing and a rejected key (docs: "API error codes").
AUTH_MISSING = ("1001", "Authentication parameter not received in Header")
AUTH_FAILED = ("1000", "Authentication Failed")


# A usage object as the API reports it with its details: 120 tokens billed, of which 40 of the
# input were cached and 5 of the output were thinking.
DETAILED_USAGE: dict[str, Any] = {
    "prompt_tokens": 100,
    "completion_tokens": 20,
    "total_tokens": 120,
    "prompt_tokens_details": {"cached_tokens": 40},
    "completion_tokens_details": {"reasoning_tokens": 5},
}


# --- behaviours -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A normal answer. Streamed: reasoning pieces, then content pieces, then the final chunk.

    ``first_delay`` is waited after the response headers (stream) or before the body (JSON);
    ``delay`` between streamed pieces. ``usage`` defaults to an estimate.
    """

    text: str
    chunks: list[str] | None = None
    first_delay: float = 0.0
    delay: float = 0.0
    finish_reason: str = "stop"
    reasoning: str = ""
    usage: dict[str, Any] | None = None

    def pieces(self) -> list[str]:
        return list(self.chunks) if self.chunks is not None else split_every(self.text)


@dataclass(frozen=True)
class Echo:
    """The default: reply ``prefix + <last user message>``."""

    prefix: str = "echo: "
    delay: float = 0.0


@dataclass(frozen=True)
class ToolCall:
    """The model calls one function (finish_reason ``tool_calls``)."""

    name: str
    arguments: dict[str, Any]
    call_id: str = "call_1"


@dataclass(frozen=True)
class Error:
    """An HTTP error with Z.AI's body, before any event (also for streaming requests)."""

    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Stall:
    """Stream ``before``, then nothing until the client leaves or ``seconds`` pass.

    If ``seconds`` do pass, the answer is finished normally (``before`` + finish_reason stop).
    Non-streamed: the JSON answer ``before`` comes after ``seconds``.
    """

    before: str
    seconds: float = 3600.0


@dataclass(frozen=True)
class Drop:
    """Stream ``before``, then abort the connection (no final chunk, no [DONE]).

    Non-streamed: the connection is aborted before any response.
    """

    before: str


@dataclass(frozen=True)
class Malformed:
    """Stream ``before``, then ``data: {"choices": [`` (broken JSON), then [DONE].

    Non-streamed: HTTP 200 with a truncated JSON body.
    """

    before: str


@dataclass(frozen=True)
class Sensitive:
    """Stream ``before``, then a chunk with finish_reason ``sensitive`` (and usage), [DONE].

    Non-streamed: an answer with content ``before`` and finish_reason ``sensitive``.
    """

    before: str


@dataclass(frozen=True)
class StreamError:
    """Stream ``before``, then a ``data: {"error": ...}`` event; the stream then ends.

    Non-streamed: HTTP 500 with that error body.
    """

    before: str
    code: str = "1234"
    message: str = "Network error"


Behaviour = Reply | Echo | ToolCall | Error | Stall | Drop | Malformed | Sensitive | StreamError
# A script entry may also decide per request (e.g. answer depending on the prompt).
Script = Behaviour | Callable[["RecordedRequest"], Behaviour]


# --- recorded requests ----------------------------------------------------------------------


class Headers(dict[str, str]):
    """A plain dict of request headers whose lookups ignore case, like HTTP does."""

    def __init__(self, items: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: Headers
    json: dict[str, Any]
    time: float  # time.monotonic() when the request arrived

    @property
    def stream(self) -> bool:
        return bool(self.json.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.json.get("messages")
        return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []

    @property
    def model(self) -> str:
        return str(self.json.get("model") or "")

    def user_texts(self) -> list[str]:
        return [message_text(m) for m in self.messages if m.get("role") == "user"]

    def last_user_text(self) -> str:
        texts = self.user_texts()
        return texts[-1] if texts else ""


# --- the fake -------------------------------------------------------------------------------


@dataclass
class _Counters:
    in_flight: int = 0
    max_in_flight: int = 0
    streams_started: int = 0
    cancelled: int = 0
    completed: int = 0


class FakeGlm(LoopbackServer):
    """Z.AI's ``/chat/completions`` on ``http://127.0.0.1:PORT/api/paas/v4``.

    Every request is recorded (even rejected ones). Requests with a missing bearer token get
    401/1001, with another token 401/1000 (neither consumes a script entry). Otherwise the next
    enqueued behaviour answers, or ``default`` (``Echo()``) once the queue is empty.

    ``in_flight`` counts requests being answered; ``cancelled`` counts those whose client went
    away before the answer was finished (a stall the client gave up on, for instance).
    """

    def __init__(self, api_key: str = "test-key", *, model: str = DEFAULT_MODEL) -> None:
        super().__init__()
        self.api_key = api_key
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.default: Script = Echo()
        self._script: deque[Script] = deque()
        self._counters = _Counters()
        self._changed = asyncio.Condition()

    # -- scripting --

    def enqueue(self, *behaviours: Script) -> None:
        """Answer the next requests with these behaviours, one per request, in order."""
        self._script.extend(behaviours)

    @property
    def pending(self) -> int:
        """Script entries not consumed yet."""
        return len(self._script)

    # -- observations --

    @property
    def in_flight(self) -> int:
        return self._counters.in_flight

    @property
    def max_in_flight(self) -> int:
        return self._counters.max_in_flight

    @property
    def cancelled(self) -> int:
        return self._counters.cancelled

    @property
    def completed(self) -> int:
        return self._counters.completed

    @property
    def streams_started(self) -> int:
        return self._counters.streams_started

    def last_user_messages(self) -> list[str]:
        """The last user message of every request, in arrival order."""
        return [r.last_user_text() for r in self.requests]

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    async def wait_for(self, predicate: Callable[[FakeGlm], bool], within: float = 5.0) -> None:
        """Wait until ``predicate(self)`` holds (re-checked whenever a request starts or ends)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def wait_for_requests(self, count: int, within: float = 5.0) -> None:
        await self.wait_for(lambda f: len(f.requests) >= count, within)

    async def wait_cancelled(self, count: int = 1, within: float = 5.0) -> None:
        await self.wait_for(lambda f: f.cancelled >= count, within)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- serving --

    def routes(self, app: web.Application) -> None:
        app.router.add_post(f"{API_PREFIX}/chat/completions", self.handle_completions)

    async def handle_completions(self, request: web.Request) -> web.StreamResponse:
        payload = await read_json(request)
        recorded = RecordedRequest(
            path=request.path,
            headers=Headers(list(request.headers.items())),
            json=payload if payload is not None else {},
            time=time.monotonic(),
        )
        self.requests.append(recorded)
        await self._notify()

        token = bearer_token(request)
        if not token:
            return request_error(401, *AUTH_MISSING)
        if token != self.api_key:
            return request_error(401, *AUTH_FAILED)
        if payload is None:
            return request_error(400, "1210", "Invalid API parameter: body is not JSON")
        if not recorded.messages:
            return request_error(400, "1214", "Invalid API parameter: messages")

        entry = self._script.popleft() if self._script else self.default
        behaviour = entry(recorded) if callable(entry) else entry
        counters = self._counters
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        await self._notify()
        try:
            if recorded.stream:
                counters.streams_started += 1
                resp = await self._stream(request, recorded, behaviour)
            else:
                resp = await self._answer(request, recorded, behaviour)
            counters.completed += 1
            return resp
        except (asyncio.CancelledError, ConnectionResetError):
            # The client went away (aiohttp cancels the handler when the connection is lost,
            # or a write hits the closed transport). Neither stop() nor our own Drop counts.
            if not self.closing.is_set() and not isinstance(behaviour, Drop):
                counters.cancelled += 1
            raise
        finally:
            counters.in_flight -= 1
            # Shielded: the handler may be in the middle of being cancelled.
            await asyncio.shield(self._notify())

    # -- non-streamed answers --

    async def _answer(
        self, request: web.Request, recorded: RecordedRequest, b: Behaviour
    ) -> web.StreamResponse:
        model = recorded.model or self.model
        messages = recorded.messages
        if isinstance(b, Echo):
            b = _echo(b, recorded)
        if isinstance(b, Error):
            return request_error(b.status, b.code, b.message)
        if isinstance(b, Reply):
            await self.pause(b.first_delay)
            usage = b.usage or estimate_usage(messages, b.text, b.reasoning)
            body = completion_body(
                b.text,
                model=model,
                finish_reason=b.finish_reason,
                usage=usage,
                reasoning=b.reasoning,
            )
            return json_response(body)
        if isinstance(b, ToolCall):
            args = json.dumps(b.arguments, ensure_ascii=False)
            body = completion_body(
                "",
                model=model,
                finish_reason="tool_calls",
                usage=estimate_usage(messages, args),
                tool_calls=[tool_call_entry(b.call_id, b.name, args)],
            )
            return json_response(body)
        if isinstance(b, Sensitive):
            usage = estimate_usage(messages, b.before)
            body = completion_body(b.before, model=model, finish_reason="sensitive", usage=usage)
            return json_response(body)
        if isinstance(b, Stall):
            await self.pause(b.seconds)
            body = completion_body(b.before, model=model, usage=estimate_usage(messages, b.before))
            return json_response(body)
        if isinstance(b, Drop):
            return await _abort(request)
        if isinstance(b, Malformed):
            return web.Response(status=200, body=b'{"choices": [', content_type="application/json")
        if isinstance(b, StreamError):
            return request_error(500, b.code, b.message)
        raise TypeError(f"unknown behaviour {b!r}")

    # -- streamed answers --

    async def _stream(
        self, request: web.Request, recorded: RecordedRequest, b: Behaviour
    ) -> web.StreamResponse:
        model = recorded.model or self.model
        messages = recorded.messages
        if isinstance(b, Echo):
            b = _echo(b, recorded)
        if isinstance(b, Error):
            # As the real API: a plain JSON error response, before any event.
            return request_error(b.status, b.code, b.message)

        ident = new_id()
        resp = await open_event_stream(request)

        async def send(**fields: Any) -> None:
            await write_event(resp, chunk_body(model=model, completion_id=ident, **fields))

        async def send_text(pieces: Sequence[str], delay: float = 0.0, key: str = "content") -> int:
            sent = 0
            for piece in pieces:
                if sent and delay:
                    await self.pause(delay)
                await send(**{key: piece})
                sent += 1
            return sent

        if isinstance(b, Reply):
            await self.pause(b.first_delay)
            sent = await send_text(split_every(b.reasoning), b.delay, key="reasoning")
            if sent and b.delay:
                await self.pause(b.delay)
            await send_text(b.pieces(), b.delay)
            usage = b.usage or estimate_usage(messages, b.text, b.reasoning)
            await send(finish_reason=b.finish_reason, usage=usage)
        elif isinstance(b, ToolCall):
            args = json.dumps(b.arguments, ensure_ascii=False)
            half = len(args) // 2
            # OpenAI-style deltas: the first piece names the call, later ones only add arguments.
            first = {"index": 0, **tool_call_entry(b.call_id, b.name, args[:half])}
            await send(tool_calls=[first])
            await send(tool_calls=[{"index": 0, "function": {"arguments": args[half:]}}])
            await send(finish_reason="tool_calls", usage=estimate_usage(messages, args))
        elif isinstance(b, Stall):
            await send_text(split_every(b.before))
            if not await self.pause(b.seconds):
                # The fake is stopping: leave without finishing, as a dying server would.
                await resp.write_eof()
                return resp
            await send(finish_reason="stop", usage=estimate_usage(messages, b.before))
        elif isinstance(b, Drop):
            await send_text(split_every(b.before))
            return await _abort(request)
        elif isinstance(b, Malformed):
            await send_text(split_every(b.before))
            await write_event(resp, '{"choices": [')
        elif isinstance(b, Sensitive):
            await send_text(split_every(b.before))
            await send(finish_reason="sensitive", usage=estimate_usage(messages, b.before))
        elif isinstance(b, StreamError):
            await send_text(split_every(b.before))
            await write_event(resp, error_body(b.code, b.message))
            await resp.write_eof()
            return resp
        else:
            raise TypeError(f"unknown behaviour {b!r}")
        await write_event(resp, "[DONE]")
        await resp.write_eof()
        return resp


def _echo(b: Echo, recorded: RecordedRequest) -> Reply:
    return Reply(b.prefix + recorded.last_user_text(), delay=b.delay)


async def _abort(request: web.Request) -> web.StreamResponse:
    """Cut the TCP connection mid-answer; the handler then ends by being cancelled."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Losing the connection cancels this handler (handler_cancellation); wait for that so
    # aiohttp never tries to finish a response on the dead transport.
    await asyncio.sleep(3600)
    raise AssertionError("unreachable: the aborted connection cancels the handler")


# --- summary requests (added for the rolling summary's tests) ---------------------------------


def is_summary_request(request: RecordedRequest) -> bool:
    """True when a system message asks to summarise (fold messages into a summary)."""
    return any(
        m.get("role") == "system" and "summar" in message_text(m).lower() for m in request.messages
    )


def _fact_like(word: str) -> bool:
    # What a summary must keep: numbers (phone numbers, dates, amounts), Hangul words (names,
    # places) and capitalised Latin words (proper nouns). Labels such as "user:" are not facts.
    if not word or word.endswith(":"):
        return False
    return (
        any(ch.isdigit() for ch in word)
        or any("\uac00" <= ch <= "\ud7a3" for ch in word)
        or word[0].isupper()
    )


def summarising(request: RecordedRequest) -> Reply:
    """Answers a summary request like a model that keeps facts, anything else like ``Echo``.

    Content lines of the non-system messages are the quoted messages (``user: ...``,
    ``assistant: ...``) and the existing summary's ``- ...`` lines; instructions and headings
    are not. The summary has one ``- `` line per content line that holds a number, a Hangul
    word or a capitalised word, keeping just those words in order; repeated lines are left
    out. Use it as ``fake.default = summarising`` or ``fake.enqueue(summarising)``.
    """
    if not is_summary_request(request):
        return _echo(Echo(), request)
    lines: list[str] = []
    for message in request.messages:
        if message.get("role") == "system":
            continue
        for raw in message_text(message).splitlines():
            label, colon, rest = raw.partition(": ")
            if raw.startswith("- "):
                content = raw[2:]
            elif colon and label in ("user", "assistant"):
                content = rest
            else:
                continue
            words = [w.strip(".,!?()\"'") for w in content.split()]
            facts = [w for w in words if _fact_like(w)]
            line = "- " + " ".join(facts) if facts else ""
            if line and line not in lines:
                lines.append(line)
    return Reply("\n".join(lines) or "- (nothing to keep)")
