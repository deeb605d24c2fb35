"""Deterministic slot extractors: cities, dates, times, Korean phone numbers, numbers, names."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ahocorasick

from bot.forms.korean import KoreanAnalyzer, Token

CITIES_PATH = Path(__file__).resolve().parent.parent / "data" / "cities.json"

# Kiwi is cheap but not free; long messages are never a short answer or a follow-up anyway.
MAX_ANALYSED_CHARS = 300

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_HANGUL_OR_JAMO = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
_LATIN = re.compile(r"[A-Za-z]")


def has_hangul(text: str) -> bool:
    return _HANGUL_OR_JAMO.search(text) is not None


def has_latin(text: str) -> bool:
    return _LATIN.search(text) is not None


def _final(word: str) -> int:
    """The last syllable's final consonant index (0: none, 8: ㄹ), digits read in Korean."""
    if not word:
        return 0
    last = word[-1]
    if last.isdigit():
        # 영 일 이 삼 사 오 육 칠 팔 구: ㅇ ㄹ - ㅁ - - ㄱ ㄹ ㄹ -
        return (21, 8, 0, 16, 0, 0, 1, 8, 8, 0)[int(last)]
    code = ord(last) - 0xAC00
    return code % 28 if 0 <= code < 11172 else 0


def has_batchim(word: str) -> bool:
    """True when the last syllable of ``word`` ends in a consonant."""
    return _final(word) != 0


def josa(word: str, with_batchim: str, without: str) -> str:
    """``word`` followed by the particle form that fits it: josa("부산", "은", "는") → "부산은".

    For 으로/로, ㄹ counts as no batchim: josa("서울", "으로", "로") → "서울로".
    """
    final = _final(word)
    if with_batchim == "으로" and final == 8:
        final = 0
    return word + (with_batchim if final else without)


def _lower_same_length(text: str) -> str:
    # str.lower can change the length ("İ" → "i̇"); offsets must keep pointing into ``text``.
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


# ---- the message being analysed ------------------------------------------------------------


@dataclass(slots=True)
class Utterance:
    """One user message with what every extractor needs: language, the user's clock, Kiwi."""

    text: str
    lang: str
    now: datetime  # timezone-aware, in the user's timezone
    analyzer: KoreanAnalyzer | None = None
    _tokens: tuple[Token, ...] | None = field(default=None, repr=False)
    _lower: str | None = field(default=None, repr=False)
    said: str | None = None  # the message as written, when ``text`` has parts blanked out

    @property
    def original(self) -> str:
        """The message as the user wrote it (``text`` may have words blanked, see ``masked``)."""
        return self.said if self.said is not None else self.text

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def lower(self) -> str:
        if self._lower is None:
            self._lower = _lower_same_length(self.text)
        return self._lower

    def tokens(self) -> tuple[Token, ...]:
        """Kiwi's morphemes (empty for non-Korean or long text, or without an analyzer)."""
        if self._tokens is None:
            if (
                self.analyzer is None
                or len(self.text) > MAX_ANALYSED_CHARS
                or not has_hangul(self.text)
            ):
                self._tokens = ()
            else:
                self._tokens = self.analyzer.tokens(self.text)
        return self._tokens

    def derive(self, text: str) -> Utterance:
        """Another text (a tool argument, a free-text answer) in the same context."""
        return Utterance(text, self.lang, self.now, self.analyzer)

    def masked(self, spans: Iterable[tuple[int, int]]) -> Utterance:
        """The same message with ``spans`` blanked out (spaces, so offsets still hold), and
        without the morphemes inside them: what extractors read once "부산 말고" is set aside.
        Kiwi is not run again; ``original`` still gives the message as written."""
        chars = list(self.text)
        cuts = [(max(0, s), min(len(chars), e)) for s, e in spans if e > s]
        for start, end in cuts:
            chars[start:end] = " " * (end - start)
        tokens = tuple(
            t for t in self.tokens() if not any(t.start < e and s < t.end for s, e in cuts)
        )
        return Utterance(
            "".join(chars), self.lang, self.now, self.analyzer, tokens, None, self.original
        )


@dataclass(frozen=True, slots=True)
class Found:
    """A value an extractor recognised, and where in the text it was said."""

    value: Any
    start: int
    end: int


Extractor = Callable[[Utterance], "Found | None"]


def _first(found: Iterable[Found]) -> Found | None:
    best: Found | None = None
    for f in found:
        if best is None or (f.start, -(f.end - f.start)) < (best.start, -(best.end - best.start)):
            best = f
    return best


# ---- cues: questions, requests, cancel, yes / no -------------------------------------------

_CUE = re.compile(
    r"\?|어때|어떄|어떻|어떤지|알려|알랴|궁금|말해|보여|가르쳐|뭐|무엇|어느|언제|얼마|몇|"
    r"할까|될까|인가|나요|는지|ㄴ지|니\s*$|줘|주세요|주실|부탁|싶|해\s*줄|래\s*$|"
    r"\b(?:please|what|what's|whats|how|tell|show|check|give|is it|will it|can you|"
    r"could you|would you|need|want|any)\b",
    re.IGNORECASE,
)

