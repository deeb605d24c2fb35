"""FormMachine: one form per session — ask, validate, re-ask, confirm, complete. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.forms.extractors import yes_or_no
from bot.forms.messages import say
from bot.forms.spec import Form, InvalidValue, SlotContext, pick

CONFIRM = "__confirm__"  # the summary was shown; waiting for yes / no
CHOOSE = "__choose__"  # the user said no; waiting for which answer to change

STATE_VERSION = 1


@dataclass(slots=True)
class FormState:
    """A running form as stored in ``session.form`` (JSON-serialisable via ``to_dict``)."""

    form: str
    lang: str
    values: dict[str, Any]
    asking: str | None
    started_at: float
    updated_at: float
    retries: int = 0  # invalid answers in a row to the current question

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "form": self.form,
            "lang": self.lang,
            "values": self.values,
            "asking": self.asking,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "retries": self.retries,
        }

    @classmethod
    def from_dict(cls, data: object) -> FormState | None:
        """The stored state, or None when there is none or it cannot be read (then forgotten)."""
        if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
            return None
        try:
            values = data["values"]
            asking = data.get("asking")
            if not isinstance(values, dict) or not (asking is None or isinstance(asking, str)):
                return None
            return cls(
                form=str(data["form"]),
                lang=str(data.get("lang") or "ko"),
                values=dict(values),
                asking=asking,
                started_at=float(data["started_at"]),
                updated_at=float(data["updated_at"]),
                retries=int(data.get("retries") or 0),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask (or re-ask, with the reason) for ``slot``."""

    slot: str
    text: str


@dataclass(frozen=True, slots=True)
class Confirm:
    text: str


@dataclass(frozen=True, slots=True)
class Complete:
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Too many unusable answers in a row: the form ends."""

    text: str


@dataclass(frozen=True, slots=True)
class NoProgress:
    """The message gave nothing for the form; ``question`` is still pending."""

    question: str


Step = Ask | Confirm | Complete | GiveUp | NoProgress


@dataclass(frozen=True, slots=True)
class Answer:
    """One message, as the machine sees it.

    ``values`` are candidate slot values (extracted, parsed or from a tool call, resolved);
    ``rejected`` are slots whose value a resolver already refused (e.g. an unknown city);
    ``text`` is the raw message, for yes / no and slot names at the confirmation;
    ``cleared`` are slots the user took back without a new value ("부산 말고요"): they are
    forgotten and asked again.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""
    rejected: Mapping[str, InvalidValue] = field(default_factory=dict)
    cleared: frozenset[str] = frozenset()


