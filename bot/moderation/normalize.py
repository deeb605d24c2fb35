"""Text normalisation with a map back to original positions, whole-text and streaming."""

from __future__ import annotations

import re
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
# What the fast path of StreamNormalizer.feed cannot take: a character that folds to
# several, a jamo, a double space, or a one-letter token between spaces (it may join its
# neighbours); the chunk's edges are checked against the state.
_BREAKS_FLOW = re.compile(f"[{EXPANDS}{JAMO_FIRST}-{JAMO_LAST}]|  | [^ ] ")
# A chunk that folds to itself and flows: Hangul syllables and small Latin letters, words
# of two or more letters between single spaces (the first may continue the current word),
# perhaps a trailing space or a last one-letter token. The quantifiers are possessive
# (nothing given back could let a space match a letter): the engine keeps no backtrack
# points, which makes this check on every chunk measurably cheaper.
_HANGUL_OR_LATIN = "\uac00-\ud7a3a-z"
_PLAIN_FLOW = re.compile(
    f"[{_HANGUL_OR_LATIN}]*+(?: [{_HANGUL_OR_LATIN}]{{2,}}+)*+(?: [{_HANGUL_OR_LATIN}]?)?"
)
_flows_plainly = _PLAIN_FLOW.fullmatch
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
    ``word_closed`` is true after a space that follows a word of two or more letters (and
    perhaps a one-letter token held after it): the next letter cannot join that word,
    whatever it is.
    """

    __slots__ = (
        "_cur", "_held", "_held_at", "_jamo", "_jamo_at", "_prev", "_space_at", "held_from",
        "starts", "wide", "word_closed",
    )  # fmt: skip

    def __init__(self, starts: list[int] | None = None, wide: dict[int, int] | None = None) -> None:
        # Where ``fold`` writes the origins of the text it releases (appended) and the ends
        # of the characters that span several (by start): the caller's own map, if given.
        self.starts: list[int] = [] if starts is None else starts
        self.wide: dict[int, int] = {} if wide is None else wide
        self._prev = 0  # previous token: 0 none yet, 1 one letter, 2 longer
        self._cur = 0  # current token: 0 none (after a space), 1 one letter held, 2 longer
        self._space_at = -1  # original index of the first space after the previous token
        self._held = ""
        self._held_at = -1
        self._jamo: list[str] = []  # jamo waiting for composition, with their origins
        self._jamo_at: list[int] = []
        self.held_from = -1
        self.word_closed = False

    def feed(self, chunk: str, base: int) -> tuple[str, list[int], dict[int, int] | None]:
        """Fold ``chunk``, the original text from index ``base`` on."""
        return self._taken(self.fold(chunk, base))

    def flush(self) -> tuple[str, list[int], dict[int, int] | None]:
        """End of text: release the held letter and compose the last jamo."""
        return self._taken(self.fold_flush())

    def _taken(self, text: str) -> tuple[str, list[int], dict[int, int] | None]:
        # The origins of ``text`` are the last ones in ``starts``; hand them over.
        mark = len(self.starts) - len(text)
        starts = self.starts[mark:]
        del self.starts[mark:]
        wide = dict(self.wide)
        self.wide.clear()
        return text, starts, wide or None

    def fold(self, chunk: str, base: int) -> str:
        """``feed`` that appends the origins to ``starts`` and updates ``wide`` in place.

        What the streaming masker calls: its own position map grows with no copies.
        """
        starts = self.starts
        if _flows_plainly(chunk) is not None and chunk:
            # Hangul syllables and small Latin letters fold to themselves, and the spaces
            # are single with no lone letter between them: no need to fold or look again.
            folded = chunk
            starts += range(base, base + len(folded))
            flows = True
        else:
            folded = chunk.translate(ONE_CHAR)
            if EXPANDS in folded:
                folded, slow_starts = fold_slow(chunk, base)
                starts += slow_starts
            elif SKIP in folded:
                # Usually one or two marks (punctuation): cut around them, not a loop.
                pos = 0
                cut = folded.find(SKIP)
                while cut >= 0:
                    starts += range(base + pos, base + cut)
                    pos = cut + 1
                    cut = folded.find(SKIP, pos)
                starts += range(base + pos, base + len(folded))
                folded = folded.replace(SKIP, "")
            else:
                starts += range(base, base + len(folded))
            if not folded:
                return ""
            flows = _BREAKS_FLOW.search(folded) is None
        cur = self._cur
        if (
            flows
            and not self._jamo
            and (
                cur == 2
                or (cur == 0 and folded[0] != " " and folded[1:2] not in " ")  # 2+ letters
                or (
                    cur == 1
                    and not JAMO_FIRST <= self._held <= JAMO_LAST
                    # the held letter's word goes on, or a word of 2+ letters follows it
                    and (folded[0] != " " or (folded[1:2] not in " " and folded[2:3] not in " "))
                )
            )
        ):
            # Rule 2 when no one-letter token stands inside the chunk (the common case): the
            # chunk continues the current word, or starts a word of two or more letters, or
            # completes the held letter's word, or follows it with a word of two or more;
            # its other tokens have two or more letters, except perhaps the last, held.
            if cur != 2:
                # The held letter joins the chunk's first word; a space before it comes back.
                mark = len(starts) - len(folded)
                space = self._prev
                if cur == 1:
                    if folded[0] == " ":
                        # The held letter stands alone; after another lone letter it joins.
                        space = space == 2
                    folded = self._held + folded
                    starts.insert(mark, self._held_at)
                if space:
                    folded = " " + folded
                    starts.insert(mark, self._space_at)
                self._cur = 2
            if " " in folded:  # one test for the chunks inside a word
                self._prev = 2  # (for each case below)
                if folded[-1] == " ":
                    # A word of two or more letters ended: the space waits for the next.
                    self._cur = 0
                    self._space_at = starts.pop()
                    self.word_closed = True
                    self.held_from = -1
                    return folded[:-1]
                if folded[-2] == " ":
                    # A one-letter token at the end may stand alone or start a word: hold
                    # it. The space before it is certain, so the word before that is closed.
                    self._cur = 1
                    self._held = folded[-1]
                    self._held_at = self.held_from = starts.pop()
                    self._space_at = starts.pop()
                    self.word_closed = True
                    return folded[:-2]
            self.word_closed = False
            self.held_from = -1
            return folded
        # Every branch above added one origin per character of ``folded``.
        mark = len(starts) - len(folded)
        chunk_starts = starts[mark:]
        del starts[mark:]
        return self._tokens(folded, chunk_starts, starts, self.wide)

    def fold_flush(self) -> str:
        """``flush`` that appends to ``starts`` and updates ``wide`` in place."""
        starts = self.starts
        out: list[str] = []
        if self._cur == 1:
            if self._prev == 2:
                out.append(" ")
                starts.append(self._space_at)
            out.append(self._held)
            starts.append(self._held_at)
            self._prev, self._cur = 1, 0
        self.held_from = -1
        text = "".join(out)
        if self._jamo or (text and _HAS_JAMO.search(text) is not None):
            mark = len(starts) - len(text)
            text_starts = starts[mark:]
            del starts[mark:]
            text = self._compose_chunk(text, text_starts, starts, self.wide, closed=True)
        return text

    def _tokens(
        self, folded: str, chunk_starts: list[int], starts: list[int], wide: dict[int, int]
    ) -> str:
        """Rules 2 and 3 in general, for a folded chunk and each character's origin."""
        prev, cur, space_at = self._prev, self._cur, self._space_at
        held, held_at = self._held, self._held_at
        # Rule 3 has work only if jamo are waiting, arrive, or are released from hold.
        jamo = (
            bool(self._jamo)
            or _HAS_JAMO.search(folded) is not None
            or (cur == 1 and JAMO_FIRST <= held <= JAMO_LAST)
        )
        # Rule 2 as a state machine over the tokens of the chunk; the state lives in
        # locals for speed and is written back at the end.
        out: list[str] = []
        out_starts: list[int] = starts if not jamo else []
        pos = 0
        for token in folded.split(" "):
            if pos:  # a space came before this token
                if cur == 1:
                    if prev == 2:
                        out.append(" ")
                        out_starts.append(space_at)
                    out.append(held)
                    out_starts.append(held_at)
                    prev, cur, space_at = 1, 0, chunk_starts[pos - 1]
                elif cur == 2:
                    prev, cur, space_at = 2, 0, chunk_starts[pos - 1]
            n = len(token)
            if n:
                if cur == 2:
                    out.append(token)
                    out_starts += chunk_starts[pos : pos + n]
                elif cur == 0 and n == 1:
                    cur, held, held_at = 1, token, chunk_starts[pos]
                else:
                    if prev:
                        out.append(" ")
                        out_starts.append(space_at)
                    if cur == 1:
                        out.append(held)
                        out_starts.append(held_at)
                    out.append(token)
                    out_starts += chunk_starts[pos : pos + n]
                    cur = 2
            pos += n + 1
        self._prev, self._cur, self._space_at = prev, cur, space_at
        self._held, self._held_at = held, held_at
        self.word_closed = prev == 2 and cur != 2
        if not jamo:
            self.held_from = held_at if cur == 1 else -1
            return "".join(out)
        # A certain space also ends the jamo run: compose it now, as the whole text would.
        text = self._compose_chunk("".join(out), out_starts, starts, wide, closed=self.word_closed)
        self.held_from = self._jamo_at[0] if self._jamo_at else (held_at if cur == 1 else -1)
        return text

    # ---- rule 3 --------------------------------------------------------------------------

    def _compose_chunk(
        self,
        text: str,
        text_starts: list[int],
        starts: list[int],
        wide: dict[int, int],
        *,
        closed: bool,
    ) -> str:
        """Compose the jamo of ``text`` (origins ``text_starts``) with those waiting.

        Appends the origins of the result to ``starts``; jamo that may still combine with
        what comes next stay waiting unless ``closed``.
        """
        res: list[str] = []
        for ch, at in zip(text, text_starts, strict=True):
            if JAMO_FIRST <= ch <= JAMO_LAST:
                self._jamo.append(ch)
                self._jamo_at.append(at)
                continue
            if self._jamo:
                self._compose_into(res, starts, wide, closed=True)
            res.append(ch)
            starts.append(at)
        if self._jamo:
            self._compose_into(res, starts, wide, closed=closed)
        return "".join(res)

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
