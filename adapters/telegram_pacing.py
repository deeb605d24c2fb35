"""TelegramOutbox: paces every Bot API call of one bot within Telegram's documented limits."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import random
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, TypeVar

from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter

from bot.observability import NO_METRICS, Metrics
from bot.pacing import Call, MemoryLedger, PaceLedger, Rule, Stamp, WaitingLine, Window

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
    # The typing status is for a model that is slow to start: an answer whose first words
    # show within this long needs none (and a burst of chats does not spend calls on it).
    typing_delay: float = 1.0
    # A draft is a 30-second preview: when the model pauses, the same draft is sent again
    # after this long, so the answer does not vanish from the screen meanwhile (0: never).
    draft_refresh: float = 20.0


class TelegramOutbox:
    """Paces every platform call of one bot so that no limit is ever hit; shared by all answers
    (and, with a Redis ledger, by every replica running this bot).

    Interim updates ``try_take(..., interim=True)`` and skip or wait when there is no room
    (they are coalesced: the next one carries all text so far); final messages ``await
    slot(...)``, which waits for room. Group interims leave ``group_reserve`` slots of the
    minute to final messages, and once half of any window is used they slow to its sustainable
    rate. A 429 blocks the chat for ``retry_after`` seconds for every answer.
    """

    def __init__(
        self,
        bot: Bot,
        policy: FloodPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        ledger: PaceLedger | None = None,
    ) -> None:
        self.bot = bot
        self.policy = policy or FloodPolicy()
        self.clock = clock
        self.metrics = metrics if metrics is not None else NO_METRICS
        self.ledger = ledger if ledger is not None else MemoryLedger(clock=clock)
        self.flood_waits = 0  # 429s received (for logs and the benchmark)
        # Everything one bot's limits are shared by; the token itself never leaves the process.
        self.scope = "telegram:" + hashlib.sha256(bot.token.encode()).hexdigest()[:16]
        # Chats are named in the ledger by a keyed hash: a shared ledger (Redis) then holds
        # no user's id, not even for the seconds its windows last (/forget leaves no trace).
        self._pepper = hashlib.sha256(b"pacing:" + bot.token.encode()).digest()
        self._draft_ids = itertools.count(random.randrange(1, 2**30))
        self.line = WaitingLine()  # finals wait for the bot-wide second in arrival order

    def next_draft_id(self) -> int:
        """A fresh non-zero draft id: updates of one draft animate, a new id starts a new one."""
        return next(self._draft_ids) % (2**31 - 1) + 1

    def call(self, chat: int, kind: Kind, *, group: bool, interim: bool) -> Call:
        """The windows a send of ``kind`` to ``chat`` counts against.

        An interim update shares its chat's budget with this answer's later updates and with
        other answers: past half of it, updates slow to the sustainable rate, and in groups
        they leave ``group_reserve`` places of the minute to final messages.
        """
        p = self.policy
        name = self._name(chat)
        blocks = (f"chat:{name}",)
        if kind == "draft":
            drafts = tuple(Rule(f"draft:{name}", w, steady=interim) for w in p.drafts)
            return Call(self.scope, drafts, blocks)
        rules = [Rule(f"chat:{name}", p.chat, steady=interim), Rule("bot", p.bot)]
        if group:
            room = max(1, p.group.limit - p.group_reserve) if interim else 0
            rules.append(Rule(f"group:{name}", p.group, room=room, steady=interim))
        return Call(self.scope, tuple(rules), blocks)

    def _name(self, chat: int) -> str:
        digest = hashlib.blake2b(str(chat).encode(), key=self._pepper, digest_size=8)
        return digest.hexdigest()

    async def try_take(self, chat: int, kind: Kind, *, group: bool, interim: bool) -> Stamp | float:
        """Count a send of ``kind`` to ``chat`` now, or say how many seconds until it fits;
        ``sent(stamp)`` once it has been answered.

        Counting a send from its answer keeps the next one far enough away however long this
        one queued on a busy loop or connection pool.
        """
        return await self.ledger.take(self.call(chat, kind, group=group, interim=interim))

    async def sent(self, stamp: Stamp) -> None:
        await self.ledger.sent(stamp)

    async def blocked_for(self, chat: int) -> float:
        return await self.ledger.blocked_for(self.scope, f"chat:{self._name(chat)}")

    async def slot(self, chat: int, kind: Kind, *, group: bool) -> Stamp:
        """Wait until a send is within every limit, and count it."""
        call = self.call(chat, kind, group=group, interim=False)
        return await self.line.when_room(self.ledger, call, "bot")

    async def block(self, chat: int, exc: RetryAfter) -> float:
        """Telegram said "retry after N seconds" for ``chat``: nobody sends there until then."""
        seconds = self._rate_limited(exc)
        await self.ledger.block(self.scope, f"chat:{self._name(chat)}", seconds)
        return seconds

    def _rate_limited(self, exc: RetryAfter) -> float:
        """Count a 429 (for logs, the benchmark and the metrics); its Retry-After seconds."""
        self.flood_waits += 1
        self.metrics.platform_rate_limited("telegram")
        return retry_seconds(exc)

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
                seconds = await self.block(chat, exc)
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
                await self.sent(stamp)

    async def other(self, what: str, call: Callable[[], Awaitable[T]], *, tries: int = 3) -> T:
        """A call that shows no message (``setMyCommands``, ``answerCallbackQuery``,
        ``getChatMember``): it takes no room in the chats' windows, but a 429 is honoured
        (waited out, counted) and a network failure retried, like every other call."""
        failures = 0
        while True:
            try:
                return await call()
            except RetryAfter as exc:
                seconds = self._rate_limited(exc)
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
