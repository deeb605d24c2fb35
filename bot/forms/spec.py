"""Forms as data: the Slot and Form definitions an operator writes, and the handler contract."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from bot.forms.extractors import Extractor, Found, Utterance, has_cue
from bot.turn import Turn

Localized = Mapping[str, str]  # {"ko": "...", "en": "..."}

_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def pick(text: Localized, lang: str, **values: object) -> str:
    """``text`` in ``lang`` (English, then any, as fallbacks), formatted with ``values``."""
    chosen = text.get(lang) or text.get("en") or next(iter(text.values()), "")
    return chosen.format(**values) if values else chosen


class InvalidValue(Exception):
    """A validator's or resolver's verdict: the answer is not usable, and why (ko/en)."""

    def __init__(self, reason: Localized, **values: object) -> None:
        super().__init__(pick(reason, "en", **values))
        self.reason = reason
        self.values = values

    def text(self, lang: str) -> str:
        return pick(self.reason, lang, **self.values)


class ServiceUnavailable(Exception):
    """A resolver's backend (geocoding, ...) cannot be reached: say so, never guess."""

    def __init__(self, message: Localized, **values: object) -> None:
        super().__init__(pick(message, "en", **values))
        self.message = message
        self.values = values

    def text(self, lang: str) -> str:
        return pick(self.message, lang, **self.values)


@dataclass(frozen=True, slots=True)
class SlotContext:
    """What a validator or default may look at: the user's clock and the values so far."""

    now: datetime  # timezone-aware, in the user's timezone
    values: Mapping[str, Any]
    lang: str = "ko"

    @property
    def today(self) -> date:
        return self.now.date()


Parser = Callable[[str, Utterance], Any]  # free-text answer or tool argument → value or None
Validator = Callable[[Any, SlotContext], Any]  # → normalised value, or raise InvalidValue
Default = Callable[[SlotContext], Any]
Display = Callable[[Any, str], str]
Resolver = Callable[[Any, str], Awaitable[Any]]  # async, may do I/O: raise InvalidValue/…


def _plain(value: Any, lang: str) -> str:
    return str(value)


@dataclass(frozen=True, slots=True)
class Slot:
    """One piece of information a form collects.

    ``extract`` finds the value anywhere in a message, with no model call. ``parse`` turns a
    bare answer (when this slot was asked) or a model's tool argument into a value. ``validate``
    normalises or rejects (``InvalidValue`` with the reason the user will read). ``resolve``
    completes a value with I/O (geocoding) before validation. ``free_text`` slots (a name,
    a topic) take the rest of the answer when they are the one being asked.
    """

    name: str
    label: Localized
    question: Localized
    extract: Extractor | None = None
    parse: Parser | None = None
    required: bool = True
    default: Default | None = None
    validate: Validator | None = None
    display: Display = _plain
    resolve: Resolver | None = None
    free_text: bool = False
    description: str = ""  # for the model's tool schema
    keywords: tuple[str, ...] = ()  # other words users call this slot ("번호", "phone")
    # Words that stand for this slot's value said before ("거기", "그날", "there", "that day"):
    # regular expressions; ``bot.forms.understanding`` has the usual ones.
    refers: tuple[str, ...] = ()

    def ask(self, lang: str) -> str:
        return pick(self.question, lang)

    def find(self, utt: Utterance) -> Found | None:
        return self.extract(utt) if self.extract is not None else None

    def check(self, value: Any, ctx: SlotContext) -> Any:
        return self.validate(value, ctx) if self.validate is not None else value

    def named_in(self, text: str) -> bool:
        """The user mentions this slot by name ("전화번호 바꿀래요")."""
        lowered = text.lower()
        names = (*self.label.values(), *self.keywords)
        return any(name.lower() in lowered for name in names if name)


