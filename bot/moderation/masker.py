"""StreamMasker: masks a streamed answer chunk by chunk, holding back only what may match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.moderation.automaton import (
    ALLOWED,
    ID_SHIFT,
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
        lo = max(s_start, pos)
        hi = min(s_end, end)
        parts.append(segment[pos - base : lo - base])
        if fixed is None:
            parts.append(mask_char * (hi - lo))
        elif s_start >= base:
            parts.append(fixed)
        pos = hi
    if pos == base:
        return segment
    parts.append(segment[pos - base :])
    return "".join(parts)


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
        "_lists", "_live", "_live_from", "_map_from",
        "_mask_char", "_match", "_norm", "_pending", "_search", "_spaced", "_spans", "_starts",
        "_undecided", "_wide",
    )  # fmt: skip

    def __init__(self, lists: CompiledLists, mask_char: str, fixed_mask: str | None) -> None:
        self._lists = lists  # pinned: a reload swaps the filter, not this masker's lists
        self._auto = lists.automaton
        self._match: Any = lists.automaton.match if lists.automaton is not None else None
        self._info = lists.info
        self._spaced = lists.spaced
        self._mask_char = mask_char
        self._fixed = fixed_mask
        self._norm = StreamNormalizer()
        self._pending = ""  # original text not yet released
        self._base = 0  # original index of _pending[0]
        self._fed = 0  # original characters fed so far
        self._search: Any = None  # the continued Aho-Corasick search
        self._bytes = 0  # bytes given to the search so far
        self._count = 0  # normalised characters given to the search so far
        # Normalised characters from index _live_from on (the text _live) may still begin
        # a match.
        self._live_from = 0
        self._live = ""
        # Original start of the normalised characters from index _map_from on, and the
        # original end of those that span several original characters (keyed by start).
        self._map_from = 0
        self._starts: list[int] = []
        self._wide: dict[int, int] = {}
        self._undecided: list[tuple[int, int, int]] = []  # banned hits an allowed word may cover
        self._allowed: list[tuple[int, int]] = []  # allowed hits, kept while any is undecided
        self._spans: list[list[int]] = []  # original spans to mask, merged; the last is kept

    def feed(self, chunk: str) -> str:
        """Add a chunk of the answer; return the text that can be shown now."""
        if not chunk:
            return ""
        base = self._fed
        self._fed = fed = base + len(chunk)
        if self._auto is None:
            self._base = fed
            return chunk
        self._pending += chunk
        norm = self._norm
        text, starts, wide = norm.feed(chunk, base)
        if text:
            if wide:
                self._wide.update(wide)
            self._scan(text, starts)
        if norm.word_closed and self._live and not self._spaced:
            # A space is certain to follow and no entry holds one: nothing live can grow.
            self._live_from = self._count
            self._live = ""
        if self._undecided:
            self._decide(self._live_from)
        elif self._allowed:
            # An allowed hit only covers banned hits found no later than itself.
            self._allowed = []
        upto = self._starts[self._live_from - self._map_from] if self._live else fed
        held = norm.held_from
        if 0 <= held < upto:
            upto = held
        # Trim the map in batches; everything before _live_from is settled.
        if self._live_from - self._map_from > 256:
            del self._starts[: self._live_from - self._map_from]
            self._map_from = self._live_from
            if self._wide:
                self._wide = {k: v for k, v in self._wide.items() if k >= self._base}
        # Release: inline for the common case of nothing to mask.
        base = self._base
        if upto <= base:
            return ""
        pending = self._pending
        segment = pending[: upto - base]
        self._pending = pending[upto - base :]
        self._base = upto
        spans = self._spans
        if not spans or spans[-1][1] <= base:
            return segment
        return self._mask_released(segment, base, upto)

    def flush(self) -> str:
        """End of the answer: return everything not yet shown, masked."""
        if self._auto is None:
            return ""
        text, starts, wide = self._norm.flush()
        if text:
            if wide:
                self._wide.update(wide)
            self._scan(text, starts)
        if self._undecided:
            self._decide(self._count)
        self._live = ""
        base = self._base
        segment = self._pending
        self._pending = ""
        self._base = self._fed
        return self._mask_released(segment, base, self._fed)

    def _scan(self, text: str, starts: Sequence[int]) -> None:
        raw = text.encode("utf-8")
        count0 = self._count
        self._count = count = count0 + len(text)
        self._starts += starts
        search = self._search
        if search is None:
            search = self._search = self._auto.iter(raw.decode("latin-1"))
        else:
            search.set(raw.decode("latin-1"))
        byte0 = self._bytes
        for end, slot in search:
            value = self._info[slot]
            rel = end - byte0 + 1
            # Hits are rare: find the character position by decoding, only for them.
            char_end = count0 + (len(raw[:rel].decode("utf-8")) if len(raw) > len(text) else rel)
            length = value >> LEN_SHIFT & LEN_MASK
            if value & ALLOWED:
                self._allowed.append((char_end - length, char_end))
            else:
                self._undecided.append((char_end - length, char_end, value >> ID_SHIFT))
        self._bytes = byte0 + len(raw)
        # The live window: drop characters from its front until what is left is a prefix
        # of some entry; what is left is the depth of the automaton's state.
        live = self._live + text
        drop = 0
        if not self._spaced and " " in text:
            # No entry holds a space, so nothing up to the last space can begin a match.
            drop = live.rfind(" ") + 1
        match = self._match
        n = len(live)
        while drop < n and not match(live[drop:].encode("utf-8").decode("latin-1")):
            drop += 1
        self._live = live[drop:]
        self._live_from = count - n + drop

    def _decide(self, cut: int) -> None:
        """Settle banned hits starting before ``cut``: no allowed word can cover them later."""
        settled = [hit for hit in self._undecided if hit[0] < cut]
        if not settled:
            return
        self._undecided = [hit for hit in self._undecided if hit[0] >= cut]
        settled.sort()
        allowed = self._allowed
        spans = self._spans
        starts = self._starts
        wide = self._wide
        offset = self._map_from
        for start, end, _entry in settled:
            if allowed and any(a <= start and end <= b for a, b in allowed):
                continue
            o_start = starts[start - offset]
            last = starts[end - 1 - offset]
            o_end = wide.get(last, last + 1) if wide else last + 1
            if spans and o_start <= spans[-1][1]:
                if o_end > spans[-1][1]:
                    spans[-1][1] = o_end
            else:
                spans.append([o_start, o_end])
        self._allowed = [span for span in allowed if span[1] > cut] if self._undecided else []

    def _mask_released(self, segment: str, base: int, upto: int) -> str:
        spans = self._spans
        out = apply_mask(segment, base, spans, self._mask_char, self._fixed)
        # Keep the last span even when fully shown: a match touching it extends it.
        while len(spans) > 1 and spans[0][1] < upto:
            del spans[0]
        if self._wide:
            self._wide = {k: v for k, v in self._wide.items() if k >= upto}
        return out
