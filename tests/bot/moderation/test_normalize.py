"""Normalisation rules, the map back to original positions, and the streaming normaliser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.moderation import normalize
from bot.moderation.chars import fold_char
from bot.moderation.normalize import StreamNormalizer, normalize_word
from tests.bot.moderation.strategies import splits, texts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ｆｕｃｋ", "fuck"),  # full-width (NFKC)
        ("What The FUCK", "what the fuck"),  # case folding
        ("Straße", "strasse"),  # folding may lengthen
        ("fuсk", "fuck"),  # Cyrillic es
        ("ΒΑΝ", "ban"),  # Greek capitals
        ("fúçk", "fuck"),  # accents
        ("f\u200bu\u200cc\u2060k\u00ad", "fuck"),  # zero-width and soft hyphen
        ("시.발", "시발"),
        ("시1발", "시발"),
        ("병~신", "병신"),
        ("f.u.c.k", "fuck"),
        ("f_u-c*k", "fuck"),
        ("시 발", "시발"),
        ("f u c k", "fuck"),
        ("f  .  u c\tk", "fuck"),
        ("개 새 끼", "개새끼"),
        ("다시 발표할게요", "다시 발표할게요"),  # two ordinary words stay apart
        ("나 다시 발 표", "나 다시 발표"),  # only neighbouring one-letter tokens join
        ("  hello   world  ", "hello world"),
        ("ㅅㅂ", "ㅅㅂ"),
        ("ㅆ ㅣ ㅂ ㅏ ㄹ", "씨발"),
        ("ㅆㅣㅂㅏㄹ", "씨발"),
        ("\u1109\u1173\u11af", "슬"),  # conjoining jamo (decomposed Hangul) recombine
        ("ㅅ\u3164ㅂ", "ㅅㅂ"),  # the invisible Hangul filler is dropped
        ("🤬f🤬u🤬c🤬k🤬", "fuck"),
        ("", ""),
        (" .,!? ", ""),
    ],
)
def test_rules(text: str, expected: str) -> None:
    assert normalize(text).text == expected


@pytest.mark.parametrize(
    ("char", "folded"),
    [(" ", " "), ("\n", " "), ("\u3000", " "), (".", ""), ("7", ""), ("ß", "ss"), ("ㄱ", "ㄱ")],
)
def test_fold_char(char: str, folded: str) -> None:
    assert fold_char(char) == folded


def test_the_map_points_back_at_the_original_characters() -> None:
    text = "What the F.U.C.K, ㅆ ㅣ ㅂ ㅏ ㄹ!"
    norm = normalize(text)
    assert norm.text == "what the fuck 씨발"
    pieces = [text[norm.starts[k] : norm.end(k)] for k in range(len(norm.text))]
    assert pieces[9:13] == ["F", "U", "C", "K"]
    assert pieces[14:] == ["ㅆ ㅣ", "ㅂ ㅏ ㄹ"]


def test_normalize_word_agrees_with_normalize() -> None:
    for word in ["시발", "f u c k", "ㅆㅣㅂㅏㄹ", "Straße", "  ", "ab-cd", "ｆｕｃｋ"]:
        assert normalize_word(word) == normalize(word).text


def _stream(chunks: list[str]) -> tuple[str, list[int], list[int]]:
    """Text, starts and ends from feeding ``chunks`` to a StreamNormalizer."""
    norm = StreamNormalizer()
    text = ""
    starts: list[int] = []
    wide: dict[int, int] = {}
    base = 0
    for chunk in [*chunks, None]:
        if chunk is None:
            piece, piece_starts, piece_wide = norm.flush()
        else:
            piece, piece_starts, piece_wide = norm.feed(chunk, base)
            base += len(chunk)
        text += piece
        starts += piece_starts
        wide.update(piece_wide or {})
    return text, starts, [wide.get(start, start + 1) for start in starts]


def _whole(text: str) -> tuple[str, list[int], list[int]]:
    norm = normalize(text)
    return norm.text, norm.starts, [norm.end(k) for k in range(len(norm.text))]


def test_streaming_holds_a_lone_letter_until_the_next_character() -> None:
    norm = StreamNormalizer()
    assert norm.feed("다시 ", 0)[0] == "다시"
    assert norm.feed("발", 3)[0] == ""  # "발" may be the first letter of a spaced-out word
    assert norm.held_from == 3
    assert norm.feed("표", 4)[0] == " 발표"  # no: it starts a longer word
    assert norm.held_from == -1


@settings(max_examples=1500, deadline=None)
@given(st.data(), texts)
def test_streaming_normalisation_equals_whole_text(data: st.DataObject, text: str) -> None:
    assert _stream(data.draw(splits(text))) == _whole(text)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_the_map_is_ordered_and_in_range(text: str) -> None:
    norm = normalize(text)
    assert len(norm.starts) == len(norm.text)
    assert norm.starts == sorted(norm.starts)
    for k in range(len(norm.text)):
        assert 0 <= norm.starts[k] < norm.end(k) <= len(text)
    assert not norm.text.startswith(" ") and not norm.text.endswith(" ")
    assert "  " not in norm.text


def test_the_plain_shortcut_only_takes_characters_that_fold_to_themselves() -> None:
    # StreamNormalizer.fold skips folding for chunks of Hangul syllables and a-z.
    from bot.moderation.chars import ONE_CHAR

    plain = [chr(c) for c in range(0xAC00, 0xD7A4)] + [chr(c) for c in range(ord("a"), 123)]
    assert "".join(plain).translate(ONE_CHAR) == "".join(plain)


def test_a_lone_letter_after_a_word_closes_that_word() -> None:
    norm = StreamNormalizer()
    assert norm.feed("안녕 하", 0)[0] == "안녕"
    assert norm.word_closed  # the space is certain; "하" may still join what follows
    assert norm.held_from == 3
    assert norm.feed("세요", 4)[0] == " 하세요"
    assert not norm.word_closed
