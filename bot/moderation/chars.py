"""Per-character folding: NFKC, case folding, look-alikes, diacritics, jamo; context-free."""

from __future__ import annotations

import unicodedata

# Markers in the one-char-per-input string that ``str.translate`` produces: a character
# that folds to nothing (punctuation, digits, symbols, marks, format characters) and one
# that folds to several characters (ß -> ss, ligatures), which takes the slow path.
SKIP = "\x00"
EXPANDS = "\x01"

# Hangul compatibility jamo that take part in syllable composition (ㄱ..ㅎ, ㅏ..ㅣ).
JAMO_FIRST = "\u3131"
JAMO_LAST = "\u3163"

# Invisible Hangul fillers are letters to Unicode but are used to pad words apart.
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")

# Letters from other scripts that render like Latin letters. Upper-case forms are mapped
# before case folding because folding loses the distinction (Greek Η looks like H, η like n).
_LOOKALIKES: dict[int, str] = str.maketrans(
    {
        # Cyrillic
        "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p",
        "С": "c", "Т": "t", "У": "y", "Х": "x", "Ѕ": "s", "І": "i", "Ј": "j", "Ԛ": "q",
        "Ԝ": "w", "Ӏ": "l", "Һ": "h",
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "ӏ": "l", "һ": "h", "ь": "b",
        # Greek
        "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m",
        "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
        "α": "a", "β": "b", "γ": "y", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k",
        "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "ς": "s", "τ": "t", "υ": "u", "χ": "x",
        "ω": "w",
        # Latin letters NFKC leaves alone: dotless i, strokes, small capitals, IPA
        "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŀ": "l", "ɑ": "a", "ɡ": "g",
        "ɩ": "i", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h",
        "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
        "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    }
)  # fmt: skip

# Scripts whose accents are stripped (é -> e, ё -> е). Not applied elsewhere: NFD would
# split Hangul syllables into jamo and strip the voicing marks of Japanese kana.
_STRIP_RANGES = ((0x00C0, 0x024F), (0x0370, 0x04FF), (0x1E00, 0x1FFF))

# Conjoining jamo (what NFKC turns compatibility jamo into) back to compatibility jamo,
# the form people type and lists are written in.
_INITIALS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_FINALS = "ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"
_CONJOINING: dict[int, str] = {
    **{0x1100 + i: c for i, c in enumerate(_INITIALS)},
    **{0x1161 + i: chr(0x314F + i) for i in range(21)},
    **{0x11A8 + i: c for i, c in enumerate(_FINALS)},
}

# Distinct characters seen are cached; past this many the rest are folded on every call
# so that a stream of rare characters cannot grow memory without bound.
_CACHE_LIMIT = 200_000


def _strip_accents(ch: str) -> str:
    code = ord(ch)
    if any(lo <= code <= hi for lo, hi in _STRIP_RANGES):
        return "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    return ch


def fold_char(ch: str) -> str:
    """What one input character contributes to the normalised text: "", " " or letters."""
    if ch.isspace():
        return " "
    out: list[str] = []
    for nfkc in unicodedata.normalize("NFKC", ch):
        # NFKC turns some symbols into space + combining mark (´ -> " ́"); those are not
        # word breaks the writer typed, so they are skipped rather than made into spaces.
        if nfkc.isspace():
            continue
        for folded in nfkc.translate(_LOOKALIKES).casefold():
            for base in _strip_accents(folded):
                letter = base.translate(_LOOKALIKES)
                letter = _CONJOINING.get(ord(letter), letter)
                if unicodedata.category(letter)[0] == "L" and letter not in _FILLERS:
                    out.append(letter)
    return "".join(out)


class _OneCharTable(dict[int, str]):
    """``str.translate`` table filled on first sight: every character maps to one character."""

    def __missing__(self, code: int) -> str:
        folded = fold_char(chr(code))
        value = folded if len(folded) == 1 else (SKIP if not folded else EXPANDS)
        if len(self) < _CACHE_LIMIT:
            self[code] = value
        return value


class _FoldCache(dict[str, str]):
    """The full folding of characters that expand (or of any character, for the slow path)."""

    def __missing__(self, ch: str) -> str:
        folded = fold_char(ch)
        if len(self) < _CACHE_LIMIT:
            self[ch] = folded
        return folded


ONE_CHAR: dict[int, str] = _OneCharTable()
FOLD: dict[str, str] = _FoldCache()


def fold_slow(text: str, base: int = 0) -> tuple[str, list[int]]:
    """Fold ``text`` one character at a time; returns the folded text and each char's origin."""
    parts: list[str] = []
    starts: list[int] = []
    for i, ch in enumerate(text, base):
        folded = FOLD[ch]
        if folded:
            parts.append(folded)
            starts.extend([i] * len(folded))
    return "".join(parts), starts
