"""TelegramReplyStream: drafts in private chats, one throttled, edited message in groups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError

from adapters.telegram_convert import callback_data
from adapters.telegram_markdown import MAX_MESSAGE, render, split_message
from adapters.telegram_pacing import Kind, TelegramOutbox
from bot.observability import FirstVisible
from bot.pacing import Stamp
from bot.reply import Button, ReplyStream
from bot.turn import Turn

log = logging.getLogger(__name__)

T = TypeVar("T")

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # a preview appearing mid-stream jumps


# ---- one answer --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """Where an answer goes: the chat, its forum topic, and the message it answers (groups)."""

    chat_id: int
    private: bool
    thread_id: int | None = None
    reply_to: int | None = None

    @classmethod
    def of(cls, turn: Turn) -> ChatTarget:
        return cls(
            chat_id=int(turn.chat_id),
            private=turn.is_private,
            thread_id=int(turn.thread_id) if turn.thread_id else None,
            # In a group the answer quotes the question, so everyone sees whom it answers.
            reply_to=int(turn.message_id) if not turn.is_private and turn.message_id else None,
        )


@dataclass(frozen=True, slots=True)
class Payload:
    """One message's content as sent: ``text`` in ``parse_mode`` (None: plain)."""

    text: str
    parse_mode: str | None = None
    plain: str = ""  # what to send instead when Telegram refuses the formatting

    def as_plain(self) -> Payload:
        return Payload(self.plain or self.text, None, self.plain or self.text)


@dataclass(slots=True)
class _Shown:
    message_id: int
    payload: Payload
    markup: bool = False


@dataclass(frozen=True, slots=True)
class _Action:
    kind: Kind
    index: int  # which part of the answer
    payload: Payload
    edit: bool = False


