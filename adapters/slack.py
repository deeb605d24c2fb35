"""Slack channel: a Bolt AsyncApp (HTTP events or Socket Mode) that feeds Turns to the manager."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack_blocks import ACTION_PATTERN, has_buttons, read_block_id, without_buttons
from adapters.slack_convert import (
    PLATFORM,
    BotIdentity,
    ButtonPress,
    ConvertOptions,
    Ignore,
    Inbound,
    button_press,
    command_turn,
    decide,
)
from adapters.slack_markdown import render_mrkdwn
from adapters.slack_pacing import (
    DELETE,
    POST,
    REPLIES,
    TIER_4,
    UPDATE,
    SlackBudget,
    SlackPolicy,
    error_code,
    is_rate_limited,
    retry_after,
)
from adapters.slack_stream import SlackReplyStream, SlackTarget
from adapters.turns import answer_turn, noted
from adapters.work_queue import Admission, SessionWorkQueue
from bot.i18n import detect_language, t
from bot.journal import JournalEntry, JournalUnavailable, TurnJournal
from bot.pacing import build_ledger
from bot.reply import Button, ReplyStream
from bot.settings import Settings
from bot.turn import SessionScope, Turn

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
JOURNAL_CONTEXT = "journal_entry"  # where the journal middleware leaves a Recorded event
LISTEN_HOST = "0.0.0.0"  # Slack (or the proxy in front) must reach it
FATAL_AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
EPHEMERAL = (
    "chat.postEphemeral"  # Tier 4 (https://docs.slack.dev/reference/methods/chat.postEphemeral)
)
PRESS_MEMORY = 10_000  # button presses remembered, so that Slack sending one twice is one


def with_ephemeral(policy: SlackPolicy | None) -> SlackPolicy:
    """``policy`` with chat.postEphemeral's tier, so that the "not yours" notice is paced too."""
    policy = policy or SlackPolicy()
    if EPHEMERAL in policy.methods:
        return policy
    return replace(policy, methods={**policy.methods, EPHEMERAL: TIER_4})


def _quiet_env_token_warning(record: logging.LogRecord) -> bool:
    # Bolt also reads SLACK_BOT_TOKEN from the environment and warns that the client given to
    # it wins; that is the intent here (the token comes from authorize()), not a problem.
    return not record.getMessage().startswith(("As you gave `client` as well", "As `installation"))


@dataclass(frozen=True, slots=True)
class SlackOptions:
    """Slack-only knobs: ``SLACK_SESSION_SCOPE`` and ``SLACK_THREAD_REPLIES`` (bot.settings)."""

    session_scope: SessionScope = SessionScope.THREAD
    thread_replies: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackOptions:
        return cls(settings.slack_session_scope, settings.slack_thread_replies)

    def convert(self) -> ConvertOptions:
        return ConvertOptions(scope=self.session_scope, thread_replies=self.thread_replies)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the journal middleware made of an event, for the listener: its decision, and its
    journal entry (None: a re-delivery, recorded before)."""

    inbound: Inbound
    entry: JournalEntry | None


class EphemeralReply(ReplyStream):
    """A slash command's answer: posted to its ``response_url``, seen by the caller only."""

    def __init__(self, respond: AsyncRespond, label: str = "") -> None:
        self.respond = respond
        self.label = label

    async def start(self) -> None:
        return None

    def append(self, text: str) -> None:
        return None  # commands answer at once; there is nothing to stream

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        await self._send(text)

    async def fail(self, notice: str) -> None:
        await self._send(notice)

    async def retract(self, notice: str) -> None:
        await self._send(notice)

    async def _send(self, text: str) -> None:
        try:
            await self.respond(text=render_mrkdwn(text), response_type="ephemeral")
        except Exception as exc:  # the command already ran; only its confirmation is lost
            log.warning("slash command reply not delivered session=%s: %r", self.label, exc)


