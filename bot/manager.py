"""ConversationManager: takes each Turn through its stages and streams the answer back."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.commands import Command, CommandRouter, parse_command
from bot.context import ContextWindow
from bot.context.bounds import bound_history
from bot.context.recall import EmbeddingRecall
from bot.context.summary import Summarizer
from bot.context.window import session_factor
from bot.glm.budget import use_budget
from bot.glm.errors import (
    GlmAuthError,
    GlmContextTooLong,
    GlmEmptyAnswer,
    GlmUnavailable,
    GlmUnsafeInput,
)
from bot.glm.guarded import Answer, GuardedGlm, Outcome
from bot.glm.types import ChatRequest
from bot.i18n import detect_language, language_name, t
from bot.journal import note_answered
from bot.observability import NO_METRICS, Metrics
from bot.ratelimit import RateLimiter, rate_key
from bot.reply import Button, ReplyStream
from bot.sessions.base import (
    LockTimeout,
    Message,
    Session,
    SessionStore,
    SessionStoreError,
    first_delivery,
)
from bot.turn import SessionKey, SessionScope, Turn
from bot.usage import Accounting, Meter, Spender, budget_notice, current_meter, metering

log = logging.getLogger(__name__)

SAVE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)  # after a failed save of an answered turn


class TurnResult(enum.StrEnum):
    """What the manager did with a turn (for adapters, logs and tests)."""

    DUPLICATE = "duplicate"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    COMMAND = "command"
    BLOCKED = "blocked"
    FORM = "form"
    ANSWERED = "answered"
    PARTIAL = "partial"  # answered, but the stream ended early (stall, break, length)
    RETRACTED = "retracted"
    FALLBACK = "fallback"
    STORE_ERROR = "store_error"
    BUSY = "busy"
    RATE_LIMITED = "rate_limited"
    OVER_BUDGET = "over_budget"  # a token budget is spent: no model call (bot/usage.py)


# ---- seams filled by later stages (content filter, forms) -------------------------------


class FilterMatch(Protocol):
    @property
    def entry_id(self) -> int: ...


class FilterVerdict(Protocol):
    @property
    def blocked(self) -> bool: ...
    @property
    def matches(self) -> tuple[FilterMatch, ...]: ...


class StreamMasker(Protocol):
    def feed(self, chunk: str) -> str: ...
    def flush(self) -> str: ...


class ContentFilter(Protocol):
    """The word filter: blocks bad input, masks bad words in the streamed answer."""

    def check(self, text: str) -> FilterVerdict: ...
    def masker(self) -> StreamMasker: ...


@dataclass(slots=True)
class FormReply:
    """A form stage's answer: text to show, or ``None`` text to let the model answer."""

    text: str | None
    pending_question: str | None = None  # asked again after the model's answer
    brief: str | None = None  # facts for the model to word; ``text`` is the template


class FormStage(Protocol):
    """Slot-filling forms; mutates ``session`` (saved by the manager) and may answer itself.

    ``commands`` names the slash commands the stage handles itself (e.g. ``/cancel``).
    A reply with a ``brief`` (facts fetched by a handler) is phrased by the model, streamed;
    its ``text`` is the template shown offline or when the model cannot phrase it.
    """

    @property
    def commands(self) -> frozenset[str]: ...

    async def handle(
        self, session: Session, turn: Turn, text: str, lang: str
    ) -> FormReply | None: ...


class SuggestionTurn(Protocol):
    """One turn's suggestion (``bot/suggest``): asked for an offer when the answer is
    complete, settled afterwards whatever the outcome."""

    def start(self) -> None: ...

    async def offer(self) -> tuple[str, Sequence[Button]] | None: ...

    def settle(self, answer: str = "") -> None: ...


class SuggestionStage(Protocol):
    """Reads each answered turn for interests, off the answer's path; may add an offer with
    buttons under a complete answer."""

    def begin(self, turn: Turn, text: str, lang: str) -> SuggestionTurn: ...


# -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ManagerConfig:
    max_message_chars: int = 4000
    scope: SessionScope = SessionScope.USER
    max_history: int = 200
    max_session_bytes: int = 256 * 1024  # the stored document; oldest exchanges go first
    context_tokens: int = 12_000
    dedupe_ttl_seconds: int = 86_400
    system_prompt: str = (
        "You are a helpful assistant chatting with people on {platform}. "
        "Answer in the language of the user's last message ({language}). "
        "Be clear and concise; use Markdown sparingly."
    )
    offline: bool = False
    phrase_form_answers: bool = True  # the model words a form's fetched facts (not offline)


