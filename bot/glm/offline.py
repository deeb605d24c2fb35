"""Offline model: a loopback server speaking Z.AI's chat completions API when no key is set."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.glm.sse import encode_event
from bot.glm.types import FINISH_STOP

log = logging.getLogger(__name__)

API_PREFIX = "/api/paas/v4"
COMPLETIONS_PATH = f"{API_PREFIX}/chat/completions"
DEFAULT_MODEL = "glm-4.5"
QUOTE_LIMIT = 80

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
# A word with the whitespace after it, so joining the pieces gives back the exact text.
_WORDS = re.compile(r"\s*\S+\s*|\s+")


# --- protocol-shaping helpers ---------------------------------------------------------------


def new_id() -> str:
    """An opaque completion id, like the API's (its value carries no meaning)."""
    return uuid.uuid4().hex


def estimate_tokens(text: str) -> int:
    """A rough token count: ~4 ASCII characters per token, one token per other character."""
    if not text:
        return 0
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one chat message; ``content`` may be a string or a list of typed parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text") or "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def estimate_usage(
    messages: Sequence[Mapping[str, Any]], content: str, reasoning: str = ""
) -> dict[str, int]:
    """A plausible ``usage`` object for an answer to ``messages``."""
    # Each message costs a few tokens of chat-template framing on top of its text.
    prompt = sum(estimate_tokens(message_text(m)) + 4 for m in messages if isinstance(m, Mapping))
    completion = estimate_tokens(content) + estimate_tokens(reasoning)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion_body(
    content: str,
    *,
    model: str = DEFAULT_MODEL,
    finish_reason: str = FINISH_STOP,
    usage: Mapping[str, int] | None = None,
    reasoning: str = "",
    tool_calls: Iterable[Mapping[str, Any]] = (),
    completion_id: str | None = None,
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` answer."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    calls = [dict(c) for c in tool_calls]
    if calls:
        message["tool_calls"] = calls
    ident = completion_id or new_id()
    return {
        "id": ident,
        "request_id": ident,
        "created": int(time.time()),
        "model": model,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        # zai-sdk's Completion model requires usage, so it is always present.
        "usage": dict(usage) if usage is not None else estimate_usage([], content, reasoning),
    }


def chunk_body(
    *,
    model: str = DEFAULT_MODEL,
    content: str = "",
    reasoning: str = "",
    finish_reason: str | None = None,
    usage: Mapping[str, int] | None = None,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    completion_id: str | None = None,
) -> dict[str, Any]:
    """One streamed ``chat.completion.chunk`` event body."""
    delta: dict[str, Any] = {"role": "assistant"}
    if reasoning:
        delta["reasoning_content"] = reasoning
    # The API sends content (possibly empty) unless the chunk is pure reasoning or tool calls.
    if content or not (reasoning or tool_calls):
        delta["content"] = content
    if tool_calls:
        delta["tool_calls"] = [dict(c) for c in tool_calls]
    body: dict[str, Any] = {
        "id": completion_id or new_id(),
        "created": int(time.time()),
        "model": model,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = dict(usage)
    return body


def error_body(code: str, message: str) -> dict[str, Any]:
    """Z.AI's error shape: ``{"error": {"code": "1302", "message": "..."}}``."""
    return {"error": {"code": code, "message": message}}


def split_words(text: str) -> list[str]:
    """Word-sized pieces (whitespace kept) whose concatenation is exactly ``text``."""
    return _WORDS.findall(text)


def user_messages(messages: Sequence[Any]) -> list[str]:
    """The texts of the user messages, oldest first."""
    return [message_text(m) for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def has_hangul(text: str) -> bool:
    return _HANGUL.search(text) is not None


def offline_answer(messages: Sequence[Any]) -> str:
    """The offline model's honest answer: why it is offline, what it got, how much history."""
    users = user_messages(messages)
    last = users[-1] if users else ""
    quote = shorten(last)
    count = len(users)
    if has_hangul(last):
        return (
            "오프라인 모드로 답하고 있어요 (GLM_API_KEY가 설정되지 않았습니다). "
            f"받은 메시지: «{quote}». "
            f"지금까지 이 대화에서 받은 메시지는 {count}개예요. "
            "GLM-4.5의 실제 답변을 받으려면 GLM_API_KEY를 설정해 주세요."
        )
    noun = "message" if count == 1 else "messages"
    return (
        "I'm answering in offline mode (GLM_API_KEY is not set). "
        f"Your message: «{quote}». "
        f"So far I have received {count} {noun} from you in this conversation. "
        "Set GLM_API_KEY to get real answers from GLM-4.5."
    )


# --- loopback server plumbing (shared with the test fake) -------------------------------------


class LoopbackApiServer:
    """An aiohttp server on loopback serving ``POST {API_PREFIX}/chat/completions``.

    Subclasses implement ``handle_completions``. The handler task is cancelled when the
    client disconnects (``handler_cancellation``), so a stalled stream notices at once.
    """

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._base_url = ""
        # Set while stopping, so that long waits in handlers end instead of holding shutdown.
        self.closing = asyncio.Event()

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("server not started")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = a free port) and return the API base URL."""
        if self._runner is not None:
            return self._base_url
        app = web.Application()
        app.router.add_post(COMPLETIONS_PATH, self.handle_completions)
        # No access log: the bot's terminal should show the bot, not every loopback request.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_host, bound_port = runner.addresses[0][:2]
        self.closing.clear()
        self._runner = runner
        self._base_url = f"http://{bound_host}:{bound_port}{API_PREFIX}"
        return self._base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> LoopbackApiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def handle_completions(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False if the server began stopping meanwhile."""
        if seconds <= 0:
            return not self.closing.is_set()
        try:
            async with asyncio.timeout(seconds):
                await self.closing.wait()
        except TimeoutError:
            return True
        return False


async def read_json(request: web.Request) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is not one."""
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def json_response(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(
        dict(body), status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
    )


async def open_event_stream(request: web.Request) -> web.StreamResponse:
    """Send the headers of an SSE answer; events follow with ``write_event``."""
    resp = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
        },
    )
    await resp.prepare(request)
    return resp


async def write_event(resp: web.StreamResponse, obj: dict[str, Any] | str) -> None:
    await resp.write(encode_event(obj))


def request_error(status: int, code: str, message: str) -> web.Response:
    return json_response(error_body(code, message), status=status)


# --- the offline model ------------------------------------------------------------------------


class OfflineModel(LoopbackApiServer):
    """Answers every chat request honestly: offline, what it received, how much history.

    Any bearer token is accepted. Streamed answers come word by word, ``delay`` seconds apart,
    so the bot's streaming path is exercised exactly as with the real API.
    """

    def __init__(self, *, delay: float = 0.01, model: str = DEFAULT_MODEL) -> None:
        super().__init__()
        self.delay = delay
        self.model = model

    async def __aenter__(self) -> OfflineModel:
        await self.start()
        return self

    async def handle_completions(self, request: web.Request) -> web.StreamResponse:
        payload = await read_json(request)
        if payload is None:
            return request_error(400, "1210", "Invalid API parameter: body is not a JSON object")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return request_error(400, "1214", "Invalid API parameter: messages")
        model = str(payload.get("model") or self.model)
        answer = offline_answer(messages)
        usage = estimate_usage(messages, answer)
        # Only sizes at INFO/DEBUG: the conversation itself stays out of the logs.
        log.debug("offline model answering %d messages", len(messages))
        if not payload.get("stream"):
            return json_response(completion_body(answer, model=model, usage=usage))

        ident = new_id()
        resp = await open_event_stream(request)
        for i, word in enumerate(split_words(answer)):
            if i and not await self.pause(self.delay):
                break
            await write_event(resp, chunk_body(model=model, content=word, completion_id=ident))
        await write_event(
            resp,
            chunk_body(model=model, finish_reason=FINISH_STOP, usage=usage, completion_id=ident),
        )
        await write_event(resp, "[DONE]")
        await resp.write_eof()
        return resp
