"""One Aho-Corasick automaton over the normalised banned and allowed entries."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ahocorasick

from bot.moderation.normalize import normalize_word

# Keys are stored as UTF-8 read as Latin-1 (one char per byte). pyahocorasick scans a
# node's children linearly, so with Hangul as 11,172 distinct root letters every step off
# the root cost a scan of ~1,300 children (the whole syllable block with --full-hangul);
# with bytes no node has more than 256 and Hangul nodes at most 64. UTF-8 keeps matches
# aligned to characters: a key starts with a lead byte and ends with a complete character.

# Per-key info packed in one int: entry id, key length in normalised chars, two flags.
ALLOWED = 1  # an allowed entry
EXCUSABLE = 2  # a banned entry that occurs inside some allowed entry, so a hit may be excused
LEN_SHIFT = 2
ID_SHIFT = 22
LEN_MASK = (1 << (ID_SHIFT - LEN_SHIFT)) - 1
MAX_ENTRY_CHARS = 1_000  # longer lines are not words; they are skipped (and counted)

# bytes.translate table: 1 for bytes that start a UTF-8 character, 0 for continuation bytes.
LEAD_BYTES = bytes(0 if 0x80 <= b <= 0xBF else 1 for b in range(256))


def encode_key(text: str) -> tuple[bytes, str]:
    """Normalised text as UTF-8 bytes and as the Latin-1 string the automaton reads."""
    raw = text.encode("utf-8")
    return raw, raw.decode("latin-1")


@dataclass(frozen=True, slots=True)
class CompiledLists:
    """The automaton (``None`` when nothing is banned) and what its values point at."""

    automaton: Any
    info: array[int]  # slot -> entry_id << ID_SHIFT | length << LEN_SHIFT | allowed
    banned_count: int
    allowed_count: int
    skipped: tuple[tuple[str, int], ...]  # ("banned" | "allowed", entry id) not loaded
    spaced: bool = False  # some entry contains a space, so a match may span one
    longest: int = 0  # bytes in the longest key: no live match can be longer


def compile_lists(
    banned: Iterable[tuple[int, str]], allowed: Iterable[tuple[int, str]]
) -> CompiledLists:
    """Normalise every entry and build the automaton; entries are (entry id, text)."""
    auto = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    info: array[int] = array("q")
    skipped: list[tuple[str, int]] = []
    spaced = False
    longest = 0
    banned_count = 0
    for entry_id, word in banned:
        key = normalize_word(word)
        if not key or len(key) > MAX_ENTRY_CHARS:
            skipped.append(("banned", entry_id))
            continue
        _, enc = encode_key(key)
        spaced = spaced or " " in key
        longest = max(longest, len(enc))
        # Two lines with the same normalised form: the first keeps its id.
        if auto.get(enc, -1) == -1:
            auto.add_word(enc, len(info))
            info.append(entry_id << ID_SHIFT | len(key) << LEN_SHIFT)
        banned_count += 1
    allowed_count = 0
    allowed_keys: list[str] = []
    for entry_id, word in allowed:
        key = normalize_word(word)
        if not key or len(key) > MAX_ENTRY_CHARS:
            skipped.append(("allowed", entry_id))
            continue
        _, enc = encode_key(key)
        spaced = spaced or " " in key
        longest = max(longest, len(enc))
        allowed_keys.append(enc)
        slot = auto.get(enc, -1)
        if slot == -1:
            auto.add_word(enc, len(info))
            info.append(entry_id << ID_SHIFT | len(key) << LEN_SHIFT | ALLOWED)
        else:
            # Banned and allowed at once: the span is allowed, so the ban can never fire.
            info[slot] |= ALLOWED
        allowed_count += 1
    if banned_count == 0:
        # Nothing can be blocked; skip scanning altogether.
        return CompiledLists(None, info, 0, allowed_count, tuple(skipped), spaced, longest)
    auto.make_automaton()
    # A banned hit can only be excused by an allowed word that contains it; most banned
    # entries occur in none, so a streamed hit of theirs is settled at once.
    for key in allowed_keys:
        for _end, inner in auto.iter(key):
            if not info[inner] & ALLOWED:
                info[inner] |= EXCUSABLE
    return CompiledLists(auto, info, banned_count, allowed_count, tuple(skipped), spaced, longest)
