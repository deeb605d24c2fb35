"""Composition of spelled-out Hangul jamo into syllables."""

from __future__ import annotations

import pytest

from bot.moderation.jamo import compose, compose_at


@pytest.mark.parametrize(
    ("jamo", "syllables"),
    [
        ("ㅆㅣㅂㅏㄹ", "씨발"),
        ("ㄱㅏㅂㅅ", "값"),  # compound final
        ("ㄱㅏㅂㅅㅣ", "갑시"),  # ...unless a vowel claims its second half
        ("ㄷㅏㄹㄱㅇㅣ", "닭이"),
        ("ㅇㅗㅏ", "와"),  # compound vowel
        ("ㅅㅂ", "ㅅㅂ"),  # consonants alone stay jamo
        ("ㅋㅋㅋ", "ㅋㅋㅋ"),
        ("ㅏㅅㅏ", "ㅏ사"),
        ("ㄸㅏㄸ", "따ㄸ"),  # ㄸ cannot close a syllable
        ("ㅂㅏㅇ", "방"),
    ],
)
def test_compose(jamo: str, syllables: str) -> None:
    pieces = compose(jamo)
    assert "".join(piece for piece, _ in pieces) == syllables
    assert sum(used for _, used in pieces) == len(jamo)


def test_an_open_run_waits_for_what_decides_the_piece() -> None:
    assert compose_at("ㅅ", 0, closed=False) is None  # a vowel may follow
    assert compose_at("ㅅㅣ", 0, closed=False) is None  # a final may follow
    assert compose_at("ㅅㅣㅂ", 0, closed=False) is None  # ㅂ may open the next syllable
    assert compose_at("ㅅㅣㅂㅏ", 0, closed=False) == ("시", 2)
    assert compose_at("ㅅㅂ", 0, closed=False) == ("ㅅ", 1)
    assert compose_at("ㅅㅣㅂ", 0, closed=True) == ("십", 3)