_CANCEL = re.compile(
    r"^\s*(?:(?:아|앗|음|그냥|에이|oh|ok|okay|no)[\s,.]+)?"
    r"(?:/cancel(?:@\w+)?|/취소|취소|취소\s*(?:해|할래|하기|할게|합니다)\s*(?:줘|주세요|요)?|"
    r"그만|그만\s*(?:할래|할게|해|둘래|하기)\s*(?:요)?|안\s*할래(?:요)?|"
    r"cancel|cancel it|stop|quit|never\s*mind|forget it)\s*[.!~]*\s*$",
    re.IGNORECASE,
)

_YES = re.compile(
    r"^\s*(?:네|예|넵|넹|응|웅|ㅇㅇ|ㅇㅋ|좋아요?|좋습니다|맞아요?|맞습니다|확인|그래요?|오케이|"
    r"yes|yep|yeah|yup|y|ok|okay|sure|confirm|correct|right)(?=$|[\s,.!~])",
    re.IGNORECASE,
)
_NO = re.compile(
    r"^\s*(?:아니요?|아니오|아뇨|ㄴㄴ|노|틀려요?|no|nope|nah|n)(?=$|[\s,.!~])", re.IGNORECASE
)


def has_cue(text: str) -> bool:
    """A question or a request: the message asks the bot for something."""
    return _CUE.search(text) is not None


def is_cancel(text: str) -> bool:
    """The whole message asks to leave the running form (/cancel, 취소, cancel, ...)."""
    return _CANCEL.match(text) is not None


def yes_or_no(text: str) -> bool | None:
    """True for a yes, False for a no, None for anything else."""
    if _NO.match(text):
        return False
    if _YES.match(text):
        return True
    return None


# ---- cities ----------------------------------------------------------------------------------

_KO_REMAINDER = re.compile(
    r"^(?:특별시|광역시|특별자치시|특별자치도|시|군|도)?"
    r"(?:쪽|지역|근처|날씨|기온|일기예보|예보)?"
    r"(?:은|는|이|가|을|를|의|에|에서|에선|에는|엔|도|만|로|으로|으로는|로는|까지|부터|이랑|랑|"
    r"하고|과|와|이나|나|이요|은요|는요|이야|야|인데|이에요|예요|입니다|이고|고)?(?:요)?$"
)


@dataclass(frozen=True, slots=True)
class City:
    """A gazetteer entry: names in Korean and English, coordinates, country code."""

    id: str
    ko: str
    en: str
    lat: float
    lon: float
    country: str
    aliases: tuple[str, ...] = ()

    def to_value(self) -> dict[str, Any]:
        """The JSON slot value (self-contained, so a stored session needs no gazetteer)."""
        return {
            "id": self.id,
            "names": {"ko": self.ko, "en": self.en},
            "lat": self.lat,
            "lon": self.lon,
            "country": self.country,
        }


