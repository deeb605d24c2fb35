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

import re

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
