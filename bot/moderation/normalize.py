"""Text normalisation with a map back to original positions, whole-text and streaming."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress

from bot.moderation.chars import EXPANDS, JAMO_FIRST, JAMO_LAST, ONE_CHAR, SKIP, fold_slow
from bot.moderation.jamo import compose, compose_at

# The rules, applied identically to list entries and to text:
#   1. every character is folded on its own (chars.fold_char): NFKC, case, look-alikes,
#      accents; letters survive, whitespace becomes " ", everything else disappears, so
#      "시.발", "시1발" and "f\u200bu" read as one word;
#   2. tokens are the runs between spaces; two neighbouring tokens of one letter each are
#      joined ("f u c k" -> "fuck", "시 발" -> "시발"), any other pair keeps one space
#      between them ("다시 발표" stays two words); no leading or trailing space;
#   3. runs of compatibility jamo are composed into syllables (jamo.compose).

# Rule 2 in two passes whose patterns start with a literal, which the regex engine finds
# fast: collapse space runs, then join runs of one-letter tokens (one pattern for a run at
# the very start, where no space precedes it).
_MULTI_SPACE = re.compile("  +")
_SINGLES_HEAD = re.compile(r"[^ ](?: [^ ](?![^ ]))+")
_SINGLES = re.compile(r" [^ ](?: [^ ](?![^ ]))+")
_JAMO_RUN = re.compile(f"[{JAMO_FIRST}-{JAMO_LAST}]{{2,}}")
_HAS_JAMO = re.compile(f"[{JAMO_FIRST}-{JAMO_LAST}]")
_SPACE_THEN_ONE_LETTER = re.compile(" [^ ](?: |$)")
_SPECIAL = re.compile(f"[{SKIP}{EXPANDS} {JAMO_FIRST}-{JAMO_LAST}]")


@dataclass(slots=True)
class Normalized:
    """Normalised text; char ``k`` comes from original ``starts[k]`` up to ``end(k)``."""

    text: str
    starts: list[int]
    utf8: bytes = b""  # text.encode("utf-8") when already computed
    # Only composed syllables span more than one original character; everything else
    # ends one past its start, so the exceptions are kept apart instead of a full list.
    wide_ends: dict[int, int] = field(default_factory=dict)

    def end(self, k: int) -> int:
        """Exclusive end in the original text of normalised character ``k``."""
        return self.wide_ends.get(k, self.starts[k] + 1)


def normalize_word(word: str) -> str:
    """The normalised form of a list entry (cheaper than ``normalize`` when nothing moves)."""
    folded = word.translate(ONE_CHAR)
    if _SPECIAL.search(folded) is None:
        return folded
    return normalize(word).text


def normalize(text: str) -> Normalized:
    """Normalise a whole text (C-level string operations; Python loops only over edits)."""
    n = len(text)
    folded = text.translate(ONE_CHAR)
    starts: list[int]
    if EXPANDS in folded:
        folded, starts = fold_slow(text)
    elif SKIP in folded:
        # A UTF-32 code unit is zero exactly where the skip marker is: a C-speed keep mask.
        keep = memoryview(folded.encode("utf-32-le")).cast("I")
        starts = list(compress(range(n), keep))
        folded = folded.replace(SKIP, "")
    else:
        starts = list(range(n))

    # Rule 2.
    if folded[:1] == " " or folded[-1:] == " ":
        lo = len(folded) - len(folded.lstrip(" "))
        hi = len(folded.rstrip(" "))
        if lo >= hi:
            return Normalized("", [])
        folded = folded[lo:hi]
        starts = starts[lo:hi]
    if "  " in folded:
        parts: list[str] = []
        kept: list[int] = []
        pos = 0
        for m in _MULTI_SPACE.finditer(folded):
            a = m.start() + 1  # the first space stays
            parts.append(folded[pos:a])
            kept += starts[pos:a]
            pos = m.end()
        parts.append(folded[pos:])
        kept += starts[pos:]
        folded, starts = "".join(parts), kept
    head = _SINGLES_HEAD.match(folded)
    runs = list(_SINGLES.finditer(folded, head.end() if head else 0))
    if head or runs:
        parts = []
        kept = []
        pos = 0
        if head:
            # Spaces are single now: the letters of "f u c k" sit at every other index.
            b = head.end()
            parts.append(folded[0:b:2])
            kept += starts[0:b:2]
            pos = b
        for m in runs:
            a, b = m.span()
            parts.append(folded[pos : a + 1])  # up to and with the space before the run
            kept += starts[pos : a + 1]
            parts.append(folded[a + 1 : b : 2])
            kept += starts[a + 1 : b : 2]
            pos = b
        parts.append(folded[pos:])
        kept += starts[pos:]
        folded, starts = "".join(parts), kept

    # Rule 3. The UTF-8 is needed for the scan anyway, and a bytes search is much cheaper
    # than a regex character class; every compatibility jamo encodes as E3 84 xx or E3 85 xx.
    utf8 = folded.encode("utf-8")
    if (b"\xe3\x84" in utf8 or b"\xe3\x85" in utf8) and _HAS_JAMO.search(folded):
        return _compose_runs(folded, starts)
    return Normalized(folded, starts, utf8=utf8)


def _compose_runs(text: str, starts: list[int]) -> Normalized:
    out: list[str] = []
    out_starts: list[int] = []
    wide: dict[int, int] = {}
    pos = 0
    for m in _JAMO_RUN.finditer(text):
        a, b = m.span()
        out.append(text[pos:a])
        out_starts.extend(starts[pos:a])
        k = a
        for piece, used in compose(m.group()):
            if used > 1:
                wide[len(out_starts)] = starts[k + used - 1] + 1
            out.append(piece)
            out_starts.append(starts[k])
            k += used
        pos = b
    out.append(text[pos:])
    out_starts.extend(starts[pos:])
    text = "".join(out)
    return Normalized(text, out_starts, text.encode("utf-8"), wide)


class StreamNormalizer:
    """The same normalisation fed piece by piece; emits only what later text cannot change.

    Rule 2 holds back a one-letter token until the character after it shows whether it
    stands alone; rule 3 holds back jamo until the composition of the piece is decided.
    ``feed`` and ``flush`` return the text released, each character's original start, and
    the original end of the characters that span more (composed syllables, by start).
    ``held_from`` is the original index of the first character held back, or -1;
    ``word_closed`` is true after a space that follows a word of two or more letters: the
    next letter cannot join that word, whatever it is.
    """

    __slots__ = (
        "_cur", "_held", "_held_at", "_jamo", "_jamo_at", "_prev", "_space_at", "held_from",
        "word_closed",
    )  # fmt: skip

    def __init__(self) -> None:
        self._prev = 0  # previous token: 0 none yet, 1 one letter, 2 longer
        self._cur = 0  # current token: 0 none (after a space), 1 one letter held, 2 longer
        self._space_at = -1  # original index of the first space after the previous token
        self._held = ""
        self._held_at = -1
        self._jamo: list[str] = []  # jamo waiting for composition, with their origins
        self._jamo_at: list[int] = []
        self.held_from = -1
        self.word_closed = False

    def feed(self, chunk: str, base: int) -> tuple[str, Sequence[int], dict[int, int] | None]:
        """Fold ``chunk``, the original text from index ``base`` on."""
        folded = chunk.translate(ONE_CHAR)
        starts: Sequence[int]
        if EXPANDS in folded:
            folded, starts = fold_slow(chunk, base)
        elif SKIP in folded:
            starts = [i for i, c in enumerate(folded, base) if c != SKIP]
            folded = folded.replace(SKIP, "")
        else:
            starts = range(base, base + len(folded))
        prev, cur, space_at = self._prev, self._cur, self._space_at
        held, held_at = self._held, self._held_at
        # Rule 3 has work only if jamo are waiting, arrive, or are released from hold.
        jamo = (
            bool(self._jamo)
            or _HAS_JAMO.search(folded) is not None
            or (cur == 1 and JAMO_FIRST <= held <= JAMO_LAST)
        )
        if cur == 2 and not jamo:
            if " " not in folded:
                # The common case: the middle of a long word flows straight through.
                return folded, starts, None
            if "  " not in folded and _SPACE_THEN_ONE_LETTER.search(folded) is None:
                # Next most common: words of two or more letters, single spaces. Every space
                # is kept except a trailing one, which waits for the next word.
                self._prev = 2
                if folded[-1] != " ":
                    return folded, starts, None
                self._cur = 0
                self._space_at = starts[-1]
                self.word_closed = True
                return folded[:-1], starts[:-1], None
        # Rule 2 as a state machine over the tokens of the chunk; the state lives in
        # locals for speed and is written back at the end.
        out: list[str] = []
        out_starts: list[int] = []
        pos = 0
        for token in folded.split(" "):
            if pos:  # a space came before this token
                if cur == 1:
                    if prev == 2:
                        out.append(" ")
                        out_starts.append(space_at)
                    out.append(held)
                    out_starts.append(held_at)
                    prev, cur, space_at = 1, 0, starts[pos - 1]
                elif cur == 2:
                    prev, cur, space_at = 2, 0, starts[pos - 1]
            n = len(token)
            if n:
                if cur == 2:
                    out.append(token)
                    out_starts += starts[pos : pos + n]
                elif cur == 0 and n == 1:
                    cur, held, held_at = 1, token, starts[pos]
                else:
                    if prev:
                        out.append(" ")
                        out_starts.append(space_at)
                    if cur == 1:
                        out.append(held)
                        out_starts.append(held_at)
                    out.append(token)
                    out_starts += starts[pos : pos + n]
                    cur = 2
            pos += n + 1
        self._prev, self._cur, self._space_at = prev, cur, space_at
        self._held, self._held_at = held, held_at
        self.word_closed = cur == 0 and prev == 2
        if not jamo:
            self.held_from = held_at if cur == 1 else -1
            return "".join(out), out_starts, None
        # A certain space also ends the jamo run: compose it now, as the whole text would.
        result = self._compose_chunk("".join(out), out_starts, closed=self.word_closed)
        self.held_from = self._jamo_at[0] if self._jamo_at else (held_at if cur == 1 else -1)
        return result

    def flush(self) -> tuple[str, Sequence[int], dict[int, int] | None]:
        """End of text: release the held letter and compose the last jamo."""
        out: list[str] = []
        out_starts: list[int] = []
        if self._cur == 1:
            if self._prev == 2:
                out.append(" ")
                out_starts.append(self._space_at)
            out.append(self._held)
            out_starts.append(self._held_at)
            self._prev, self._cur = 1, 0
        text, starts, wide = self._compose_chunk("".join(out), out_starts)
        self.held_from = -1
        if not self._jamo:
            return text, starts, wide
        tail, tail_starts, tail_wide = self._compose(closed=True)
        all_wide = {**(wide or {}), **tail_wide}
        return text + tail, [*starts, *tail_starts], all_wide

    # ---- rule 3 --------------------------------------------------------------------------

    def _compose_chunk(
        self, text: str, starts: list[int], *, closed: bool = False
    ) -> tuple[str, Sequence[int], dict[int, int] | None]:
        if not self._jamo and _HAS_JAMO.search(text) is None:
            return text, starts, None
        res: list[str] = []
        res_starts: list[int] = []
        wide: dict[int, int] = {}
        for ch, at in zip(text, starts, strict=True):
            if JAMO_FIRST <= ch <= JAMO_LAST:
                self._jamo.append(ch)
                self._jamo_at.append(at)
                continue
            if self._jamo:
                self._compose_into(res, res_starts, wide, closed=True)
            res.append(ch)
            res_starts.append(at)
        if self._jamo:
            self._compose_into(res, res_starts, wide, closed=closed)
        return "".join(res), res_starts, wide

    def _compose(self, *, closed: bool) -> tuple[str, list[int], dict[int, int]]:
        text: list[str] = []
        starts: list[int] = []
        wide: dict[int, int] = {}
        self._compose_into(text, starts, wide, closed=closed)
        return "".join(text), starts, wide

    def _compose_into(
        self, text: list[str], starts: list[int], wide: dict[int, int], *, closed: bool
    ) -> None:
        jamo, at = self._jamo, self._jamo_at
        i = 0
        while i < len(jamo):
            piece = compose_at(jamo, i, closed)
            if piece is None:
                break
            ch, used = piece
            text.append(ch)
            starts.append(at[i])
            if used > 1:
                wide[at[i]] = at[i + used - 1] + 1
            i += used
        del jamo[:i], at[:i]