class BotThreads:
    """Which channel threads the bot takes part in, so that replies there need no mention.

    Threads the bot answered in are remembered; others are looked up once with
    ``conversations.replies`` (another process may have answered there) and the result kept.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        budget: SlackBudget,
        *,
        size: int = 20_000,
        ttl: float = 7 * 86_400,
        miss_ttl: float = 30.0,
        max_pages: int = 5,
    ) -> None:
        self.client = client
        self.budget = budget
        self.me = BotIdentity("")
        self.size = size
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self.max_pages = max_pages
        self._known: OrderedDict[tuple[str, str, str], tuple[bool, float]] = OrderedDict()

    def remember(self, team: str, channel: str, thread_ts: str, part: bool = True) -> None:
        key = (team, channel, thread_ts)
        now = time.monotonic()
        self._known[key] = (part, now + (self.ttl if part else self.miss_ttl))
        self._known.move_to_end(key)
        while len(self._known) > self.size:
            self._known.popitem(last=False)

    async def takes_part(self, team: str, channel: str, thread_ts: str) -> bool:
        known = self._known.get((team, channel, thread_ts))
        if known is not None and known[1] > time.monotonic():
            return known[0]
        part = await self._look_up(team, channel, thread_ts)
        self.remember(team, channel, thread_ts, part)
        return part

    async def _look_up(self, team: str, channel: str, thread_ts: str) -> bool:
        cursor = ""
        for _ in range(self.max_pages):
            stamp = await self.budget.slot(team, REPLIES)
            try:
                response = await self.client.conversations_replies(
                    channel=channel, ts=thread_ts, limit=200, cursor=cursor or None
                )
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                reason = error_code(exc) if isinstance(exc, SlackApiError) else repr(exc)
                log.warning("thread lookup failed channel=%s: %s", channel, reason)
                return False
            finally:
                await self.budget.sent(stamp)
            for message in response.get("messages") or []:
                if message.get("user") == self.me.user_id or (
                    self.me.bot_id and message.get("bot_id") == self.me.bot_id
                ):
                    return True
            cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return False
        return False


class SlackChannel:
    """Receives events and slash commands, converts them, and answers through the streams."""

    def __init__(
        self,
        app: App,
        *,
        policy: SlackPolicy | None = None,
        options: SlackOptions | None = None,
        session: aiohttp.ClientSession | None = None,
        work: SessionWorkQueue | None = None,
    ) -> None:
        settings = app.settings
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        self.app = app
        self.options = options or SlackOptions.from_settings(settings)
        self.convert = self.options.convert()
        self.budget = SlackBudget(
            with_ephemeral(policy), metrics=app.metrics, ledger=build_ledger(app.store)
        )
        self._own_session = session is None
        self.session = session  # one connection pool for every Web API call
        self.client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            session=session,
            timeout=30,
        )
        self.threads = BotThreads(self.client, self.budget)
        self.me = BotIdentity("")
        self.bolt: AsyncApp | None = None
        self.port: int | None = None  # where HTTP events are received, once started
        # Answers and slash commands in progress or waiting: ordered per session, bounded.
        self.work = work or SessionWorkQueue()
        self.journal = app.journal or TurnJournal(app.store)
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._presses: OrderedDict[str, None] = OrderedDict()  # de-duplication, in process

    # -- lifecycle --

    async def run(self) -> None:
        """Receive and answer events until cancelled; then stop cleanly."""
        try:
            if self.session is None:
                self.session = aiohttp.ClientSession()
                self.client.session = self.session
            self.me = await self.identify()
            self.threads.me = self.me
            self.app.notices.register(PLATFORM, self.notify_admins)
            self.journal.register(PLATFORM, self)  # turns a dead process left
            self.bolt = self.build_bolt()
            mode = await self._start_receiving(self.bolt)
            log.info("slack: @%s receiving events by %s", self.me.name or self.me.user_id, mode)
            await asyncio.Event().wait()  # until cancelled (SIGTERM)
        finally:
            await self._stop()

    async def identify(self) -> BotIdentity:
        """``auth.test``: who the bot is. A rejected token ends the process (exit status 2)."""
        delay = 1.0
        for attempt in range(1, 6):
            try:
                response = await self.client.auth_test()
                return BotIdentity(
                    user_id=str(response.get("user_id") or ""),
                    bot_id=str(response.get("bot_id") or ""),
                    team_id=str(response.get("team_id") or ""),
                    name=str(response.get("user") or ""),
                )
            except SlackApiError as exc:
                code = error_code(exc)
                if code in FATAL_AUTH_ERRORS:
                    log.error("slack: SLACK_BOT_TOKEN was rejected (%s)", code)
                    raise SystemExit(2) from None
                log.warning("slack: auth.test failed (%s), attempt %d", code, attempt)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("slack: cannot reach the Web API (%r), attempt %d", exc, attempt)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)
        log.error("slack: the Web API at %s did not answer", self.app.settings.slack_api_url)
        raise SystemExit(2)

    def build_bolt(self) -> AsyncApp:
        settings = self.app.settings
        socket_mode = settings.slack_app_token is not None
        secret = settings.slack_signing_secret

        # Bolt passes arguments by parameter name and counts ``self`` as one, so it gets plain
        # functions rather than bound methods.
        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            return self.authorize(enterprise_id, team_id)

        async def on_event(body: dict[str, Any], context: dict[str, Any]) -> None:
            await self.on_event(body, context.get(JOURNAL_CONTEXT))

        async def record(
            body: dict[str, Any], context: dict[str, Any], next: Callable[[], Awaitable[None]]
        ) -> BoltResponse | None:
            return await self.record(body, context, next)

        async def on_command(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
            await self.on_command(ack, body, respond)

        async def on_action(
            ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond | None
        ) -> None:
            await self.on_action(ack, body, respond)

        bolt_log = logging.getLogger("adapters.slack.bolt")
        bolt_log.addFilter(_quiet_env_token_warning)
        bolt = AsyncApp(
            name="glm-chatbot",
            logger=bolt_log,
            # Bolt copies this client per request and gives it the token from authorize().
            client=AsyncWebClient(
                base_url=self.client.base_url, session=self.session, timeout=self.client.timeout
            ),
            signing_secret=secret.get_secret_value() if secret is not None else "",
            authorize=authorize,
            # Socket Mode requests come over the authenticated socket, unsigned.
            request_verification_enabled=not socket_mode,
            process_before_response=False,
        )
        bolt.middleware(record)  # after Bolt's own: the signature is checked first
        bolt.event(re.compile(".*"))(on_event)
        bolt.command(re.compile(".*"))(on_command)
        # Our buttons' presses (block_actions), on the same Request URL (or socket).
        bolt.action(ACTION_PATTERN)(on_action)
        return bolt

    def authorize(self, enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        """The identity from auth.test at start: no auth.test per request before the ack."""
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id or self.me.team_id,
            bot_token=self.client.token or "",
            bot_id=self.me.bot_id,
            bot_user_id=self.me.user_id,
        )

    async def _start_receiving(self, bolt: AsyncApp) -> str:
        settings = self.app.settings
        if settings.slack_app_token is not None:
            self._socket = AsyncSocketModeHandler(
                bolt,
                settings.slack_app_token.get_secret_value(),
                logger=logging.getLogger("adapters.slack.socket"),
                web_client=self.client,
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            return "Socket Mode"
        if settings.slack_signing_secret is None:
            log.error("slack: SLACK_SIGNING_SECRET is required for HTTP events")
            raise SystemExit(2)
        web_app = web.Application()
        web_app.router.add_post(EVENTS_PATH, self._http_events)
        runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, LISTEN_HOST, settings.slack_port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            log.error("slack: cannot listen on port %d: %s", settings.slack_port, exc)
            raise SystemExit(2) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return f"HTTP on port {self.port} at {EVENTS_PATH}"

    async def _http_events(self, request: web.Request) -> web.Response:
        assert self.bolt is not None
        # Bolt verifies the signature (401 when forged or older than 5 minutes) and acks
        # events at once; the answer runs in a task of ours.
        response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _stop(self) -> None:
        steps: list[tuple[str, Awaitable[Any]]] = []
        if self._socket is not None:
            steps.append(("socket mode", self._socket.close_async()))  # type: ignore[no-untyped-call]
        if self._runner is not None:
            steps.append(("http server", self._runner.cleanup()))
        for name, step in steps:
            try:
                await step
            except Exception as exc:
                log.warning("slack: %s did not stop cleanly: %r", name, exc)
        # Answers in flight (and waiting) get a moment to finish; the rest are cut off.
        # New events are refused already (the server is closed); answers in flight get
        # SHUTDOWN_GRACE_SECONDS to finish, and their streams are stopped properly.
        await self.work.shutdown(self.app.settings.shutdown_grace_seconds)
        if self._own_session and self.session is not None:
            await self.session.close()

    # -- events --

    async def record(
        self, body: dict[str, Any], context: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Bolt middleware: an event that will be answered is written down before the ack.

        The listener learns the entry (or that the event is a re-delivery) from the context;
        when it cannot be written down the event is refused (503), so Slack sends it again.
        """
        if body.get("type") == "event_callback":
            decision = decide(body, self.me, self.convert)
            if not isinstance(decision, Ignore):
                turn = decision.turn
                session = str(turn.session_key(self.app.manager.config.scope))
                try:
                    entry = await self.journal.record(PLATFORM, turn.delivery_key, session, body)
                except JournalUnavailable as exc:
                    log.warning("slack: event %s refused, Slack retries: %s", turn.delivery_id, exc)
                    return BoltResponse(status=503, body="")
                context[JOURNAL_CONTEXT] = Recorded(decision, entry)
        await next()
        return None

    async def on_event(self, body: dict[str, Any], recorded: Recorded | None = None) -> None:
        """Bolt listener (acked already): decide (the middleware did, for what it recorded),
        and answer in the background."""
        if recorded is not None and recorded.entry is None:
            log.info("duplicate delivery %s ignored", body.get("event_id"))
            return
        decision = recorded.inbound if recorded is not None else decide(body, self.me, self.convert)
        if isinstance(decision, Ignore):
            log.debug("event %s ignored: %s", body.get("event_id"), decision.reason)
            return
        await self._admit(decision, recorded.entry if recorded is not None else None)

    async def _admit(self, decision: Inbound, journaled: JournalEntry | None) -> None:
        """Answer ``decision`` after its session's earlier turns, or say the session has too
        many waiting."""
        # Turns of one session run in the order they were sent (a DM's messages are each in
        # their own thread, but one conversation).
        order = str(decision.turn.session_key(self.app.manager.config.scope))
        admission = self._spawn(order, self.answer(decision, journaled), bounded=True)
        if admission is not Admission.QUEUED:
            if journaled is not None:
                await self.journal.done(journaled)  # refused (and said so): not answered later
            await self.refused(decision, notify=admission is Admission.REFUSED_NOTIFY)

    def _recorded(self, payload: Mapping[str, Any]) -> Inbound | Ignore:
        """A journaled payload (an event, or a button press) as the turn to answer."""
        if payload.get("type") == "block_actions":
            press = button_press(payload, self.me, self.convert)
            return press if isinstance(press, Ignore) else Inbound(press.turn)
        return decide(payload, self.me, self.convert)

    def resume_later(self, entry: JournalEntry) -> None:
        """A dead process's turn: queued behind its session's turns in this process."""
        decision = self._recorded(entry.payload)
        if isinstance(decision, Ignore):
            return
        order = str(decision.turn.session_key(self.app.manager.config.scope))
        self._spawn(order, self.answer(decision, entry))

    async def resume_now(self, entry: JournalEntry) -> None:
        """A dead process's turn, answered now (a later turn of its session waits for it)."""
        decision = self._recorded(entry.payload)
        if isinstance(decision, Ignore):
            await self.journal.done(entry)
            return
        await self.answer(decision, entry)

    def _spawn(
        self, order: Hashable, work: Coroutine[Any, Any, None], *, bounded: bool = False
    ) -> Admission:
        """Run ``work`` after earlier work of ``order`` (see SessionWorkQueue).

        ``bounded``: refuse it when the session has too many turns waiting (the caller tells
        the sender); refused work is closed here.
        """
        admission = self.work.submit(order, work, bounded=bounded)
        if admission is not Admission.QUEUED:
            work.close()
        return admission

    async def refused(self, inbound: Inbound, *, notify: bool) -> None:
        """A turn past the session's queue: not answered; the first of a burst says so."""
        turn = inbound.turn
        label = str(turn.session_key(self.app.manager.config.scope))
        log.info("session queue full, message not processed session=%s", label)
        if not notify:
            return
        if not turn.is_private and inbound.follow_up:
            # A reply in a thread the bot is not part of would not have been answered anyway.
            if not await self.threads.takes_part(turn.team_id, turn.chat_id, turn.thread_id):
                return
        lang = detect_language(turn.text, turn.language)
        try:
            await self.stream_for(turn).finish(t("queue_full", lang))
        except Exception as exc:
            log.warning("queue-full notice not delivered session=%s: %r", label, exc)

    def stream_for(self, turn: Turn) -> SlackReplyStream:
        label = str(turn.session_key(self.app.manager.config.scope))
        return SlackReplyStream(self.client, self.budget, SlackTarget.of(turn), label=label)

    async def answer(self, inbound: Inbound, entry: JournalEntry | None = None) -> None:
        if entry is None:  # not recorded (a test feeding events by hand)
            await self._answer(inbound, deduplicated=False)
        else:
            await self.journal.process(entry, lambda: self._answer(inbound, entry=entry))

    async def _answer(
        self, inbound: Inbound, *, deduplicated: bool = True, entry: JournalEntry | None = None
    ) -> None:
        turn = inbound.turn
        if not turn.is_private:
            if inbound.follow_up:
                if not await self.threads.takes_part(turn.team_id, turn.chat_id, turn.thread_id):
                    log.debug("thread reply in a thread without the bot ignored")
                    return
            else:
                self.threads.remember(turn.team_id, turn.chat_id, turn.thread_id)
        lang = detect_language(turn.text)
        stream = self.stream_for(turn)
        await answer_turn(
            self.app.manager,
            turn,
            noted(stream, entry, lang),
            lang,
            deduplicated=deduplicated,
            durable=self.journal.durable,
            label=str(turn.session_key(self.app.manager.config.scope)),
        )

    # -- slash commands --

    async def on_command(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """``/reset``, ``/forget`` (and any other): ack first, answer the caller only."""
        await ack()
        turn = command_turn(body, self.convert)
        label = str(turn.session_key())
        self._spawn(("command", turn.chat_id, turn.user_id), self._command(turn, respond, label))

    async def _command(self, turn: Turn, respond: AsyncRespond, label: str) -> None:
        reply = EphemeralReply(respond, label)
        try:
            await self.app.manager.handle(turn, reply)
        except Exception:
            log.exception("slash command failed session=%s", label)
            await reply.fail(t("fallback_unavailable", detect_language(turn.text)))

    # -- buttons --

    async def on_action(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond | None = None
    ) -> None:
        """A press of one of our buttons: ack at once, then (in the background) the owner
        check, the buttons' removal and the presser's turn, whose text is the payload.

        Anyone but the button's owner is told so, privately, and makes no turn. A press that
        Slack sends twice (the same ``action_ts``) makes one turn; the press is journaled like
        an event, so a turn cut off by a dying process is answered by the next one. A press of
        buttons already taken away (a client that had not seen the removal yet) is still a
        turn: whether its offer still stands is the core's to say.
        """
        await ack()
        press = button_press(body, self.me, self.convert)
        if isinstance(press, Ignore):
            log.debug("action ignored: %s", press.reason)
            return
        turn = press.turn
        if turn.delivery_key:
            if turn.delivery_key in self._presses:
                log.info("duplicate press %s ignored", turn.delivery_id)
                return
            self._presses[turn.delivery_key] = None
            while len(self._presses) > PRESS_MEMORY:
                self._presses.popitem(last=False)
        if press.owner and press.owner != turn.user_id:
            notice = self._not_yours(press, respond)
            self._spawn(("notice", turn.chat_id, turn.user_id), notice)
            return
        entry: JournalEntry | None = None
        if turn.delivery_key:
            session = str(turn.session_key(self.app.manager.config.scope))
            try:
                entry = await self.journal.record(PLATFORM, turn.delivery_key, session, body)
            except JournalUnavailable as exc:
                # Acked already (Slack does not send presses again): answer it unjournaled.
                log.warning("slack: press %s not journaled: %s", turn.delivery_id, exc)
            else:
                if entry is None:
                    log.info("duplicate press %s ignored", turn.delivery_id)
                    return
        self._spawn(("buttons", press.channel, press.message_ts), self._remove_buttons(press))
        await self._admit(Inbound(turn), entry)

    async def _not_yours(self, press: ButtonPress, respond: AsyncRespond | None) -> None:
        """Tell the presser, privately, that the button was offered to someone else."""
        text = t("button_not_yours", press.lang)
        turn = press.turn
        if respond is not None and press.response_url:
            try:
                await respond(text=text, response_type="ephemeral", replace_original=False)
                return
            except Exception as exc:  # the Web API can still say it
                log.info("response_url not usable (%r), posting the notice instead", exc)

        def call() -> Awaitable[AsyncSlackResponse]:
            return self.client.chat_postEphemeral(
                channel=turn.chat_id,
                user=turn.user_id,
                text=text,
                thread_ts=turn.thread_id or None,
            )

        await self._paced(turn.team_id, EPHEMERAL, call, channel=turn.chat_id)

    async def _remove_buttons(self, press: ButtonPress) -> None:
        """Take the buttons off the pressed message, keeping everything else it shows.

        The message is rewritten from what Slack sent with the press: its text and its blocks
        without our actions block (a posted answer keeps its section blocks, a streamed one its
        own). Buttons posted as a message of their own go with it. Nothing to do when the
        message shows no buttons of ours any more (a stale press).
        """
        message = press.message
        if press.ephemeral or message is None:
            return  # only answers in the thread carry buttons
        blocks = message.get("blocks") or []
        if not isinstance(blocks, list) or not has_buttons(blocks):
            log.debug("pressed message %s shows no buttons any more", press.message_ts)
            return
        team, channel, ts = press.turn.team_id, press.channel, press.message_ts
        alone = any(
            (offer := read_block_id(str(b.get("block_id") or ""))) is not None and offer.alone
            for b in blocks
            if isinstance(b, Mapping)
        )
        rest = without_buttons(blocks)
        text = str(message.get("text") or "")
        if alone and not rest:

            def delete() -> Awaitable[AsyncSlackResponse]:
                return self.client.chat_delete(channel=channel, ts=ts)

            await self._paced(team, DELETE, delete)
            return
        if not text and not rest:
            return

        def update() -> Awaitable[AsyncSlackResponse]:
            return self.client.chat_update(channel=channel, ts=ts, text=text, blocks=rest)

        await self._paced(team, UPDATE, update)

    async def _paced(
        self,
        team: str,
        method: str,
        call: Callable[[], Awaitable[AsyncSlackResponse]],
        *,
        channel: str = "",
    ) -> AsyncSlackResponse | None:
        """``call`` within the budget, through 429s and network trouble; None when refused."""
        for attempt in range(1, self.budget.policy.max_attempts + 1):
            stamp = await self.budget.slot(team, method, channel)
            try:
                return await call()
            except SlackApiError as exc:
                if not is_rate_limited(exc):
                    log.warning("%s refused (%s)", method, error_code(exc))
                    return None
                await self.budget.block(team, method, retry_after(exc))
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s failed: %r", method, exc)
                await asyncio.sleep(0.5 * attempt)
            finally:
                await self.budget.sent(stamp)
        log.warning("%s gave up after %d tries", method, self.budget.policy.max_attempts)
        return None

    async def notify_admins(self, team: str, text: str) -> None:
        """A DM to each of SLACK_ADMIN_USER_IDS (channel = user id), within the POST budget.

        Only SLACK_ADMIN_USER_IDS are admins on Slack (the core checks them); a channel's
        managers get no rights here.
        """
        shown = render_mrkdwn(text)
        for admin in sorted(self.app.settings.slack_admin_user_ids):
            stamp = await self.budget.slot(team, POST, admin)
            try:
                await self.client.chat_postMessage(
                    channel=admin, text=shown, unfurl_links=False, unfurl_media=False
                )
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                reason = error_code(exc) if isinstance(exc, SlackApiError) else repr(exc)
                log.warning("slack: admin %s not notified: %s", admin, reason)
            finally:
                await self.budget.sent(stamp)


async def run(app: App) -> None:
    """Entry point used by ``bot.app.run_channels``."""
    await SlackChannel(app).run()