class CityGazetteer:
    """City names in Korean and English found in text with one Aho-Corasick pass."""

    def __init__(self, cities: Iterable[City]) -> None:
        self.cities: tuple[City, ...] = tuple(cities)
        self._by_name: dict[str, City] = {}
        self._by_id = {city.id: city for city in self.cities}
        # For ``near``: the spellings, and an index of them with up to two letters deleted.
        self._fuzzy: tuple[list[tuple[str, City]], dict[str, set[int]]] | None = None
        self._automaton = ahocorasick.Automaton()
        for city in self.cities:
            for name in (city.ko, city.en, *city.aliases):
                key = _lower_same_length(name.strip())
                if key and key not in self._by_name:
                    self._by_name[key] = city
                    self._automaton.add_word(key, key)
        if self._by_name:
            self._automaton.make_automaton()
        self._fuzzy_index()  # about 20 ms, at start-up rather than in the first turn

    @classmethod
    def load(cls, path: Path = CITIES_PATH) -> CityGazetteer:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            City(
                id=str(c["id"]),
                ko=str(c["ko"]),
                en=str(c["en"]),
                lat=float(c["lat"]),
                lon=float(c["lon"]),
                country=str(c["country"]),
                aliases=tuple(str(a) for a in c.get("aliases", ())),
            )
            for c in data["cities"]
        )

    def __len__(self) -> int:
        return len(self.cities)

    def korean_names(self) -> list[str]:
        """Every Korean spelling (for teaching Kiwi the names it splits wrongly)."""
        return [n for n in self._by_name if _HANGUL.search(n)]

    def lookup(self, name: str) -> City | None:
        """The city called exactly ``name`` (any language, any case, particles not allowed)."""
        return self._by_name.get(_lower_same_length(name.strip()))

    def find(self, utt: Utterance) -> list[Found]:
        """Every city named in ``utt`` as a standalone word, leftmost-longest, no overlaps."""
        if not self._by_name:
            return []
        lower = utt.lower
        hits: list[tuple[int, int, str]] = []
        for end_index, key in self._automaton.iter(lower):
            start = end_index - len(key) + 1
            if self._standalone(utt, start, end_index + 1, key):
                hits.append((start, end_index + 1, key))
        hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
        found: list[Found] = []
        taken = -1
        for start, end, key in hits:
            if start < taken:
                continue
            found.append(Found(self._by_name[key].to_value(), start, end))
            taken = end
        return found

    def first(self, utt: Utterance) -> Found | None:
        found = self.find(utt)
        return found[0] if found else None

    def near(self, word: str) -> City | None:
        """The one city whose name ``word`` misspells ("부싼" → 부산, "서을" → 서울, "Busna" →
        Busan), or None when no name is that close or two cities are equally close.

        Korean is compared letter by letter (jamo: "부싼" is one stroke from 부산 and two from
        부천), Latin case-insensitively; an edit is an insertion, a deletion, a substitution or
        two neighbours swapped. One edit is allowed in a word of up to 7 letters, two beyond.
        """
        key = _spelling(word.strip())
        hangul = _HANGUL.search(word) is not None
        if len(key) < 4 or (hangul and len(word.strip()) < 2):
            return None
        limit = 1 if len(key) <= 7 else 2
        spellings, index = self._fuzzy_index()
        # Two spellings within ``limit`` edits share a string with up to ``limit`` letters
        # deleted from each (symmetric deletion): only those few are compared in full.
        near = {i for variant in _deletions(key, limit) for i in index.get(variant, ())}
        best, cities = limit + 1, set()
        for i in near:
            name, city = spellings[i]
            distance = _edits(key, name, limit)
            if distance < best:
                best, cities = distance, {city.id}
            elif distance == best:
                cities.add(city.id)
        if best == 0 or best > limit or len(cities) != 1:
            return None
        return self._by_id[cities.pop()]

    def _fuzzy_index(self) -> tuple[list[tuple[str, City]], dict[str, set[int]]]:
        if self._fuzzy is None:
            spellings = [
                (_spelling(name), city)
                for name, city in self._by_name.items()
                if " " not in name and (_HANGUL.search(name) or name.isascii())
            ]
            index: dict[str, set[int]] = {}
            for i, (spelt, _city) in enumerate(spellings):
                for variant in _deletions(spelt, 2):
                    index.setdefault(variant, set()).add(i)
            self._fuzzy = (spellings, index)
        return self._fuzzy

    def _standalone(self, utt: Utterance, start: int, end: int, key: str) -> bool:
        text = utt.text
        before = text[start - 1] if start > 0 else " "
        if not _HANGUL.search(key):
            after = text[end] if end < len(text) else " "
            return not before.isalnum() and not after.isalnum()
        if _HANGUL.match(before):
            return False
        stop = end
        while stop < len(text) and _HANGUL.match(text[stop]):
            stop += 1
        if not _KO_REMAINDER.match(text[end:stop]):
            return False
        return _kiwi_agrees(utt.tokens(), start, end)