def _is_parse_error(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower()


def _not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


def _gone(exc: BadRequest) -> bool:
    text = exc.message.lower()
    return "message to edit not found" in text or "message can't be edited" in text


_MAX_DRAFT_REFRESHES = 3


class TelegramReplyStream(ReplyStream):
    """Shows one growing answer in one chat.

    Private chats: ``sendMessageDraft`` (one draft id per message) while the answer grows, then
    ``sendMessage`` with the formatted text. Groups and topics: ``sendMessage`` with the first
    words, then ``editMessageText`` as often as the limits allow, the last edit formatted.
    Interim text is plain (half-written Markdown would not parse). Parts past 4,096 characters
    become further messages as soon as they are complete, in their final form.
    """

    def __init__(
        self,
        outbox: TelegramOutbox,
        target: ChatTarget,
        *,
        limit: int = MAX_MESSAGE,
        label: str = "",
    ) -> None:
        self.outbox = outbox
        self.bot = outbox.bot
        self.target = target
        self.limit = limit
        self.label = label or str(target.chat_id)  # session key for log lines
        self.first_text_at: float | None = None  # outbox clock, when text was first sent
        self._visible = FirstVisible(outbox.metrics, "telegram", outbox.clock)
        self._text = ""
        self._shown: dict[int, _Shown] = {}  # part index → message showing it
        self._draft: tuple[int, str] | None = None  # (part index, text) of the live draft
        self._draft_at = 0.0  # outbox clock when it was last sent
        self._refreshes = 0  # times the live draft was sent again unchanged
        self._draft_ids: dict[int, int] = {}
        self._plain_parts: set[int] = set()  # parts Telegram refused to parse: send plain
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._text_shown = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._typing_task: asyncio.Task[None] | None = None
        self._done = False

    @property
    def _group(self) -> bool:
        return not self.target.private

    # -- ReplyStream --

    async def start(self) -> None:
        if self._done or self._typing_task is not None:
            return
        self._visible.requested()  # the manager asks the model right after start()
        if self.outbox.policy.typing_interval > 0:
            self._typing_task = asyncio.get_running_loop().create_task(self._typing())

    def append(self, text: str) -> None:
        if self._done or not text:
            return
        self._text += text
        if self._pump_task is None:
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())
        self._wake.set()

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        if self._done:
            return
        await self._close()
        await self._finalize(text, buttons)

    async def fail(self, notice: str) -> None:
        if self._done:
            return
        shown = self._text.rstrip()
        await self._close()
        await self._finalize(f"{shown}\n\n{notice}" if shown.strip() else notice, None)

    async def retract(self, notice: str) -> None:
        if self._done:
            return
        await self._close()
        notice_payload = Payload(notice.strip(), None, notice.strip())
        keep: int | None = None
        if self._group and self._shown:
            # Replace the first message in place (it is the one quoting the question).
            keep = min(self._shown)
            await self._final_edit(keep, notice_payload, None)
        for index in sorted(self._shown):
            if index != keep:
                await self._final_delete(index)
        if keep is None:
            # In a private chat the new message also ends the draft that showed the answer.
            await self._final_send(0, notice_payload, None)

    # -- interim updates --

    async def _typing(self) -> None:
        chat = self.target.chat_id
        delay = self.outbox.policy.typing_delay
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._text_shown.wait(), delay)
        while not self._text_shown.is_set() and not self._closed.is_set():
            if await self.outbox.blocked_for(chat) <= 0:
                try:
                    await self.bot.send_chat_action(
                        chat, ChatAction.TYPING, message_thread_id=self.target.thread_id
                    )
                except RetryAfter as exc:
                    await self.outbox.block(chat, exc)
                except TelegramError as exc:
                    log.debug("typing action failed session=%s: %s", self.label, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._text_shown.wait(), self.outbox.policy.typing_interval)

    async def _pump(self) -> None:
        """Shows the text as it grows: one platform call at a time, always the latest text."""
        refresh_after = self.outbox.policy.draft_refresh
        try:
            while not self._closed.is_set():
                # Keep a live draft alive: counted from when it was last sent, not from the
                # last wake (chunks of whitespace wake the loop but change no draft), and a
                # few times at most (the stall timeout ends a silent answer well before).
                refresh = False
                if (
                    self._draft is not None
                    and refresh_after > 0
                    and self._refreshes < _MAX_DRAFT_REFRESHES
                ):
                    remaining = self._draft_at + refresh_after - self.outbox.clock()
                    try:
                        if remaining > 0:
                            await asyncio.wait_for(self._wake.wait(), remaining)
                    except TimeoutError:
                        pass
                    now = self.outbox.clock()
                    refresh = self._draft_at + refresh_after <= now
                    if refresh:
                        self._draft_at = now  # this turn is used even if nothing is sent
                else:
                    await self._wake.wait()
                self._wake.clear()
                while not self._closed.is_set():
                    action = self._next_action(refresh=refresh)
                    if action is None:
                        break
                    # The first text of an answer is worth as much as its last: no pacing.
                    stamp = await self.outbox.try_take(
                        self.target.chat_id,
                        action.kind,
                        group=self._group,
                        interim=self.first_text_at is not None,
                    )
                    if not isinstance(stamp, Stamp):
                        await self._sleep(stamp)
                        continue  # the text may have grown meanwhile: decide again
                    try:
                        ok = await self._interim(action)
                    finally:
                        await self.outbox.sent(stamp)
                    if refresh:
                        self._refreshes += 1
                    refresh = False
                    if not ok:
                        await self._sleep(1.0)  # a failure of ours: do not hammer the API
        except Exception:
            # The final text is still sent by finish(); only the live preview stops.
            log.exception("interim updates stopped session=%s", self.label)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    def _interim_payload(self, part: str) -> Payload:
        text = part.strip()
        return Payload(text, None, text)

    def _final_payload(self, part: str, index: int) -> Payload:
        plain = part.strip()
        rendered = render(part)
        if not rendered.formatted or index in self._plain_parts:
            text = rendered.text.strip() if index not in self._plain_parts else plain
            return Payload(text, None, plain)
        return Payload(rendered.html.strip(), ParseMode.HTML, plain)

    def _next_action(self, *, refresh: bool = False) -> _Action | None:
        """The next interim call, if any; ``refresh`` sends an unchanged draft again."""
        parts = split_message(self._text, self.limit)
        last = len(parts) - 1
        for index, part in enumerate(parts):
            if index == last:
                payload = self._interim_payload(part)
                if not payload.text:
                    return None
                if self.target.private:
                    if self._draft == (index, payload.text) and not refresh:
                        return None
                    return _Action("draft", index, payload)
            else:
                # A part followed by more text is complete: show it in its final form now.
                payload = self._final_payload(part, index)
                if not payload.text:
                    continue
            shown = self._shown.get(index)
            if shown is None:
                return _Action("message", index, payload)
            if shown.payload != payload:
                return _Action("message", index, payload, edit=True)
        return None

    async def _interim(self, action: _Action) -> bool:
        """One interim call; False when it failed in a way worth a pause."""
        chat = self.target.chat_id
        payload = action.payload
        try:
            self._mark_first_text()
            if action.kind == "draft":
                await self.bot.send_message_draft(
                    chat,
                    self._draft_id(action.index),
                    payload.text,
                    message_thread_id=self.target.thread_id,
                    parse_mode=payload.parse_mode,
                )
                if self._draft != (action.index, payload.text):
                    self._refreshes = 0  # new text: its draft may be kept alive again
                self._draft = (action.index, payload.text)
                self._draft_at = self.outbox.clock()
            elif action.edit:
                shown = self._shown[action.index]
                await self.bot.edit_message_text(
                    payload.text,
                    chat_id=chat,
                    message_id=shown.message_id,
                    parse_mode=payload.parse_mode,
                    link_preview_options=_NO_PREVIEW,
                )
                shown.payload = payload
            else:
                message = await self.bot.send_message(
                    chat,
                    payload.text,
                    parse_mode=payload.parse_mode,
                    message_thread_id=self.target.thread_id,
                    reply_parameters=self._reply_parameters(action.index),
                    link_preview_options=_NO_PREVIEW,
                )
                self._shown[action.index] = _Shown(message.message_id, payload)
            self._text_shown.set()
            self._visible.shown()
            return True
        except RetryAfter as exc:
            seconds = await self.outbox.block(chat, exc)
            log.info("flood wait chat=%s retry_after=%.0fs; coalescing", chat, seconds)
            return True  # try_take() now waits for the block
        except BadRequest as exc:
            if _not_modified(exc) and action.edit:
                self._shown[action.index].payload = payload
                return True
            if _is_parse_error(exc) and payload.parse_mode:
                self._plain_parts.add(action.index)
                return True
            if _gone(exc) and action.edit:
                del self._shown[action.index]  # someone deleted it: send a new one
                return True
            log.warning("interim update refused session=%s: %s", self.label, exc.message)
            return False
        except TelegramError as exc:
            log.warning("interim update failed session=%s: %s", self.label, exc)
            return False

    def _mark_first_text(self) -> None:
        if self.first_text_at is None:
            self.first_text_at = self.outbox.clock()

    def _draft_id(self, index: int) -> int:
        if index not in self._draft_ids:
            self._draft_ids[index] = self.outbox.next_draft_id()
        return self._draft_ids[index]

    def _reply_parameters(self, index: int) -> ReplyParameters | None:
        if index != 0 or self._shown or self.target.reply_to is None:
            return None
        return ReplyParameters(self.target.reply_to, allow_sending_without_reply=True)

    # -- the end of the answer --

    async def _close(self) -> None:
        """Stop the typing status and the interim updates (letting a call in flight finish)."""
        self._done = True
        self._closed.set()
        self._wake.set()
        if self._typing_task is not None:
            self._typing_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._typing_task
        if self._pump_task is not None:
            await self._pump_task

    async def _finalize(self, text: str, buttons: Sequence[Button] | None) -> None:
        parts = split_message(text, self.limit)
        wanted = {i: self._final_payload(p, i) for i, p in enumerate(parts)}
        wanted = {i: p for i, p in wanted.items() if p.text}
        markup = _keyboard(buttons)
        last = max(wanted) if wanted else -1
        for index in sorted(wanted):
            payload = wanted[index]
            keys = markup if index == last else None
            shown = self._shown.get(index)
            if shown is None:
                await self._final_send(index, payload, keys)
            elif shown.payload != payload or shown.markup or keys is not None:
                await self._final_edit(index, payload, keys)
        for index in sorted(set(self._shown) - set(wanted)):
            await self._final_delete(index)  # the final answer is shorter than the preview

    async def _final_send(
        self, index: int, payload: Payload, markup: InlineKeyboardMarkup | None
    ) -> None:
        keeper = None
        if self._draft is not None and self.outbox.policy.draft_refresh > 0:
            keeper = asyncio.get_running_loop().create_task(self._keep_draft())
        try:
            await self._send_final(index, payload, markup)
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper

    async def _keep_draft(self) -> None:
        """While the final message waits for its turn (under load, longer than a draft lives),
        send the live draft again every ``draft_refresh`` seconds: the answer stays on the
        screen until the message replaces it."""
        assert self._draft is not None
        index, text = self._draft
        action = _Action("draft", index, self._interim_payload(text))
        while True:
            wait = self._draft_at + self.outbox.policy.draft_refresh - self.outbox.clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            chat = self.target.chat_id
            stamp = await self.outbox.try_take(chat, "draft", group=False, interim=True)
            if not isinstance(stamp, Stamp):
                await asyncio.sleep(stamp)
                continue
            try:
                sent = await self._interim(action)
            finally:
                await self.outbox.sent(stamp)
            if not sent:
                self._draft_at = self.outbox.clock()  # refused: try again a refresh later

    async def _send_final(
        self, index: int, payload: Payload, markup: InlineKeyboardMarkup | None
    ) -> None:
        chat = self.target.chat_id
        attempt = payload
        while True:
            try:
                self._mark_first_text()
                reply = self._reply_parameters(index)
                message = await self.outbox.final(
                    chat,
                    "message",
                    self._group,
                    partial(
                        self.bot.send_message,
                        chat,
                        attempt.text,
                        parse_mode=attempt.parse_mode,
                        message_thread_id=self.target.thread_id,
                        reply_parameters=reply,
                        reply_markup=markup,
                        link_preview_options=_NO_PREVIEW,
                    ),
                )
                self._shown[index] = _Shown(message.message_id, attempt, markup is not None)
                self._visible.shown()
                return
            except BadRequest as exc:
                if attempt.parse_mode and _is_parse_error(exc):
                    log.warning("formatting refused session=%s: %s", self.label, exc.message)
                    attempt = attempt.as_plain()
                    continue
                log.error("answer refused session=%s: %s", self.label, exc.message)
                return
            except TelegramError as exc:
                log.error("answer not delivered session=%s: %s", self.label, exc)
                return

    async def _final_edit(
        self, index: int, payload: Payload, markup: InlineKeyboardMarkup | None
    ) -> None:
        chat = self.target.chat_id
        shown = self._shown[index]
        attempt = payload
        while True:
            if attempt == shown.payload and markup is None and not shown.markup:
                return  # never send an edit that changes nothing
            try:
                await self.outbox.final(
                    chat,
                    "message",
                    self._group,
                    partial(
                        self.bot.edit_message_text,
                        attempt.text,
                        chat_id=chat,
                        message_id=shown.message_id,
                        parse_mode=attempt.parse_mode,
                        reply_markup=markup,
                        link_preview_options=_NO_PREVIEW,
                    ),
                )
            except BadRequest as exc:
                if _not_modified(exc):
                    pass
                elif attempt.parse_mode and _is_parse_error(exc):
                    log.warning("formatting refused session=%s: %s", self.label, exc.message)
                    attempt = attempt.as_plain()
                    continue
                elif _gone(exc):
                    del self._shown[index]
                    await self._final_send(index, attempt, markup)
                    return
                else:
                    log.error("final edit refused session=%s: %s", self.label, exc.message)
                    return
            except TelegramError as exc:
                log.error("final edit failed session=%s: %s", self.label, exc)
                return
            self._shown[index] = replace(shown, payload=attempt, markup=markup is not None)
            return

    async def _final_delete(self, index: int) -> None:
        shown = self._shown.pop(index)
        chat = self.target.chat_id
        try:
            delete = partial(self.bot.delete_message, chat, shown.message_id)
            await self.outbox.final(chat, "message", self._group, delete)
        except TelegramError as exc:
            log.warning("could not delete message session=%s: %s", self.label, exc)

    # -- for tests and the benchmark --

    @property
    def shown_message_ids(self) -> list[int]:
        return [self._shown[i].message_id for i in sorted(self._shown)]


def _keyboard(buttons: Sequence[Button] | None) -> InlineKeyboardMarkup | None:
    """The inline keyboard for ``buttons``, one a row, each carrying its payload and owner
    (``callback_data``). A button that cannot round-trip (its data past Telegram's 64 bytes,
    say) or has no label is left out rather than failing the whole answer."""
    if not buttons:
        return None
    rows = []
    for button in buttons:
        data = callback_data(button.payload, button.owner)
        if data is None:
            log.warning(
                "button %r left out: its payload (%d bytes%s) cannot be carried",
                button.label,
                len(button.payload.encode()),
                ", with an owner" if button.owner else "",
            )
            continue
        if not button.label.strip():
            log.warning("button without a label left out")
            continue
        rows.append([InlineKeyboardButton(button.label, callback_data=data)])
    return InlineKeyboardMarkup(rows) if rows else None
