"""SlackReplyStream: chat streaming, or a posted and throttled-edited message, within the tiers."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack_blocks import buttons_blocks, labels, text_sections
from adapters.slack_markdown import (
    choose_cut,
    escape,
    in_code,
    neutralize,
    next_start,
    render_mrkdwn,
)
from adapters.slack_pacing import (
    APPEND,
    DELETE,
    POST,
    PROMPTS,
    START,
    STATUS,
    STOP,
    UPDATE,
    SlackBudget,
    error_code,
    is_rate_limited,
    retry_after,
)
from bot.i18n import detect_language
from bot.observability import FirstVisible
from bot.pacing import Reservation, Stamp
from bot.reply import Button, ReplyStream
from bot.turn import Turn

log = logging.getLogger(__name__)

# What the "<app> is thinking…" status line says while the model has not written yet.
THINKING = {"ko": "답변을 준비하고 있어요…", "en": "is thinking…"}
# The title over an answer's buttons offered again as the assistant thread's suggested prompts.
PROMPTS_TITLE = {"ko": "추천", "en": "Suggested"}
MAX_PROMPTS = 4  # "up to four suggested prompts"


# ---- one answer ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlackTarget:
    """Where an answer goes and whose limits it counts against."""

    team_id: str  # the workspace whose rate limits apply
    channel: str
    thread_ts: str
    recipient_team_id: str
    recipient_user_id: str
    private: bool
    lang: str = "en"

    @classmethod
    def of(cls, turn: Turn) -> SlackTarget:
        return cls(
            team_id=turn.team_id,
            channel=turn.chat_id,
            thread_ts=turn.thread_id or turn.message_id,
            recipient_team_id=str(getattr(turn, "recipient_team_id", "") or turn.team_id),
            recipient_user_id=turn.user_id,
            private=turn.is_private,
            lang=detect_language(turn.text, turn.language),
        )


class Mode(enum.StrEnum):
    STREAM = "stream"  # chat.startStream / appendStream / stopStream
    POST = "post"  # chat.postMessage, then chat.update
    QUIET = "quiet"  # no room for live updates: posted once, complete


@dataclass(slots=True)
class _Message:
    """One Slack message of the answer: the part of the text from ``start`` on."""

    mode: Mode
    start: int
    prefix: str = ""  # "```\n" when the part begins inside a code block
    ts: str = ""
    sent: int = 0  # STREAM: characters of the part appended so far
    shown: str = ""  # POST: the text the message shows now
    last_call: float = -math.inf
    stop: Reservation | None = None
    update: Reservation | None = None
    broken: bool = False  # the stream took no more text: it ends with a chat.update
    stopped: bool = False


Call = Callable[[], Awaitable[AsyncSlackResponse]]
Blocks = list[dict[str, Any]]

# Refusals that name the blocks: the same call without them still shows the text.
BLOCK_ERRORS = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})


class SlackReplyStream(ReplyStream):
    """Shows one growing answer in one Slack thread.

    The first words go out as soon as they arrive (``chat.startStream``), later text is batched
    into ``chat.appendStream`` calls, and ``chat.stopStream`` ends it. When streaming is refused,
    or the workspace's stream budget is spoken for, the answer is posted with the first words
    and edited (``chat.update``, Tier 3) as the budget allows; with no room for edits either it
    is posted once, complete. The final text is the model's Markdown: streamed messages are
    rendered by Slack, posted ones as mrkdwn. Parts past ``max_part`` characters continue in
    follow-up messages in the thread.

    Buttons given to ``finish`` go under the last message of the answer (see
    ``adapters.slack_blocks``): a streamed one gets them from ``chat.stopStream``, a posted
    one carries its text as section blocks above them. When no message of the answer could
    take them, they are posted on their own in the thread. In a direct conversation (the
    assistant surface, where Slack has one) the recipient's buttons are also set as the
    thread's suggested prompts: a click posts the button's payload as the user's message,
    which makes the same turn as the press.
    """

    def __init__(
        self, client: AsyncWebClient, budget: SlackBudget, target: SlackTarget, *, label: str = ""
    ) -> None:
        self.client = client
        self.budget = budget
        self.policy = budget.policy
        self.target = target
        self.label = label or f"{target.channel}:{target.thread_ts}"  # session key, for logs
        self.first_text_at: float | None = None  # budget clock, when text was first sent
        self._visible = FirstVisible(budget.metrics, "slack", budget.clock)
        self.calls: list[str] = []  # every Web API method called, in order
        self._text = ""
        self._messages: list[_Message] = []
        self._live: _Message | None = None
        self._next = 0  # where the next message's part starts in the text
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._want_status = False
        self._done = False
        self._buttons: Sequence[Button] = ()
        self._actions: Blocks = []  # the buttons' blocks, until a message carries them
        self._refusal = ""  # Slack's error for the last call it refused

    # -- ReplyStream --

    async def start(self) -> None:
        if self._done:
            return
        self._visible.requested()  # the manager asks the model right after start()
        # Not awaited here: the model request should not wait for Slack.
        self._want_status = True
        self._ensure_pump()

    def append(self, text: str) -> None:
        if self._done or not text:
            return
        self._text += text
        self._ensure_pump()

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        if self._done:
            return
        self._buttons = buttons or ()
        self._actions = buttons_blocks(buttons, self.target.team_id)
        await self._close()
        await self._finalize(text)
        await self._suggest_prompts()

    async def fail(self, notice: str) -> None:
        if self._done:
            return
        shown = self._text
        await self._close()
        await self._finalize(f"{shown.rstrip()}\n\n{notice}" if shown.strip() else notice)

    async def retract(self, notice: str) -> None:
        if self._done:
            return
        await self._close()
        await self._rewrite(notice)

    # -- for tests and the benchmark --

    @property
    def modes(self) -> list[Mode]:
        return [m.mode for m in self._messages]

    # -- the live phase --

    def _ensure_pump(self) -> None:
        if self._pump_task is None:
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())
        self._wake.set()

    async def _pump(self) -> None:
        """One platform call at a time, always with the latest text."""
        try:
            while not self._closing.is_set():
                if self._want_status:
                    self._want_status = False
                    if not self._text.strip():
                        await self._set_status()
                    continue
                delay = await self._step()
                if self._closing.is_set():
                    break
                if delay is None:
                    await self._wake.wait()
                    self._wake.clear()
                elif delay > 0:
                    await self._sleep(delay)
        except Exception:
            # The final text is still sent by finish(); only the live preview stops.
            log.exception("live updates stopped session=%s", self.label)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _step(self) -> float | None:
        """Make the next useful call; seconds until another may be due, None when idle."""
        text = self._text
        live = self._live
        if live is None:
            if not text[self._next :].strip():
                return None
            await self._open()
            return 0
        body = text[live.start :]
        if len(body) > self.policy.max_part:
            cut = choose_cut(body, self.policy.max_part, live.sent)
            await self._close_part(live, live.start + cut)
            self._advance(live.start + cut)
            return 0
        now = self.budget.clock()
        if live.mode is Mode.STREAM and not live.broken:
            end = min(len(body), self._soft_limit())
            if end <= live.sent:
                return None
            wait = live.last_call + self.policy.append_interval - now
            if wait > 0:
                return wait
            return await self._append(live, end)
        if live.mode is Mode.POST and live.ts:
            shown = escape(live.prefix + body).strip()
            if shown == live.shown:
                return None
            wait = live.last_call + self.policy.update_interval - now
            if wait > 0:
                return wait
            return await self._edit(live, shown)
        return None  # QUIET: posted once its part is complete

    def _soft_limit(self) -> int:
        # The end of a part is left unstreamed until it is known where it will be cut.
        limit = self.policy.max_part
        return limit - min(800, limit // 4)

    def _advance(self, position: int) -> None:
        self._next = next_start(self._text, position)
        self._live = None

    async def _open(self) -> None:
        """A new message for the part from ``self._next``: streamed if the budget allows."""
        start = self._next
        message = _Message(Mode.QUIET, start, prefix="```\n" if in_code(self._text[:start]) else "")
        self._live = message
        self._messages.append(message)
        team = self.target.team_id
        if self.budget.streaming_allowed(team) and await self.budget.wait_time(team, START) <= 0:
            stop = await self.budget.reserve(team, STOP)
            if stop is not None:
                message.mode, message.stop = Mode.STREAM, stop
                if await self._start_stream(message):
                    return
                await self.budget.release(stop)
                message.mode, message.stop = Mode.QUIET, None
        update = await self.budget.reserve(team, UPDATE)
        if update is None:
            return  # QUIET
        message.mode, message.update = Mode.POST, update
        shown = escape(message.prefix + self._text[start : start + self.policy.max_part]).strip()
        response = await self._post(shown)
        if response is None:
            await self.budget.release(update)
            message.mode, message.update = Mode.QUIET, None
            return
        message.ts, message.shown = str(response["ts"]), shown
        message.last_call = self.budget.clock()

    async def _start_stream(self, message: _Message) -> bool:
        body = self._text[message.start :]
        end = min(len(body), self._soft_limit())
        team = self.target.team_id
        stamp = await self.budget.try_take(team, START)
        if not isinstance(stamp, Stamp):
            return False  # another answer (or replica) took the room meanwhile
        self._note(START)
        try:
            response = await self.client.chat_startStream(
                channel=self.target.channel,
                thread_ts=self.target.thread_ts,
                markdown_text=neutralize(message.prefix + body[:end]),
                recipient_team_id=self.target.recipient_team_id,
                recipient_user_id=self.target.recipient_user_id,
            )
        except SlackApiError as exc:
            if is_rate_limited(exc):
                await self.budget.block(team, START, retry_after(exc))
            else:
                # GovSlack, an older workspace, a missing feature: post instead for a while.
                self.budget.refuse_streaming(team)
                log.info(
                    "streaming refused (%s), posting instead session=%s",
                    error_code(exc),
                    self.label,
                )
            return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("chat.startStream failed session=%s: %r", self.label, exc)
            return False
        finally:
            await self.budget.sent(stamp)
        message.ts = str(response["ts"])
        message.sent = end
        message.last_call = self.budget.clock()
        self._visible.shown()
        return True

    async def _append(self, message: _Message, end: int) -> float:
        """Append the text up to ``end`` when the budget has room; else the seconds to wait."""
        team = self.target.team_id
        stamp = await self.budget.try_take(team, APPEND, interim=True)
        if not isinstance(stamp, Stamp):
            return stamp
        start = message.start + message.sent
        piece = self._text[start : message.start + end]
        previous = (message.prefix + self._text[message.start : start])[-1:]
        self._note(APPEND)
        try:
            await self.client.chat_appendStream(
                channel=self.target.channel,
                ts=message.ts,
                markdown_text=neutralize(piece, previous),
            )
            message.sent = end
        except SlackApiError as exc:
            if is_rate_limited(exc):
                # Nothing was appended: the text stays pending for the next call.
                seconds = await self.budget.block(team, APPEND, retry_after(exc))
                log.info("rate limited (appendStream) for %.0fs session=%s", seconds, self.label)
            else:
                message.broken = True
                log.warning(
                    "chat.appendStream refused (%s) session=%s", error_code(exc), self.label
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("chat.appendStream failed session=%s: %r", self.label, exc)
        finally:
            await self.budget.sent(stamp)
            message.last_call = self.budget.clock()
        return 0.0

    async def _edit(self, message: _Message, shown: str) -> float:
        """Edit the posted message when the budget has room; else the seconds to wait."""
        team = self.target.team_id
        stamp = await self.budget.try_take(team, UPDATE, interim=True)
        if not isinstance(stamp, Stamp):
            return stamp
        self._note(UPDATE)
        try:
            await self.client.chat_update(channel=self.target.channel, ts=message.ts, text=shown)
            message.shown = shown
        except SlackApiError as exc:
            if is_rate_limited(exc):
                seconds = await self.budget.block(team, UPDATE, retry_after(exc))
                log.info("rate limited (chat.update) for %.0fs session=%s", seconds, self.label)
            else:
                log.warning("chat.update refused (%s) session=%s", error_code(exc), self.label)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("chat.update failed session=%s: %r", self.label, exc)
        finally:
            await self.budget.sent(stamp)
            message.last_call = self.budget.clock()
        return 0.0

    async def _set_status(self) -> None:
        target = self.target
        await self._nicety(
            STATUS,
            "thinking status",
            lambda: self.client.assistant_threads_setStatus(
                channel_id=target.channel,
                thread_ts=target.thread_ts,
                status=THINKING.get(target.lang, THINKING["en"]),
            ),
        )

    async def _suggest_prompts(self) -> None:
        """The recipient's buttons as the assistant thread's suggested prompts."""
        target = self.target
        mine = [b for b in self._buttons if b.owner in (None, target.recipient_user_id)]
        if not mine or not target.private or not target.thread_ts:
            return
        await self._nicety(
            PROMPTS,
            "suggested prompts",
            lambda: self.client.assistant_threads_setSuggestedPrompts(
                channel_id=target.channel,
                thread_ts=target.thread_ts,
                title=PROMPTS_TITLE.get(target.lang, PROMPTS_TITLE["en"]),
                prompts=[{"title": b.label, "message": b.payload} for b in mine[:MAX_PROMPTS]],
            ),
        )

    async def _nicety(self, method: str, what: str, call: Call) -> None:
        """A call the answer does without: made only with room in the window (never queued
        for), and not asked again in this kind of conversation once Slack refused it."""
        team, private = self.target.team_id, self.target.private
        if not self.budget.available(method, team, private):
            return
        stamp = await self.budget.try_take(team, method, interim=True)
        if not isinstance(stamp, Stamp):
            return
        self._note(method)
        try:
            await call()
        except SlackApiError as exc:
            if is_rate_limited(exc):
                await self.budget.block(team, method, retry_after(exc))
            else:
                self.budget.refuse(method, team, private)
                log.info("%s unavailable here (%s)", what, error_code(exc))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("%s failed session=%s: %r", method, self.label, exc)
        finally:
            await self.budget.sent(stamp)

    def _note(self, method: str) -> None:
        self.calls.append(method)
        if self.first_text_at is None and method in (START, POST):
            self.first_text_at = self.budget.clock()

    # -- calls that must arrive --

    async def _essential(
        self, method: str, call: Call, *, reservation: Reservation | None = None, channel: str = ""
    ) -> AsyncSlackResponse | None:
        """Make ``call``, waiting for room and through 429s; None when Slack refused it."""
        team = self.target.team_id
        failures = 0
        try:
            while True:
                if reservation is not None and reservation.active:
                    blocked = await self.budget.blocked_for(team, method)
                    if blocked > 0:
                        await asyncio.sleep(blocked)
                        continue
                    stamp = await self.budget.take_reserved(reservation, team, method)
                else:
                    stamp = await self.budget.slot(team, method, channel)
                self._note(method)
                self._refusal = ""
                try:
                    return await call()
                except SlackApiError as exc:
                    if not is_rate_limited(exc):
                        self._refusal = error_code(exc)
                        log.error("%s refused (%s) session=%s", method, self._refusal, self.label)
                        return None
                    seconds = await self.budget.block(team, method, retry_after(exc))
                    log.info("rate limited (%s) for %.0fs session=%s", method, seconds, self.label)
                    failures += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("%s failed session=%s: %r", method, self.label, exc)
                    failures += 1
                    await asyncio.sleep(0.5 * failures)
                finally:
                    await self.budget.sent(stamp)
                if failures >= self.policy.max_attempts:
                    log.error("%s gave up after %d tries session=%s", method, failures, self.label)
                    return None
        finally:
            await self.budget.release(reservation)

    async def _post(self, text: str, blocks: Blocks | None = None) -> AsyncSlackResponse | None:
        channel = self.target.channel

        def call() -> Awaitable[AsyncSlackResponse]:
            return self.client.chat_postMessage(
                channel=channel,
                thread_ts=self.target.thread_ts,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )

        response = await self._essential(POST, call, channel=channel)
        if response is not None:
            self._visible.shown()
        return response

    async def _update(self, message: _Message, text: str, blocks: Blocks | None = None) -> bool:
        def call() -> Awaitable[AsyncSlackResponse]:
            return self.client.chat_update(
                channel=self.target.channel, ts=message.ts, text=text, blocks=blocks
            )

        reservation, message.update = message.update, None
        response = await self._essential(UPDATE, call, reservation=reservation)
        if response is None:
            return False
        message.shown = text
        return True

    async def _stop(self, message: _Message, rest: str, blocks: Blocks | None = None) -> bool:
        previous = (message.prefix + self._text[message.start : message.start + message.sent])[-1:]

        def call() -> Awaitable[AsyncSlackResponse]:
            return self.client.chat_stopStream(
                channel=self.target.channel,
                ts=message.ts,
                markdown_text=neutralize(rest, previous) if rest else None,
                blocks=blocks or None,
            )

        reservation, message.stop = message.stop, None
        response = await self._essential(STOP, call, reservation=reservation)
        message.stopped = response is not None
        return message.stopped

    # -- the end of the answer --

    async def _close(self) -> None:
        """Stop the live updates (a call in flight finishes first)."""
        self._done = True
        self._closing.set()
        self._wake.set()
        if self._pump_task is not None:
            await self._pump_task

    def _source(self, message: _Message, end: int) -> str:
        """The Markdown of a complete part, with its code fence closed if the cut is in one."""
        text = self._text
        closing = "\n```" if in_code(text[:end]) else ""
        return message.prefix + text[message.start : end].rstrip() + closing

    async def _close_part(self, message: _Message, end: int, *, last: bool = False) -> None:
        """Show the part ``[message.start, end)`` in its final form (``last``: with the
        buttons, if there are any)."""
        actions = self._actions if last else []
        source = self._source(message, end)
        try:
            if message.mode is Mode.STREAM and message.ts and not message.broken:
                rest = source[len(message.prefix) + message.sent :]
                if await self._stop(message, rest, actions):
                    self._placed(actions)
                    return
                if actions and self._refusal in BLOCK_ERRORS and await self._stop(message, rest):
                    return  # the text is final; the buttons go in a message of their own
                message.broken = True  # the stream is gone: the text goes in with chat.update
            final = render_mrkdwn(source).strip()
            if message.ts:
                if message.broken or final != message.shown or (actions and final):
                    await self._edit_final(message, final, actions)
            elif final:
                response = await self._post_final(final, actions)
                if response is not None:
                    message.ts, message.shown = str(response["ts"]), final
        finally:
            await self.budget.release(message.update)
            await self.budget.release(message.stop)

    def _placed(self, blocks: Blocks | None) -> None:
        """A message now carries the buttons."""
        if blocks:
            self._actions = []

    async def _edit_final(self, message: _Message, text: str, actions: Blocks) -> None:
        """``message`` shows the mrkdwn ``text``, with the buttons ``actions`` under it."""
        blocks = text_sections(text) + actions if actions and text else None
        if await self._update(message, text, blocks):
            self._placed(blocks)
        elif blocks and self._refusal in BLOCK_ERRORS:
            await self._update(message, text)  # the text at least

    async def _post_final(self, text: str, actions: Blocks) -> AsyncSlackResponse | None:
        """A new message showing the mrkdwn ``text``, with the buttons ``actions`` under it."""
        blocks = text_sections(text) + actions if actions and text else None
        response = await self._post(text, blocks)
        if response is not None:
            self._placed(blocks)
        elif blocks and self._refusal in BLOCK_ERRORS:
            response = await self._post(text)  # the text at least
        return response

    async def _post_buttons(self) -> None:
        """The buttons no message of the answer could take, as a message of their own."""
        if not self._actions:
            return
        self._actions = []
        blocks = buttons_blocks(self._buttons, self.target.team_id, alone=True)
        await self._post(labels(blocks), blocks)

    async def _finalize(self, final: str) -> None:
        try:
            if not final.startswith(self._text.rstrip()):
                await self._rewrite(final)
                return
            self._text = final
            limit = self.policy.max_part
            while True:
                live = self._live
                if live is None:
                    if not final[self._next :].strip():
                        break
                    prefix = "```\n" if in_code(final[: self._next]) else ""
                    live = _Message(Mode.QUIET, self._next, prefix=prefix)
                    self._live = live
                    self._messages.append(live)
                body = final[live.start :]
                if len(body) > limit:
                    cut = choose_cut(body, limit, live.sent)
                    await self._close_part(live, live.start + cut)
                    self._advance(live.start + cut)
                    continue
                await self._close_part(live, len(final), last=True)
                self._live = None
                break
            await self._post_buttons()
        finally:
            for message in self._messages:
                await self.budget.release(message.update)
                await self.budget.release(message.stop)

    async def _rewrite(self, final: str) -> None:
        """Replace what was shown with ``final`` (a retracted answer, a changed text)."""
        try:
            for message in self._messages:
                if message.mode is Mode.STREAM and message.ts and not message.stopped:
                    if not message.broken:
                        await self._stop(message, "")
            parts: list[str] = []
            position = 0
            while final[position:].strip():
                cut = choose_cut(final[position:], self.policy.max_part)
                prefix = "```\n" if in_code(final[:position]) else ""
                closing = "\n```" if in_code(final[: position + cut]) else ""
                parts.append(prefix + final[position : position + cut].rstrip() + closing)
                position = next_start(final, position + cut)
            shown = [m for m in self._messages if m.ts]
            for index, part in enumerate(parts):
                rendered = render_mrkdwn(part).strip()
                actions = self._actions if index == len(parts) - 1 else []
                if index < len(shown):
                    message = shown[index]
                    if message.mode is Mode.STREAM or rendered != message.shown or actions:
                        await self._edit_final(message, rendered, actions)
                else:
                    await self._post_final(rendered, actions)
            for message in shown[len(parts) :]:
                await self._delete(message)
            await self._post_buttons()
        finally:
            for message in self._messages:
                await self.budget.release(message.update)
                await self.budget.release(message.stop)

    async def _delete(self, message: _Message) -> None:
        def call() -> Awaitable[AsyncSlackResponse]:
            return self.client.chat_delete(channel=self.target.channel, ts=message.ts)

        await self._essential(DELETE, call)
