"""What both channels do around one turn: the resumed-turn note, the catch-all fallback, and
closing an answer that shutdown cuts off. No conversation logic: that is the manager's."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.i18n import t
from bot.journal import JournalEntry
from bot.manager import ConversationManager
from bot.reply import NotedReply, ReplyStream, end_cut_answer
from bot.turn import Turn

log = logging.getLogger(__name__)


def noted(reply: ReplyStream, entry: JournalEntry | None, lang: str) -> ReplyStream:
    """A turn taken over from a process that died is answered after a note saying so."""
    if entry is not None and entry.recovered:
        return NotedReply(reply, t("notice_resumed", lang))
    return reply


async def answer_turn(
    manager: ConversationManager,
    turn: Turn,
    reply: ReplyStream,
    lang: str,
    *,
    deduplicated: bool,
    durable: bool,
    label: str,
) -> None:
    """``manager.handle`` with the channel's last lines of defence: an unexpected failure
    still ends in a fallback the user can read, and an answer cut by shutdown (past
    SHUTDOWN_GRACE_SECONDS) ends with a notice; ``durable``: the turn is in the journal, so
    the notice says it will be answered again, not to resend it."""
    try:
        await manager.handle(turn, reply, deduplicated=deduplicated)
    except asyncio.CancelledError:
        notice = "notice_shutdown_resumed" if durable else "notice_shutdown"
        await end_cut_answer(reply, t(notice, lang))
        raise
    except Exception:
        log.exception("turn failed session=%s", label)
        with contextlib.suppress(Exception):
            await reply.fail(t("fallback_unavailable", lang))