@dataclass(slots=True)
class TurnTimings:
    """Loop-clock marks of one turn, for the benchmarks."""

    received: float = 0.0
    request_sent: float = 0.0
    first_token: float | None = None
    finished: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class ConversationManager:
    """The platform-neutral pipeline; ``handle`` takes a turn through the stages listed in
    README.md#architecture."""

    def __init__(
        self,
        *,
        store: SessionStore,
        glm: GuardedGlm,
        config: ManagerConfig | None = None,
        commands: CommandRouter | None = None,
        content_filter: ContentFilter | None = None,
        forms: FormStage | None = None,
        context: ContextWindow | None = None,
        clock: Callable[[], float] = time.perf_counter,
        rate_limiter: RateLimiter | None = None,
        summarizer: Summarizer | None = None,
        recall: EmbeddingRecall | None = None,
        metrics: Metrics | None = None,
        accounting: Accounting | None = None,
        suggestions: SuggestionStage | None = None,
    ) -> None:
        self.store = store
        self.glm = glm
        self.config = config or ManagerConfig()
        self.commands = commands or CommandRouter(store, scope=self.config.scope)
        self.content_filter = content_filter
        self.forms = forms
        self.context = context or ContextWindow(self.config.context_tokens)
        self.clock = clock
        self.rate_limiter = rate_limiter  # per user, non-command turns; None: no limit
        self.summarizer = summarizer  # folds old turns into the summary, in the background
        self.recall = recall  # embeddings for older exchanges; None: the window's lexical score
        self.metrics = metrics if metrics is not None else NO_METRICS
        if rate_limiter is not None:
            limiter = rate_limiter

            async def forget_rate(turn: Turn) -> None:
                await limiter.forget(rate_key(turn))

            self.commands.forgetters.append(forget_rate)
        self.accounting = accounting  # tokens counted per user and tenant; budgets checked
        if accounting is not None:
            self.commands.forgetters.append(accounting.forget)
        self.suggestions = suggestions  # interests and offers (bot/suggest), in the background
        self.last_timings = TurnTimings()

    async def handle(
        self, turn: Turn, reply: ReplyStream, *, deduplicated: bool = False
    ) -> TurnResult:
        """Answer one turn; every failure ends in something the user can read.

        ``deduplicated``: the channel's journal has seen this delivery once already (it
        records deliveries before acknowledging them), so the manager does not check again.
        """
        timings = TurnTimings(received=self.clock())
        self.last_timings = timings
        self.metrics.turn_started()
        result = "error"  # an exception escaped: a bug, or the channel's own failure
        meter = Meter(Spender.of(turn))
        try:
            with metering(meter):  # every model call of the turn counts against its user
                done = await self._handle(turn, reply, deduplicated, timings)
            result = done.value
            return done
        except asyncio.CancelledError:
            result = "cancelled"  # shutdown past its grace
            raise
        finally:
            if self.accounting is not None:
                self.accounting.settle(meter)  # after the answer: written in the background
            self.metrics.turn_ended()
            self.metrics.turn_finished(turn.platform, result)
            key = turn.session_key(self.config.scope)
            log.info(
                "turn %s session=%s",
                result,
                key,
                extra={"session": str(key), "result": result, "timings": self._ms(timings)},
            )

    def _ms(self, timings: TurnTimings) -> dict[str, float]:
        """A turn's marks as milliseconds since it was received (for the log)."""
        end = timings.finished or self.clock()
        found = {"total_ms": end - timings.received}
        if timings.request_sent:
            found["request_ms"] = timings.request_sent - timings.received
        if timings.first_token is not None:
            found["first_token_ms"] = timings.first_token - timings.received
        return {name: round(seconds * 1000, 1) for name, seconds in found.items()}

    async def _handle(
        self, turn: Turn, reply: ReplyStream, deduplicated: bool, timings: TurnTimings
    ) -> TurnResult:
        loop = asyncio.get_running_loop()
        started = loop.time()  # every model call of the turn shares one deadline from here
        lang = detect_language(turn.text, turn.language)
        if turn.delivery_id and not deduplicated and not await self._first_delivery(turn):
            log.info("duplicate delivery %s:%s ignored", turn.platform, turn.delivery_id)
            return TurnResult.DUPLICATE
        text = turn.text.strip()
        if not text:
            await reply.finish(t("empty", lang))
            return TurnResult.EMPTY
        command = parse_command(text)
        if command is not None and self.forms is not None and command.name in self.forms.commands:
            command = None  # e.g. /cancel: the forms stage answers it, under the session lock
        if command is not None:
            try:
                lang = await self._command_language(turn, command, lang)
                answer = await self.commands.run(command, turn, lang)
            except SessionStoreError as exc:
                log.error("store error in command session=%s: %s", turn.session_key(), exc)
                await reply.fail(t("store_down", lang))
                return TurnResult.STORE_ERROR
            await reply.finish(answer)
            return TurnResult.COMMAND
        if (
            self.rate_limiter is not None
            and parse_command(text) is None
            and not self.commands.is_bot_admin(turn)  # the operator's admins are exempt
        ):
            # Commands (the forms' /cancel too) stay usable; only what reaches the model counts.
            allowance = await self.rate_limiter.hit(rate_key(turn))
            if not allowance.allowed:
                log.info("rate limited user=%s", rate_key(turn))
                seconds = max(1, math.ceil(allowance.retry_after))
                await reply.finish(t("rate_limited", lang, seconds=seconds))
                return TurnResult.RATE_LIMITED
        if self.accounting is not None and parse_command(text) is None:
            # One read of the user's (and the group's) counters; admins are exempt. Forms
            # still run over budget: only the model is not called (see _locked_turn).
            meter = current_meter()
            if meter is not None:
                exempt = self.commands.is_bot_admin(turn)
                meter.verdict = await self.accounting.check(meter.spender, exempt=exempt)
        if len(text) > self.config.max_message_chars:
            await reply.finish(
                t("too_long", lang, length=len(text), limit=self.config.max_message_chars)
            )
            return TurnResult.TOO_LONG
        if self.content_filter is not None:
            verdict = self.content_filter.check(text)
            if verdict.blocked:
                self.metrics.filter_hit("input")
                ids = ",".join(str(m.entry_id) for m in verdict.matches)
                log.info(
                    "input blocked session=%s entries=%s", turn.session_key(self.config.scope), ids
                )
                await reply.finish(t("input_blocked", lang))
                return TurnResult.BLOCKED

        key = turn.session_key(self.config.scope)
        try:
            queued = loop.time()
            async with self.store.lock(key):
                # Time queued behind this session's previous turn, whose answer the user is
                # watching, is not charged to this one.
                budget = self.glm.budget(started + (loop.time() - queued))
                with use_budget(budget):
                    return await self._locked_turn(turn, key, text, lang, reply, timings)
        except LockTimeout:
            log.warning("session busy session=%s", key)
            await reply.fail(t("busy_session", lang))
            return TurnResult.BUSY
        except SessionStoreError as exc:
            log.error("store error session=%s: %s", key, exc)
            await reply.fail(t("store_down", lang))
            return TurnResult.STORE_ERROR

    async def _command_language(self, turn: Turn, command: Command, lang: str) -> str:
        """A bare ``/help``, or one with only Latin keywords (``/suggestions off``, a button's
        ``/suggestions accept python``), has no words to tell the language by: answer in the
        language the user last wrote in this conversation, when there is one."""
        if any(ch.isalpha() and not ch.isascii() for arg in command.args for ch in arg):
            return lang
        session = await self.store.load(turn.session_key(self.config.scope))
        last = session.meta.get("language")
        return last if isinstance(last, str) and last else lang

    async def _first_delivery(self, turn: Turn) -> bool:
        return await first_delivery(self.store, turn.delivery_key, self.config.dedupe_ttl_seconds)

    async def _locked_turn(
        self,
        turn: Turn,
        key: SessionKey,
        text: str,
        lang: str,
        reply: ReplyStream,
        timings: TurnTimings,
    ) -> TurnResult:
        session = await self.store.load(key)
        pending: str | None = None
        if self.forms is not None:
            form_reply = await self.forms.handle(session, turn, text, lang)
            if form_reply is not None and form_reply.text is not None:
                said = form_reply.text
                if form_reply.brief and self.config.phrase_form_answers and not self.config.offline:
                    said = await self._phrase(session, key, turn, text, lang, reply, form_reply)
                else:
                    await reply.finish(said)
                self._remember(session, turn, lang, text, said)
                await self._save_after_reply(session, key, turn)
                return TurnResult.FORM
            if form_reply is not None:
                pending = form_reply.pending_question

        meter = current_meter()
        if meter is not None and not meter.verdict.allowed and self.accounting is not None:
            log.info("over budget (%s) session=%s", meter.verdict.limit, key)
            await reply.finish(budget_notice(meter.verdict, lang, self.accounting.now()))
            return TurnResult.OVER_BUDGET
        # Interests are read while the answer streams; never during a form (``pending``).
        suggestion = (
            self.suggestions.begin(turn, text, lang)
            if self.suggestions is not None and pending is None and session.form is None
            else None
        )
        scores = await self.recall.scores(session, text) if self.recall is not None else None
        messages = self.context.build(
            session, text, system_prompt=self._system_prompt(turn, lang), scores=scores
        )
        request = self.glm.request(messages, user_id=str(key))
        await reply.start()

        timings.request_sent = self.clock()
        # The suggestion's work starts once the first words are shown: never before them.
        answer, shown = await self._stream(
            request, reply, timings, suggestion.start if suggestion is not None else None
        )
        if answer.usage is not None and answer.usage.prompt_tokens:
            # Per session: one chat's Korean must not skew another's English estimate.
            session.meta["token_factor"] = self.context.estimator.calibrated(
                session_factor(session), messages, answer.usage.prompt_tokens
            )
        with contextlib.suppress(SessionStoreError):  # the save after the reply tries again
            # In the user's index before the answer is complete: a /forget sent the moment it
            # shows finds this session (and deletes it under its lock, after this turn's save).
            await self.commands.index.note_session(session, turn)
        result = await self._finish(answer, shown, lang, reply, key, pending, suggestion)
        if suggestion is not None:
            suggestion.settle(shown)
        if result in (TurnResult.ANSWERED, TurnResult.PARTIAL):
            self._remember(session, turn, lang, text, shown)
            await self._save_after_reply(session, key, turn)
        timings.finished = self.clock()
        return result

    async def _save_after_reply(self, session: Session, key: SessionKey, turn: Turn) -> None:
        # The user already has the answer; a second reply saying the store is down would
        # contradict it. A Redis restart takes a second or two, so the save is retried for
        # a few seconds before only the memory of this exchange is given up (logged).
        delays = iter(SAVE_RETRY_DELAYS)
        while True:
            try:
                await self._save(session, key, turn)
                return
            except SessionStoreError as exc:
                delay = next(delays, None)
                if delay is None:
                    log.error("save failed session=%s: %s", key, exc)
                    return
                log.warning("save failed session=%s, retrying in %.1fs: %s", key, delay, exc)
                await asyncio.sleep(delay)

    async def _save(self, session: Session, key: SessionKey, turn: Turn) -> None:
        # Entered in the user's and the chat's index first, so /forget and /reset find
        # every session that was ever saved (no store call on most turns: see note_session).
        await self.commands.index.note_session(session, turn)
        self._bound(session)
        await self.store.save(session)
        if self.recall is not None:
            self.recall.schedule(self.store, key)  # the new exchange's vector, later
        if self.summarizer is not None and self.summarizer.needs_summary(session):
            # After the answer is delivered; the task waits for this turn's lock.
            self.summarizer.schedule(key, str(session.meta.get("language") or "ko"))

    async def _phrase(
        self,
        session: Session,
        key: SessionKey,
        turn: Turn,
        text: str,
        lang: str,
        reply: ReplyStream,
        form_reply: FormReply,
    ) -> str:
        """Let the model word a form's answer from its brief; the template when it can't."""
        system = self._system_prompt(turn, lang) + "\n\n" + (form_reply.brief or "")
        messages = self.context.build(session, text, system_prompt=system)
        await reply.start()
        request = self.glm.request(messages, user_id=str(key))
        answer, shown = await self._stream(request, reply)
        if answer.outcome is Outcome.COMPLETE and shown.strip():
            pending = form_reply.pending_question
            final = f"{shown}\n\n{pending}" if pending else shown
            await reply.finish(final)
            return final
        # Slow, failed, cut or withdrawn: the template carries the same facts.
        template = form_reply.text or ""
        if shown:
            await reply.retract(template)
        else:
            await reply.finish(template)
        return template

    async def _stream(
        self,
        request: ChatRequest,
        reply: ReplyStream,
        timings: TurnTimings | None = None,
        after_first: Callable[[], None] | None = None,
    ) -> tuple[Answer, str]:
        """Stream the model's answer into ``reply`` through the output masker.

        Returns the outcome and every character the user was shown (masked).
        ``after_first`` is called once, right after the first text is handed to ``reply``.
        """
        masker = self.content_filter.masker() if self.content_filter is not None else None
        shown: list[str] = []

        def on_text(chunk: str) -> None:
            if timings is not None and timings.first_token is None:
                timings.first_token = self.clock()
            if masker is not None:
                chunk = masker.feed(chunk)
                if not chunk:
                    return
            shown.append(chunk)
            reply.append(chunk)
            if after_first is not None and len(shown) == 1:
                after_first()

        answer = await self.glm.stream_answer(request, on_text)
        if masker is not None and (rest := masker.flush()):
            shown.append(rest)
            reply.append(rest)
        text = "".join(shown)
        if masker is not None and text != answer.text:
            self.metrics.filter_hit("output")  # something in the answer was masked
        return answer, text

    def _system_prompt(self, turn: Turn, lang: str) -> str:
        # Named when the script tells it (Korean, Japanese, Russian...); otherwise (accented
        # Latin, a script shared by many languages) the model is told to mirror the user.
        language = language_name(lang, turn.text) or "the language the user wrote in"
        return self.config.system_prompt.format(platform=turn.platform, language=language)

    async def _finish(
        self,
        answer: Answer,
        shown: str,
        lang: str,
        reply: ReplyStream,
        key: SessionKey,
        pending: str | None,
        suggestion: SuggestionTurn | None = None,
    ) -> TurnResult:
        outcome = answer.outcome
        suffix = f"\n\n{pending}" if pending else ""
        if outcome is Outcome.COMPLETE:
            # Only under a complete answer: never after a fallback, a cut or withdrawn one.
            offer = await suggestion.offer() if suggestion is not None else None
            if offer is not None:
                offer_text, buttons = offer
                await reply.finish(f"{shown}{suffix}\n\n{offer_text}", buttons)
            else:
                await reply.finish(shown + suffix)
            return TurnResult.ANSWERED
        if outcome is Outcome.SENSITIVE:
            self.metrics.filter_hit("provider")
            log.warning("answer retracted (provider: sensitive) session=%s", key)
            await reply.retract(t("retracted", lang))
            return TurnResult.RETRACTED
        notice = {
            Outcome.TRUNCATED: "notice_truncated",
            Outcome.STALLED: "notice_stalled",
            Outcome.INTERRUPTED: "notice_interrupted",
        }.get(outcome)
        if notice is not None and shown:
            await reply.finish(f"{shown}\n\n{t(notice, lang)}{suffix}")
            return TurnResult.PARTIAL
        await reply.fail(self._fallback_text(answer, lang, key) + suffix)
        return TurnResult.FALLBACK

    def _fallback_text(self, answer: Answer, lang: str, key: SessionKey) -> str:
        err = answer.error
        if isinstance(err, GlmAuthError):
            log.error("GLM API key was rejected (code=%s) session=%s", err.code or "-", key)
        elif err is not None:
            log.error("no answer session=%s error=%s", key, err)
        else:
            log.error("no answer session=%s outcome=%s", key, answer.outcome.value)
        if answer.outcome is Outcome.TIMEOUT:
            return t("fallback_timeout", lang)
        if isinstance(err, GlmUnsafeInput):
            return t("fallback_unsafe", lang)
        if isinstance(err, GlmContextTooLong):
            return t("fallback_too_long", lang)
        if isinstance(err, GlmEmptyAnswer):
            return t("fallback_empty", lang)
        if isinstance(err, GlmUnavailable) and answer.outcome is Outcome.FAILED:
            return t("fallback_busy", lang)
        return t("fallback_unavailable", lang)

    def _remember(self, session: Session, turn: Turn, lang: str, text: str, answer: str) -> None:
        now = time.time()
        session.history.append(Message("user", text, now))
        session.history.append(Message("assistant", answer, now))
        overflow = len(session.history) - self.config.max_history
        if overflow > 0:
            del session.history[:overflow]
        session.meta["language"] = lang
        if turn.user_name:
            session.meta["user_name"] = turn.user_name
        session.meta["turns"] = int(session.meta.get("turns", 0)) + 1
        # A process that takes over this turn after a crash sees that it was answered.
        note_answered(session.meta, turn.delivery_key)
        session.updated_at = now

    def _bound(self, session: Session) -> None:
        """Keep the stored document within ``max_session_bytes`` (just before a save)."""
        bounded = bound_history(session, self.config.max_session_bytes)
        if bounded.changed:
            log.info(
                "session over %d bytes: %d old messages dropped, %d clipped session=%s",
                self.config.max_session_bytes,
                bounded.dropped,
                bounded.clipped,
                session.key,
            )
            session.history = bounded.history
