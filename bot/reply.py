"""ReplyStream: how an adapter shows a growing answer on its platform."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Button:
    """A quick-reply button shown under the final answer.

    Pressing it makes ``payload`` the text of the presser's next turn (e.g. a command such as
    "/suggestions accept python"), answered like a message. With ``owner`` (a user id of the
    platform) only that user may press it: the adapter answers anyone else's press with
    ``t("button_not_yours")`` and makes no turn of it. Once a button is pressed by whoever may
    press it, the adapter removes the buttons of that message (one answer per offer). Payloads
    must stay short: Telegram carries at most 64 bytes of callback data, the owner included.
    """

    label: str
    payload: str
    owner: str | None = None


class ReplyStream(ABC):
    """The outbound side of one turn.

    The manager calls ``start`` once, ``append`` per chunk of visible text, and then exactly one
    of ``finish``, ``fail`` or ``retract``. ``append`` is synchronous and must never block the
    token loop: adapters coalesce chunks and schedule platform calls on their own.
    """

    @abstractmethod
    async def start(self) -> None:
        """Show that an answer is coming (typing indicator, placeholder)."""

    @abstractmethod
    def append(self, text: str) -> None:
        """Add a chunk of visible answer text; never blocks."""

    @abstractmethod
    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        """Show the complete final answer ``text`` (the whole text, not a suffix)."""

    @abstractmethod
    async def fail(self, notice: str) -> None:
        """No answer could be given: show ``notice`` (keeping any text already shown)."""

    @abstractmethod
    async def retract(self, notice: str) -> None:
        """Withdraw what was shown and replace it with ``notice`` (a blocked answer)."""


def literal(value: object, limit: int = 200) -> str:
    """User-written ``value`` shown as plain text inside an answer (which is Markdown).

    An inline code span: both renderers (Telegram HTML, Slack mrkdwn) show its content
    verbatim, without links, mentions or formatting; backticks and line breaks that could end
    it early are replaced, and the length is capped.
    """
    text = " ".join(str(value).split()).replace("`", "'")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`" if text else "-"


CUT_NOTICE_SECONDS = 5.0  # how long closing a cut answer may take at shutdown


async def end_cut_answer(stream: ReplyStream, notice: str) -> None:
    """A turn cancelled mid-answer (shutdown past its grace): end what the user sees with
    ``notice`` rather than leave a half-shown stream open. Never raises."""
    try:
        async with asyncio.timeout(CUT_NOTICE_SECONDS):
            await stream.fail(notice)
    except Exception as exc:  # the process is stopping: nothing more to do
        log.warning("cut answer not closed: %r", exc)


class NotedReply(ReplyStream):
    """``inner`` with ``note`` in front of whatever it shows (a turn resumed after a crash:
    the user may have seen part of an answer that stopped)."""

    def __init__(self, inner: ReplyStream, note: str) -> None:
        self.inner = inner
        self.note = note
        self._noted = False

    def _lead(self, text: str) -> str:
        if self._noted:
            return text
        self._noted = True
        return f"_{self.note}_\n\n{text}"

    async def start(self) -> None:
        await self.inner.start()

    def append(self, text: str) -> None:
        self.inner.append(self._lead(text))

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        self._noted = False  # the final text is whole: it carries the note again
        await self.inner.finish(self._lead(text), buttons)

    async def fail(self, notice: str) -> None:
        await self.inner.fail(self._lead(notice))

    async def retract(self, notice: str) -> None:
        self._noted = False
        await self.inner.retract(self._lead(notice))
