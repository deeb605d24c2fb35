"""StreamMasker: masks a streamed answer chunk by chunk, holding back only what may match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.moderation.automaton import (
    ALLOWED,
    EXCUSABLE,
    LEN_MASK,
    LEN_SHIFT,
    CompiledLists,
)
from bot.moderation.normalize import StreamNormalizer


def apply_mask(
    segment: str, base: int, spans: Sequence[Sequence[int]], mask_char: str, fixed: str | None
) -> str:
    """Mask ``segment`` (original text from index ``base``) with sorted original ``spans``.

    A span may begin before the segment (its fixed mask was already written) or run past
    its end (the rest is masked with the next segment).
    """
    end = base + len(segment)
    parts: list[str] = []
    pos = base
    for s_start, s_end in spans:
        if s_end <= pos or s_start >= end:
            continue
        if s_start > pos:
            parts.append(segment[pos - base : s_start - base])
            lo = s_start
        else:
            lo = pos
        hi = s_end if s_end < end else end
        if fixed is None:
            parts.append(mask_char * (hi - lo))
        elif s_start >= base:
            parts.append(fixed)
        pos = hi
    if pos == base:
        return segment
    if pos < end:
        parts.append(segment[pos - base :])
    return "".join(parts)


def _clip(live: str, live_from: int, limit: int) -> tuple[str, int]:
    """The last ``limit`` bytes of ``live`` (UTF-8 read as Latin-1), from a character start."""
    cut = len(live) - limit
    while cut < len(live) and 0x80 <= ord(live[cut]) < 0xC0:  # inside a character: skip it
        cut += 1
    dropped = live[:cut].encode("latin-1").decode("utf-8")
    return live[cut:], live_from + len(dropped)


def _forget_before(wide: dict[int, int], pos: int) -> None:
    """Drop the entries of ``wide`` (shared with the normaliser) for origins before ``pos``."""
    for key in [key for key in wide if key < pos]:
        del wide[key]


# Length of a UTF-8 sequence by its lead byte (only lead bytes are ever looked up).
_UTF8_LENGTH = bytes(1 if b < 0x80 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4 for b in range(256))


class StreamMasker:
    """Feed the answer's chunks; each call returns what is safe to show now.

    The Aho-Corasick search carries its state across chunks. A character is released once
    no match can still include it: it lies before the longest suffix of the normalised
    text that is a prefix of some entry (banned or allowed: an allowed word still growing
    may yet excuse a banned one), and the normaliser is not holding it back. One masker
    per answer; not thread-safe. The output of all feeds plus ``flush`` equals
    ``WordFilter.mask`` of the whole text.
    """

    __slots__ = (
        "_allowed", "_auto", "_base", "_bytes", "_count", "_fed", "_fixed", "_info",
        "_lists", "_live", "_live_from", "_longest", "_map_from", "_mask_char", "_masked_to",
        "_match", "_norm", "_pending", "_search", "_spaced", "_spans", "_starts",
        "_undecided", "_wide",
    )  # fmt: skip

    def __init__(self, lists: CompiledLists, mask_char: str, fixed_mask: str | None) -> None:
        self._lists = lists  # pinned: a reload swaps the filter, not this masker's lists
        self._auto = lists.automaton
        self._match: Any = lists.automaton.match if lists.automaton is not None else None
        self._info = lists.info
        self._spaced = lists.spaced
        self._longest = lists.longest
        self._mask_char = mask_char
        self._fixed = fixed_mask
        self._pending = ""  # original text not yet released
        self._base = 0  # original index of _pending[0]
        self._fed = 0  # original characters fed so far
        # The continued Aho-Corasick search (fed with ``set``).
        self._search: Any = lists.automaton.iter("") if lists.automaton is not None else None
        self._bytes = 0  # bytes given to the search so far
        self._count = 0  # normalised characters given to the search so far
        # Normalised characters from index _live_from on may still begin a match; _live is
        # their UTF-8 read as Latin-1.
        self._live_from = 0
        self._live = ""
        # Original start of the normalised characters from index _map_from on, and the
        # original end of those that span several original characters (keyed by start).
        self._map_from = 0
        self._starts: list[int] = []
        self._wide: dict[int, int] = {}
        self._norm = StreamNormalizer(self._starts, self._wide)  # writes into the map above
        self._undecided: list[tuple[int, int]] = []  # banned hits an allowed word may cover
        self._allowed: list[tuple[int, int]] = []  # allowed hits, kept while any is undecided
        self._spans: list[list[int]] = []  # original spans to mask, merged; the last is kept
        self._masked_to = 0  # the end of the last span (0 if none), for a quick test

    def feed(self, chunk: str) -> str:
        """Add a chunk of the answer; return the text that can be shown now."""
        if not chunk:
            return ""
        base = self._fed
        self._fed = fed = base + len(chunk)
        if self._auto is None:
            self._base = fed
            return chunk
        norm = self._norm
        text = norm.fold(chunk, base)
        if text:
            # The search (as _scan, inline on this hot path). ASCII reads the same as
            # its UTF-8 (isascii is a flag test): no need to encode it.
            enc = text if text.isascii() else text.encode("utf-8").decode("latin-1")
            count0 = self._count
            self._count = count = count0 + len(text)
            search = self._search
            search.set(enc)
            byte0 = self._bytes
            self._bytes = byte0 + len(enc)
            for end, slot in search:
                self._hit(end - byte0 + 1, slot, enc, len(text), count0)
            if norm.word_closed and not self._spaced:
                # A space is certain to follow and no entry holds one: nothing live can grow.
                self._live = live = ""
                self._live_from = live_from = count
            else:
                # The live window, kept as the automaton reads it (UTF-8 as Latin-1): drop
                # characters from its front until what is left is a prefix of some entry;
                # what is left is the depth of the automaton's state.
                if not self._spaced and (space := text.rfind(" ")) >= 0:
                    # No entry holds a space: nothing up to the last one can begin a match.
                    live = enc[enc.rfind(" ") + 1 :]
                    live_from = count0 + space + 1
                else:
                    live = self._live + enc
                    live_from = self._live_from
                if len(live) > self._longest:
                    # A long run with no space (a pasted blob): no key is longer than this,
                    # which keeps the walk below short whatever the chunk.
                    live, live_from = _clip(live, live_from, self._longest)
                match = self._match
                if live and not match(live):
                    step = _UTF8_LENGTH
                    while True:
                        # Step over one character: its lead byte tells its length.
                        live = live[step[ord(live[0])] :]
                        live_from += 1
                        if match(live):  # True for "" too: nothing is live
                            break
                self._live = live
                self._live_from = live_from
        else:
            live_from = self._live_from
            live = self._live
            if norm.word_closed and live and not self._spaced:
                self._live = live = ""
                self._live_from = live_from = self._count
        if self._undecided:
            self._decide(live_from)
        elif self._allowed:
            # An allowed hit only covers banned hits found no later than itself.
            self._allowed = []
        settled = live_from - self._map_from  # index of live_from in the map
        upto = self._starts[settled] if live else fed
        held = norm.held_from
        if 0 <= held < upto:
            upto = held
        # Trim the map in batches; everything before live_from is settled.
        if settled > 256:
            del self._starts[:settled]
            self._map_from = live_from
            if self._wide:
                _forget_before(self._wide, self._base)
        # Release: inline for the common case of nothing to mask.
        base = self._base
        if upto <= base:
            self._pending += chunk
            return ""
        # Concatenating "" and slicing a whole string return it as is: no copies when
        # nothing was pending or everything goes out.
        pending = self._pending + chunk
        segment = pending[: upto - base]
        self._pending = pending[upto - base :]
        self._base = upto
        if self._masked_to <= base:
            return segment
        spans = self._spans
        if self._fixed is None and (len(spans) == 1 or spans[-2][1] <= base):
            # Only the last span reaches into the segment (the usual case): cut it out
            # directly. The others are shown already and can no longer grow.
            if len(spans) > 1:
                del spans[:-1]
            s_start, s_end = spans[0]
            if s_start >= upto:
                return segment
            lo = s_start - base if s_start > base else 0
            hi = s_end - base if s_end < upto else upto - base
            return segment[:lo] + self._mask_char * (hi - lo) + segment[hi:]
        return self._mask_released(segment, base, upto)

    def flush(self) -> str:
        """End of the answer: return everything not yet shown, masked."""
        if self._auto is None:
            return ""
        text = self._norm.fold_flush()
        if text:
            self._scan(text)
        if self._undecided:
            self._decide(self._count)
        self._live = ""
        base = self._base
        segment = self._pending
        self._pending = ""
        self._base = self._fed
        return self._mask_released(segment, base, self._fed)

    def _scan(self, text: str) -> None:
        """Search ``text`` (normalised, continuing the stream; its origins already mapped)."""
        enc = text.encode("utf-8").decode("latin-1")
        count0 = self._count
        self._count = count0 + len(text)
        search = self._search
        search.set(enc)
        byte0 = self._bytes
        self._bytes = byte0 + len(enc)
        for end, slot in search:
            self._hit(end - byte0 + 1, slot, enc, len(text), count0)

    def _hit(self, rel: int, slot: int, enc: str, chars: int, count0: int) -> None:
        """A hit ending ``rel`` bytes into ``enc`` (``chars`` characters from ``count0``)."""
        value = self._info[slot]
        # Hits are rare: find the character position by decoding (``enc`` is UTF-8 read
        # as Latin-1), only for them.
        if len(enc) > chars:
            rel = len(enc[:rel].encode("latin-1").decode("utf-8"))
        char_end = count0 + rel
        start = char_end - (value >> LEN_SHIFT & LEN_MASK)
        if value & ALLOWED:
            self._allowed.append((start, char_end))
        elif value & EXCUSABLE:
            self._undecided.append((start, char_end))
        else:
            self._settle(start, char_end)

    def _decide(self, cut: int) -> None:
        """Settle banned hits starting before ``cut``: no allowed word can cover them later."""
        # Only hits of entries some allowed word contains wait here; most are settled at once.
        undecided = self._undecided
        allowed = self._allowed
        settled = [hit for hit in undecided if hit[0] < cut]
        if not settled:
            return
        self._undecided = [hit for hit in undecided if hit[0] >= cut]
        settled.sort()
        for start, end in settled:
            if not (allowed and any(a <= start and end <= b for a, b in allowed)):
                self._settle(start, end)
        self._allowed = [span for span in allowed if span[1] > cut] if self._undecided else []

    def _settle(self, start: int, end: int) -> None:
        """Mask normalised characters ``start`` to ``end``: their original span, merged."""
        offset = self._map_from
        o_start = self._starts[start - offset]
        last = self._starts[end - 1 - offset]
        o_end = self._wide.get(last, last + 1) if self._wide else last + 1
        spans = self._spans
        if not spans or o_start > spans[-1][1]:
            spans.append([o_start, o_end])
        elif o_start >= spans[-1][0]:
            # Overlapping or touching spans become one, so a fixed mask appears once.
            if o_end > spans[-1][1]:
                spans[-1][1] = o_end
        else:
            # Settled out of order (a long hit around shorter ones, or a hit an allowed
            # word might have excused): insert and merge; the list holds a few spans.
            spans.append([o_start, o_end])
            spans.sort()
            merged = [spans[0]]
            for span in spans[1:]:
                if span[0] <= merged[-1][1]:
                    if span[1] > merged[-1][1]:
                        merged[-1][1] = span[1]
                else:
                    merged.append(span)
            spans[:] = merged
        self._masked_to = spans[-1][1]

    def _mask_released(self, segment: str, base: int, upto: int) -> str:
        spans = self._spans
        out = apply_mask(segment, base, spans, self._mask_char, self._fixed)
        # Keep the last span even when fully shown: a match touching it extends it.
        while len(spans) > 1 and spans[0][1] < upto:
            del spans[0]
        if self._wide:
            _forget_before(self._wide, upto)
        return out