def _spelling(word: str) -> str:
    """``word`` lowercased, Hangul syllables spelt out in jamo (부싼 → 부싼)."""
    out: list[str] = []
    for ch in _lower_same_length(word):
        code = ord(ch) - 0xAC00
        if 0 <= code < 11172:
            out.append(chr(0x1100 + code // 588))
            out.append(chr(0x1161 + (code % 588) // 28))
            if code % 28:
                out.append(chr(0x11A7 + code % 28))
        else:
            out.append(ch)
    return "".join(out)


def _deletions(word: str, most: int) -> set[str]:
    """``word`` and every string made from it by deleting up to ``most`` letters."""
    found = {word}
    frontier = {word}
    for _ in range(most):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance of ``a`` and ``b``; ``limit + 1`` once it is over."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                value = min(value, before[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


def _kiwi_agrees(tokens: Sequence[Token], start: int, end: int) -> bool:
    """Kiwi must not read the name as part of a longer word ("고양이" is a cat, not 고양)."""
    if not tokens:
        return True
    begins = False
    for tok in tokens:
        if tok.start < start < tok.end:
            return False
        if tok.start == start:
            if tok.end > end and tok.nominal:
                return False
            begins = True
    return begins


_KO_PLACE_CONTEXT_SKIP = frozenset({"의", "은", "는", "에", "쪽", "지역", "근처"})
# Nouns said before "날씨" that are no place name ("요즘 날씨", "우리 동네 날씨").
_NOT_PLACES = frozenset(
    {"도시", "지역", "동네", "우리", "여기", "거기", "저기", "이곳", "그곳", "현지", "밖", "바깥"}
    | {"요즘", "주말", "이번", "다음", "주", "오늘", "내일", "모레", "아침", "저녁", "밤", "낮"}
    | {"지금", "현재", "내", "제", "좋은", "일기", "해외", "전국", "날", "그", "이", "저"}
)
_EN_STOP = frozenset(
    {
        "the",
        "a",
        "an",
        "my",
        "your",
        "our",
        "this",
        "that",
        "there",
        "here",
        "it",
        "today",
        "tomorrow",
        "now",
        "like",
        "city",
        "town",
        "outside",
    }
)


def place_candidate(utt: Utterance, context_words: Sequence[str]) -> Found | None:
    """A place name the gazetteer does not know, said right next to a context word.

    Korean: a proper noun (Kiwi NNP) just before the context word ("울진 날씨", "울진의 날씨").
    English: "weather in Reykjavik", "Reykjavik weather". The value is ``{"query": name}``,
    which a resolver (geocoding) turns into a place or rejects.
    """
    tokens = utt.tokens()
    if tokens:
        for i, tok in enumerate(tokens):
            if tok.form not in context_words:
                continue
            j = i - 1
            while j >= 0 and tokens[j].form in _KO_PLACE_CONTEXT_SKIP:
                j -= 1
            end_tok = j
            while j >= 0 and tokens[j].tag in ("NNP", "NNG") and tokens[j].form not in _NOT_PLACES:
                j -= 1
            if end_tok > j:
                start, end = tokens[j + 1].start, tokens[end_tok].end
                name = utt.text[start:end]
                if find_date(name, utt.today) is None and find_time(name) is None:
                    return Found({"query": name}, start, end)
        return None
    latin = [w for w in context_words if not has_hangul(w)]
    if not latin:
        return None
    words = "|".join(re.escape(w) for w in latin)
    word = r"[A-Za-z][\w'.-]*"
    after = r"(?=\s*(?:today|tonight|tomorrow|now|this|next|on|right|please|\?|!|\.|,|$))"
    patterns = (
        # "weather in reykjavik": any case after the preposition
        re.compile(
            rf"\b(?:{words})\b(?:\s+like)?\s+(?:in|for|at|of)\s+"
            rf"(?P<name>{word}(?:\s+{word}){{0,2}}?){after}",
            re.IGNORECASE,
        ),
        # "Reykjavik weather": only a capitalised name, or any word before "weather" would do
        re.compile(rf"(?P<name>[A-Z][\w'.-]*(?:\s+[A-Z][\w'.-]*){{0,2}})(?:'s)?\s+(?i:{words})\b"),
    )
    context = {w.lower() for w in latin}
    for pattern in patterns:
        for match in pattern.finditer(utt.text):
            name = match.group("name").strip(" .,'")
            first_word = name.split()[0].lower() if name else ""
            if not name or first_word in _EN_STOP or first_word in context:
                continue
            start = match.start("name")
            return Found({"query": name}, start, start + len(name))
    return None


_HANGUL_RUN = re.compile(r"[가-힣]+")
# Words around a short follow-up or answer that are no place ("그럼 인쳔은?", "아니 대졘").
_SHORT_LEADERS = frozenset(
    {"그럼", "그러면", "그리고", "근데", "아니", "아니요", "아뇨", "아", "음", "혹시", "또"}
)


def misspelt_city(
    gazetteer: CityGazetteer, utt: Utterance, context_words: Sequence[str]
) -> Found | None:
    """A Korean city name with a typo ("부싼 날씨", "서을은?", "그럼 인쳔은?"), looked for only
    where a city is expected: right before a context word ("날씨"), or as the whole of a short
    message (a bare answer, a follow-up). Only an unambiguous match (``CityGazetteer.near``),
    and never a word Kiwi knows for another ("부상 당했어요" is an injury, not 부산)."""
    analyzer = utt.analyzer
    if analyzer is None:
        return None  # without Kiwi a typo cannot be told from a word ("부상", "전부")
    text = utt.text
    words = list(_HANGUL_RUN.finditer(text))
    content = [w for w in words if w.group() not in _SHORT_LEADERS]
    if not content:
        return None
    if len(content) <= 2 and len(text.strip()) <= 20:
        candidates = content
    else:
        candidates = []
        for i, word in enumerate(words):
            if not word.group().startswith(tuple(context_words)):
                continue
            j = i - 1
            while j >= 0 and (
                words[j].group() in _NOT_PLACES
                or find_date(words[j].group(), utt.today) is not None
                or find_time(words[j].group()) is not None
            ):
                j -= 1
            if j >= 0:
                candidates.append(words[j])
    for word in candidates:
        for end in range(word.end(), word.start() + 1, -1):  # the longest stem first
            if not _KO_REMAINDER.match(text[end : word.end()]):
                continue
            stem = text[word.start() : end]
            city = gazetteer.near(stem)
            if city is None:
                continue
            if analyzer.known_word(word.group()) or analyzer.known_word(stem):
                break  # a word of its own ("통역이요", "구려"), not a misspelt name
            return Found(city.to_value(), word.start(), end)
    return None


# ---- dates -----------------------------------------------------------------------------------

_KO_WEEKDAYS = "월화수목금토일"
_EN_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EN_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_EN_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_KO_WEEK_SHIFT = {
    "이번": 0,
    "금": 0,
    "요번": 0,
    "다음": 1,
    "담": 1,
    "다다음": 2,
    "지난": -1,
    "저번": -1,
}
_EN_WEEK_SHIFT = {"next": 1, "last": -1}

DateRule = tuple[re.Pattern[str], Callable[[re.Match[str], date], "date | None"]]


def _shift(days: int) -> Callable[[re.Match[str], date], date | None]:
    return lambda _m, today: today + timedelta(days=days)


def _week_day(today: date, weeks: int, weekday: int) -> date:
    monday = today - timedelta(days=today.weekday())
    return monday + timedelta(days=7 * weeks + weekday)


def _coming(today: date, weekday: int) -> date:
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_day(today: date, month: int, day: int, year: int | None) -> date | None:
    if year is not None:
        return _safe_date(year, month, day)
    found = _safe_date(today.year, month, day)
    if found is not None and found < today:
        # "6월 10일" said on 13 June means next year's; validation decides if that is useful.
        return _safe_date(today.year + 1, month, day)
    return found


def _ko_week(m: re.Match[str], today: date) -> date | None:
    return _week_day(today, _KO_WEEK_SHIFT[m.group(1)], _KO_WEEKDAYS.index(m.group(2)))


def _ko_weekend(m: re.Match[str], today: date) -> date | None:
    shift = _KO_WEEK_SHIFT.get(m.group(1) or "이번", 0)
    saturday = _week_day(today, shift, 5)
    return max(saturday, today) if shift == 0 else saturday


def _ko_bare_weekday(m: re.Match[str], today: date) -> date | None:
    return _coming(today, _KO_WEEKDAYS.index(m.group(1)))


def _ko_month_day(m: re.Match[str], today: date) -> date | None:
    year = int(m.group(1)) if m.group(1) else None
    return _month_day(today, int(m.group(2)), int(m.group(3)), year)


def _ko_day_only(m: re.Match[str], today: date) -> date | None:
    day = int(m.group(1))
    found = _safe_date(today.year, today.month, day)
    if found is not None and found >= today:
        return found
    month = today.month % 12 + 1
    return _safe_date(today.year + (today.month == 12), month, day)


def _iso(m: re.Match[str], today: date) -> date | None:
    return _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def _slash(m: re.Match[str], today: date) -> date | None:
    return _month_day(today, int(m.group(1)), int(m.group(2)), None)


def _in_days(m: re.Match[str], today: date) -> date | None:
    raw = m.group(1).lower()
    count = int(raw) if raw.isdigit() else _EN_NUMBERS.get(raw)
    if count is None:
        return None
    unit = m.group(2).lower()
    return today + timedelta(days=count * (7 if unit.startswith(("w", "주")) else 1))


def _en_weekday(m: re.Match[str], today: date) -> date | None:
    which = (m.group(1) or "").lower()
    weekday = _EN_WEEKDAYS.index(m.group(2).lower()[:3])
    if which in _EN_WEEK_SHIFT:
        return _week_day(today, _EN_WEEK_SHIFT[which], weekday)
    return _coming(today, weekday)


def _en_weekend(m: re.Match[str], today: date) -> date | None:
    shift = 1 if (m.group(1) or "").lower() == "next" else 0
    saturday = _week_day(today, shift, 5)
    return max(saturday, today) if shift == 0 else saturday


def _en_month_first(m: re.Match[str], today: date) -> date | None:
    if m.group(1) == "may":
        return None  # "we may 2 ..." is a verb; the month is written "May"
    year = int(m.group(3)) if m.group(3) else None
    return _month_day(today, _EN_MONTHS.index(m.group(1).lower()[:3]) + 1, int(m.group(2)), year)


def _en_day_first(m: re.Match[str], today: date) -> date | None:
    year = int(m.group(3)) if m.group(3) else None
    return _month_day(today, _EN_MONTHS.index(m.group(2).lower()[:3]) + 1, int(m.group(1)), year)


_WD_KO = f"([{_KO_WEEKDAYS}])(?:요일|욜)"
# Full names only: "sun", "sat" and "wed" are ordinary words too.
_WD_EN = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTH_EN = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_I = re.IGNORECASE

DATE_RULES: tuple[DateRule, ...] = (
    (re.compile(r"(?:내일\s*모레|낼\s*모레|모레)"), _shift(2)),
    (re.compile(r"(?:오늘|금일)"), _shift(0)),
    (re.compile(r"(?:내일|낼|명일)"), _shift(1)),
    (re.compile(r"글피"), _shift(3)),
    (re.compile(r"어제"), _shift(-1)),
    (re.compile(r"(?:그저께|그제)"), _shift(-2)),
    (re.compile(r"일주일\s*(?:후|뒤)"), _shift(7)),
    (re.compile(r"(\d{1,2})\s*(일|주)\s*(?:후|뒤)"), _in_days),
    (re.compile(rf"(이번|요번|금|다음|담|다다음|지난|저번)\s*주\s*{_WD_KO}"), _ko_week),
    (re.compile(rf"(이번|다음|다다음|지난|저번)\s*{_WD_KO}"), _ko_week),
    (re.compile(r"(이번|다음|다다음)?\s*주말"), _ko_weekend),
    (re.compile(_WD_KO), _ko_bare_weekday),
    (re.compile(r"(?:(\d{4})\s*년\s*)?(\d{1,2})\s*월\s*(\d{1,2})\s*일"), _ko_month_day),
    (re.compile(r"(?<![\d월])(?<!월\s)(\d{1,2})\s*일(?!\s*(?:후|뒤|전|간|동안|째|만에|치))"),
     _ko_day_only),
    (re.compile(r"\b(\d{4})[-./](\d{1,2})[-./](\d{1,2})\b"), _iso),
    (re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?![\d/])"), _slash),
    (re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b", _I), _shift(2)),
    (re.compile(r"\b(?:today|tonight)\b", _I), _shift(0)),
    (re.compile(r"\b(?:tomorrow|tmrw?|tomorow)\b", _I), _shift(1)),
    (re.compile(r"\byesterday\b", _I), _shift(-1)),
    (re.compile(r"\bin\s+(\d{1,2}|an?|one|two|three|four|five|six|seven|eight|nine|ten)\s+"
                r"(days?|weeks?)\b", _I), _in_days),
    (re.compile(rf"\b(?:(this|next|last|coming|on)\s+)?{_WD_EN}\b", _I), _en_weekday),
    (re.compile(r"\b(this|next)?\s*weekend\b", _I), _en_weekend),
    (re.compile(rf"\b{_MONTH_EN}\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", _I),
     _en_month_first),
    (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_EN}(?:,?\s+(\d{{4}}))?\b", _I),
     _en_day_first),
)  # fmt: skip


def find_date(text: str, today: date) -> Found | None:
    """The date ``text`` names, relative to ``today``; the value is an ISO date string.

    Weeks run Monday to Sunday. "이번 주 금요일" is this week's Friday (possibly past);
    "다음 주 금요일" and "next Friday" are next week's; a bare "금요일", "Friday",
    "this Friday" or "on Friday" is the coming one (today if today is Friday).
    """
    candidates: list[Found] = []
    for pattern, rule in DATE_RULES:
        for match in pattern.finditer(text):
            day = rule(match, today)
            if day is not None:
                candidates.append(Found(day.isoformat(), match.start(), match.end()))
                break
    return _first(candidates)


def extract_date(utt: Utterance) -> Found | None:
    return find_date(utt.text, utt.today)


def parse_date(text: str, today: date) -> str | None:
    """An ISO date from free text or a tool argument ("2025-06-14", "내일", "next Monday")."""
    found = find_date(text, today)
    return str(found.value) if found is not None else None


# ---- times -----------------------------------------------------------------------------------

_KO_HOURS = {
    "한": 1,
    "두": 2,
    "세": 3,
    "네": 4,
    "다섯": 5,
    "여섯": 6,
    "일곱": 7,
    "여덟": 8,
    "아홉": 9,
    "열": 10,
    "열한": 11,
    "열두": 12,
}
_AM = ("오전", "아침", "새벽", "am", "a.m.", "a.m", "am.")
_PM = ("오후", "낮", "저녁", "밤", "pm", "p.m.", "p.m", "pm.")

_KO_TIME = re.compile(
    r"(?:(오전|오후|아침|낮|저녁|밤|새벽)\s*)?"
    r"(?:(?<!\d)(\d{1,2})|(?<![가-힣])(열한|열두|한|두|세|네|다섯|여섯|일곱|여덟|아홉|열))"
    r"\s*시(?!\s*간|작|즌|청|내|계|험|장|켜|키)(?:\s*(\d{1,2})\s*분|\s*(반))?"
)
_CLOCK = re.compile(
    r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])(?:\s*(am|pm|a\.m\.|p\.m\.))?", _I
)
_EN_TIME = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)(?=$|[\s,.!?])", _I)
_EN_AT = re.compile(r"\bat\s+(\d{1,2})(?::(\d{2}))?\b(?!\s*(?:days?|%|am|pm|a\.m|p\.m))", _I)
_NOON = re.compile(r"정오|\bnoon\b|\bmidday\b", _I)
_MIDNIGHT = re.compile(r"자정|\bmidnight\b", _I)


def _clock_hour(hour: int, period: str | None) -> int | None:
    period = (period or "").lower()
    if hour > 24:
        return None
    if period in _AM:
        return 0 if hour == 12 else hour
    if period in _PM:
        return hour if hour >= 12 else hour + 12
    # No period: people book in the daytime, so "3시" is 15:00 and "10시" is 10:00.
    if 1 <= hour <= 7:
        return hour + 12
    return hour % 24


def find_time(text: str) -> Found | None:
    """A time of day in ``text``; the value is "HH:MM" (24-hour)."""
    candidates: list[Found] = []
    for m in _KO_TIME.finditer(text):
        hour = int(m.group(2)) if m.group(2) else _KO_HOURS[m.group(3)]
        clock = _clock_hour(hour, m.group(1))
        minute = 30 if m.group(5) else int(m.group(4) or 0)
        if clock is not None and minute < 60:
            candidates.append(Found(f"{clock:02d}:{minute:02d}", m.start(), m.end()))
    for m in _CLOCK.finditer(text):
        clock = _clock_hour(int(m.group(1)), m.group(3)) if m.group(3) else int(m.group(1))
        if clock is not None:
            candidates.append(Found(f"{clock:02d}:{m.group(2)}", m.start(), m.end()))
    for m in _EN_TIME.finditer(text):
        clock = _clock_hour(int(m.group(1)), m.group(3))
        minute = int(m.group(2) or 0)
        if clock is not None and minute < 60:
            candidates.append(Found(f"{clock:02d}:{minute:02d}", m.start(), m.end()))
    for m in _EN_AT.finditer(text):
        clock = _clock_hour(int(m.group(1)), None)
        minute = int(m.group(2) or 0)
        if clock is not None and minute < 60:
            candidates.append(Found(f"{clock:02d}:{minute:02d}", m.start(), m.end()))
    for m in _NOON.finditer(text):
        candidates.append(Found("12:00", m.start(), m.end()))
    for m in _MIDNIGHT.finditer(text):
        candidates.append(Found("00:00", m.start(), m.end()))
    return _first(candidates)


def extract_time(utt: Utterance) -> Found | None:
    return find_time(utt.text)


# ---- Korean phone numbers --------------------------------------------------------------------

_PHONE_RUN = re.compile(r"(?<![\d+])(\+?\d[\d\-.\s()]{5,18}\d)(?!\d)")
_AREA_CODES = frozenset(
    {"031", "032", "033", "041", "042", "043", "044", "051", "052", "053", "054", "055"}
    | {"061", "062", "063", "064"}
)


def _phone_digits(raw: str) -> str:
    digits = re.sub(r"\D", "", raw)
    if raw.strip().startswith("+"):
        if not digits.startswith("82"):
            return "+" + digits  # a foreign number: kept as said, rejected by validation
        digits = "0" + digits[2:].lstrip("0")
    return digits


def find_phone(text: str) -> Found | None:
    """Something said as a phone number, as written (``format_korean_phone`` validates it)."""
    for m in _PHONE_RUN.finditer(text):
        raw = m.group(1).strip()
        digits = _phone_digits(raw)
        if digits.startswith(("0", "+")) or (len(digits) == 8 and digits[:2] in ("15", "16", "18")):
            # Dates ("2025-06-14") and times never start with 0 once their separators go.
            if len(re.sub(r"\D", "", digits)) >= 7:
                # As said: a rejection then quotes the user's own writing.
                return Found(raw, m.start(1), m.start(1) + len(raw))
    return None


def extract_phone(utt: Utterance) -> Found | None:
    return find_phone(utt.text)


def format_korean_phone(value: str) -> str | None:
    """ "01012345678" → "010-1234-5678"; None when it is not a Korean phone number."""
    d = _phone_digits(value)
    if not d.isdigit():
        return None
    n = len(d)
    if d.startswith("010") and n == 11:
        return f"{d[:3]}-{d[3:7]}-{d[7:]}"
    if d[:3] in ("011", "016", "017", "018", "019") and n in (10, 11):
        return f"{d[:3]}-{d[3:-4]}-{d[-4:]}"
    if d.startswith("02") and n in (9, 10):
        return f"{d[:2]}-{d[2:-4]}-{d[-4:]}"
    if d[:3] in _AREA_CODES and n in (10, 11):
        return f"{d[:3]}-{d[3:-4]}-{d[-4:]}"
    if d.startswith("070") and n == 11:
        return f"{d[:3]}-{d[3:7]}-{d[7:]}"
    if d.startswith("080") and n == 10:
        return f"{d[:3]}-{d[3:6]}-{d[6:]}"
    if d[:3] == "050" and d[3] in "2345678" and n in (11, 12):
        return f"{d[:4]}-{d[4:-4]}-{d[-4:]}"
    if n == 8 and d[:2] in ("15", "16", "18"):
        return f"{d[:4]}-{d[4:]}"
    return None


# ---- numbers ---------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\d])")
_SINO_DIGITS = {"일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "칠": 7, "팔": 8, "구": 9}
_SINO_UNITS = {"십": 10, "백": 100, "천": 1000}
_SINO = re.compile(
    r"(?<![가-힣])([일이삼사오육칠팔구십백천만]{1,8})(?=\s*(?:개|명|번|살|세|원|층|시간|분|장|권|잔|인분))"
)
_NATIVE = {
    "하나": 1,
    "한": 1,
    "둘": 2,
    "두": 2,
    "셋": 3,
    "세": 3,
    "넷": 4,
    "네": 4,
    "다섯": 5,
    "여섯": 6,
    "일곱": 7,
    "여덟": 8,
    "아홉": 9,
    "열": 10,
    "스물": 20,
    "스무": 20,
    "서른": 30,
}
_NATIVE_RE = re.compile(
    r"(?<![가-힣])(열|스물|스무|서른)?\s?(하나|한|둘|두|셋|세|넷|네|다섯|여섯|일곱|여덟|아홉)?"
    r"(?=\s*(?:개|명|번|살|시간|잔|마리|사람|분|장|권))"
)
_EN_WORDS = {
    **{w: n for w, n in _EN_NUMBERS.items() if w not in ("a", "an")},
    "zero": 0,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
}
_EN_WORD_RE = re.compile(r"\b(" + "|".join(_EN_WORDS) + r")\b", _I)


def _sino_value(word: str) -> int | None:
    total, section, digit = 0, 0, 0
    for ch in word:
        if ch in _SINO_DIGITS:
            digit = _SINO_DIGITS[ch]
        elif ch in _SINO_UNITS:
            section += (digit or 1) * _SINO_UNITS[ch]
            digit = 0
        elif ch == "만":
            total += ((section + digit) or 1) * 10_000
            section, digit = 0, 0
        else:
            return None
    value = total + section + digit
    return value or None


def find_number(text: str) -> Found | None:
    """A number in digits, Sino-Korean ("삼십 명"), native Korean ("세 개") or English words."""
    candidates: list[Found] = []
    for m in _NUMBER.finditer(text):
        whole = int(m.group(1).replace(",", ""))
        value: int | float = float(f"{whole}.{m.group(2)}") if m.group(2) else whole
        candidates.append(Found(value, m.start(), m.end()))
    for m in _SINO.finditer(text):
        sino = _sino_value(m.group(1))
        if sino is not None:
            candidates.append(Found(sino, m.start(), m.end()))
    for m in _NATIVE_RE.finditer(text):
        if m.group(1) or m.group(2):
            native = _NATIVE.get(m.group(1) or "", 0) + _NATIVE.get(m.group(2) or "", 0)
            candidates.append(Found(native, m.start(), m.end()))
    for m in _EN_WORD_RE.finditer(text):
        candidates.append(Found(_EN_WORDS[m.group(1).lower()], m.start(), m.end()))
    return _first(candidates)


def extract_number(utt: Utterance) -> Found | None:
    return find_number(utt.text)


# ---- person names ----------------------------------------------------------------------------

_KO_NAME = re.compile(
    r"(?:제\s*이름은|이름은|이름:)\s*"
    r"(?P<name>[가-힣]{2,6}?|[A-Za-z][A-Za-z'.-]*(?:\s+[A-Za-z][A-Za-z'.-]*){0,3}?)"
    r"\s*(?=이에요|예요|이고|입니다|이요|이야|야|라고|요|$|[\s,.!])"
)
# After "저는"/"전" only a name followed by a copula counts: "저는 내일이 좋아요" is no name.
_KO_NAME_COPULA = re.compile(
    r"(?<![가-힣])(?:저는|나는|전)\s*(?P<name>[가-힣]{2,6}?)(?=이에요|예요|이고|입니다|이야|라고)"
)
_EN_NAME = re.compile(
    r"\b(?i:my name is|my name's|call me|name:)\s+"
    r"(?P<name>[A-Za-z][A-Za-z'.-]*(?:\s+[A-Za-z][A-Za-z'.-]*){0,3}?)\s*(?=$|[,.!]|\s+and\b)"
)
# "I'm free tomorrow" is no name: after "I'm" only capitalised words count.
_EN_NAME_CAPS = re.compile(
    r"\b(?i:i am|i'm|this is)\s+(?P<name>[A-Z][a-z'.-]*(?:\s+[A-Z][a-z'.-]*){0,3})(?=$|[\s,.!])"
)
_KO_NAME_TAIL = re.compile(
    r"(?:이에요|예요|이고요|이고|입니다|이요|이야|라고\s*합니다|라고\s*해요|요)$"
)
_NOT_NAMES = frozenset(
    {"i", "i'm", "im", "my", "me", "is", "the", "a", "what", "why", "how", "who", "don't"}
    | {"dont", "no", "yes", "not", "sure", "it", "you", "your", "we", "please", "can"}
)
_NAME_OK = re.compile(r"^(?:[가-힣]{2,10}|[A-Za-z][A-Za-z'.-]*(?:\s+[A-Za-z][A-Za-z'.-]*){0,4})$")


def find_person_name(text: str) -> Found | None:
    """A name introduced as one: "제 이름은 홍길동입니다", "My name is Jane Doe"."""
    for pattern in (_KO_NAME, _KO_NAME_COPULA, _EN_NAME, _EN_NAME_CAPS):
        m = pattern.search(text)
        if m and m.group("name"):
            return Found(m.group("name").strip(), m.start("name"), m.end("name"))
    return None


def extract_person_name(utt: Utterance) -> Found | None:
    return find_person_name(utt.text)


def clean_person_name(text: str) -> str | None:
    """A bare answer to "what is your name?": "홍길동이에요" → "홍길동"; None if not a name."""
    found = find_person_name(text)
    name = str(found.value) if found is not None else text.strip(" .!~")
    if _HANGUL.search(name):
        stripped = _KO_NAME_TAIL.sub("", name).strip()
        # "이요"/"요" endings can only be split off if a name of two syllables remains.
        name = stripped if len(stripped) >= 2 else name
    if not _NAME_OK.match(name) or any(w.lower() in _NOT_NAMES for w in name.split()):
        return None
    return name
