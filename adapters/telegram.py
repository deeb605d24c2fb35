"""Telegram channel: a PTB Application (polling or webhook) that feeds Turns to the manager."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Hashable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from telegram import BotCommand, CallbackQuery, Update
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    InvalidToken,
    NetworkError,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    ContextTypes,
    TypeHandler,
)

from adapters.telegram_convert import (
    PLATFORM,
    BotIdentity,
    Decision,
    Ignore,
    NotYours,
    TextOnly,
    decide,
)
from adapters.telegram_http import AiohttpRequest, ThreadedPollRequest
from adapters.telegram_markdown import markdown_to_html
from adapters.telegram_pacing import FloodPolicy, TelegramOutbox
from adapters.telegram_stream import ChatTarget, TelegramReplyStream
from adapters.turns import answer_turn, noted
from adapters.work_queue import Admission, SessionWorkQueue
from bot.i18n import detect_language, t
from bot.journal import JournalEntry, JournalUnavailable, TurnJournal
from bot.pacing import build_ledger
from bot.reply import CUT_NOTICE_SECONDS, ReplyStream
from bot.sessions.base import SessionStoreError, first_delivery
from bot.turn import Turn

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

# Edited messages, reactions, member changes... are never answered, so they are not fetched.
ALLOWED_UPDATES = ["message", "callback_query"]
# Updates being handled at once (waiting ones hold no slot). A turn holds its slot until its
# final message is sent, and finals queue for the bot-wide 30 messages a second: with 256 the
# 257th chat of a burst could not even start before other chats' finals went out. So this
# bounds memory (about 40 KiB a turn in flight, bench/bench_capacity.py), not throughput:
# the model has its own bound (GLM_MAX_CONCURRENCY), the outbox paces the platform calls.
MAX_CONCURRENT_UPDATES = 4096
MAX_WAITING_UPDATES = 8  # updates of one session waiting behind the one being handled
# Updates converted to Bot API JSON and not handled yet (a bound against a leak only).
MAX_PENDING_PAYLOADS = 10_000
DEFAULT_WEBHOOK_PORT = 8443
# Presses of one offer (the buttons under one message) this soon after the press that took it
# are the same tap: a double tap, a second device, a client that had not yet seen the keyboard
# go. They are answered and make no turn; a press after that (a client still showing a stale
# keyboard) is a turn, and the core decides what its payload means by then.
OFFER_SECONDS = 10
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts as secret_token

# The command menu, per language (setMyCommands); Telegram shows the user's language.
COMMANDS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("start", "Start and see what I can do"),
        ("help", "How to use this bot"),
        ("reset", "Start this conversation over"),
        ("forget", "Delete what I stored about you"),
        ("memory", "What I remember of this conversation"),
        ("usage", "Your token usage and budget"),
        ("interests", "Topics you talk about"),
        ("suggestions", "Suggestions on or off"),
    ],
    "ko": [
        ("start", "시작하고 사용법 보기"),
        ("help", "도움말"),
        ("reset", "이 대화를 새로 시작"),
        ("forget", "저장된 내 대화 기록 삭제"),
        ("memory", "이 대화에서 기억하는 것 보기"),
        ("usage", "내 토큰 사용량과 남은 예산"),
        ("interests", "자주 이야기한 주제 보기"),
        ("suggestions", "추천 켜기/끄기"),
    ],
}


POLL_SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL while another waits


class TelegramStartError(RuntimeError):
    """The channel cannot start (the message is safe to print: it never holds the token)."""


class SessionOrderedProcessor(BaseUpdateProcessor):
    """Updates run concurrently, except that one user's updates in one chat keep their order.

    The manager's session lock keeps turns of a session apart, but does not promise that they
    run in the order they were sent; this does, without holding up anyone else. The order,
    the bound and the global cap are a SessionWorkQueue's, as in the Slack channel: an update
    waiting for its session's earlier ones holds none of the ``max_concurrent_updates`` slots
    (PTB's own ``process_update`` would hold one around the wait), sessions waiting for a slot
    take turns, and at most ``max_waiting`` wait per session: later ones are refused, not
    run, and ``on_refused(update, notify)`` is told, with ``notify`` true for the first
    refusal of a burst (a burst lasts until the session has nothing running or waiting).

    ``key_of`` gives an update's session (None: not ordered, not bounded); the channel
    leaves out updates it ignores, so chatter in a group costs no one a place.
    """

    def __init__(
        self,
        max_concurrent_updates: int = MAX_CONCURRENT_UPDATES,
        *,
        max_waiting: int = MAX_WAITING_UPDATES,
        key_of: Callable[[object], Hashable | None] | None = None,
        on_refused: Callable[[object, bool], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(max_concurrent_updates)  # checks it; PTB's semaphore is not used
        self.queue = SessionWorkQueue(max_running=max_concurrent_updates, max_waiting=max_waiting)
        self.key_of: Callable[[object], Hashable | None] = key_of or order_key
        self.on_refused = on_refused

    @property
    def max_waiting(self) -> int:
        return self.queue.max_waiting

    @property
    def running(self) -> int:
        """Updates being handled now (not those waiting for their turn)."""
        return self.queue.running

    @property
    def current_concurrent_updates(self) -> int:
        # PTB's counts its semaphore's slots; here the queue holds them.
        return self.queue.running

    async def process_update(  # type: ignore[misc]
        self, update: object, coroutine: Awaitable[Any]
    ) -> None:
        # PTB's (final) version takes a slot around do_process_update, so updates queued
        # behind their session's earlier ones held slots; here the queue gives an update a
        # slot only when its turn comes.
        await self.do_process_update(update, coroutine)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        # PTB awaits this in a task of the update's own and counts the update handled when it
        # returns, so it waits for the work to be done. Cancelling it cancels the work, as if
        # awaited here: a waiting update is dropped, a running one cut (see submit_and_wait).
        work = coroutine if inspect.iscoroutine(coroutine) else _awaited(coroutine)
        key = self.key_of(update)
        if key is None:  # in no session: its own key, so it is never refused or held up
            admission = await self.queue.submit_and_wait(object(), work, bounded=False)
        else:
            admission = await self.queue.submit_and_wait(key, work)
        if admission is not Admission.QUEUED:
            work.close()  # never started: close it rather than warn "never awaited"
            await self._refuse(update, notify=admission is Admission.REFUSED_NOTIFY)

    async def cancel_running(self) -> int:
        """Cancel the updates being answered (shutdown past its grace) and let each close
        what the user sees; returns how many were cut."""
        return await self.queue.cancel_running(wait=CUT_NOTICE_SECONDS + 1)

    async def _refuse(self, update: object, notify: bool) -> None:
        # In PTB's task for the update, holding no slot: nothing else waits for a refusal.
        if self.on_refused is None:
            log.info("session queue full, update not processed")
            return
        try:
            await self.on_refused(update, notify)
        except Exception:
            log.exception("telegram: refusing an update failed")

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


async def _awaited(awaitable: Awaitable[Any]) -> None:
    await awaitable


def order_key(update: object) -> Hashable | None:
    if not isinstance(update, Update):
        return None
    chat, user = update.effective_chat, update.effective_user
    if chat is None:
        return None
    return (chat.id, user.id if user is not None else None)


class JournalingQueue(asyncio.Queue[object]):
    """PTB's update queue, which both the poller and the webhook server put updates into:
    ``record`` writes an update down before it is queued, so before PTB confirms it (the next
    ``getUpdates`` offset, or the webhook's 200). ``record`` returns False for a re-delivery
    (not queued) and raises when the update cannot be recorded (then it is not confirmed)."""

    def __init__(self, record: Callable[[object], Awaitable[bool]]) -> None:
        super().__init__()
        self.record = record

    async def put(self, item: object) -> None:
        if await self.record(item):
            await super().put(item)


def file_base_url(base_url: str) -> str:
    """The file download base that goes with an API base: ``…/bot`` → ``…/file/bot``."""
    return re.sub(r"/bot(\{token\})?$", r"/file/bot\1", base_url)


def build_application(
    token: str,
    base_url: str,
    processor: SessionOrderedProcessor | None = None,
    queue: asyncio.Queue[object] | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(file_base_url(base_url))
        .concurrent_updates(processor or SessionOrderedProcessor())
        .request(AiohttpRequest())  # every call but getUpdates (see adapters/telegram_http.py)
        .get_updates_request(ThreadedPollRequest())
    )
    if queue is not None:
        builder = builder.update_queue(queue)
    return builder.build()


class TelegramChannel:
    """Receives updates, converts them, and answers through TelegramReplyStream."""

    def __init__(self, app: App, *, policy: FloodPolicy | None = None) -> None:
        settings = app.settings
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self.app = app
        self.processor = SessionOrderedProcessor(key_of=self.queue_key, on_refused=self.refused)
        self.application = build_application(
            settings.telegram_bot_token.get_secret_value(),
            settings.telegram_base_url,
            self.processor,
            JournalingQueue(self.record),
        )
        self.outbox = TelegramOutbox(
            self.application.bot, policy, metrics=app.metrics, ledger=build_ledger(app.store)
        )
        self.me = BotIdentity(0, "")
        self.journal = app.journal or TurnJournal(app.store)
        self._entries: dict[int, JournalEntry] = {}  # recorded updates, by update_id
        self._payloads: dict[int, tuple[Update, dict[str, Any]]] = {}  # see _payload
        self._presses: dict[int, asyncio.Task[bool]] = {}  # see _take_press_soon
        self.offer_seconds = OFFER_SECONDS
        # Offers are named in the store by a keyed hash: no chat id is kept, even for seconds.
        token = settings.telegram_bot_token.get_secret_value().encode()
        self._offer_pepper = hashlib.sha256(b"offers:" + token).digest()
        self._resumed: set[asyncio.Task[None]] = set()
        self._menu: asyncio.Task[None] | None = None

    # -- lifecycle --

    async def run(self) -> None:
        """Receive and answer updates until cancelled; then stop PTB cleanly."""
        application = self.application
        application.add_handler(TypeHandler(Update, self.on_update))
        application.add_error_handler(self.on_error)
        self.app.manager.commands.admin_checks[PLATFORM] = self.is_admin
        self.app.notices.register(PLATFORM, self.notify_admins)
        try:
            await self._initialize()
            self.journal.register(PLATFORM, self)  # turns a dead process left, once me is known
            bot = application.bot
            self.me = BotIdentity(bot.id, bot.username or "")
            # In the background: a 429 on the menu must not hold up serving.
            self._menu = asyncio.create_task(self.register_commands(), name="telegram-menu")
            mode = await self._start_receiving()
            await application.start()
            log.info("telegram: @%s receiving updates by %s", self.me.username, mode)
            await asyncio.Event().wait()  # until cancelled (SIGTERM)
        finally:
            await self._stop()

    async def _initialize(self) -> None:
        """getMe: a rejected token is fatal, an unreachable Bot API is waited for."""
        delay = 1.0
        while True:
            try:
                await self.application.initialize()
                return
            except InvalidToken:
                # PTB's own message quotes the token; it must not reach a log or a traceback.
                log.error("telegram: the Bot API rejected TELEGRAM_BOT_TOKEN (401)")
                raise TelegramStartError("Telegram rejected TELEGRAM_BOT_TOKEN") from None
            except (NetworkError, TimedOut) as exc:
                log.warning("telegram: Bot API unreachable (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _start_receiving(self) -> str:
        updater = self.application.updater
        assert updater is not None
        settings = self.app.settings
        if not settings.telegram_webhook_url:
            await self._lease_polling()
            # getUpdates runs in a thread of its own (ThreadedPollRequest); the interpreter
            # hands that thread the GIL after 1 ms of the loop's work instead of 5, so a busy
            # loop delays the next poll less (first visible p95 under a 1,000-chat burst:
            # 1.9-2.1 s -> 1.2-1.8 s, bench/bench_capacity.py).
            sys.setswitchinterval(POLL_SWITCH_INTERVAL)
            await updater.start_polling(
                allowed_updates=ALLOWED_UPDATES, error_callback=self._polling_error
            )
            return "long polling"
        listen, port = webhook_listen(self.app)
        await updater.start_webhook(
            listen=listen,
            port=port,
            url_path=urlsplit(settings.telegram_webhook_url).path.strip("/"),
            webhook_url=settings.telegram_webhook_url,
            secret_token=webhook_secret(self.app),
            allowed_updates=ALLOWED_UPDATES,
        )
        return f"webhook (listening on {listen}:{port})"

    async def _lease_polling(self) -> None:
        """Telegram serves one getUpdates poller per bot; a second one would make both fail
        with 409 Conflict in turn. With Redis, the poller holds a lease: a process started
        while another polls refuses to start. A lease left by a process that just died
        expires with its heartbeat, so a restart waits for that rather than refuse."""
        name = f"telegram-poller:{self.me.id}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.journal.lease_seconds
        while True:
            try:
                holder = await self.journal.lease(name)
            except SessionStoreError as exc:
                log.warning("telegram: could not check for another poller: %s", exc)
                return
            if holder is None:
                return
            if loop.time() >= deadline:
                log.error(
                    "telegram: another process (%s) is already long-polling @%s; run one "
                    "poller per bot, or set TELEGRAM_WEBHOOK_URL to run several replicas",
                    holder,
                    self.me.username,
                )
                raise TelegramStartError("another process is long-polling this bot")
            await asyncio.sleep(0.5)

    async def _stop(self) -> None:
        if self._menu is not None:
            self._menu.cancel()
        application = self.application
        updater = application.updater
        steps: list[tuple[str, Any]] = []
        if updater is not None and updater.running:
            steps.append(("updater", updater.stop))
        if application.running:
            steps.append(("application", self._stop_application))
        steps.append(("shutdown", application.shutdown))
        for name, step in steps:
            try:
                await step()
            except Exception as exc:
                log.warning("telegram: %s did not stop cleanly: %s", name, exc)

    async def _stop_application(self) -> None:
        """Let answers in flight end, for at most SHUTDOWN_GRACE_SECONDS (polling or the
        webhook server has stopped already, so no new update is taken)."""
        grace = self.app.settings.shutdown_grace_seconds
        try:
            async with asyncio.timeout(grace):
                await self.application.stop()
                if self._resumed:  # a dead process's turns, queued outside PTB's fetcher
                    await asyncio.wait(set(self._resumed))
        except TimeoutError:
            for task in self._resumed:
                task.cancel()  # waiting: left in the journal for the next process
            cut = await self.processor.cancel_running()
            log.warning(
                "telegram: %d answers still running after %.0fs were cut at shutdown", cut, grace
            )

    async def register_commands(self) -> None:
        """The command menu in English (everyone) and Korean (Korean-language clients)."""
        bot = self.application.bot
        try:
            for lang, commands in COMMANDS.items():
                menu = [BotCommand(name, text) for name, text in commands]
                code = None if lang == "en" else lang

                async def set_menu(menu: list[BotCommand] = menu, code: str | None = code) -> bool:
                    return bool(await bot.set_my_commands(menu, language_code=code))

                await self.outbox.other("setMyCommands", set_menu)
        except TelegramError as exc:
            # The bot works without a menu; do not refuse to start over it.
            log.warning("telegram: setMyCommands failed: %s", exc)

    # -- updates --

    def stream_for(self, turn: Turn) -> TelegramReplyStream:
        label = str(turn.session_key(self.app.manager.config.scope))
        return TelegramReplyStream(self.outbox, ChatTarget.of(turn), label=label)

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        decision = self._decide(update, last=True)
        entry = self._entries.pop(update.update_id, None)
        if update.callback_query is not None and not await self._pressed(
            update, decision, resumed=entry is not None
        ):
            if entry is not None:
                await self.journal.done(entry)  # the same tap as a press a moment ago
            return
        if isinstance(decision, Ignore):
            log.debug("update %s ignored: %s", update.update_id, decision.reason)
            return
        if isinstance(decision, NotYours):
            return
        turn = decision.turn if isinstance(decision, TextOnly) else decision
        lang = detect_language(turn.text, turn.language)
        if isinstance(decision, TextOnly):
            if await self._first_delivery(turn):
                await self.stream_for(turn).finish(t("non_text", lang))
            return
        if entry is None:  # not recorded (a test feeding updates by hand)
            await self._answer(turn, self.stream_for(turn), lang, deduplicated=False)
            return
        await self._answer_entry(turn, entry)

    async def _answer_entry(self, turn: Turn, entry: JournalEntry) -> None:
        lang = detect_language(turn.text, turn.language)
        stream = noted(self.stream_for(turn), entry, lang)
        await self.journal.process(
            entry, lambda: self._answer(turn, stream, lang, deduplicated=True)
        )

    async def _answer(
        self, turn: Turn, stream: ReplyStream, lang: str, *, deduplicated: bool
    ) -> None:
        label = str(turn.session_key(self.app.manager.config.scope))
        await answer_turn(
            self.app.manager,
            turn,
            stream,
            lang,
            deduplicated=deduplicated,
            durable=self.journal.durable,
            label=label,
        )

    def _payload(self, update: Update) -> dict[str, Any]:
        """``update`` as Bot API JSON, converted once: ``record``, ``queue_key`` and
        ``on_update`` each decide on it and the journal stores it, and PTB's ``to_dict`` is the
        dearest step of taking an update. Kept from ``record`` until ``_forget`` (the update
        was handled, refused or not queued); a re-delivery of a queued update is not kept."""
        kept = self._payloads.get(update.update_id)
        if kept is not None and kept[0] is update:
            return kept[1]
        payload: dict[str, Any] = update.to_dict()
        if kept is None:
            self._payloads[update.update_id] = (update, payload)
            if len(self._payloads) > MAX_PENDING_PAYLOADS:  # never handled (shutdown)
                del self._payloads[next(iter(self._payloads))]
        return payload

    def _forget(self, update: Update) -> None:
        kept = self._payloads.get(update.update_id)
        if kept is not None and kept[0] is update:
            del self._payloads[update.update_id]

    def _decide(self, update: Update, *, last: bool = False) -> Decision:
        """What to do with ``update``; ``last``: nothing will ask again."""
        decision = decide(self._payload(update), self.me)
        if last:
            self._forget(update)
        return decision

    # -- the journal --

    async def record(self, update: object) -> bool:
        """Write a turn down before PTB confirms its update (see JournalingQueue)."""
        if not isinstance(update, Update):
            return True  # PTB's own signals
        payload = self._payload(update)
        decision = decide(payload, self.me)
        if isinstance(decision, Ignore | TextOnly | NotYours):
            return True  # nothing to answer, or a one-line notice: not journaled
        session = str(decision.session_key(self.app.manager.config.scope))
        try:
            entry = await self.journal.record(PLATFORM, decision.delivery_key, session, payload)
        except JournalUnavailable as exc:
            self._forget(update)  # not queued
            # Not confirmed: Telegram hands it over again (the poller retries; the webhook
            # answers 500 and Telegram redelivers).
            log.warning("telegram: update %s not taken, retried later: %s", update.update_id, exc)
            raise NetworkError("the turn journal is unavailable") from None
        if entry is None:
            self._forget(update)  # not queued
            log.info("duplicate delivery %s ignored", decision.delivery_key)
            return False
        self._entries[update.update_id] = entry
        if update.callback_query is not None:
            self._take_press_soon(update, decision)
        return True

    def _polling_error(self, exc: TelegramError) -> None:
        if isinstance(exc, Conflict):
            log.error(
                "telegram: another process polls this bot (409 Conflict); run one poller per "
                "bot, or set TELEGRAM_WEBHOOK_URL to run several replicas"
            )
            return
        log.warning("telegram: polling: %s", exc)

    def resume_later(self, entry: JournalEntry) -> None:
        """A dead process's turn: queued behind its session's updates in this process."""
        update = Update.de_json(entry.payload, self.application.bot)
        self._entries[update.update_id] = entry
        task = asyncio.get_running_loop().create_task(
            self.processor.process_update(update, self.application.process_update(update))
        )
        self._resumed.add(task)
        task.add_done_callback(self._resumed.discard)

    async def resume_now(self, entry: JournalEntry) -> None:
        """A dead process's turn, answered now (a later turn of its session waits for it)."""
        decision = decide(entry.payload, self.me)  # the update as JSON already
        if isinstance(decision, Ignore | TextOnly | NotYours):
            await self.journal.done(entry)
            return
        await self._answer_entry(decision, entry)

    def queue_key(self, update: object) -> Hashable | None:
        """The session an update queues in; None for updates that get no answer at all."""
        key = order_key(update)
        if (
            key is not None
            and isinstance(update, Update)
            and isinstance(self._decide(update), Ignore | NotYours)
        ):
            # e.g. group chatter, or someone else's button: answered at once, if at all, and
            # it must not take anyone's place in the queue
            return None
        return key

    async def refused(self, update: object, notify: bool) -> None:
        """An update past its session's queue: not handled; the first of a burst says so."""
        if not isinstance(update, Update):
            return
        decision = self._decide(update, last=True)
        if update.callback_query is not None:
            await self._pressed(update, decision, resumed=update.update_id in self._entries)
        if isinstance(decision, Ignore | NotYours):
            return
        turn = decision.turn if isinstance(decision, TextOnly) else decision
        label = str(turn.session_key(self.app.manager.config.scope))
        log.info("session queue full, update %s not processed session=%s", update.update_id, label)
        entry = self._entries.pop(update.update_id, None)
        if entry is not None:
            await self.journal.done(entry)  # refused (and said so): not answered later either
        if notify:
            stream = self.stream_for(turn)
            try:
                await stream.finish(t("queue_full", detect_language(turn.text, turn.language)))
            except Exception as exc:
                log.warning("queue-full notice not delivered session=%s: %r", label, exc)

    async def _first_delivery(self, turn: Turn) -> bool:
        """The manager de-duplicates text turns; media replies are de-duplicated here alike."""
        return await first_delivery(
            self.app.store, turn.delivery_key, self.app.manager.config.dedupe_ttl_seconds
        )

    # -- quick-reply buttons --

    def _take_press_soon(self, update: Update, decision: Decision) -> None:
        """A press recorded for a turn: answered (and its offer taken) now, not once its
        session's earlier turns are done: a callback query lives a few seconds only, and the
        sooner its keyboard goes, the less a double tap can press it again. ``on_update``
        waits for this before the turn."""
        task = asyncio.get_running_loop().create_task(
            self._take_press(update, decision, claim=True), name="telegram-press"
        )
        self._presses[update.update_id] = task
        if len(self._presses) > MAX_PENDING_PAYLOADS:  # never handled (shutdown)
            del self._presses[next(iter(self._presses))]

    async def _pressed(self, update: Update, decision: Decision, *, resumed: bool) -> bool:
        """The press in ``update`` answered (once); whether it makes a turn. ``resumed``: a
        turn recorded by a process that died, which had taken its offer already."""
        task = self._presses.pop(update.update_id, None)
        if task is not None:
            return await task
        return await self._take_press(update, decision, claim=not resumed)

    async def _take_press(self, update: Update, decision: Decision, *, claim: bool) -> bool:
        """Answer a pressed button, always (its spinner stops; a stale button too), and say
        whether the press makes a turn.

        Someone else's button: answered with a notice, no turn, its keyboard kept. A press
        that may be made takes the offer (``claim``; a press of the same offer a moment ago
        took it already: no turn) and the keyboard of its message is removed.
        """
        query = update.callback_query
        assert query is not None
        if isinstance(decision, NotYours):
            lang = detect_language("", decision.language)
            await self.answer_callback(query, t("button_not_yours", lang))
            return False
        if not isinstance(decision, Turn):
            await self.answer_callback(query)
            return False
        # Claimed before the answer: of two presses taken in a row, the first one wins.
        first = not claim or await self._claim_offer(decision)
        await self.answer_callback(query)
        if not first:
            log.info("button press %s: its offer was taken a moment ago", update.update_id)
            return False
        await self._remove_keyboard(decision)
        return True

    async def _claim_offer(self, turn: Turn) -> bool:
        """Whether this press is the first of its offer (the buttons of one message) within
        ``offer_seconds``; in the store, so replicas agree."""
        if self.offer_seconds <= 0:
            return True
        name = f"{turn.chat_id}:{turn.message_id}".encode()
        digest = hashlib.blake2b(name, key=self._offer_pepper, digest_size=12).hexdigest()
        return await first_delivery(
            self.app.store, f"{PLATFORM}:offer:{digest}", self.offer_seconds
        )

    async def _remove_keyboard(self, turn: Turn) -> None:
        """editMessageReplyMarkup without markup on the pressed message (one answer per offer).
        An edit like any other: it counts against the chat's limits, so it is paced as one."""
        message = turn.raw if isinstance(turn.raw, Mapping) else {}
        if not message.get("reply_markup") or not turn.message_id:
            return  # nothing shows (a stale button)
        chat, message_id = int(turn.chat_id), int(turn.message_id)
        remove = partial(
            self.application.bot.edit_message_reply_markup, chat_id=chat, message_id=message_id
        )
        try:
            await self.outbox.final(chat, "message", not turn.is_private, remove)
        except BadRequest as exc:
            # "message is not modified" (gone already), or the message was deleted.
            log.debug("keyboard of message %s not removed: %s", message_id, exc.message)
        except TelegramError as exc:
            log.warning("keyboard of message %s not removed: %s", message_id, exc)

    async def answer_callback(self, query: CallbackQuery, text: str | None = None) -> None:
        """Stop a pressed button's spinner, with ``text`` as a short notice; paced like any
        call. A query too old or answered already is let go."""
        bot = self.application.bot
        try:
            await self.outbox.other(
                "answerCallbackQuery", partial(bot.answer_callback_query, query.id, text=text)
            )
        except TelegramError as exc:
            log.debug("callback query %s not answered: %s", query.id, exc)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: error while handling an update: %r", context.error)

    async def is_admin(self, turn: Turn) -> bool:
        """Whether the sender administers the group the turn came from (getChatMember).

        Rights in that group only (resetting its conversations); the bot's own admins are
        ``TELEGRAM_ADMIN_IDS``, checked by the core without a lookup.
        """
        if turn.is_private or turn.platform != PLATFORM:
            return False
        if turn.user_id == turn.chat_id:
            return True  # an anonymous admin writes as the group itself
        bot = self.application.bot
        chat, user = int(turn.chat_id), int(turn.user_id)
        member = await self.outbox.other("getChatMember", lambda: bot.get_chat_member(chat, user))
        return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)

    async def notify_admins(self, team: str, text: str) -> None:
        """A private message to each of TELEGRAM_ADMIN_IDS (who must have started the bot)."""
        html = markdown_to_html(text)
        bot = self.application.bot
        for admin in sorted(self.app.settings.telegram_admin_ids):
            chat = int(admin)

            async def send(chat: int = chat) -> object:
                return await bot.send_message(chat_id=chat, text=html, parse_mode=ParseMode.HTML)

            try:
                await self.outbox.final(chat, "message", False, send)
            except TelegramError as exc:
                log.warning("telegram: admin %s not notified: %s", admin, exc)


def webhook_listen(app: App) -> tuple[str, int]:
    """Where the webhook server listens (behind the TLS proxy that TELEGRAM_WEBHOOK_URL names)."""
    return app.settings.telegram_webhook_listen, app.settings.telegram_webhook_port


def webhook_secret(app: App) -> str:
    """TELEGRAM_WEBHOOK_SECRET, or a random one: updates without it are refused (403) either way."""
    configured = app.settings.telegram_webhook_secret
    if configured is None:
        log.warning("telegram: TELEGRAM_WEBHOOK_SECRET is not set; using a random one for this run")
        return secrets.token_urlsafe(32)
    value = configured.get_secret_value()
    if not _SECRET_TOKEN.match(value):
        raise ValueError("TELEGRAM_WEBHOOK_SECRET may only use A-Z, a-z, 0-9, _ and - (1-256)")
    return value


async def run(app: App) -> None:
    """The channel entry point used by ``bot.app.run_channels``."""
    # PTB logs the API URL, which holds the token, at DEBUG; nothing of PTB's DEBUG is worth it.
    level = max(logging.INFO, logging.getLogger().level)
    for name in ("telegram", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(level, logging.getLogger(name).level))
    await TelegramChannel(app).run()
