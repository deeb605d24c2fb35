"""GlmClient: Z.AI chat completions over one shared aiohttp session, JSON and SSE, with retries."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Iterable, Iterator
from contextlib import aclosing

import aiohttp
import backoff

from bot.glm.errors import (
    GlmConnectionError,
    GlmError,
    GlmProtocolError,
    GlmServerError,
    GlmStreamInterrupted,
    GlmTimeout,
    error_from_body,
)
from bot.glm.sse import SseParser, parse_chunk
from bot.glm.types import FINISH_NETWORK_ERROR, ChatRequest, Chunk, Completion, ToolCall, Usage

log = logging.getLogger(__name__)

# After the first words of an answer, the stream is read at most this often (seconds): a model
# sends a few characters every few milliseconds, and every read costs the whole way to the user
# (the guard's timer, the filter, the reply stream) whatever it holds. The platforms show text
# in steps of a second or so (Telegram drafts and edits, Slack updates), so 50 ms of words
# read together are not seen, while a thousand answers streaming at once cost several times
# less CPU (bench/bench_capacity.py).
READ_INTERVAL = 0.05


class GlmClient:
    """Talks to ``{base_url}/chat/completions``.

    Retries (exponential backoff with full jitter, bounded) only retryable failures and, when
    streaming, only while no visible text has been yielded: once the user saw a word, a retry
    would repeat the answer, so a later failure surfaces as ``GlmStreamInterrupted``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        max_retries: int = 3,
        connect_timeout: float = 5.0,
        request_timeout: float = 120.0,
        backoff_factor: float = 0.25,
        backoff_max: float = 4.0,
        max_connections: int = 100,
        read_interval: float = READ_INTERVAL,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept-Language": "en-US,en",
        }
        self._max_retries = max_retries
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._backoff_factor = backoff_factor
        self._backoff_max = backoff_max
        self._max_connections = max_connections
        self._read_interval = read_interval
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return self._url

    def _http(self) -> aiohttp.ClientSession:
        # Created lazily inside the running loop; one session (one connection pool) for all calls.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                headers=self._headers,
                json_serialize=lambda obj: json.dumps(obj, ensure_ascii=False),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _delays(self) -> Iterator[float]:
        waits: Iterator[float] = backoff.expo(
            base=2, factor=self._backoff_factor, max_value=self._backoff_max
        )
        next(waits)  # backoff's wait generators yield None first (they are primed with send)
        return waits

    async def _pause(self, waits: Iterator[float], attempt: int, err: GlmError) -> None:
        delay = backoff.full_jitter(next(waits))
        if err.retry_after is not None and err.retry_after > delay:
            delay = min(err.retry_after, self._backoff_max * 2)
        log.warning(
            "glm retry %d/%d in %.2fs after %s", attempt, self._max_retries, delay, _describe(err)
        )
        await asyncio.sleep(delay)

    async def complete(self, request: ChatRequest) -> Completion:
        """One non-streamed answer, retried while retryable."""
        waits = self._delays()
        attempt = 0
        while True:
            try:
                return await self._complete_once(request)
            except GlmError as err:
                attempt += 1
                if not err.retryable or attempt > self._max_retries:
                    raise
                await self._pause(waits, attempt, err)

    async def _complete_once(self, request: ChatRequest) -> Completion:
        timeout = aiohttp.ClientTimeout(
            total=self._request_timeout, sock_connect=self._connect_timeout
        )
        try:
            async with self._http().post(
                self._url, json=request.to_payload(stream=False), timeout=timeout
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise _http_error(resp, body)
        except TimeoutError as exc:
            raise GlmTimeout("request timed out") from exc
        except aiohttp.ClientError as exc:
            raise GlmConnectionError(_client_error_text(exc)) from exc
        return _parse_completion(body)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Yield chunks as they arrive; the last one has ``finish_reason`` (and usually usage)."""
        waits = self._delays()
        attempt = 0
        shown = False
        while True:
            try:
                # aclosing: a caller that stops early closes the HTTP response now, in its
                # own task, not later from the garbage collector.
                async with aclosing(self._stream_once(request)) as chunks:
                    async for chunk in chunks:
                        if chunk.content or chunk.tool_calls:
                            shown = True
                        elif (
                            chunk.finish_reason == FINISH_NETWORK_ERROR and not shown
                        ):  # the provider's own network error before any text: worth another try
                            raise GlmServerError("provider network error", code="1234")
                        yield chunk
                return
            except GlmError as err:
                if shown:
                    if isinstance(err, GlmStreamInterrupted):
                        raise
                    raise GlmStreamInterrupted(str(err), code=err.code, status=err.status) from err
                attempt += 1
                if not err.retryable or attempt > self._max_retries:
                    raise
                await self._pause(waits, attempt, err)

    async def _stream_once(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        # No total timeout: a long answer that keeps flowing must never be cut. Stalls are
        # detected by the caller's inter-token timeout, which cancels this generator.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout)
        finished = False
        try:
            async with self._http().post(
                self._url,
                json=request.to_payload(stream=True),
                headers={"Accept": "text/event-stream"},
                timeout=timeout,
            ) as resp:
                if resp.status != 200:
                    raise _http_error(resp, await resp.read())
                parser = SseParser()
                async for data in resp.content.iter_any():
                    texts = False
                    for chunk in coalesced(parse_chunk(e.data) for e in parser.feed(data)):
                        if chunk is None:  # [DONE]
                            finished = True
                            return
                        if chunk.finish_reason is not None:
                            finished = True
                        texts = texts or bool(chunk.content or chunk.reasoning)
                        yield chunk
                    if texts and self._read_interval > 0:
                        # The first words go out at once; after them, what the model sends
                        # meanwhile is read together, as one chunk (``coalesced``).
                        await asyncio.sleep(self._read_interval)
                for event in parser.close():
                    chunk = parse_chunk(event.data)
                    if chunk is None:
                        return
                    yield chunk
        except TimeoutError as exc:
            raise GlmTimeout("connection timed out") from exc
        except aiohttp.ClientError as exc:
            if finished:
                return  # the answer was complete; only the trailing [DONE] went missing
            raise GlmConnectionError(_client_error_text(exc)) from exc
        if not finished:
            raise GlmConnectionError("stream ended before the answer was finished")


def coalesced(chunks: Iterable[Chunk | None]) -> Iterator[Chunk | None]:
    """The chunks of one read, with each run of text-only chunks of one kind (answer text, or
    reasoning) as one chunk; anything else (the end, usage, tool calls, ``None`` for [DONE])
    passes as it came, in order.

    A model streams a few characters an event: when the bot falls behind, a read holds many
    events, and every chunk costs the whole way to the user (the guard's timer, the filter,
    the reply stream) whatever its size. Text that arrived together now goes that way once;
    text that arrives alone is not held back. A failure inside the read (a malformed event)
    comes after the text before it, as it did chunk by chunk.
    """
    kind = ""  # "content" or "reasoning": what ``parts`` hold
    parts: list[str] = []
    try:
        for chunk in chunks:
            text_kind, text = _text_only(chunk)
            if text_kind and text_kind == kind:
                parts.append(text)
                continue
            if parts:
                yield _joined(kind, parts)
                parts = []
            kind = text_kind
            if text_kind:
                parts.append(text)
            else:
                yield chunk
    except GlmError:
        if parts:
            yield _joined(kind, parts)
        raise
    if parts:
        yield _joined(kind, parts)


def _text_only(chunk: Chunk | None) -> tuple[str, str]:
    """("content" or "reasoning", its text) for a chunk that only adds text of one kind;
    ("", "") for any other."""
    if chunk is None or chunk.finish_reason is not None or chunk.usage is not None:
        return "", ""
    if chunk.tool_calls or (chunk.content and chunk.reasoning):
        return "", ""
    if chunk.reasoning:
        return "reasoning", chunk.reasoning
    return "content", chunk.content


def _joined(kind: str, parts: list[str]) -> Chunk:
    text = parts[0] if len(parts) == 1 else "".join(parts)
    return Chunk(reasoning=text) if kind == "reasoning" else Chunk(content=text)


def _http_error(resp: aiohttp.ClientResponse, body: bytes) -> GlmError:
    err = error_from_body(resp.status, body)
    retry_after = resp.headers.get("Retry-After")
    if retry_after and retry_after.strip().isdigit():
        err.retry_after = float(retry_after)
    return err


def _client_error_text(exc: BaseException) -> str:
    # aiohttp error texts carry host and port, never headers: safe to log, no key inside.
    return f"{type(exc).__name__}: {exc}"[:300]


def _describe(err: GlmError) -> str:
    return f"{type(err).__name__}(status={err.status}, code={err.code or '-'})"


def _parse_completion(body: bytes) -> Completion:
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        message = choice.get("message") or {}
        calls = tuple(
            ToolCall(
                id=str(c.get("id", "")),
                name=str(c["function"]["name"]),
                arguments=str(c["function"].get("arguments") or "{}"),
            )
            for c in message.get("tool_calls") or ()
        )
        return Completion(
            content=str(message.get("content") or ""),
            reasoning=str(message.get("reasoning_content") or ""),
            finish_reason=choice.get("finish_reason"),
            usage=Usage.from_dict(data.get("usage")),
            tool_calls=calls,
            model=str(data.get("model") or ""),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise GlmProtocolError(f"unexpected completion body: {exc!r}"[:200]) from exc
