"""Recombine runs of Hangul compatibility jamo into syllables ("ㅆㅣㅂㅏㄹ" -> "씨발")."""

from __future__ import annotations

from collections.abc import Sequence

_INITIAL = {c: i for i, c in enumerate("ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ")}
_MEDIAL = {chr(0x314F + i): i for i in range(21)}
_FINAL = {c: i for i, c in enumerate("ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ", 1)}
_VOWEL_PAIR = {
    ("ㅗ", "ㅏ"): "ㅘ", ("ㅗ", "ㅐ"): "ㅙ", ("ㅗ", "ㅣ"): "ㅚ", ("ㅜ", "ㅓ"): "ㅝ",
    ("ㅜ", "ㅔ"): "ㅞ", ("ㅜ", "ㅣ"): "ㅟ", ("ㅡ", "ㅣ"): "ㅢ",
}  # fmt: skip
_FINAL_PAIR = {
    ("ㄱ", "ㅅ"): "ㄳ", ("ㄴ", "ㅈ"): "ㄵ", ("ㄴ", "ㅎ"): "ㄶ", ("ㄹ", "ㄱ"): "ㄺ",
    ("ㄹ", "ㅁ"): "ㄻ", ("ㄹ", "ㅂ"): "ㄼ", ("ㄹ", "ㅅ"): "ㄽ", ("ㄹ", "ㅌ"): "ㄾ",
    ("ㄹ", "ㅍ"): "ㄿ", ("ㄹ", "ㅎ"): "ㅀ", ("ㅂ", "ㅅ"): "ㅄ",
}  # fmt: skip


def compose_at(run: Sequence[str], i: int, closed: bool) -> tuple[str, int] | None:
    """Compose the piece of ``run`` that starts at ``i``: (character, jamo consumed).

    Greedy, like a two-set keyboard: initial + vowel (+ second vowel) (+ final (+ second
    final)); a consonant followed by a vowel starts the next syllable instead of closing
    this one. Returns ``None`` when the answer depends on jamo not seen yet and the run is
    not ``closed``; the stream masker then waits, the whole-text path never does.
    """
    n = len(run)
    first = run[i]
    initial = _INITIAL.get(first)
    if initial is None:
        return first, 1
    if i + 1 >= n:
        return (first, 1) if closed else None
    vowel = run[i + 1]
    if vowel not in _MEDIAL:
        return first, 1
    j = i + 2
    if j >= n:
        return (_syllable(initial, vowel, 0), 2) if closed else None
    pair = _VOWEL_PAIR.get((vowel, run[j]))
    if pair is not None:
        vowel = pair
        j += 1
        if j >= n:
            return (_syllable(initial, vowel, 0), j - i) if closed else None
    final = _FINAL.get(run[j])
    if final is None:
        return _syllable(initial, vowel, 0), j - i
    if j + 1 >= n:
        return (_syllable(initial, vowel, final), j + 1 - i) if closed else None
    if run[j + 1] in _MEDIAL:
        return _syllable(initial, vowel, 0), j - i
    pair = _FINAL_PAIR.get((run[j], run[j + 1]))
    if pair is None:
        return _syllable(initial, vowel, final), j + 1 - i
    if j + 2 >= n:
        if not closed:
            return None
        return _syllable(initial, vowel, _FINAL[pair]), j + 2 - i
    if run[j + 2] in _MEDIAL:
        return _syllable(initial, vowel, final), j + 1 - i
    return _syllable(initial, vowel, _FINAL[pair]), j + 2 - i


def _syllable(initial: int, vowel: str, final: int) -> str:
    return chr(0xAC00 + (initial * 21 + _MEDIAL[vowel]) * 28 + final)


def compose(run: str) -> list[tuple[str, int]]:
    """Compose a whole run: the pieces and how many jamo each consumed."""
    pieces: list[tuple[str, int]] = []
    i = 0
    while i < len(run):
        piece = compose_at(run, i, True)
        assert piece is not None  # a closed run always decides
        pieces.append(piece)
        i += piece[1]
    return pieces
