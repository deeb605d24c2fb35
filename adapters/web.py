"""The web channel on ``WEB_PORT``: a WebSocket and a REST API for web and mobile clients, and a
small chat page at ``/``, all answered by the same manager as Telegram and Slack.

* ``GET /v1/chat/ws``: a WebSocket. The key comes as ``Authorization: Bearer <key>`` or as
  ``?token=<key>``; a wrong one is refused at the handshake (401). The client sends
  ``{"content": "...", "user_id"?: "...", "message_id"?: "...", "lang"?: "ko"}``, or
  ``{"model": ..., "session": "<id>", "messages": [{"role", "content"}, ...]}`` (the last
  user message is the turn; the bot keeps its own history). Each answer streams as
  ``{"content": "<delta>", "is_end": false}`` frames and ends with one ``"is_end": true``
  frame carrying the last delta; an error is ``{"error": {"code", "message"}, "is_end":
  true}``. Messages of one socket are answered one after the other, in order.
* ``POST /v1/chat``: the same body; the whole answer as JSON, or with ``Accept:
  text/event-stream`` the same frames as server-sent events.
* ``GET /``: the chat page (``adapters/web_page/index.html``).

Each key is a tenant: its conversations are its own, and it has a rate limit and a cap on
answers in progress, shared by every process through the store when sessions are in Redis.
Without keys the channel only starts on a loopback address. A client that stops reading is
closed (4008) once ``MAX_UNREAD`` bytes wait for it: the answer goes on and is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from adapters.turns import answer_turn
from bot.i18n import detect_language, t
from bot.observability import NO_METRICS, FirstVisible, Metrics
from bot.ratelimit import (
    ConcurrencyLimiter,
    RateLimiter,
    shared_concurrency_limiter,
    shared_rate_limiter,
)
from bot.reply import Button, ReplyStream
from bot.sessions.base import SessionStoreError
from bot.sessions.index import RecordRef, tenant_of
from bot.turn import Turn

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

PLATFORM = "web"
WS_PATH = "/v1/chat/ws"
CHAT_PATH = "/v1/chat"
MAX_FRAME = 1 << 20  # bytes of one client frame: a 50,000-character paste fits, \\u-escaped too
MAX_ID = 128  # characters of a user, session or message id
MAX_UNREAD = 1 << 20  # bytes of frames a client has not taken before it is closed
MAX_WAITING = 16  # messages of one socket waiting behind the one being answered
HEARTBEAT = 20.0  # seconds between pings; a client that does not pong is closed
CLOSE_TOO_SLOW = 4008  # the client did not read its frames
CLOSE_TOO_MANY = 4029  # the client sent more than MAX_WAITING messages ahead of the answers
ANSWER_RECORD = "web_answer"  # the answer to a message_id, for the client's retry
ANSWER_TTL = 3600  # seconds a message_id's answer is kept
REPLAY_WAIT = 60.0  # how long a retry waits for an answer another process is writing
REPLAY_POLL = 0.5
DEFAULT_USER = "web"
LOCAL_TENANT = "local"  # every client of a channel without keys (loopback only)


class WebConfigError(Exception):
    """The web channel cannot start as configured (the operator must fix it)."""


def key_tenant(key: str) -> str:
    """A key's tenant id: stable, and not the key (it appears in session keys and logs)."""
    return "k" + hashlib.sha256(key.encode()).hexdigest()[:16]


