"""SlotFillingStage: the FormStage the manager calls — forms, interruptions, cancel, carry-over.

Per message, in order: an idle form expires; "/cancel" / "취소" leaves a running form; a running
form takes the answer (deterministic extractors, then the asked slot's parser, then the model
via tool calling; a message that gives nothing is an interruption: the model answers and the
question is asked again); otherwise a form's trigger starts it; otherwise a short follow-up
re-runs the last completed form with one slot changed; otherwise, when a message only hints at
a form, the model may call it as a tool. All state lives in ``session.form`` (the running form)
and ``session.state`` (the last completed intent), which the manager saves: nothing is kept
here, so sessions are isolated and survive restarts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.forms.carryover import CarryOver
from bot.forms.extractors import (
    Found,
    Utterance,
    has_cue,
    has_hangul,
    has_latin,
    is_cancel,
)
from bot.forms.korean import KoreanAnalyzer
from bot.forms.machine import (
    Answer,
    Ask,
    Complete,
    Confirm,
    FormMachine,
    FormState,
    GiveUp,
    NoProgress,
    Step,
)
from bot.forms.messages import say
from bot.forms.registry import FormRegistry
from bot.forms.spec import Filled, Form, InvalidValue, ServiceUnavailable, SlotContext, pick
from bot.forms.toolcall import ToolExtractor
from bot.forms.understanding import Reading, is_retry, read, same_value
from bot.manager import FormReply
from bot.sessions.base import Session
from bot.turn import Turn

log = logging.getLogger(__name__)

# Nouns that say nothing about a slot value: a trigger message made only of these and of
# what the extractors found needs no model ("오늘 날씨 어때?" just asks which city).
_KO_FILLERS = frozenset(
    {"날씨", "기온", "예보", "일기", "지금", "현재", "좀", "정보", "상황", "거", "것", "때"}
    | {"쪽", "지역", "예약", "상담", "신청", "시간", "날짜", "혹시", "저", "나", "우리", "제"}
)
_EN_FILLERS = frozenset(
    {"what", "what's", "whats", "is", "the", "weather", "like", "in", "for", "at", "please"}
    | {"tell", "me", "how", "it", "today", "now", "will", "be", "going", "to", "show", "check"}
    | {"give", "can", "you", "could", "would", "i", "want", "need", "know", "a", "an", "of"}
    | {"forecast", "temperature", "there", "outside", "right", "current", "currently", "about"}
    | {"book", "consultation", "appointment", "schedule", "make", "i'd", "get", "do"}
)
_WORD = re.compile(r"[A-Za-z][\w'.-]*")


# A form's final answer: ``brief`` holds the facts the model words (streamed by the manager);
# ``text`` is the template shown offline or when the model cannot answer.
FormAnswer = FormReply


@dataclass(frozen=True, slots=True)
class StageConfig:
    """Tuning of the stage; the composition root fills it from the settings."""

    idle_minutes: float = 30.0  # a form with no answer for this long is closed (FORM_IDLE_MINUTES)
    carry_over_minutes: float = 30.0  # "부산은?" refers to the last form for this long
    carry_over_gap: int = 2  # ... and across at most this many unrelated exchanges
    timezone: str = "Asia/Seoul"  # the users' calendar: "오늘", "내일" (FORMS_TIMEZONE)
    phrase_with_model: bool = True  # False offline: the offline model cannot phrase briefs
    max_retries: int = 3  # unusable answers in a row before a form gives up
    expiry_notice_hours: float = 24.0  # say a form expired only if it did so recently


class SlotFillingStage:
    """The manager's ``forms`` stage; see the module docstring for the order of things."""

    # Commands the manager should hand to this stage instead of its command router.
    commands = frozenset({"cancel", "취소"})

    def __init__(
        self,
        registry: FormRegistry,
        *,
        analyzer: KoreanAnalyzer | asyncio.Future[KoreanAnalyzer | None] | None,
        tools: ToolExtractor | None = None,
        config: StageConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        # Kiwi takes seconds to load: the composition root may hand over a future so that the
        # bot starts at once; the first turn that needs forms waits for it. A future that
        # fails or gives ``None`` (Kiwi could not load) leaves the stage without morphology.
        self._analyzer_loading = analyzer if isinstance(analyzer, asyncio.Future) else None
        self.analyzer = None if isinstance(analyzer, asyncio.Future) else analyzer
        self.tools = tools
        self.config = config or StageConfig()
        self.clock = clock  # wall clock: form deadlines are stored and outlive the process
        self.tz = ZoneInfo(self.config.timezone)
        self.machine = FormMachine(max_retries=self.config.max_retries)
        self.carry = CarryOver()

    # ---- the FormStage protocol ------------------------------------------------------------

    async def handle(self, session: Session, turn: Turn, text: str, lang: str) -> FormReply | None:
        if self._analyzer_loading is not None:
            await self._analyzer_ready()
        ts = self.clock()
        now = datetime.fromtimestamp(ts, self.tz)
        state = FormState.from_dict(session.form) if session.form is not None else None
        if session.form is not None and state is None:
            log.warning("unreadable form state dropped session=%s", session.key)
            session.form = None
        notice: str | None = None
        if state is not None and ts - state.updated_at > self.config.idle_minutes * 60:
            form = self.registry.get(state.form)
            session.form = None
            if form is not None and ts - state.updated_at < self.config.expiry_notice_hours * 3600:
                notice = say(
                    "expired",
                    lang,
                    title=pick(form.title, lang),
                    minutes=round(self.config.idle_minutes),
                )
            state = None
        if is_cancel(text):
            if state is not None:
                session.form = None
                form = self.registry.get(state.form)
                lang = state.lang if text.startswith("/") else lang  # "/cancel" is no language
                title = pick(form.title, lang) if form is not None else state.form
                return FormReply(say("cancelled", lang, title=title))
            if text.startswith("/"):
                return FormReply(say("nothing_to_cancel", lang))
        if state is not None:
            running = self.registry.get(state.form)
            if running is not None:
                lang = lang if has_hangul(text) or has_latin(text) else state.lang
                utt = Utterance(text, lang, now, self.analyzer)
                return await self._continue(session, turn, running, state, utt, ts)
            session.form = None  # the form was removed from the registry since
        utt = Utterance(text, lang, now, self.analyzer)
        reply = await self._fresh(session, turn, utt, ts)
        if reply is None:
            self._note_unrelated(session, utt)
            if notice is not None:
                return FormReply(None, pending_question=notice)
        return reply

    async def _analyzer_ready(self) -> None:
        """Wait for Kiwi; if it failed to load, go on without it (gazetteer and patterns)."""
        loading = self._analyzer_loading
        if loading is None:
            return
        try:
            analyzer = await asyncio.shield(loading)
        except asyncio.CancelledError:
            if not loading.cancelled():
                raise  # this turn was cancelled, not the loading
            analyzer = None
        except Exception as exc:
            analyzer = None
            if self._analyzer_loading is loading:  # concurrent turns: log it once
                log.warning(
                    "kiwi (Korean morphology) failed to load, forms use the gazetteer and "
                    "patterns only: %s: %s",
                    type(exc).__name__,
                    exc,
                )
        if self._analyzer_loading is loading:
            self.analyzer = analyzer
            self._analyzer_loading = None

    # ---- no form running -------------------------------------------------------------------

    async def _fresh(
        self, session: Session, turn: Turn, utt: Utterance, ts: float
    ) -> FormReply | None:
        for form in self.registry:
            started = await self._triggered(session, turn, form, utt, ts)
            if started is not None:
                return started
        followed = await self._follow_up(session, turn, utt, ts)
        if followed is not None:
            return followed
        if self.tools is None:
            return None
        hinted = [form for form in self.registry if form.triggers.hinted(utt.text)]
        if not hinted:
            return None
        fill = await self.tools.extract(hinted, utt, session_key=session.key)
        if fill is None:
            return None
        values = self._from_arguments(fill.form, fill.arguments, utt)
        try:
            answer = await self._resolve(fill.form, utt, values)
        except ServiceUnavailable as down:
            return FormReply(down.text(utt.lang))
        return await self._start(session, turn, fill.form, utt, answer, ts)

    async def _triggered(
        self, session: Session, turn: Turn, form: Form, utt: Utterance, ts: float
    ) -> FormReply | None:
        spans = form.triggers.spans(utt.text)
        if not spans:
            return None
        reading = read(form, utt, _last_values(session, form))
        if reading.declined:
            return None  # "날씨 말고 뉴스 알려줘"
        utt = reading.utt
        found = self._extract(form, utt)
        if not self._fires(form, utt, found, spans):
            return None
        values = self._read_values(form, reading, found)
        values.update(self._referred(session, form, reading, values, utt))
        try:
            answer = await self._resolve(form, utt, values)
            missing = [s for s in form.slots if s.required and s.name not in answer.values]
            if missing and (answer.rejected or self._residue(utt, found, spans)):
                # Something in the message may be a value the rules do not know ("에펠탑 있는
                # 도시 날씨"): ask the model; what the rules found stays.
                answer = await self._consult(session, form, utt, answer, pending=None)
        except ServiceUnavailable as down:
            return FormReply(down.text(utt.lang))
        return await self._start(session, turn, form, utt, answer, ts)

    async def _start(
        self, session: Session, turn: Turn, form: Form, utt: Utterance, answer: Answer, ts: float
    ) -> FormReply:
        state, step = self.machine.start(form, answer, now=utt.now, lang=utt.lang, ts=ts)
        reply = await self._after(session, turn, form, state, step, utt, ts)
        if isinstance(step, Ask | Confirm) and reply.text is not None and _long_form(form):
            reply.text = f"{reply.text}\n{say('cancel_hint', utt.lang)}"
        return reply

    async def _consult(
        self, session: Session, form: Form, utt: Utterance, answer: Answer, pending: str | None
    ) -> Answer:
        """Add the model's values (tool calling) for the slots the rules left without one."""
        if self.tools is None:
            return answer
        fill = await self.tools.extract([form], utt, pending=pending, session_key=session.key)
        if fill is None:
            return answer
        extra = {
            name: value
            for name, value in self._from_arguments(form, fill.arguments, utt).items()
            if name not in answer.values
        }
        more = await self._resolve(form, utt, extra)
        if not more.values:
            return answer
        # Where the model found nothing usable either, the reason given is about the user's
        # own words, not the model's.
        kept = {k: v for k, v in answer.rejected.items() if k not in more.values}
        return Answer({**answer.values, **more.values}, answer.text, {**more.rejected, **kept})

    # ---- a form is running -----------------------------------------------------------------

    async def _continue(
        self,
        session: Session,
        turn: Turn,
        form: Form,
        state: FormState,
        utt: Utterance,
        ts: float,
    ) -> FormReply | None:
        reading = read(form, utt, state.values)
        utt = reading.utt
        found = self._extract(form, utt)
        values = self._read_values(form, reading, found)
        cleared = _cleared(reading, values, state.values)
        if not values and not cleared:
            if self._fires(form, utt, {}, form.triggers.spans(utt.text)):
                # Asked again for what is already running ("상담 예약하고 싶어요" twice).
                state.updated_at = ts
                session.form = state.to_dict()
                return FormReply(self.machine.pending(form, state, utt.now))
            other = await self._other_form(session, turn, form, state, utt, ts)
            if other is not None:
                return other
        asking = state.asking
        # A correction of another answer ("전화번호 잘못 말했어요, 010-…") is not also the
        # answer to the question asked.
        meant = reading.changed or any(form.slot(name).named_in(utt.text) for name in values)
        if (
            asking is not None
            and form.has_slot(asking)
            and asking not in values
            and not (meant and (values or cleared))
        ):
            slot = form.slot(asking)
            # "아니요", "아니 잠깐만요", "no" are no name and no topic (what follows them may be).
            rest = _HOLD.sub("", _remainder(utt.text, list(found.values())), count=1)
            if slot.parse is not None and rest:
                parsed = slot.parse(rest, utt)
                if parsed is not None:
                    values[asking] = parsed
        if (
            asking is not None
            and asking not in values
            and values
            and not meant
            and self._residue(utt, found, [])
        ):
            # "오늘 기분이 좋아" while the city is asked: the date it names is incidental, the
            # message is about something else (the model, asked below, may still say otherwise).
            values = {}
        state.lang = utt.lang
        pending = self.machine.pending(form, state, utt.now)
        try:
            answer = replace(await self._resolve(form, utt, values), cleared=cleared)
            if not answer.values and answer.rejected:
                # The rules took the answer for a name the resolver does not know ("프랑스
                # 수도"): the model may understand it better.
                answer = await self._consult(session, form, utt, answer, pending)
            step = self.machine.advance(form, state, answer, now=utt.now, ts=ts)
            if isinstance(step, NoProgress) and not values:
                answer = await self._consult(session, form, utt, answer, pending)
                if answer.values:
                    step = self.machine.advance(form, state, answer, now=utt.now, ts=ts)
        except ServiceUnavailable as down:
            state.updated_at = ts
            session.form = state.to_dict()
            return FormReply(f"{down.text(utt.lang)}\n{pending}")
        if isinstance(step, NoProgress):
            # An interruption: the model answers it, then the question comes again.
            session.form = state.to_dict()
            return FormReply(None, pending_question=step.question)
        return await self._after(session, turn, form, state, step, utt, ts)

    async def _other_form(
        self,
        session: Session,
        turn: Turn,
        current: Form,
        state: FormState,
        utt: Utterance,
        ts: float,
    ) -> FormReply | None:
        """Another form's request in the middle of this one ("서울 날씨 알려줘" while booking).

        A short form (one question, no confirmation) is simply replaced by the new request.
        Inside a long one, the request is answered on the spot when it needs no questions (the
        running form then asks again); otherwise the user is told to finish or cancel first:
        the model must not make up an answer it has no data for.
        """
        for form in self.registry:
            if form is current or not form.triggers.spans(utt.text):
                continue
            found = self._extract(form, utt)
            if not self._fires(form, utt, found, form.triggers.spans(utt.text)):
                continue
            if not _long_form(current):
                session.form = None
                return await self._triggered(session, turn, form, utt, ts)
            state.updated_at = ts
            session.form = state.to_dict()
            pending = self.machine.pending(current, state, utt.now)
            values = {name: f.value for name, f in found.items()}
            try:
                answer = await self._resolve(form, utt, values)
            except ServiceUnavailable as down:
                return FormReply(f"{down.text(utt.lang)}\n\n{pending}")
            _, step = self.machine.start(form, answer, now=utt.now, lang=utt.lang, ts=ts)
            if isinstance(step, Complete) and not form.confirm:
                done = (await self._run_handler(session, turn, form, step.values, utt, ts)).answer
                done.text = f"{done.text}\n\n{pending}"
                done.pending_question = pending  # for a manager that phrases ``brief``
                return done
            busy = say("busy", utt.lang, title=pick(current.title, utt.lang))
            return FormReply(f"{busy}\n{pending}")
        return None

    # ---- follow-ups ------------------------------------------------------------------------

    async def _follow_up(
        self, session: Session, turn: Turn, utt: Utterance, ts: float
    ) -> FormReply | None:
        last = session.state
        form = self.registry.get(str(last.get("intent"))) if last else None
        if form is None or not form.carry_over:
            return None
        if (
            ts - float(last.get("at") or 0) > self.config.carry_over_minutes * 60
            or int(last.get("gap") or 0) > self.config.carry_over_gap
            or last.get("topic_changed")
        ):
            return None
        reading = read(form, utt, _last_values(session, form))
        if reading.declined:
            return None
        utt = reading.utt
        changes = self.carry.detect(form, utt) or {}
        changes.update((k, v) for k, v in reading.replaced.items() if k not in changes)
        cleared = _cleared(reading, changes, _last_values(session, form))
        if cleared and not changes and not (reading.retracts and _only_cues(utt.text)):
            # "대구 말고 다른 얘기 하자", "not today": not about the form any more.
            cleared = frozenset()
        again = bool(last.get("failed")) and is_retry(utt.original)
        if not changes and not cleared and not again:
            return None
        try:
            answer = await self._resolve(form, utt, changes)
        except ServiceUnavailable as down:
            return FormReply(down.text(utt.lang))
        if answer.rejected:
            return None  # "민수는?": not a place after all, so not a follow-up
        kept = self._still_valid(form, last.get("values"), {*changes, *cleared}, utt)
        merged = Answer({**kept, **answer.values}, utt.original, cleared=cleared)
        state, step = self.machine.start(form, merged, now=utt.now, lang=utt.lang, ts=ts)
        return await self._after(session, turn, form, state, step, utt, ts)

    def _still_valid(
        self, form: Form, values: object, changes: Collection[str], utt: Utterance
    ) -> dict[str, Any]:
        """The remembered values that still hold (yesterday's "today" falls back to default)."""
        kept: dict[str, Any] = {}
        if not isinstance(values, dict):
            return kept
        for slot in form.slots:
            if slot.name in changes or slot.name not in values:
                continue
            try:
                kept[slot.name] = slot.check(values[slot.name], SlotContext(utt.now, kept))
            except InvalidValue:
                continue
        return kept

    def _note_unrelated(self, session: Session, utt: Utterance) -> None:
        # The manager saves this with the model's answer: "부산은?" two questions later is
        # probably about something else.
        last = session.state
        if not last or "intent" not in last:
            return
        last["gap"] = int(last.get("gap") or 0) + 1
        if has_cue(utt.text):
            last["topic_changed"] = True

    # ---- shared steps ----------------------------------------------------------------------

    async def _after(
        self,
        session: Session,
        turn: Turn,
        form: Form,
        state: FormState,
        step: Step,
        utt: Utterance,
        ts: float,
    ) -> FormReply:
        if isinstance(step, Ask | Confirm):
            session.form = state.to_dict()
            return FormReply(step.text)
        if isinstance(step, GiveUp):
            session.form = None
            return FormReply(step.text)
        if isinstance(step, Complete):
            reply = await self._run_handler(session, turn, form, step.values, utt, ts)
            if reply.keep:
                self.machine.reopen(form, state)
                session.form = state.to_dict()
            else:
                session.form = None
            return reply.answer
        # NoProgress cannot come from ``start``; from ``advance`` the caller handles it.
        session.form = state.to_dict()
        return FormReply(None, pending_question=step.question)

    async def _run_handler(
        self,
        session: Session,
        turn: Turn,
        form: Form,
        values: Mapping[str, Any],
        utt: Utterance,
        ts: float,
    ) -> _Handled:
        filled = Filled(form, dict(values), utt.lang, utt.now, turn, session.key)
        try:
            result = await form.handler(filled)
        except Exception:
            log.exception("form handler failed form=%s session=%s", form.name, session.key)
            text = say("handler_failed", utt.lang, title=pick(form.title, utt.lang))
            # What was asked stays the dialogue's state: "다시 알려줘" or "거기 내일은?" go on.
            self._remember(session, form, values, utt, ts, failed=True)
            return _Handled(FormReply(text), keep=False)
        if not result.keep_form:
            kept = result.values if result.values is not None else values
            self._remember(session, form, kept, utt, ts, failed=result.failed)
        brief = result.brief if self.config.phrase_with_model else None
        return _Handled(FormAnswer(result.text, brief=brief), keep=result.keep_form)

    def _remember(
        self,
        session: Session,
        form: Form,
        values: Mapping[str, Any],
        utt: Utterance,
        ts: float,
        *,
        failed: bool,
    ) -> None:
        """The last request, for follow-ups; a failed one too (its values, and that it failed)."""
        session.state = {
            "intent": form.name,
            "values": dict(values),
            "at": ts,
            "gap": 0,
            "lang": utt.lang,
        }
        if failed:
            session.state["failed"] = True

    def _read_values(
        self, form: Form, reading: Reading, found: Mapping[str, Found]
    ) -> dict[str, Any]:
        """The values the message gives: the extractors', then the parsers' after a cue."""
        values: dict[str, Any] = {name: f.value for name, f in found.items()}
        for name, value in reading.replaced.items():
            values.setdefault(name, value)
        return values

    def _referred(
        self,
        session: Session,
        form: Form,
        reading: Reading,
        values: Mapping[str, Any],
        utt: Utterance,
    ) -> dict[str, Any]:
        """Values for the slots a reference word stands for ("거기", "그날"), from the last
        request (of any form with a slot of that name), where they still hold."""
        last = session.state.get("values") if session.state else None
        if not reading.referred or not isinstance(last, dict):
            return {}
        filled: dict[str, Any] = {}
        for name in reading.referred:
            if name in values or name not in last:
                continue
            try:
                filled[name] = form.slot(name).check(last[name], SlotContext(utt.now, values))
            except InvalidValue:
                continue
        return filled

    def _fires(
        self, form: Form, utt: Utterance, found: Mapping[str, Found], spans: list[tuple[int, int]]
    ) -> bool:
        """The trigger starts the form: named together with a required value ("대구 날씨"), or
        with nothing else ("날씨", "내일 날씨"), or in a question or request ("날씨 알려줘");
        not in small talk ("날씨가 좋네", "오늘 날씨 진짜 덥다")."""
        required = any(form.slot(name).required for name in found)
        taken = [Found(None, s, e) for s, e in spans] + list(found.values())
        only = _remainder(utt.text, taken).strip(" ?!.~") in ("", "요", "는", "은", "는요")
        return form.triggers.fire(utt.text, has_value=required or only)

    def _extract(self, form: Form, utt: Utterance) -> dict[str, Found]:
        found: dict[str, Found] = {}
        for slot in form.slots:
            hit = slot.find(utt)
            if hit is not None:
                found[slot.name] = hit
        return found

    def _from_arguments(
        self, form: Form, arguments: Mapping[str, str], utt: Utterance
    ) -> dict[str, Any]:
        """A tool call's string arguments as slot values, through the same extractors."""
        values: dict[str, Any] = {}
        for name, raw in arguments.items():
            slot = form.slot(name)
            hit = slot.find(utt.derive(raw))
            if hit is not None:
                values[name] = hit.value
            elif slot.parse is not None:
                parsed = slot.parse(raw, utt.derive(raw))
                if parsed is not None:
                    values[name] = parsed
            else:
                values[name] = raw
        return values

    async def _resolve(self, form: Form, utt: Utterance, values: Mapping[str, Any]) -> Answer:
        resolved: dict[str, Any] = {}
        rejected: dict[str, InvalidValue] = {}
        for name, value in values.items():
            slot = form.slot(name)
            if slot.resolve is None:
                resolved[name] = value
                continue
            try:
                resolved[name] = await slot.resolve(value, utt.lang)
            except InvalidValue as invalid:
                rejected[name] = invalid
        return Answer(resolved, utt.original, rejected)

    def _residue(
        self, utt: Utterance, found: Mapping[str, Found], spans: list[tuple[int, int]]
    ) -> bool:
        """Words left that neither the extractors nor the trigger explain."""
        covered = [(f.start, f.end) for f in found.values()] + spans

        def inside(start: int, end: int) -> bool:
            return any(s <= start and end <= e for s, e in covered)

        tokens = utt.tokens()
        if tokens:
            return any(
                t.tag in ("NNG", "NNP", "SL", "SH", "XR")
                and t.form not in _KO_FILLERS
                and not inside(t.start, t.end)
                for t in tokens
            )
        return any(
            w.group().lower() not in _EN_FILLERS and not inside(*w.span())
            for w in _WORD.finditer(utt.text)
        )


@dataclass(slots=True)
class _Handled:
    answer: FormReply
    keep: bool


def _last_values(session: Session, form: Form) -> dict[str, Any]:
    """The values of the last request, when it was ``form``'s (for "부산 말고 울산")."""
    last = session.state
    if not last or last.get("intent") != form.name or not isinstance(last.get("values"), dict):
        return {}
    return dict(last["values"])


_LEFT_OVER = re.compile(
    r"[\s?!.,~…]+|(?<![\w가-힣])(?:아니요|아니|아뇨|그럼|no|not|oh)(?![\w가-힣])", re.I
)


def _cleared(
    reading: Reading, values: Mapping[str, Any], held: Mapping[str, Any]
) -> frozenset[str]:
    """Slots taken back with no new value, when what was taken back is what they hold
    ("부산 말고요" forgets Busan; "대구 말고요" after Busan forgets nothing)."""
    return frozenset(
        name
        for name, said in reading.negated.items()
        if name not in values and name in held and same_value(said, held[name])
    )


_HOLD = re.compile(
    r"^(?:\s*(?:아니요|아니오|아니|아뇨|no|nope|nah|oh|아|음)(?=$|[\s,.!~])[\s,.!~]*)*"
    r"(?:(?:잠깐|잠시)(?:만)?(?:요)?|wait(?:\s+a\s+(?:sec|second|minute))?|hold\s+on|hmm+)?"
    r"[\s,.!~]*$|^(?:\s*(?:아니요|아니오|아니|아뇨|no|nope|nah|oh|아|음)(?=$|[\s,.!~])[\s,.!~]*)+",
    re.IGNORECASE,
)


def _only_cues(text: str) -> bool:
    """Nothing but punctuation and cue words is left ("광주 말고요" once 광주 말고요 is read)."""
    return not _LEFT_OVER.sub("", text)


def _long_form(form: Form) -> bool:
    return form.confirm or sum(1 for s in form.slots if s.required) > 1


def _remainder(text: str, found: list[Found]) -> str:
    """The message without what extractors took from it (the rest may answer the question)."""
    pieces = []
    cursor = 0
    for f in sorted(found, key=lambda f: f.start):
        if f.start >= cursor:
            pieces.append(text[cursor : f.start])
        cursor = max(cursor, f.end)
    pieces.append(text[cursor:])
    return " ".join(" ".join(pieces).split()).strip(" ,.!~")
