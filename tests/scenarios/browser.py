"""A real headless Chromium driven over the Chrome DevTools Protocol (CDP), for the web chat page.

Nothing but aiohttp: the browser is started with ``--remote-debugging-port=0``, the port it
chose is read from ``<user-data-dir>/DevToolsActivePort``, and the page target's WebSocket is
driven with ``Page.navigate``, ``Runtime.evaluate`` and ``Input.*`` (typed text and real key
presses, as a user would). ``async with Browser() as browser`` removes the browser and its
profile afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import aiohttp

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)


class BrowserError(Exception):
    """The browser did not start, or a CDP command failed (its error message)."""


def chromium_path() -> str:
    """The Chromium executable; ``BrowserError`` when none is installed (the tests fail)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError("chromium is not installed (bash scripts/setup.sh --dev installs it)")


def _check(deadline: float, failure: str) -> None:
    """Fail once ``deadline`` (loop time) has passed: polls end by their own clock, not by
    a cancellation that a library may swallow."""
    if asyncio.get_running_loop().time() >= deadline:
        raise AssertionError(failure)


def _log_file(path: Path) -> BinaryIO:
    return path.open("wb")


class Browser:
    """One headless Chromium with one page, driven over CDP."""

    def __init__(self, *, start_within: float = 20.0) -> None:
        self.start_within = start_within
        self.command_timeout = 10.0  # seconds for the browser to answer one CDP command
        self.proc: asyncio.subprocess.Process | None = None
        self.profile = ""
        self.port = 0
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.events: list[dict[str, Any]] = []  # every CDP event, in order
        self._events_changed = asyncio.Event()

    # -- lifecycle --

    async def __aenter__(self) -> Browser:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        log_path = Path(self.profile).with_suffix(".log")
        with _log_file(log_path) as log:  # chromium's own chatter (dbus, GPU): not ours
            self.proc = await asyncio.create_subprocess_exec(
                chromium_path(),
                *FLAGS,
                f"--user-data-dir={self.profile}",
                "about:blank",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: closed as one
            )
        active = Path(self.profile) / "DevToolsActivePort"
        deadline = asyncio.get_running_loop().time() + self.start_within
        while True:
            if self.proc.returncode is not None:
                raise BrowserError(
                    f"chromium exited with {self.proc.returncode}: "
                    f"{log_path.read_text(errors='replace')[-2000:]}"
                )
            with contextlib.suppress(OSError, ValueError):
                lines = active.read_text().splitlines()
                if len(lines) >= 2:  # written whole: the port, then the browser's path
                    self.port = int(lines[0])
                    break
            _check(deadline, "chromium wrote no DevToolsActivePort")
            await asyncio.sleep(0.05)
        self._http = aiohttp.ClientSession()
        target = await self._page_target(deadline)
        self._ws = await self._http.ws_connect(
            target["webSocketDebuggerUrl"],
            max_msg_size=0,
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_close=5),
        )
        self._reader = asyncio.create_task(self._read())
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        await self.send("Log.enable")

    async def _page_target(self, deadline: float) -> dict[str, Any]:
        assert self._http is not None
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                url = f"http://127.0.0.1:{self.port}/json/list"
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    targets = await resp.json(content_type=None)
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return dict(pages[0])
            _check(deadline, "chromium shows no page target")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.proc is not None:
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # the group started above
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)
            self.proc = None
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            with contextlib.suppress(OSError):
                Path(self.profile).with_suffix(".log").unlink()
            self.profile = ""

    # -- the protocol --

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append(data)
                self._events_changed.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrowserError("the DevTools connection closed"))

    async def send(self, method: str, /, **params: Any) -> dict[str, Any]:
        """One CDP command; its result, or ``BrowserError`` with the browser's message."""
        assert self._ws is not None, "the browser is not started"
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        try:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation (an enclosing
            # asyncio.timeout's) that comes as the answer does, and a poll would never end.
            async with asyncio.timeout(self.command_timeout):
                answer = await future
        finally:
            self._waiting.pop(ident, None)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    # -- the page --

    async def navigate(self, url: str, within: float = 15.0) -> None:
        """Open ``url`` and wait until its load event (scripts have run by then)."""
        seen = len(self.events)
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url}: {result['errorText']}")
        async with asyncio.timeout(within):
            while not any(e.get("method") == "Page.loadEventFired" for e in self.events[seen:]):
                self._events_changed.clear()
                await self._events_changed.wait()

    def problems(self, *, ignore: tuple[str, ...] = ("/favicon.ico",)) -> list[str]:
        """What went wrong in the page: uncaught exceptions, console errors and the browser's
        own error entries (a refused request, a Content-Security-Policy violation...)."""
        found: list[str] = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(
                    details.get("exception", {}).get("description") or details.get("text", "")
                )
            elif (
                event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error"
            ):
                found.append(" ".join(str(a.get("value", "")) for a in params.get("args", [])))
            elif event.get("method") == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") == "error" and not str(entry.get("url", "")).endswith(ignore):
                    found.append(f"{entry.get('source')}: {entry.get('text')} ({entry.get('url')})")
        return found

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression!r} threw: {text}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, within: float = 10.0, every: float = 0.05) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            _check(deadline, f"{expression!r} still {value!r} after {within} s")
            await asyncio.sleep(every)

    async def focus(self, selector: str) -> None:
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" if (!e) return false; e.focus(); return document.activeElement === e; }})()"
        )
        if not found:
            raise BrowserError(f"no element {selector} to focus")

    async def type(self, selector: str, text: str) -> None:
        """Type ``text`` into the element, as an input method commits it (Korean included)."""
        await self.focus(selector)
        await self.send("Input.insertText", text=text)

    async def press(self, key: str = "Enter", keycode: int = 13, text: str = "\r") -> None:
        """Press and release one key in the focused element (``keycode``: its virtual key)."""
        common: dict[str, Any] = {"key": key, "code": key, "windowsVirtualKeyCode": keycode}
        await self.send("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" if (!e) return null; const r = e.getBoundingClientRect();"
            f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        )
        if not box:
            raise BrowserError(f"no element {selector} to click")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )
