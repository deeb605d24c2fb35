"""Hypothesis strategies: texts full of obfuscated and innocent words, and ways to split them."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import strategies as st

# Whole pieces: listed words, obfuscations of them, allowed words, innocent look-alikes.
PIECES = [
    "시발", "씨발", "시.발", "시1발", "시 발", "ㅅㅂ", "ㅆ ㅣ ㅂ ㅏ ㄹ", "ㅆㅣㅂㅏㄹ", "개 새 끼",
    "병~신", "지랄하네", "존나", "fuck", "f.u.c.k", "f u c k", "ｆｕｃｋ", "fuсk", "FUCK",
    "f\u200bu\u200bc\u200bk", "fucking", "motherfucker", "shit", "asshole", "시발점", "시바견",
    "임시방편", "피시방", "Scunthorpe", "다시 발표할게요", "son of a bitch", "서울 날씨",
    "classic grass", "보지 마세요", "Straße", "ﬁne",
]  # fmt: skip
# Single characters that drive the rules: syllables, jamo, separators, letters that fold.
CHARS = [
    *"시발점바견씨개새끼다표병신ㅅㅂㅆㅣㅏㄹㅗㅐㄱㄴㅈㅎ fuckFUCKshitab .,1~_-\u200b\n\tßﬁ",
    *("с", "ｆ", "😀", "\u0301", "\u3164", "\u1109", "\u1173", "\u11af"),
]

texts = st.lists(
    st.one_of(st.sampled_from(PIECES), st.sampled_from(CHARS), st.text(max_size=3)),
    max_size=12,
).map("".join)


@st.composite
def splits(draw: st.DrawFn, text: str) -> list[str]:
    """``text`` cut at arbitrary points (possibly none, possibly every character)."""
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 1))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]
