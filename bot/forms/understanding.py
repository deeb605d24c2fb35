"""Corrections, negation and references, read the same way for every form and every slot.

People correct themselves as they go: "부산 말고 울산 날씨 알려줘", "아니 대구 말고 대전",
"3시, 아니 4시요", "no, not Busan — Ulsan", "홍길동 말고 김민지요". They refer back: "거기
내일은?", "그날 부산은?", "what about there tomorrow?". This module reads a message once for a
form, before the form's extractors do, and says

* which slot values the message takes back (the value next to a negation cue) and blanks them
  out, with their cue, so that the extractors find the value that replaces them;
* which slots a reference word stands for (the stage fills them from the dialogue state);
* whether the message corrects an earlier answer ("잘못 말했어요", "actually", "바꿔 주세요");
* whether it declines the form itself ("날씨 말고 뉴스 알려줘").

Nothing here knows a form: the cues are data (``NEGATE_BEFORE``, ``NEGATE_AFTER``,
``CORRECTION``, the ``refers`` words each ``Slot`` declares), and a negated value is found by
the slot's own extractor, so cities, dates, times, names and phone numbers are all read alike.
Pure and synchronous; a message with no cue costs one regular-expression search per form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.forms.extractors import Found, Utterance, has_cue
from bot.forms.spec import Form, Slot

# ---- the cues (data) -------------------------------------------------------------------------

_NOT_HANGUL_NEXT = r"(?![가-힣])"
# A cue that takes back the value said just before it: "부산 말고", "광주 아니고", "제주 대신",
# "서울, 아니 인천", "Busan, no wait, Ulsan", "Busan, I mean Ulsan".
NEGATE_BEFORE: tuple[str, ...] = (
    rf"말고(?:요|는)?{_NOT_HANGUL_NEXT}",
    rf"아니(?:고|라|라요|에요|예요|야|요|오)?{_NOT_HANGUL_NEXT}",
    rf"대신(?:에)?{_NOT_HANGUL_NEXT}",
    r"\bno(?:[\s,]+wait)?\b",
    r"\bi\s+mean\b",
)
# A cue that takes back the value said just after it: "not Busan", "instead of Daegu".
NEGATE_AFTER: tuple[str, ...] = (
    r"\bnot\b",
    r"\binstead\s+of\b",
    r"\brather\s+than\b",
)
# The message corrects an earlier answer (so a value for another slot than the one asked is
# meant, not incidental).
CORRECTION = re.compile(
    r"잘못|정정|바꿔|바꾸|바꿀|바꿨|변경|수정|(?:^|[\s,])아니(?:요|오)?(?=$|[\s,.!])|^\s*아뇨|"
    r"\b(?:actually|instead|sorry|oops|i\s+meant|no\s+wait|make\s+it|change|wrong)\b|^\s*no\b",
    re.IGNORECASE,
)
# "Again" after a failed answer: the same request once more.
RETRY = re.compile(
    r"^\s*(?:그럼\s*|그러면\s*)?(?:다시|한\s*번\s*더|재시도)(?:\s*한\s*번)?\s*"
    r"(?:(?:알려|확인해|확인|찾아|조회해|검색해|시도해|해|부탁해|부탁)\s*"
    r"(?:줘|줘요|주세요|줄래|줄래요|주실래요|줄\s*수\s*있어요?|봐|봐요|요|드려요)?"
    r"|봐\s*(?:줘|주세요|줄래요?)|부탁(?:해요|합니다|드려요)?|요)?\s*[?!.~]*\s*$|"
    r"^\s*(?:(?:can|could|would)\s+you\s+)?(?:please\s+)?"
    r"(?:try\s+(?:it\s+|that\s+)?again|do\s+it\s+again|again|retry|one\s+more\s+time)"
    r"(?:\s+please)?\s*[?!.]*\s*$",
    re.IGNORECASE,
)

# Reference words, for the forms' ``Slot.refers`` (Korean ones not inside another word).
PLACE_REFERENCES: tuple[str, ...] = (
    r"(?<![가-힣])(?:거기|그곳|그\s*도시|그\s*동네|그\s*지역)",
    r"\bthere\b",
    r"\bthat\s+(?:city|place|town)\b",
)
DAY_REFERENCES: tuple[str, ...] = (
    r"(?<![가-힣])(?:그때|그날|그\s*날짜|같은\s*날)",
    r"\bthat\s+day\b",
    r"\bthe\s+same\s+day\b",
)
TIME_REFERENCES: tuple[str, ...] = (
    r"(?<![가-힣])(?:그\s*시간|같은\s*시간)",
    r"\bthat\s+time\b",
    r"\bthe\s+same\s+time\b",
)

_PARTICLE = r"(?:은|는|이|가|을|를|도|요|이요|으로|로|에|에서|의|이랑|랑|하고)"
_GAP_PUNCT = r"[\s,.…—–~-]*"
# Between a value and an English cue after it: "not the Busan one" is rare, "not in Busan" not.
_GAP_AFTER = re.compile(r"[\s,:]*(?:(?:the|in|for|at|on|to)\s+)*", re.IGNORECASE)
_BOUNDARY = re.compile(r"[,.!?;—–]|\s-\s|\b(?:but|and)\b", re.IGNORECASE)
_CUES = re.compile(
    "|".join(
        [f"(?P<b{i}>{p})" for i, p in enumerate(NEGATE_BEFORE)]
        + [f"(?P<a{i}>{p})" for i, p in enumerate(NEGATE_AFTER)]
    ),
    re.IGNORECASE,
)
_MAX_HITS = 4  # values of one slot looked at in one message

REFERENCE = "__reference__"  # the value of a hit that is a reference word ("거기 말고 전주")


@dataclass(slots=True)
class Reading:
    """One message as a form understands it.

    ``utt``: what the extractors read (taken-back values, their cues and reference words
    blanked out). ``negated``: slot → the value taken back. ``replaced``: slot → a new value
    the slot's parser read after a cue, where no extractor finds one ("홍길동 말고 김민지요").
    ``referred``: slots a reference word stands for. ``correcting``: the message corrects an
    earlier answer. ``declined``: the form itself was taken back ("날씨 말고 ..."). ``retracts``:
    a value is taken back in so many words ("광주 말고요", "아니, …", "no, not …"), where a bare
    "not today" is rather a polite no.
    """

    utt: Utterance
    negated: dict[str, Any] = field(default_factory=dict)
    replaced: dict[str, Any] = field(default_factory=dict)
    referred: frozenset[str] = frozenset()
    correcting: bool = False
    declined: bool = False
    retracts: bool = False

    @property
    def changed(self) -> bool:
        """The message takes something back or corrects something."""
        return self.correcting or bool(self.negated)


@dataclass(frozen=True, slots=True)
class _Hit:
    slot: str
    found: Found


def read(form: Form, utt: Utterance, current: Mapping[str, Any] | None = None) -> Reading:
    """Read ``utt`` for ``form``; ``current`` are the values said so far (the running form's,
    or the last completed request's), for a negated value no extractor knows ("홍길동 말고")."""
    text = utt.text
    current = current or {}
    references = _references(form, text)
    cues = list(_CUES.finditer(text))
    correcting = CORRECTION.search(text) is not None
    if not cues:
        masked = utt.masked((h.found.start, h.found.end) for h in references) if references else utt
        return Reading(
            masked,
            replaced=_named_values(form, masked, current, correcting=correcting),
            referred=frozenset(h.slot for h in references),
            correcting=correcting,
        )
    hits = _hits(form, utt) + references
    negated: dict[str, Any] = {}
    masks: list[tuple[int, int]] = [(h.found.start, h.found.end) for h in references]
    after_cues: dict[str, tuple[int, int]] = {}  # slot → where its replacement may be said
    declined = False
    retracts = correcting
    for cue in cues:
        kind = cue.lastgroup or ""
        if kind.startswith("b"):
            hit = _before(form, text, cue.start(), hits, current, utt.lang)
            if hit is None:
                declined = declined or _declines(form, text, cue.start())
                continue
            negated[hit.slot] = hit.found.value
            retracts = True
            masks.append((hit.found.start, cue.end()))
            after_cues[hit.slot] = (cue.end(), _segment_end(text, cue.end()))
        else:
            hit = _after(text, cue.end(), hits)
            if hit is None:
                continue
            negated[hit.slot] = hit.found.value
            masks.append((cue.start(), hit.found.end))
    masked = utt.masked(masks)
    replaced = _replacements(form, masked, negated, after_cues)
    changing = correcting or bool(negated)
    for name, value in _named_values(form, masked, current, correcting=changing).items():
        replaced.setdefault(name, value)
    referred = frozenset(h.slot for h in references if h.slot not in negated)
    return Reading(
        masked,
        negated=negated,
        replaced=replaced,
        referred=referred,
        correcting=changing,
        declined=declined and not negated,
        retracts=retracts,
    )


def same_value(said: Any, held: Any) -> bool:
    """A taken-back value is the one held ("부산 말고요" after Busan; "거기 말고" always)."""
    if said == REFERENCE or said == held:
        return True
    if isinstance(said, Mapping) and isinstance(held, Mapping):
        return said.get("id") is not None and said.get("id") == held.get("id")
    return False


def is_retry(text: str) -> bool:
    """The whole message asks for the same thing again ("다시 알려줘", "try again")."""
    return RETRY.match(text) is not None


# ---- internals --------------------------------------------------------------------------------


def _references(form: Form, text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    for slot in form.slots:
        for pattern in _reference_patterns(slot):
            for m in pattern.finditer(text):
                hits.append(_Hit(slot.name, Found(REFERENCE, m.start(), m.end())))
    return hits


_COMPILED: dict[tuple[str, ...], tuple[re.Pattern[str], ...]] = {}


def _reference_patterns(slot: Slot) -> tuple[re.Pattern[str], ...]:
    if not slot.refers:
        return ()
    compiled = _COMPILED.get(slot.refers)
    if compiled is None:
        compiled = (re.compile("|".join(f"(?:{p})" for p in slot.refers), re.IGNORECASE),)
        _COMPILED[slot.refers] = compiled
    return compiled


def _hits(form: Form, utt: Utterance) -> list[_Hit]:
    """Every value each slot's extractor finds in ``utt`` (not only the first)."""
    hits: list[_Hit] = []
    for slot in form.slots:
        seen = utt
        for _ in range(_MAX_HITS):
            found = slot.find(seen)
            if found is None or found.end <= found.start:
                break
            hits.append(_Hit(slot.name, found))
            seen = seen.masked([(found.start, found.end)])
    return hits


def _gap_before(form: Form) -> re.Pattern[str]:
    """What may stand between a value and the cue after it: spaces, a particle, and the form's
    own context words ("목포 날씨 말고", "서울이 아니라", "4시는 말고")."""
    pattern = _GAPS.get(form.name)
    if pattern is None:
        words = "|".join(re.escape(w) for w in form.context_words)
        context = rf"(?:(?:{words}){_GAP_PUNCT}{_PARTICLE}?{_GAP_PUNCT})?" if words else ""
        pattern = re.compile(rf"{_GAP_PUNCT}{_PARTICLE}?{_GAP_PUNCT}{context}", re.IGNORECASE)
        _GAPS[form.name] = pattern
    return pattern


_GAPS: dict[str, re.Pattern[str]] = {}


def _before(
    form: Form,
    text: str,
    at: int,
    hits: list[_Hit],
    current: Mapping[str, Any],
    lang: str,
) -> _Hit | None:
    """The value said right before the cue at ``at``: an extractor's, a reference word, or
    one of the values said so far, written as they are shown ("홍길동 말고")."""
    gap = _gap_before(form)
    best: _Hit | None = None
    for hit in hits:
        f = hit.found
        if f.end > at or not gap.fullmatch(text, f.end, at):
            continue
        if best is None or (f.end, f.end - f.start) > (best.found.end, len_of(best.found)):
            best = hit
    if best is not None:
        return best
    before = text[:at]
    for name, value in current.items():
        if not form.has_slot(name) or value is None:
            continue
        slot = form.slot(name)
        for shown in {str(value), slot.display(value, lang)}:
            if not shown or len(shown) > 40:
                continue
            m = re.search(rf"(?<![\w가-힣]){re.escape(shown)}{gap.pattern}$", before)
            if m is not None:
                return _Hit(name, Found(value, m.start(), m.start() + len(shown)))
    return None


def len_of(found: Found) -> int:
    return found.end - found.start


def _after(text: str, at: int, hits: list[_Hit]) -> _Hit | None:
    """The value said right after the (English) cue ending at ``at``: "not Busan"."""
    best: _Hit | None = None
    for hit in hits:
        f = hit.found
        if f.start < at or not _GAP_AFTER.fullmatch(text, at, f.start):
            continue
        if best is None or f.start < best.found.start:
            best = hit
    return best


_GAP = re.compile(rf"{_GAP_PUNCT}{_PARTICLE}?{_GAP_PUNCT}")


def _declines(form: Form, text: str, at: int) -> bool:
    """The form's own trigger word is what the cue takes back ("날씨 말고 뉴스 알려줘")."""
    return any(end <= at and _GAP.fullmatch(text, end, at) for _, end in form.triggers.spans(text))


def _segment_end(text: str, start: int) -> int:
    m = _BOUNDARY.search(text, start)
    return m.start() if m is not None else len(text)


def _replacements(
    form: Form,
    masked: Utterance,
    negated: Mapping[str, Any],
    after_cues: Mapping[str, tuple[int, int]],
) -> dict[str, Any]:
    """For a taken-back slot no extractor finds a new value for, the slot's parser on what
    follows the cue ("홍길동 말고 김민지요" → 김민지)."""
    replaced: dict[str, Any] = {}
    for name in negated:
        slot = form.slot(name)
        where = after_cues.get(name)
        if where is None or slot.parse is None or slot.find(masked) is not None:
            continue
        rest = masked.text[where[0] : where[1]].strip(" ,.!?~")
        if not rest:
            continue
        value = slot.parse(rest, masked.derive(rest))
        if value is not None:
            replaced[name] = value
    return replaced


# "(으)로 바꿔 주세요", "로 할게요": how a new value is handed over, not part of it.
_CHANGE_TAIL = re.compile(
    r"\s*(?:(?:으로|로)\s*(?:(?:바꿔|바꿀|바꾸|변경|수정|정정|해|할|하)[가-힣]*)?"
    r"|(?:바꿔|바꿀|바꾸|변경|수정|정정)[가-힣]*)(?:\s*(?:주세요|줘|줄래요?|주실래요?|요))?"
    r"\s*[.!~]*$"
)
_AFTER_NAME = re.compile(r"^\s*(?:은|는|을|를|이|가|:)?\s*")
_GIVEN = re.compile(r"(?:이에요|예요|입니다|이요|이야|라고\s*(?:해요|합니다))\s*[.!~]*$")


def _named_values(
    form: Form, utt: Utterance, current: Mapping[str, Any], *, correcting: bool
) -> dict[str, Any]:
    """A new value for a slot the message names, said after its name where no extractor
    finds it ("아, 이름 홍길순이에요", "주제는 전세 대출로 바꿔 주세요"): only for a slot that
    already has a value (a change), said as one (a correction cue, "(으)로 바꿔", or "…이에요"),
    and never a question ("이름이 뭐였죠?") or a remark ("내용은 괜찮아요")."""
    if not current:
        return {}
    values: dict[str, Any] = {}
    lowered = utt.lower
    for slot in form.slots:
        if slot.parse is None or slot.name not in current:
            continue
        ends = [
            lowered.rfind(word.lower()) + len(word)
            for word in (*slot.label.values(), *slot.keywords)
            if word and word.lower() in lowered
        ]
        if not ends or slot.find(utt) is not None:
            continue
        start = max(ends)
        said = _AFTER_NAME.sub("", utt.text[start : _segment_end(utt.text, start)], count=1)
        rest = _CHANGE_TAIL.sub("", said).strip()
        if not rest or has_cue(rest):
            continue
        if not (correcting or rest != said.strip() or _GIVEN.search(rest)):
            continue
        value = slot.parse(rest, utt.derive(rest))
        if value is not None:
            values[slot.name] = value
    return values
