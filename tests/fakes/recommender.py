"""FakeRecommender: an operator's recommender service on real loopback HTTP, for tests.

``POST /recommend`` answers ``{"items": answer}`` where ``answer`` is what the test set:
full items (dicts) or catalog ids (strings, sent as ``{"id": ...}``), verbatim: the fake does
not apply ``limit`` or ``seen``, so a test can check that the client does. ``body`` replaces
the whole answer with any JSON value (wrong shapes). ``mode`` switches to an outage:

* ``"slow"``: answers only after ``slow_seconds`` (past the client's timeout);
* ``"error"``: HTTP 500 with a JSON error body;
* ``"malformed"``: HTTP 200 with a truncated JSON body;
* ``"down"``: the connection is cut before any response.

Every request is recorded, in every mode, and sets ``arrived``. Imports nothing from the bot.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from aiohttp import web

Mode = Literal["up", "slow", "error", "malformed", "down"]
PATH = "/recommend"


@dataclass(frozen=True)
class RecordedRecommendation:
    """One request: the decoded JSON body (None if it was not JSON) and its headers."""

    json: Any
    headers: dict[str, str]
    time: float = field(default_factory=time.monotonic)


class FakeRecommender:
    """The service at ``url`` (``http://127.0.0.1:PORT/recommend``) once started."""

    def __init__(self, *, slow_seconds: float = 5.0) -> None:
        self.mode: Mode = "up"
        self.answer: list[dict[str, Any] | str] = []
        self.body: Any = None  # not None: served as the JSON body instead of answer
        self.slow_seconds = slow_seconds
        self.requests: list[RecordedRecommendation] = []
        self.arrived = asyncio.Event()  # set by every request (a test may clear it)
        self._runner: web.AppRunner | None = None
        self._url = ""

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("server not started")
        return self._url

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(PATH, self._recommend)
        # handler_cancellation: a slow answer ends when the client gives up.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._url = f"http://{host}:{port}{PATH}"
        return self._url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _recommend(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = None
        self.requests.append(RecordedRecommendation(decoded, dict(request.headers)))
        self.arrived.set()
        if self.mode == "down":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never delivered: the connection is gone
        if self.mode == "error":
            return web.json_response({"error": "internal error"}, status=500)
        if self.mode == "malformed":
            return web.Response(body=b'{"items": [{"id": "py', content_type="application/json")
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        if self.body is not None:
            return web.json_response(self.body)
        items = [{"id": entry} if isinstance(entry, str) else entry for entry in self.answer]
        return web.json_response({"items": items})
