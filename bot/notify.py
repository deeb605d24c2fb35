"""Messages to the bot's configured admins (e.g. "a new booking"), sent by each platform.

The core says what to tell the admins of one tenant; each adapter registers how it reaches
its admins (a Telegram private message, a Slack DM), paced like every other send. Sending
runs in the background: the user's own answer never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# (team, Markdown text) -> delivered to every configured admin of that platform.
Notify = Callable[[str, str], Awaitable[None]]


class AdminNotices:
    def __init__(self) -> None:
        self._by_platform: dict[str, Notify] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, platform: str, notify: Notify) -> None:
        self._by_platform[platform] = notify

    def send(self, platform: str, team: str, text: str) -> bool:
        """Schedule ``text`` to the admins of ``platform``; False when nobody can be told."""
        notify = self._by_platform.get(platform)
        if notify is None:
            return False
        task = asyncio.get_running_loop().create_task(self._send(platform, notify, team, text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _send(self, platform: str, notify: Notify, team: str, text: str) -> None:
        try:
            await notify(team, text)
        except Exception as exc:  # the booking is stored; only the heads-up is lost
            log.warning("admin notice not delivered platform=%s: %r", platform, exc)

    async def drain(self) -> None:
        """Wait for notices in flight (at shutdown, and in tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))
