"""WordFilter: allow-list spans, overlaps, empty lists, skipped entries, a 100,000-entry list."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bot.moderation import Match, WordFilter


def test_a_banned_span_inside_an_allowed_span_is_not_a_match() -> None:
    flt = WordFilter.from_words(["cunt", "시발"], ["scunthorpe", "시발점"])
    assert not flt.check("Scunthorpe").blocked
    assert not flt.check("S.c.u.n.t.h.o.r.p.e").blocked  # allowed words normalise too
    assert flt.check("cunt").blocked
    # Overlapping but not inside: the ban stands.
    assert flt.check("시발시발점").matches == (Match(0, 2, 1),)


def test_an_entry_both_banned_and_allowed_never_fires() -> None:
    flt = WordFilter.from_words(["shit"], ["shit"])
    assert not flt.check("shit").blocked


def test_overlapping_matches_are_reported_and_merged_for_masking() -> None:
    flt = WordFilter.from_words(["abc", "bcd", "cd"])
    verdict = flt.check("xabcdx")
    assert {(m.start, m.end, m.entry_id) for m in verdict.matches} == {
        (1, 4, 0),
        (2, 5, 1),
        (3, 5, 2),
    }
    assert verdict.masked == "x****x"


def test_entry_ids_are_positions_for_from_words() -> None:
    flt = WordFilter.from_words(["zero", "one", "two"])
    assert [m.entry_id for m in flt.check("two zero").matches] == [2, 0]


def test_duplicate_entries_keep_the_first_id() -> None:
    flt = WordFilter.from_words(["fuck", "FUCK", "f.u.c.k"])
    assert [m.entry_id for m in flt.check("fuck").matches] == [0]
    assert flt.lists.banned_count == 3


def test_empty_lists_pass_everything(tmp_path: Path) -> None:
    for flt in (
        WordFilter.from_words([]),
        WordFilter.from_words([], ["시발점"]),
        WordFilter.from_words(["...", "   "]),  # entries that normalise to nothing
    ):
        verdict = flt.check("시발 fuck")
        assert (verdict.blocked, verdict.masked, verdict.matches) == (False, "시발 fuck", ())
        masker = flt.masker()
        assert masker.feed("시") + masker.feed("발") + masker.flush() == "시발"
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here yet\n", encoding="utf-8")
    assert not WordFilter.from_files(empty, empty).check("시발").blocked


def test_entries_that_normalise_to_nothing_are_skipped_and_counted() -> None:
    flt = WordFilter.from_words(["시발", "!!!", "x" * 5000], ["..."])
    assert flt.lists.skipped == (("banned", 1), ("banned", 2), ("allowed", 0))
    assert flt.check("시발").blocked


def _synthetic_list(count: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    syllables = [chr(c) for c in range(0xAC00, 0xD7A4, 7)]
    words: set[str] = set()
    while len(words) < count:
        if len(words) % 2:
            words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 5))))
        else:
            words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12)))
    return sorted(words)


@pytest.fixture(scope="module")
def big() -> tuple[list[str], WordFilter]:
    words = _synthetic_list(100_000)
    return words, WordFilter.from_words(words, ["zzzzzzzzzzzzzzz"])


def test_a_list_of_100000_entries_builds_and_matches(big: tuple[list[str], WordFilter]) -> None:
    words, flt = big
    assert flt.lists.banned_count == 100_000
    korean = next(w for w in words if not w.isascii() and len(w) >= 3)
    english = next(w for w in words if w.isascii())
    spaced = " ".join(korean)  # spaced out, one syllable at a time
    text = f"{english.upper()}!! 그리고 {spaced}."
    verdict = flt.check(text)
    assert verdict.blocked
    hits = {(text[m.start : m.end], words[m.entry_id]) for m in verdict.matches}
    assert (english.upper(), english) in hits
    assert (spaced, korean) in hits
    assert verdict.masked.startswith("*" * len(english) + "!!")


def test_a_list_of_100000_entries_streams(big: tuple[list[str], WordFilter]) -> None:
    words, flt = big
    text = f"앞 {words[1]} 뒤 {words[4]}, {words[7]}"
    masker = flt.masker()
    out = "".join(masker.feed(text[i : i + 3]) for i in range(0, len(text), 3))
    assert out + masker.flush() == flt.mask(text)