class FormMachine:
    """Drives a ``FormState`` through a ``Form``; every method is pure and synchronous."""

    def __init__(self, *, max_retries: int = 3) -> None:
        self.max_retries = max_retries

    def start(
        self, form: Form, answer: Answer, *, now: datetime, lang: str, ts: float
    ) -> tuple[FormState, Step]:
        """A new state for ``form`` filled with ``answer``, and what to say next."""
        state = FormState(form.name, lang, {}, None, ts, ts)
        _accepted, reasons = self._accept(form, state, answer, now)
        return state, self._next(form, state, now, reasons, answer.cleared)

    def advance(
        self, form: Form, state: FormState, answer: Answer, *, now: datetime, ts: float
    ) -> Step:
        """Apply one message to ``state`` (mutated in place) and say what comes next."""
        state.updated_at = ts
        asking = state.asking
        before = dict(state.values)
        accepted, reasons = self._accept(form, state, answer, now)
        if asking in (CONFIRM, CHOOSE):
            return self._at_confirmation(form, state, answer, now, accepted, reasons)
        if asking is not None and asking in reasons and not accepted:
            state.retries += 1
            if state.retries >= self.max_retries:
                return GiveUp(say("gave_up", state.lang, title=pick(form.title, state.lang)))
            return Ask(asking, f"{reasons[asking]}\n{form.slot(asking).ask(state.lang)}")
        if not accepted and not reasons:
            return NoProgress(self.pending(form, state, now))
        state.retries = 0
        step = self._next(form, state, now, reasons, answer.cleared)
        if isinstance(step, Ask):
            # An earlier answer corrected on the way ("전화번호 잘못 말했어요, 010-…"): say it
            # took, before the next question.
            changed = [
                say(
                    "changed",
                    state.lang,
                    label=pick(slot.label, state.lang),
                    value=slot.display(state.values[slot.name], state.lang),
                )
                for slot in form.slots
                if slot.name in before
                and slot.name in state.values
                and before[slot.name] != state.values[slot.name]
            ]
            if changed:
                step = Ask(step.slot, "\n".join((*changed, step.text)))
        return step

    def reopen(self, form: Form, state: FormState) -> None:
        """Back to the last question after a handler could not finish (the user retries)."""
        state.asking = CONFIRM if form.confirm else None

    def pending(self, form: Form, state: FormState, now: datetime) -> str:
        """The question the form is waiting on (shown again after an interruption)."""
        lang = state.lang
        if state.asking == CONFIRM:
            return self._summary(form, state)
        if state.asking == CHOOSE:
            return self._choose(form, lang)
        if state.asking is not None and form.has_slot(state.asking):
            return form.slot(state.asking).ask(lang)
        for slot in form.slots:
            if slot.required and slot.name not in state.values:
                return slot.ask(lang)
        return self._summary(form, state)

    # -- internals --

    def _accept(
        self, form: Form, state: FormState, answer: Answer, now: datetime
    ) -> tuple[bool, dict[str, str]]:
        accepted = False
        reasons: dict[str, str] = {}
        for name in answer.cleared:
            if name not in answer.values and form.has_slot(name):
                state.values.pop(name, None)
                accepted = True  # taking an answer back is progress: the slot is asked again
        for slot in form.slots:  # in order: later validators may look at earlier values
            if slot.name in answer.rejected:
                reasons[slot.name] = answer.rejected[slot.name].text(state.lang)
                continue
            if slot.name not in answer.values or answer.values[slot.name] is None:
                continue
            ctx = SlotContext(now, state.values, state.lang)
            try:
                state.values[slot.name] = slot.check(answer.values[slot.name], ctx)
            except InvalidValue as invalid:
                reasons[slot.name] = invalid.text(state.lang)
                continue
            accepted = True
        return accepted, reasons

    def _next(
        self,
        form: Form,
        state: FormState,
        now: datetime,
        reasons: Mapping[str, str],
        cleared: frozenset[str] = frozenset(),
    ) -> Step:
        lang = state.lang
        for slot in form.slots:
            # A value taken back is asked for first, optional or not ("내일 말고요").
            if slot.name in cleared and slot.name not in state.values:
                return self._ask(state, slot.name, slot.ask(lang), reasons.get(slot.name))
        for slot in form.slots:
            if slot.required and slot.name not in state.values:
                return self._ask(state, slot.name, slot.ask(lang), reasons.get(slot.name))
        for name, reason in reasons.items():
            # An optional slot the user did give, but unusably ("어제" for a forecast): ask it.
            if name not in state.values:
                return self._ask(state, name, form.slot(name).ask(lang), reason)
        ctx = SlotContext(now, state.values, lang)
        for slot in form.slots:
            if slot.name not in state.values and slot.default is not None:
                state.values[slot.name] = slot.default(ctx)
        for slot in form.slots:
            # Validators are idempotent; re-checking catches answers that a later change made
            # stale (a time that is past once the date moved to today).
            if slot.name not in state.values:
                continue
            try:
                state.values[slot.name] = slot.check(state.values[slot.name], ctx)
            except InvalidValue as invalid:
                del state.values[slot.name]
                return self._ask(state, slot.name, slot.ask(lang), invalid.text(lang))
        if form.confirm:
            state.asking = CONFIRM
            return Confirm(self._summary(form, state))
        state.asking = None
        return Complete(dict(state.values))

    def _ask(self, state: FormState, slot: str, question: str, reason: str | None) -> Ask:
        if state.asking != slot:
            state.retries = 0
        state.asking = slot
        return Ask(slot, f"{reason}\n{question}" if reason else question)

    def _at_confirmation(
        self,
        form: Form,
        state: FormState,
        answer: Answer,
        now: datetime,
        accepted: bool,
        reasons: Mapping[str, str],
    ) -> Step:
        lang = state.lang
        if accepted or reasons:
            # New values while confirming ("번호는 010-1111-2222로 바꿔 주세요"): show them again.
            step = self._next(form, state, now, reasons, answer.cleared)
            if isinstance(step, Confirm) and reasons:
                return Confirm("\n".join((*reasons.values(), step.text)))
            return step
        verdict = yes_or_no(answer.text)
        if verdict is True:
            if state.asking == CONFIRM:
                state.asking = None
                return Complete(dict(state.values))
            state.asking = CONFIRM
            return Confirm(self._summary(form, state))
        named = [slot for slot in form.slots if slot.named_in(answer.text)]
        if named:
            slot = named[0]
            state.values.pop(slot.name, None)
            return self._ask(state, slot.name, slot.ask(lang), None)
        if verdict is False:
            state.asking = CHOOSE
            return Ask(CHOOSE, self._choose(form, lang))
        return NoProgress(self.pending(form, state, now))

    def _summary(self, form: Form, state: FormState) -> str:
        lang = state.lang
        lines = [
            f"• {pick(slot.label, lang)}: {slot.display(state.values[slot.name], lang)}"
            for slot in form.slots
            if slot.name in state.values
        ]
        return "\n".join((*lines, pick(form.confirm_question, lang)))

    def _choose(self, form: Form, lang: str) -> str:
        labels = ", ".join(pick(slot.label, lang) for slot in form.slots)
        return say("choose", lang, labels=labels)
