"""SlackBudget: paces every Web API call per workspace and method within Slack's tiers."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError

from bot.observability import NO_METRICS, Metrics
from bot.pacing import (
    Call,
    MemoryLedger,
    PaceLedger,
    Reservation,
    Rule,
    Stamp,
    WaitingLine,
    Window,
    when_room,
)

START = "chat.startStream"
APPEND = "chat.appendStream"
STOP = "chat.stopStream"
POST = "chat.postMessage"
UPDATE = "chat.update"
DELETE = "chat.delete"
STATUS = "assistant.threads.setStatus"
PROMPTS = "assistant.threads.setSuggestedPrompts"
REPLIES = "conversations.replies"


# https://docs.slack.dev/apis/web-api/rate-limits: per method, per workspace, per app.
TIER_1 = Window(60.0, 1)
TIER_2 = Window(60.0, 20)
TIER_3 = Window(60.0, 50)
TIER_4 = Window(60.0, 100)

DEFAULT_METHODS: Mapping[str, Window] = {
    START: TIER_2,
    APPEND: TIER_4,
    STOP: TIER_2,
    UPDATE: TIER_3,
    DELETE: TIER_3,
    STATUS: TIER_3,
    PROMPTS: TIER_4,
    REPLIES: TIER_3,
    # chat.postMessage is a special tier: about one a second per channel (below), and
    # "several hundred a minute" for the workspace.
    POST: Window(60.0, 300),
}
DEFAULT_PER_CHANNEL: Mapping[str, Window] = {POST: Window(1.0, 1)}


@dataclass(frozen=True, slots=True)
class SlackPolicy:
    """The documented limits, and how one answer paces itself within them.

    ``interim_share``: interim calls (appends, edits of a growing answer, the status line) never
    take more than this share of a window, so that every answer can still start, get its final
    edit and stop; past half of a window they slow to its sustainable rate.
    """

    methods: Mapping[str, Window] = field(default_factory=lambda: dict(DEFAULT_METHODS))
    per_channel: Mapping[str, Window] = field(default_factory=lambda: dict(DEFAULT_PER_CHANNEL))
    interim_share: float = 0.7
    append_interval: float = 0.8  # a stream gets new text at most this often (batched)
    update_interval: float = 1.2  # a posted answer is edited at most this often
    max_part: int = 4000  # longer answers continue in follow-up messages
    stream_retry: float = 600.0  # after streaming was refused, post instead for this long
    max_attempts: int = 6  # a call that must arrive is tried this often (429s, network)


class SlackBudget:
    """Paces every Web API call per workspace and method; shared by all answers of the process
    and, with a Redis ledger, by every replica of the app.

    Calls that must arrive wait for room (``slot``); interim calls ``try_take(...,
    interim=True)`` and skip when there is none (the next call carries the text). A stream's
    stop and a posted answer's last edit are reserved when the answer starts (``reserve``), so
    other answers' interim calls cannot take the room its end needs. A 429 blocks the method in
    that workspace for ``Retry-After`` seconds for everyone.
    """

    def __init__(
        self,
        policy: SlackPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        ledger: PaceLedger | None = None,
    ) -> None:
        self.policy = policy or SlackPolicy()
        self.clock = clock
        self.metrics = metrics if metrics is not None else NO_METRICS
        self.ledger = ledger if ledger is not None else MemoryLedger(clock=clock)
        self.rate_limited = 0  # 429s received (for logs and the benchmark)
        self.line = WaitingLine()  # calls that must wait do so in arrival order, per method
        # Learnt from Slack's answers, per process: a refusal is asked again after a while.
        self._stream_refused: dict[str, float] = {}
        self._unavailable: set[tuple[str, str, bool]] = set()  # (method, team, private)

    # -- capabilities learnt from Slack's answers --

    def streaming_allowed(self, team: str) -> bool:
        return self._stream_refused.get(team, -math.inf) <= self.clock()

    def refuse_streaming(self, team: str) -> None:
        self._stream_refused[team] = self.clock() + self.policy.stream_retry

    def available(self, method: str, team: str, private: bool) -> bool:
        """Whether ``method`` (an assistant nicety: the status line, suggested prompts) may
        work in this workspace's private or shared conversations: not refused there yet."""
        return (method, team, private) not in self._unavailable

    def refuse(self, method: str, team: str, private: bool) -> None:
        self._unavailable.add((method, team, private))

    # -- windows --

    def call(self, team: str, method: str, channel: str = "", *, interim: bool = False) -> Call:
        """The windows a call of ``method`` in ``team`` (and ``channel``) counts against."""
        rules = []
        window = self.policy.methods.get(method)
        if window is not None:
            room = max(1, int(window.limit * self.policy.interim_share)) if interim else 0
            rules.append(Rule(method, window, room=room, steady=interim))
        per_channel = self.policy.per_channel.get(method)
        if per_channel is not None and channel:
            rules.append(Rule(f"{method}:{channel}", per_channel, steady=interim))
        return Call(f"slack:{team}", tuple(rules), (method,))

    async def wait_time(
        self, team: str, method: str, channel: str = "", *, interim: bool = False
    ) -> float:
        """Seconds until a call is within every window (0: now)."""
        return await self.ledger.wait_time(self.call(team, method, channel, interim=interim))

    async def try_take(
        self, team: str, method: str, channel: str = "", *, interim: bool = False
    ) -> Stamp | float:
        """Count a call now, or say how many seconds until it fits; ``sent(stamp)`` once it
        was answered (counting from the answer keeps the next call far enough away however
        long this one queued; Slack counted it somewhere between the two)."""
        return await self.ledger.take(self.call(team, method, channel, interim=interim))

    async def sent(self, stamp: Stamp) -> None:
        await self.ledger.sent(stamp)

    async def blocked_for(self, team: str, method: str) -> float:
        return await self.ledger.blocked_for(f"slack:{team}", method)

    async def reserve(self, team: str, method: str) -> Reservation | None:
        """Hold a place for a later call, or None when the window has no room for it now."""
        return await self.ledger.reserve(self.call(team, method), method)

    async def take_reserved(self, reservation: Reservation, team: str, method: str) -> Stamp:
        return await self.ledger.take_reserved(reservation, self.call(team, method))

    async def release(self, reservation: Reservation | None) -> None:
        await self.ledger.release(reservation)

    async def slot(self, team: str, method: str, channel: str = "") -> Stamp:
        """Wait until a call is within every window, and count it."""
        call = self.call(team, method, channel)
        if method not in self.policy.methods:
            return await when_room(self.ledger, call)
        return await self.line.when_room(self.ledger, call, method)

    async def block(self, team: str, method: str, seconds: float) -> float:
        """Slack answered 429: nobody calls ``method`` in ``team`` for ``seconds``."""
        self.rate_limited += 1
        self.metrics.platform_rate_limited("slack")
        await self.ledger.block(f"slack:{team}", method, seconds)
        return seconds


def is_rate_limited(exc: SlackApiError) -> bool:
    response = exc.response
    return bool(response.status_code == 429 or response.get("error") == "ratelimited")


def retry_after(exc: SlackApiError, default: float = 1.0) -> float:
    """Seconds from the ``Retry-After`` header of a 429."""
    headers = getattr(exc.response, "headers", None) or {}
    for name, value in dict(headers).items():
        if str(name).lower() == "retry-after":
            with contextlib.suppress(TypeError, ValueError):
                return max(0.0, float(value))
    return default


def error_code(exc: SlackApiError) -> str:
    """Slack's error string (``channel_not_found``), never the whole response."""
    with contextlib.suppress(Exception):
        return str(exc.response.get("error") or exc.response.status_code)
    return "unknown"
