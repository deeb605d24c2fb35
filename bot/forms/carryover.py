"""Context carry-over: after "서울 날씨 알려줘", "부산은?" re-runs it with one slot changed.

Korean follow-ups are recognised by their morphology (Kiwi): an optional connective ("그럼"),
one or more nouns the form's extractors recognise, usually the topic particle 은/는 and a
question mark or "어때". English ones by patterns: "What about Busan?", "and London?".
Every noun of the follow-up must be accounted for, so "부산 맛집은?" is not a weather follow-up.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.forms.extractors import Found, Utterance, has_hangul
from bot.forms.korean import Token
from bot.forms.spec import Form

_LEADERS = frozenset(
    {"그럼", "그러면", "그렇다면", "그리고", "근데", "그런데", "또", "혹시", "아", "음"}
    | {"아니", "아니요", "아뇨", "앗", "어"}  # a correction: "아니 대전이요"
)
_MARKING_LEADERS = frozenset({"그럼", "그러면", "그렇다면", "그리고"})
_TOPIC = frozenset({"은", "는", "도", "은요", "는요"})
_TAIL_VERBS = frozenset({"어떻", "알리", "주", "보", "이", "궁금하", "되", "하", "말하", "가르치"})
_MARKING_TAIL = frozenset({"어떻", "알리", "궁금하", "?"})
# Nouns a follow-up may carry besides slot values ("부산 날씨는?", "부산 쪽은?").
_FILLER_NOUNS = frozenset({"날씨", "기온", "예보", "쪽", "지역", "거", "건", "것", "곳", "데"})

_EN_FOLLOW = re.compile(
    r"^\s*(?:(?:and|so|ok|okay|then|well|hmm+|also|oh)[,\s]+)*"
    r"(?P<lead>what\s+about|how\s+about|what\s+of|and)\s+(?P<rest>.+?)\s*[?.!]*\s*$",
    re.IGNORECASE,
)
_EN_WORD = re.compile(r"[A-Za-z][\w'.-]*|\d+\S*")
_EN_IGNORED = frozenset(
    {"in", "for", "at", "on", "the", "weather", "there", "then", "instead", "please", "it"}
    | {"no", "sorry", "oops", "i", "meant", "mean", "actually", "wait", "oh", "make"}
)


@dataclass(frozen=True, slots=True)
class _Cover:
    values: dict[str, Any]
    spans: list[tuple[int, int]]


class CarryOver:
    """Recognises a follow-up to the last completed form and returns the slots it changes."""

    def __init__(self, *, max_chars: int = 60) -> None:
        self.max_chars = max_chars  # a follow-up is short; long messages are new requests

    def detect(self, form: Form, utt: Utterance) -> dict[str, Any] | None:
        """The new slot values the follow-up gives, or None when it is not a follow-up.

        A value may be ``{"query": name}`` for a proper noun no extractor knows (to resolve).
        """
        text = utt.text.strip()
        if not text or len(text) > self.max_chars:
            return None
        if has_hangul(text):
            return self._korean(form, utt)
        return self._english(form, utt)

    # -- Korean --

    def _korean(self, form: Form, utt: Utterance) -> dict[str, Any] | None:
        tokens = list(utt.tokens())
        if not tokens:
            return None
        marked = False
        while tokens and (tokens[0].form in _LEADERS or tokens[0].tag.startswith("S")):
            marked = marked or tokens[0].form in _MARKING_LEADERS
            tokens.pop(0)
        while tokens and _strippable_tail(tokens[-1]):
            marked = marked or tokens[-1].form in _MARKING_TAIL
            tokens.pop()
        if not tokens:
            return None
        cover = _cover(form, utt, tokens[0].start, tokens[-1].end)
        # Slot values may be any part of speech ("내일" is read as an adverb too).
        if not all(
            t.nominal or t.particle or t.tag == "MM" or _inside(t, cover.spans) for t in tokens
        ):
            return None
        marked = marked or any(t.particle and t.form in _TOPIC for t in tokens)
        loose = [
            t
            for t in tokens
            if t.nominal and t.form not in _FILLER_NOUNS and not _inside(t, cover.spans)
        ]
        if loose:
            return self._unknown_name(form, utt, loose, cover.values, marked)
        return cover.values or None

    def _unknown_name(
        self,
        form: Form,
        utt: Utterance,
        loose: Sequence[Token],
        values: dict[str, Any],
        marked: bool,
    ) -> dict[str, Any] | None:
        # One run of proper nouns nobody recognised: maybe a place the gazetteer lacks
        # ("울진은?"); a resolver (geocoding) decides, and rejects "민수는?".
        if not marked or any(t.tag != "NNP" for t in loose):
            return None
        if any(b.start - a.end > 1 for a, b in itertools.pairwise(loose)):
            return None
        slot = _resolvable_slot(form, values)
        if slot is None:
            return None
        return {**values, slot: {"query": utt.text[loose[0].start : loose[-1].end]}}

    # -- English --

    def _english(self, form: Form, utt: Utterance) -> dict[str, Any] | None:
        match = _EN_FOLLOW.match(utt.text)
        start, end = (match.start("rest"), match.end("rest")) if match else (0, len(utt.text))
        cover = _cover(form, utt, start, end)
        loose = [
            w
            for w in _EN_WORD.finditer(utt.text, start, end)
            if w.group().lower() not in _EN_IGNORED and not _inside_span(w.span(), cover.spans)
        ]
        if not loose:
            return cover.values or None
        if match is None or not all(w.group()[0].isupper() for w in loose) or len(loose) > 3:
            return None
        slot = _resolvable_slot(form, cover.values)
        if slot is None:
            return None
        name = utt.text[loose[0].start() : loose[-1].end()].strip(" ?.!,")
        return {**cover.values, slot: {"query": name}}


def _strippable_tail(tok: Token) -> bool:
    if tok.tag.startswith(("S", "E")):
        return tok.tag != "SL" and tok.tag != "SN" and tok.tag != "SH"
    if tok.tag.startswith(("V", "XS")):
        return tok.form in _TAIL_VERBS
    return False


def _cover(form: Form, utt: Utterance, start: int, end: int) -> _Cover:
    values: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    for slot in form.slots:
        found: Found | None = slot.find(utt)
        if found is not None and start <= found.start and found.end <= end:
            values[slot.name] = found.value
            spans.append((found.start, found.end))
    return _Cover(values, spans)


def _inside(tok: Token, spans: Sequence[tuple[int, int]]) -> bool:
    return _inside_span((tok.start, tok.end), spans)


def _inside_span(span: tuple[int, int], spans: Sequence[tuple[int, int]]) -> bool:
    return any(s <= span[0] and span[1] <= e for s, e in spans)


def _resolvable_slot(form: Form, values: dict[str, Any]) -> str | None:
    for slot in form.slots:
        if slot.resolve is not None and slot.name not in values:
            return slot.name
    return None
