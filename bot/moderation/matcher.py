"""WordFilter: the verdict on a whole text (input policy) and masking of banned words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bot.moderation.automaton import (
    ALLOWED,
    ID_SHIFT,
    LEN_MASK,
    LEN_SHIFT,
    CompiledLists,
    compile_lists,
)
from bot.moderation.lists import read_word_list
from bot.moderation.masker import StreamMasker, apply_mask
from bot.moderation.normalize import normalize


class Match(NamedTuple):
    """One banned entry found: ``text[start:end]`` in the original text, and which entry."""

    start: int
    end: int
    entry_id: int  # line number in the list file, or index for ``from_words``


@dataclass(frozen=True, slots=True)
class Verdict:
    """The filter's answer: blocked when any banned entry matched outside allowed words."""

    blocked: bool
    masked: str
    matches: tuple[Match, ...]


class WordFilter:
    """Banned and allowed words compiled into one automaton; immutable, so thread-safe."""

    def __init__(
        self, lists: CompiledLists, *, mask_char: str = "*", fixed_mask: str | None = None
    ) -> None:
        if len(mask_char) != 1:
            raise ValueError("mask_char must be exactly one character")
        self.lists = lists
        self.mask_char = mask_char
        self.fixed_mask = fixed_mask

    @classmethod
    def from_words(
        cls,
        banned: Iterable[str],
        allowed: Iterable[str] = (),
        *,
        mask_char: str = "*",
        fixed_mask: str | None = None,
    ) -> WordFilter:
        """Entry ids are the 0-based positions in ``banned``."""
        lists = compile_lists(enumerate(banned), enumerate(allowed))
        return cls(lists, mask_char=mask_char, fixed_mask=fixed_mask)

    @classmethod
    def from_files(
        cls,
        banned_path: Path,
        allowed_path: Path,
        *,
        mask_char: str = "*",
        fixed_mask: str | None = None,
    ) -> WordFilter:
        """Entry ids are line numbers. Raises ``OSError`` or ``WordListError``."""
        lists = compile_lists(read_word_list(banned_path), read_word_list(allowed_path))
        return cls(lists, mask_char=mask_char, fixed_mask=fixed_mask)

    def check(self, text: str) -> Verdict:
        """Normalise, scan, drop matches inside allowed words, mask."""
        auto = self.lists.automaton
        if auto is None or not text:
            return Verdict(False, text, ())
        norm = normalize(text)
        if not norm.text:
            return Verdict(False, text, ())
        raw = norm.utf8 or norm.text.encode("utf-8")
        enc = raw.decode("latin-1")
        info = self.lists.info
        banned: list[tuple[int, int, int]] = []
        allowed: list[tuple[int, int]] = []
        if len(raw) == len(norm.text):
            for end, slot in auto.iter(enc):
                value = info[slot]
                length = value >> LEN_SHIFT & LEN_MASK
                if value & ALLOWED:
                    allowed.append((end + 1 - length, end + 1))
                else:
                    banned.append((end + 1 - length, end + 1, value >> ID_SHIFT))
        else:
            # Byte offset -> character count, decoding only the bytes between one hit's
            # end and the next (hits come in order of their end).
            decoded_to = 0
            chars = 0
            for end, slot in auto.iter(enc):
                if end >= decoded_to:
                    chars += len(raw[decoded_to : end + 1].decode("utf-8"))
                    decoded_to = end + 1
                value = info[slot]
                length = value >> LEN_SHIFT & LEN_MASK
                if value & ALLOWED:
                    allowed.append((chars - length, chars))
                else:
                    banned.append((chars - length, chars, value >> ID_SHIFT))
        if allowed and banned:
            banned = [
                hit for hit in banned if not any(a <= hit[0] and hit[1] <= b for a, b in allowed)
            ]
        if not banned:
            return Verdict(False, text, ())
        banned.sort()
        starts = norm.starts
        wide = norm.wide_ends
        matches: list[Match] = []
        spans: list[list[int]] = []
        for start, end, entry_id in banned:
            o_start = starts[start]
            o_end = wide.get(end - 1, starts[end - 1] + 1) if wide else starts[end - 1] + 1
            matches.append(Match(o_start, o_end, entry_id))
            # Overlapping or touching spans become one, so a fixed mask appears once.
            if spans and o_start <= spans[-1][1]:
                if o_end > spans[-1][1]:
                    spans[-1][1] = o_end
            else:
                spans.append([o_start, o_end])
        masked = apply_mask(text, 0, spans, self.mask_char, self.fixed_mask)
        return Verdict(True, masked, tuple(matches))

    def mask(self, text: str) -> str:
        """``text`` with every banned span masked."""
        return self.check(text).masked

    def masker(self) -> StreamMasker:
        """A masker for one streamed answer; it keeps this filter's automaton to the end."""
        return StreamMasker(self.lists, self.mask_char, self.fixed_mask)
