"""AiohttpRequest: PTB's Bot API calls over one aiohttp connection pool instead of httpx.

PTB's default (``HTTPXRequest``) goes through httpcore's pool, which on every request start
and end walks all its connections and all queued requests and asks each idle connection's
socket whether it is readable: with a few hundred answers streaming at once that bookkeeping
was the largest single cost of the bot's process (bench/bench_capacity.py). aiohttp (already
the GLM client's HTTP library) hands out pooled connections from a queue instead.

Same wire format (form-encoded parameters, multipart when files are sent), same timeouts and
errors as ``HTTPXRequest``: ``TimedOut`` for any timeout, ``NetworkError`` for the rest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import threading
from collections.abc import Coroutine
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL


class AiohttpRequest(BaseRequest):
    """A ``telegram.request.BaseRequest`` on an ``aiohttp.ClientSession`` (created lazily, in
    the running loop). Defaults are ``HTTPXRequest``'s: 256 connections, 5 s read, write and
    connect timeouts, 1 s to wait for a free connection, 20 s to write a file upload."""

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_proxies",
        "_read_timeout",
        "_session",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be positive")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0),
                headers={"User-Agent": self.USER_AGENT},
            )
            self._proxies.clear()

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data is not None and request_data.contains_files
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            data = _form(request_data) if files else request_data.json_parameters
        read = _given(read_timeout, self._read_timeout)
        write = _given(write_timeout, self._media_write_timeout if files else self._write_timeout)
        connect = _given(connect_timeout, self._connect_timeout)
        pool = _given(pool_timeout, self._pool_timeout)
        # aiohttp has no write timeout: the whole request is bounded by the sum instead.
        parts = (read, write, connect, pool)
        total = None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        proxy, proxy_auth = self._proxy(url)
        try:
            async with session.request(
                method, url, data=data, timeout=timeout, proxy=proxy, proxy_auth=proxy_auth
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:  # aiohttp raises the builtin (asyncio.TimeoutError is it)
            raise TimedOut from err
        except aiohttp.ClientError as err:
            # aiohttp names the URL in some errors, and a Bot API URL holds the token.
            detail = _TOKEN_IN_URL.sub("/bot<token>", str(err))
            raise NetworkError(f"aiohttp.{type(err).__name__}: {detail}") from None

    def _proxy(self, url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """HTTP(S)_PROXY and NO_PROXY, as httpx honours them, looked up once per host.

        (aiohttp's ``trust_env`` looks them up, and reads ~/.netrc, in a worker thread on
        every request: with hundreds of answers streaming, a tenth of the process's time.)
        """
        try:
            target = URL(url)
        except ValueError:
            return None, None  # aiohttp refuses the URL itself, with its own error
        origin = f"{target.scheme}://{target.host}:{target.port}"
        found = self._proxies.get(origin)
        if found is None:
            try:
                found = get_env_proxy_for_url(target)
            except LookupError:
                found = (None, None)
            self._proxies[origin] = found
        return found


Job = Coroutine[Any, Any, Any]

_TOKEN_IN_URL = re.compile(r"/bot[^/\s]+")


def _given(value: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


def _form(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, field in request_data.multipart_data.items():
        filename, content, *rest = field
        form.add_field(name, content, filename=filename, content_type=rest[0] if rest else None)
    return form


class ThreadedPollRequest(BaseRequest):
    """PTB's ``getUpdates`` calls made on an event loop of their own, in a thread of their own.

    On the bot's loop a long poll is a dozen steps (connect, write, read the head, read the
    body…), and when a thousand answers stream at once every step waits behind all of them: the
    poll that brings the next hundred messages came back only every 0.3-0.4 s, and messages
    sat at Telegram for a second or two (bench/bench_capacity.py). On a loop that does nothing
    else the poll waits for the bot's loop once, to hand over what it got; the bot's loop still
    journals each update before the next poll confirms it, as before.

    The calls themselves are :class:`AiohttpRequest`'s (same timeouts, errors and proxies). A
    cancelled call is cancelled on the polling loop too, so its connection ends as an awaited
    request's would; a new call first waits for the one it supersedes to end, so Telegram never
    sees two polls at once (it would answer the older one 409).
    """

    __slots__ = ("_inner", "_last", "_loop", "_thread")

    def __init__(
        self,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._inner = AiohttpRequest(
            connection_pool_size=2,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._last: concurrent.futures.Future[Any] | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._inner.read_timeout

    async def initialize(self) -> None:
        if self._loop is None:
            loop = self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="telegram-getUpdates", daemon=True
            )
            self._thread.start()
        await self._on_poll_loop(self._inner.initialize())

    async def shutdown(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        try:
            await self._on(loop, self._inner.shutdown())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join, 2.0)
            if not thread.is_alive():
                loop.close()

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """:meth:`AiohttpRequest.do_request` (same arguments), on the polling loop."""
        last = self._last
        if last is not None and not last.done():
            # PTB's last call on stopping can come before the cancelled poll has ended.
            last.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wrap_future(last)
        call = self._inner.do_request(*args, **kwargs)
        return await self._on_poll_loop(call)  # type: ignore[no-any-return]

    async def _on_poll_loop(self, coroutine: Job) -> Any:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("This ThreadedPollRequest is not initialized!")
        return await self._on(self._loop, coroutine)

    async def _on(self, loop: asyncio.AbstractEventLoop, coroutine: Job) -> Any:
        future = self._last = asyncio.run_coroutine_threadsafe(coroutine, loop)
        return await asyncio.wrap_future(future)  # cancelling this cancels it there too
