"""TelegramOutbox: paces every Bot API call of one bot within Telegram's documented limits."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, TypeVar

from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter

from adapters.pacing import Window, margin
from bot.observability import NO_METRICS, Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
Kind = Literal["message", "draft"]


PER_CHAT = Window(1.0, 1)
PER_GROUP = Window(60.0, 20)
PER_BOT = Window(1.0, 30)
DRAFTS = (Window(0.5, 1), Window(5.0, 20), Window(30.0, 40))


@dataclass(frozen=True, slots=True)
class FloodPolicy:
    """Telegram's documented limits (FAQ "My bot is hitting limits"), and our draft pacing.

    Messages: one a second per chat, 20 a minute per group (every send and edit counts), 30 a
    second for the whole bot. Drafts (private chats) have no documented limit; Telegram's own
    clients are held to 20 per 5 s and 40 per 30 s per chat. Clients animate from one draft to
    the next, so a draft every 0.5 s reads as smoothly as a faster one, with fewer calls.
    """

    chat: Window = PER_CHAT
    group: Window = PER_GROUP
    bot: Window = PER_BOT
    drafts: tuple[Window, ...] = DRAFTS
    group_reserve: int = 3  # group slots interim edits leave free for final messages
    typing_interval: float = 4.5  # the typing status lasts 5 s on the client
    # A draft is a 30-second preview: when the model pauses, the same draft is sent again
    # after this long, so the answer does not vanish from the screen meanwhile (0: never).
    draft_refresh: float = 20.0


@dataclass(slots=True)
class _Stamp:
    """When a send happened: while in flight "now", then when its answer came back."""

    at: float
    done: bool = False


@dataclass
class _Ledger:
    sends: deque[_Stamp] = field(default_factory=deque)


class TelegramOutbox:
    """Paces every platform call of one bot so that no limit is ever hit; shared by all answers.

    Interim updates ask ``wait_time(..., interim=True)`` and skip or wait (they are coalesced:
    the next one carries all text so far); final messages ``await slot(...)``, which waits for
    room. Group interims leave ``group_reserve`` slots of the minute to final messages, and once
    half of any window is used they slow to its sustainable rate. A 429 blocks the chat for
    ``retry_after`` seconds for every answer.
    """

    def __init__(
        self,
        bot: Bot,
        policy: FloodPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.bot = bot
        self.policy = policy or FloodPolicy()
        self.clock = clock
        self.metrics = metrics if metrics is not None else NO_METRICS
        self.flood_waits = 0  # 429s received (for logs and the benchmark)
        self._ledgers: dict[tuple[str, int], _Ledger] = {}
        self._blocked_until: dict[int, float] = {}
        self._takes = 0
        self._draft_ids = itertools.count(random.randrange(1, 2**30))
        spans = [w.span for w in (self.policy.chat, self.policy.group, self.policy.bot)]
        spans += [w.span for w in self.policy.drafts]
        self._keep = max(spans) + margin(max(spans))  # older sends never matter

    def next_draft_id(self) -> int:
        """A fresh non-zero draft id: updates of one draft animate, a new id starts a new one."""
        return next(self._draft_ids) % (2**31 - 1) + 1

    def _windows(self, chat: int, kind: Kind, group: bool) -> list[tuple[tuple[str, int], Window]]:
        p = self.policy
        if kind == "draft":
            return [(("draft", chat), w) for w in p.drafts]
        windows = [(("chat", chat), p.chat), (("bot", 0), p.bot)]
        if group:
            windows.append((("group", chat), p.group))
        return windows

    def wait_time(self, chat: int, kind: Kind, *, group: bool, interim: bool) -> float:
        """Seconds until a send of ``kind`` to ``chat`` is within every limit (0: now)."""
        now = self.clock()
        wait = self._blocked_until.get(chat, 0.0) - now
        for key, window in self._windows(chat, kind, group):
            ledger = self._ledgers.get(key)
            if ledger is None or not ledger.sends:
                continue
            span = window.counted
            # Telegram counts a send when it arrives, somewhere between our start and its
            # answer: one still in flight may be arriving right now.
            recent = sorted(
                t for t in (s.at if s.done else now for s in ledger.sends) if t > now - span
            )
            if not recent:
                continue
            limit = window.limit
            if interim and key[0] != "bot":
                # A chat's budget is shared by this answer's later updates and other answers:
                # past half of it, updates slow to the sustainable rate and leave a reserve.
                if key[0] == "group":
                    limit = max(1, limit - self.policy.group_reserve)
                if len(recent) >= max(1, window.limit // 2):
                    wait = max(wait, recent[-1] + span / window.limit - now)
            if len(recent) >= limit:
                wait = max(wait, recent[len(recent) - limit] + span - now)
        return max(0.0, wait)

    def blocked_for(self, chat: int) -> float:
        return max(0.0, self._blocked_until.get(chat, 0.0) - self.clock())

    def take(self, chat: int, kind: Kind, *, group: bool) -> _Stamp:
        """Record a send that is about to happen; ``sent(stamp)`` once it has been answered.

        Counting a send from its answer keeps the next one far enough away however long this
        one queued on a busy loop or connection pool.
        """
        now = self.clock()
        stamp = _Stamp(now)
        for key in dict.fromkeys(k for k, _ in self._windows(chat, kind, group)):
            ledger = self._ledgers.setdefault(key, _Ledger())
            ledger.sends.append(stamp)
            while ledger.sends and ledger.sends[0].done and ledger.sends[0].at <= now - self._keep:
                ledger.sends.popleft()
        self._takes += 1
        if self._takes % 1000 == 0:
            self._forget_idle(now)
        return stamp

    def sent(self, stamp: _Stamp) -> None:
        stamp.at, stamp.done = max(stamp.at, self.clock()), True

    def _forget_idle(self, now: float) -> None:
        """Drop chats with nothing recent, so memory follows active chats, not all chats."""
        idle = [
            key
            for key, ledger in self._ledgers.items()
            if all(s.done and s.at <= now - self._keep for s in ledger.sends)
        ]
        for key in idle:
            del self._ledgers[key]
        for chat in [c for c, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[chat]

    async def slot(self, chat: int, kind: Kind, *, group: bool) -> _Stamp:
        """Wait until a send is within every limit, and record it."""
        while True:
            wait = self.wait_time(chat, kind, group=group, interim=False)
            if wait <= 0:
                return self.take(chat, kind, group=group)
            await asyncio.sleep(wait)

    def block(self, chat: int, exc: RetryAfter) -> float:
        """Telegram said "retry after N seconds" for ``chat``: nobody sends there until then."""
        seconds = retry_seconds(exc)
        self.flood_waits += 1
        self.metrics.platform_rate_limited("telegram")
        self._blocked_until[chat] = max(self._blocked_until.get(chat, 0.0), self.clock() + seconds)
        return seconds

    async def final(
        self, chat: int, kind: Kind, group: bool, call: Callable[[], Awaitable[T]]
    ) -> T:
        """Send something that must arrive: waits for room, honours 429s, retries the network.

        ``BadRequest`` and other refusals are raised for the caller to handle.
        """
        failures = 0
        while True:
            stamp = await self.slot(chat, kind, group=group)
            try:
                return await call()
            except RetryAfter as exc:
                seconds = self.block(chat, exc)
                log.warning("flood wait chat=%s retry_after=%.0fs (final)", chat, seconds)
            except BadRequest:
                raise
            except NetworkError as exc:
                failures += 1
                if failures >= 3:
                    raise
                log.warning("network error chat=%s, retrying: %s", chat, exc)
                await asyncio.sleep(0.5 * failures)
            finally:
                self.sent(stamp)

    async def other(self, what: str, call: Callable[[], Awaitable[T]], *, tries: int = 3) -> T:
        """A call that shows no message (``setMyCommands``, ``answerCallbackQuery``,
        ``getChatMember``): it takes no room in the chats' windows, but a 429 is honoured
        (waited out, counted) and a network failure retried, like every other call."""
        failures = 0
        while True:
            try:
                return await call()
            except RetryAfter as exc:
                seconds = retry_seconds(exc)
                self.flood_waits += 1
                self.metrics.platform_rate_limited("telegram")
                failures += 1
                if failures >= tries:
                    raise
                log.warning("flood wait on %s retry_after=%.0fs", what, seconds)
                await asyncio.sleep(seconds)
            except NetworkError as exc:
                if isinstance(exc, BadRequest):
                    raise
                failures += 1
                if failures >= tries:
                    raise
                log.warning("network error on %s, retrying: %s", what, exc)
                await asyncio.sleep(0.5 * failures)


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB warns that the int form is deprecated in favour of timedelta; either is fine.
        warnings.simplefilter("ignore")
        value = exc.retry_after
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return max(seconds, 0.0)