# ---- requests -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ApiError(Exception):
    """An error frame: ``{"error": {"code", "message"}, "is_end": true}``."""

    code: str
    message: str
    status: int = 400
    retry_after: float | None = None

    def frame(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error, "is_end": True}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One client message, from either frame shape."""

    content: str
    conversation: str  # the session id the client names (its user id by default)
    user: str
    message_id: str = ""
    lang: str = ""

    @property
    def delivery(self) -> str:
        """The message id within its user (ids are the client's: two users may share one)."""
        return f"{len(self.user)}:{self.user}:{self.message_id}" if self.message_id else ""


def _id(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None or value == "":
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_ID or not value.isprintable():
        raise ApiError("bad_request", f'"{name}" must be a string of at most {MAX_ID} characters')
    return value


def parse_request(data: Any) -> ChatRequest:
    """A client's JSON frame as a request; ``ApiError`` naming what is wrong."""
    if not isinstance(data, dict):
        raise ApiError("bad_request", "a message is a JSON object")
    user = _id(data, "user_id")
    message_id = _id(data, "message_id")
    lang = data.get("lang")
    lang = lang if isinstance(lang, str) and lang in ("ko", "en") else ""
    if "messages" in data:
        messages = data["messages"]
        if not isinstance(messages, list):
            raise ApiError("bad_request", '"messages" must be a list')
        said = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if not said:
            raise ApiError("bad_request", '"messages" has no message with role "user"')
        content = said[-1].get("content")
        session = _id(data, "session")
        conversation = session or user or DEFAULT_USER
        user = user or conversation
    else:
        if "content" not in data:
            raise ApiError("bad_request", 'a message needs "content" (or "messages")')
        content = data["content"]
        user = user or DEFAULT_USER
        conversation = _id(data, "session") or user
    if not isinstance(content, str):
        raise ApiError("bad_request", '"content" must be a string')
    return ChatRequest(content, conversation, user, message_id, lang)


def decode_request(raw: str) -> ChatRequest:
    """A client's message as sent (JSON text) as a request; ``ApiError`` saying what is wrong."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError("bad_request", "a message is JSON text") from None
    return parse_request(data)


# ---- frames to one client -----------------------------------------------------------------------


class Outbox:
    """Frames for one client, written in order by one writer task.

    ``delta`` never blocks: text the writer has not sent yet is merged into one frame, so a
    client that reads slowly gets fewer, larger frames. Past ``limit`` bytes unsent the client
    is given up (``on_overflow``) and later frames are dropped.
    """

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        on_overflow: Callable[[], None] = lambda: None,
        limit: int = MAX_UNREAD,
    ) -> None:
        self._send = send
        self._on_overflow = on_overflow
        self.limit = limit
        self._pending: deque[dict[str, Any]] = deque()
        self._sizes: deque[int] = deque()  # each pending frame's share of ``_bytes``
        self._bytes = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.broken = False  # the client is gone or too slow: nothing more is sent
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write())

    def delta(self, text: str) -> None:
        if not text or self.broken:
            return
        last = self._pending[-1] if self._pending else None
        size = len(text.encode())
        if last is not None and not last["is_end"] and "error" not in last:
            last["content"] += text
            self._sizes[-1] += size
        else:
            self._pending.append({"content": text, "is_end": False})
            self._sizes.append(size)
        self._grew(size)

    def frame(self, frame: dict[str, Any]) -> None:
        if self.broken:
            return
        size = len(str(frame.get("content", "")).encode()) + 64
        self._pending.append(frame)
        self._sizes.append(size)
        self._grew(size)

    def _grew(self, size: int) -> None:
        self._bytes += size
        self._idle.clear()
        self._wake.set()
        if self._bytes > self.limit:
            self.broken = True
            self._drop()
            self._idle.set()
            self._on_overflow()

    def _drop(self) -> None:
        self._pending.clear()
        self._sizes.clear()
        self._bytes = 0

    async def drained(self) -> None:
        """Until every frame so far was written (or the client was given up)."""
        await self._idle.wait()

    async def _write(self) -> None:
        try:
            while True:
                if not self._pending:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                frame = self._pending.popleft()
                self._bytes -= self._sizes.popleft()
                try:
                    await self._send(json.dumps(frame, ensure_ascii=False))
                except (ConnectionError, RuntimeError) as exc:  # the client went away
                    log.debug("web: frame not delivered: %r", exc)
                    self.broken = True
                    self._drop()
        finally:
            self._idle.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class WebReply(ReplyStream):
    """One answer as frames: deltas as they come, then one end frame (or an error frame).

    Without an ``outbox`` (a REST client that wants the whole answer) nothing is framed: the
    answer is only kept in ``final`` (or ``error``)."""

    def __init__(self, outbox: Outbox | None, metrics: Metrics = NO_METRICS) -> None:
        self.outbox = outbox
        self._visible = FirstVisible(metrics, PLATFORM)
        self.sent = ""  # the deltas so far
        self.final: str | None = None  # the answer as it ended (None: it failed)
        self.error: ApiError | None = None
        self.buttons: list[dict[str, str]] = []
        self.ended = asyncio.Event()

    async def start(self) -> None:
        self._visible.requested()  # the manager asks the model right after start()

    def append(self, text: str) -> None:
        if self.ended.is_set() or not text:
            return
        self.sent += text
        if self.outbox is not None:
            self.outbox.delta(text)
        self._visible.shown()

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        if self.ended.is_set():
            return
        frame: dict[str, Any]
        if text.startswith(self.sent):
            frame = {"content": text[len(self.sent) :], "is_end": True}
        else:  # the text changed under the deltas: the end frame carries all of it
            frame = {"content": text, "is_end": True, "replace": True}
        if buttons:
            self.buttons = [{"label": b.label, "payload": b.payload} for b in buttons]
            frame["buttons"] = self.buttons
        self.final = text
        self._end(frame)

    async def fail(self, notice: str) -> None:
        if not self.ended.is_set():
            self.refuse(ApiError("unavailable", notice, status=503))

    async def retract(self, notice: str) -> None:
        if self.ended.is_set():
            return
        self.final = notice
        self._end({"content": notice, "is_end": True, "replace": True})

    def refuse(self, error: ApiError) -> None:
        """End with an error frame instead of an answer."""
        self.error = error
        self._end(error.frame())

    def replay(self, answer: str) -> None:
        """End with the answer given before to the same message_id."""
        self.final = answer
        self._end({"content": answer, "is_end": True, "duplicate": True})

    def _end(self, frame: dict[str, Any]) -> None:
        if self.outbox is not None:
            self.outbox.frame(frame)
        self.ended.set()


# ---- the channel --------------------------------------------------------------------------------


class Keys:
    """The configured keys, looked up by hash (no comparison on the key itself)."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._tenants = {hashlib.sha256(k.encode()).digest(): key_tenant(k) for k in keys}

    def __bool__(self) -> bool:
        return bool(self._tenants)

    def tenant(self, request: web.Request) -> str | None:
        """The caller's tenant, or None when its key is missing or wrong."""
        if not self._tenants:
            return LOCAL_TENANT
        auth = request.headers.get("Authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        key = key or request.query.get("token", "")
        if not key:
            return None
        return self._tenants.get(hashlib.sha256(key.encode()).digest())


def _unauthorized() -> web.HTTPUnauthorized:
    body = ApiError("unauthorized", "a valid API key is required", status=401).frame()
    return web.HTTPUnauthorized(
        text=json.dumps(body),
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="bot"'},
    )


class WebChannel:
    """The aiohttp server of the web channel, and the turns it hands to the manager."""

    def __init__(
        self,
        app: App,
        *,
        rate_limiter: RateLimiter | None = None,
        concurrency: ConcurrencyLimiter | None = None,
    ) -> None:
        settings = app.settings
        self.app = app
        self.manager = app.manager
        self.keys = Keys(settings.web_keys)
        if settings.web_problem:
            raise WebConfigError(settings.web_problem)
        if rate_limiter is None:
            rate_limiter = shared_rate_limiter(
                app.store, settings.web_key_rate_per_minute, name="webkey"
            )
        self.rate_limiter = rate_limiter
        self.concurrency = concurrency or shared_concurrency_limiter(
            app.store, settings.web_key_max_concurrent
        )
        self.max_unread = MAX_UNREAD  # bytes a client may leave unread before it is closed
        self.heartbeat = HEARTBEAT
        self.metrics: Metrics = getattr(app, "metrics", NO_METRICS)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._answers: set[asyncio.Task[None]] = set()
        self._sockets: dict[web.WebSocketResponse, Outbox] = {}
        self._writing: dict[str, asyncio.Future[str | None]] = {}  # message_id → its answer
        self._stopping = False
        self._page = resources.files("adapters").joinpath("web_page/index.html").read_bytes()

    # -- lifecycle --

    def build(self) -> web.Application:
        server = web.Application(client_max_size=MAX_FRAME)
        server.router.add_get("/", self.page)
        server.router.add_get(WS_PATH, self.websocket)
        server.router.add_post(CHAT_PATH, self.chat)
        return server

    async def start(self) -> None:
        settings = self.app.settings
        runner = web.AppRunner(self.build(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.web_host, settings.web_port or 0)
        await site.start()
        self._runner, self._site = runner, site
        self.port = runner.addresses[0][1]
        log.info("web: serving on %s:%s", settings.web_host, self.port)

    async def run(self) -> None:
        """Serve until cancelled; then let answers in flight finish within the grace."""
        try:
            await self.start()
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        self._stopping = True
        if self._site is not None:
            with contextlib.suppress(Exception):
                await self._site.stop()  # no new connections
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.app.settings.shutdown_grace_seconds
        if self._answers:
            _, late = await asyncio.wait(set(self._answers), timeout=deadline - loop.time())
            for task in late:
                task.cancel()  # answer_turn ends the answer with the shutdown notice
            if late:
                log.warning("web: %d answer(s) were cut at shutdown", len(late))
                await asyncio.wait(late, timeout=5.0)
        # The last frames reach the clients (within what is left of the grace), then 1001.
        outboxes = [outbox.drained() for outbox in self._sockets.values()]
        if outboxes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*outboxes), max(1.0, deadline - loop.time()))
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"the bot is restarting")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the page --

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._page,
            content_type="text/html",
            charset="utf-8",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": (
                    "default-src 'self'; connect-src 'self' ws: wss:; "
                    "style-src 'unsafe-inline'; script-src 'unsafe-inline'"
                ),
                "X-Content-Type-Options": "nosniff",
            },
        )

    # -- WebSocket --

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        tenant = self.keys.tenant(request)
        if tenant is None:
            raise _unauthorized()
        # No permessage-deflate: the frames are short deltas, and each compressed socket
        # keeps zlib state (about 100 KiB a socket, measured with bench/bench_web.py).
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=MAX_FRAME, compress=False)
        await ws.prepare(request)

        def too_slow() -> None:
            log.info("web: closing a client that does not read (tenant=%s)", tenant)
            asyncio.get_running_loop().create_task(
                ws.close(code=CLOSE_TOO_SLOW, message=b"too slow: frames were not read")
            )

        outbox = Outbox(ws.send_str, on_overflow=too_slow, limit=self.max_unread)
        outbox.start()
        self._sockets[ws] = outbox
        inbox: asyncio.Queue[str | None] = asyncio.Queue()
        worker = asyncio.create_task(self._serve(tenant, inbox, outbox))
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    if inbox.qsize() >= MAX_WAITING:
                        await ws.close(
                            code=CLOSE_TOO_MANY, message=b"too many messages waiting for answers"
                        )
                        break
                    inbox.put_nowait(message.data)
                elif message.type is WSMsgType.BINARY:
                    inbox.put_nowait("")  # refused in its turn: frames are JSON text
                elif message.type is WSMsgType.ERROR:
                    log.info("web: socket error: %r", ws.exception())
                    break
        finally:
            inbox.put_nowait(None)
            # The answer being written goes on (and is saved); waiting messages are dropped.
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await outbox.close()
            self._sockets.pop(ws, None)
        return ws

    async def _serve(self, tenant: str, inbox: asyncio.Queue[str | None], outbox: Outbox) -> None:
        """Answer a socket's messages one after the other."""
        while (raw := await inbox.get()) is not None:
            if outbox.broken:
                continue
            try:
                request = decode_request(raw)  # a binary frame came as "": not JSON either
            except ApiError as exc:
                outbox.frame(exc.frame())
                continue
            reply = WebReply(outbox, self.metrics)
            await self._spawn(self.answer(tenant, request, reply))

    async def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one answer as a task of its own, so that a closed socket does not cut it."""
        task = asyncio.get_running_loop().create_task(work)
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)
        await asyncio.shield(task)

    # -- REST --

    async def chat(self, request: web.Request) -> web.StreamResponse:
        tenant = self.keys.tenant(request)
        if tenant is None:
            raise _unauthorized()
        try:
            chat = decode_request(await request.text())
        except ApiError as exc:
            return web.json_response(exc.frame(), status=exc.status)
        if "text/event-stream" in request.headers.get("Accept", ""):
            return await self._chat_events(request, tenant, chat)
        reply = WebReply(None, self.metrics)  # the whole answer, no frames
        await self._spawn(self.answer(tenant, chat, reply))
        if reply.error is not None:
            return web.json_response(reply.error.frame(), status=reply.error.status)
        body: dict[str, Any] = {"content": reply.final or "", "is_end": True}
        body["session"] = chat.conversation
        if reply.buttons:
            body["buttons"] = reply.buttons
        return web.json_response(body, dumps=lambda v: json.dumps(v, ensure_ascii=False))

    async def _chat_events(
        self, request: web.Request, tenant: str, chat: ChatRequest
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # a proxy in front must not hold the events back
            }
        )
        await response.prepare(request)

        async def send(frame: str) -> None:
            await response.write(f"data: {frame}\n\n".encode())

        outbox = Outbox(send)
        outbox.start()
        try:
            await self._spawn(self.answer(tenant, chat, WebReply(outbox, self.metrics)))
            await outbox.drained()
        finally:
            await outbox.close()
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    # -- one turn --

    async def answer(self, tenant: str, chat: ChatRequest, reply: WebReply) -> None:
        """The tenant's limits, then the manager; a retried ``message_id`` gets its answer
        again rather than a second one."""
        lang = detect_language(chat.content, chat.lang)
        if self._stopping:
            await reply.fail(t("notice_shutdown", lang))
            return
        if self.rate_limiter is not None and chat.content.strip()[:1] != "/":
            allowance = await self.rate_limiter.hit(tenant)
            if not allowance.allowed:
                seconds = max(1, round(allowance.retry_after))
                error = ApiError(
                    "rate_limited",
                    t("rate_limited", lang, seconds=seconds),
                    status=429,
                    retry_after=seconds,
                )
                reply.refuse(error)
                return
        lease = secrets.token_hex(8)
        if not await self.concurrency.acquire(tenant, lease):
            message = t("web_busy", lang)
            reply.refuse(ApiError("too_many_answers", message, status=429, retry_after=1))
            return
        try:
            turn = Turn(
                platform=PLATFORM,
                team_id=tenant,
                chat_id=chat.conversation,
                user_id=chat.user,
                text=chat.content,
                message_id=chat.message_id,
                delivery_id=chat.delivery,
                is_private=True,
                language=chat.lang,
            )
            if turn.delivery_id:
                await self._answer_once(turn, reply, lang)
            else:
                await self._answer(turn, reply, lang)
        finally:
            await self.concurrency.release(tenant, lease)

    async def _answer(self, turn: Turn, reply: WebReply, lang: str) -> None:
        label = str(turn.session_key())
        await answer_turn(
            self.manager, turn, reply, lang, deduplicated=False, durable=False, label=label
        )

    async def _answer_once(self, turn: Turn, reply: WebReply, lang: str) -> None:
        """A turn with a ``message_id``: answered once; a retry (a client that lost its
        socket and sends it again) gets that answer, waiting for it while it is written."""
        key = turn.delivery_key
        writing = self._writing.get(key)
        if writing is not None:  # being answered in this process: wait for that answer
            self._replayed(reply, await asyncio.shield(writing))
            return
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._writing[key] = done
        try:
            await self._answer(turn, reply, lang)
            if not reply.ended.is_set():  # the manager said nothing: seen before
                self._replayed(reply, await self._replay(turn, wait=REPLAY_WAIT))
            elif reply.final is not None and reply.error is None:
                await self._remember(turn, reply.final)
        finally:
            del self._writing[key]
            done.set_result(reply.final if reply.error is None else None)

    @staticmethod
    def _replayed(reply: WebReply, answer: str | None) -> None:
        if answer is None:
            error = ApiError(
                "duplicate",
                "this message_id was taken already and its answer is not available",
                status=409,
            )
            reply.refuse(error)
        else:
            reply.replay(answer)

    async def _remember(self, turn: Turn, answer: str) -> None:
        """Keep the answer to a message_id for the client's retry (indexed under the user, so
        that /forget deletes it with the rest)."""
        ref = _answer_ref(turn)
        try:
            await self.manager.commands.index.note_record(turn, ref, ANSWER_TTL)
            await self.app.store.put_record(
                ref.kind, ref.tenant, ref.record_id, {"content": answer}, ANSWER_TTL
            )
        except SessionStoreError as exc:
            log.warning("web: answer to a message_id not kept for retries: %s", exc)

    async def _replay(self, turn: Turn, *, wait: float = 0.0) -> str | None:
        """The kept answer to the turn's message_id; ``wait``: for that long, it may still be
        written by another process."""
        ref = _answer_ref(turn)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                found = await self.app.store.get_record(ref.kind, ref.tenant, ref.record_id)
            except SessionStoreError:
                found = None
            content = found.get("content") if found else None
            if isinstance(content, str):
                return content
            if loop.time() >= deadline or self._stopping:
                return None
            await asyncio.sleep(REPLAY_POLL)


def _answer_ref(turn: Turn) -> RecordRef:
    """Where the answer to a turn's message_id is kept (a record of the user's tenant)."""
    return RecordRef(ANSWER_RECORD, tenant_of(turn), turn.delivery_id)


async def run(app: App) -> None:
    """Entry point used by ``bot.app.run_channels``."""
    await WebChannel(app).run()