@dataclass(frozen=True, slots=True)
class Triggers:
    """How a message starts a form without the model.

    ``keywords`` are regular expressions naming the form's topic ("날씨", r"\\bweather\\b").
    With ``needs_cue`` a keyword alone is not enough: the message must also give a slot value or
    ask for something ("날씨가 좋네" starts nothing; "날씨 알려줘" and "대구 날씨" do).
    ``hints`` are weaker words: they only make the stage ask the model (tool calling).
    """

    keywords: Sequence[str]
    hints: Sequence[str] = ()
    needs_cue: bool = True
    _keywords: re.Pattern[str] | None = field(init=False, default=None, repr=False)
    _hints: re.Pattern[str] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keywords", _union(self.keywords))
        object.__setattr__(self, "_hints", _union(self.hints))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the keywords occur (empty: the form was not named)."""
        if self._keywords is None:
            return []
        return [m.span() for m in self._keywords.finditer(text)]

    def hinted(self, text: str) -> bool:
        return self._hints is not None and self._hints.search(text) is not None

    def fire(self, text: str, *, has_value: bool) -> bool:
        if not self.spans(text):
            return False
        return has_value or not self.needs_cue or has_cue(text)


def _union(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Filled:
    """A completed form, as its handler receives it."""

    form: Form
    values: Mapping[str, Any]
    lang: str
    now: datetime
    turn: Turn
    session_key: str


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """What a handler answers.

    ``text`` is shown as is (and is the answer whenever the model cannot phrase one).
    ``brief``, when set, asks the model to phrase the answer from these facts instead.
    ``values`` replaces the remembered slot values (e.g. with what the handler resolved).
    ``keep_form`` keeps the form open at its last question (the handler could not finish,
    e.g. storage was down, and the user may simply answer again).
    ``failed``: the handler could not do its work (its service was down). The values are
    remembered all the same, with the failure, so that "거기 내일은?" or "다시 알려줘" goes on
    from them.
    """

    text: str
    brief: str | None = None
    values: Mapping[str, Any] | None = None
    keep_form: bool = False
    failed: bool = False


class FormHandler(Protocol):
    """Runs when a form is complete (and confirmed); does the I/O; never raises for the user's
    mistakes (those are validators' business)."""

    async def __call__(self, filled: Filled) -> HandlerResult: ...


@dataclass(frozen=True, slots=True)
class Form:
    """A slot-filling form: what starts it, what it asks, what happens when it is complete."""

    name: str  # also the model's tool name: lowercase letters, digits, underscores
    title: Localized
    description: str  # the tool description the model reads
    slots: tuple[Slot, ...]
    handler: FormHandler
    triggers: Triggers
    confirm: bool = False  # show a summary and ask yes/no before the handler runs
    confirm_question: Localized = field(
        default_factory=lambda: {
            "ko": "이대로 진행할까요? (네/아니요)",
            "en": "Shall I go ahead? (yes/no)",
        }
    )
    carry_over: bool = False  # "부산은?" after a completed run re-runs it with that slot changed
    context_words: tuple[str, ...] = ()  # words next to which unknown names are slot values

    def __post_init__(self) -> None:
        if not _TOOL_NAME.match(self.name):
            raise ValueError(f"form name {self.name!r} must match {_TOOL_NAME.pattern}")
        names = [s.name for s in self.slots]
        if len(set(names)) != len(names):
            raise ValueError(f"form {self.name!r} has duplicate slot names")
        if not any(s.required for s in self.slots):
            raise ValueError(f"form {self.name!r} needs at least one required slot")

    def slot(self, name: str) -> Slot:
        for s in self.slots:
            if s.name == name:
                return s
        raise KeyError(name)

    def has_slot(self, name: str) -> bool:
        return any(s.name == name for s in self.slots)

    def tool(self) -> dict[str, Any]:
        """This form as a function the model may call (OpenAI / Z.AI tool schema)."""
        properties = {
            s.name: {"type": "string", "description": s.description or pick(s.label, "en")}
            for s in self.slots
        }
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {"type": "object", "properties": properties, "required": []},
            },
        }
