"""Z.AI's HTTP API as the fakes speak it, written from the API reference.

Nothing here comes from ``bot/``: a fake that shared the bot's wire code could only agree with
it. The real clients (zai-sdk, openai) check these shapes in ``tests/fakes/test_*_fake.py``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web

API_PREFIX = "/api/paas/v4"
DEFAULT_MODEL = "glm-4.5"
FINISH_STOP = "stop"


# --- bodies -------------------------------------------------------------------------------------


def new_id() -> str:
    return uuid.uuid4().hex


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message; ``content`` is a string or a list of typed parts."""
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


def _tokens(text: str) -> int:
    # Roughly what GLM's tokenizer gives: four ASCII characters a token, one per other.
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars) if text else 0


def estimate_usage(
    messages: Sequence[Mapping[str, Any]], content: str, reasoning: str = ""
) -> dict[str, int]:
    """A plausible ``usage`` for an answer to ``messages`` (a few tokens of framing each)."""
    prompt = sum(_tokens(message_text(m)) + 4 for m in messages if isinstance(m, Mapping))
    completion = _tokens(content) + _tokens(reasoning)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def tool_call_entry(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


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
    """A non-streamed ``chat.completion``."""
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
    """One streamed ``chat.completion.chunk``."""
    delta: dict[str, Any] = {"role": "assistant"}
    if reasoning:
        delta["reasoning_content"] = reasoning
    # Content (possibly empty) comes unless the chunk is pure reasoning or tool calls.
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
    """``{"error": {"code": "1302", "message": "..."}}``."""
    return {"error": {"code": code, "message": message}}


def split_every(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# --- HTTP ---------------------------------------------------------------------------------------


async def read_json(request: web.Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def json_response(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(
        dict(body), status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
    )


def request_error(status: int, code: str, message: str) -> web.Response:
    return json_response(error_body(code, message), status=status)


def bearer_token(request: web.Request) -> str | None:
    """None without an Authorization header; '' for another scheme."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def open_event_stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
    )
    await resp.prepare(request)
    return resp


async def write_event(resp: web.StreamResponse, obj: dict[str, Any] | str) -> None:
    """One server-sent event: ``data: <line>`` per line of the payload, then a blank line."""
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    await resp.write("".join(f"data: {line}\n" for line in lines).encode() + b"\n")


class LoopbackServer:
    """An aiohttp server on loopback; subclasses add their routes in ``routes``.

    Handlers are cancelled when the client goes away (``handler_cancellation``), and
    ``closing`` is set while stopping so that long waits in handlers end.
    """

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._base_url = ""
        self.closing = asyncio.Event()

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("server not started")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: a free port); returns the API base URL."""
        if self._runner is not None:
            return self._base_url
        app = web.Application()
        self.routes(app)
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

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

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
