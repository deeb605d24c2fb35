"""Topics of a chat turn: which subjects of a fixed list (``python``, ``travel``, ``running``,
...) a user's message names, and which an answer's Markdown headings name.

A gazetteer (bot/data/topics.json) lists each topic's surface forms in Korean and English,
misspellings and transliterations included ("파이썬", "파이선", "python", "Python3" → python),
and the names of libraries or products that clearly imply the topic ("pandas" → python and
data_analysis). One Aho-Corasick pass finds every form in the text; a form counts only as a
word of its own (Latin on word boundaries, Korean standalone or followed by particles and
common suffixes: "파이썬으로", "여행지", never the "러닝" of "러닝메이트"), and the leftmost,
then longest, form wins, so "머신러닝" is machine learning, not running.

Deterministic on purpose: the suggestions feature reads every message a user sends, so this
must cost well under a millisecond per message and never wait for the model; the same message
always gives the same topics, which keeps a user's interest profile explainable and lets the
labelled sets (tests/data/topics.*.jsonl) pin what it finds. Kiwi (``KoreanAnalyzer``), when
given, reads the word a Korean form is glued into: it rejects a form Kiwi reads as part of a
longer noun ("운동가" is an activist, not exercise) and admits a form at the end of a compound
whose first part is a noun ("일본여행"); without it the rules alone decide, and a form glued
to the syllable before it is never trusted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick

from bot.forms.korean import KoreanAnalyzer, Token

TOPICS_PATH = Path(__file__).resolve().parent.parent / "data" / "topics.json"

# Kiwi reads at most this many characters of a word on either side of a form.
_WINDOW = 24

# What ``_fold`` turns into a space: hyphens, so "machine-learning" is "machine learning", and
# every kind of white space, so forms of two words match across a line break or a tab.
_FOLD = str.maketrans(dict.fromkeys("-\u2010\u2011\t\n\r\f\v\u00a0\u3000", " "))

# After a Latin form: a possessive ("Python's") or a version ("python3", "c++17", "3.11").
_LATIN_TAIL = re.compile(r"(?:['’]s|\d+(?:\.\d+)*)?")

# Nouns that follow a Korean form in one word and keep its meaning: "파이썬공부", "요리책",
# "여행자", "운동중". Never "회사" (주식회사) or "계" (전세계).
_KO_NOUNS = (
    "공부|개발자|개발|강의|강좌|독학|입문자|입문|초보자|초보|기초|기본|심화|고급|실무|문법|코드|"
    "코딩|프로젝트|질문|관련|분야|얘기|이야기|추천|모임|동호회|실력|시험|자격증|팁|방법|사용법|"
    "법|문제|에러|오류|버전|설치|설정|튜토리얼|스터디|수업|학원|과외|레슨|클래스|취미|생활|루틴|"
    "계획|일정|준비|책|영상|유튜브|커뮤니티|엔지니어|전문가|면접|경험|후기|리뷰|정보|기술|서버|"
    "라이브러리|프레임워크|패키지|모듈|스크립트|파일|앱|툴|연습|실습|시작|고수|용어|개념|트렌드|"
    "뉴스|비용|대회|용품|로드맵|모델|데이터|언어|가이드|전공|업무|중|때|쪽|들|자|사"
)
# What may begin the rest of the word after a Korean form of two or more syllables: a
# particle, the copula, a light verb (하다, 되다, 당하다) or a verb such forms take ("여행가",
# "영화보러", "마라톤뛰"), each with any ending.
_KO_OPENERS = (
    "은|는|이|가|을|를|의|에|엔|도|만|로|으로|으론|론|까지|부터|랑|하고|과|와|나|든|라|란|야|요|"
    "인|일|임|입|였|처럼|보다|같|마다|밖에|뿐|쯤|께|한테|지|죠|네|면|며|니|"
    "하|해|했|할|한|함|합|되|돼|됐|될|된|시키|시켜|당|갔|갈|간|다니|다녀|배우|배워|"
    "보|봐|봤|볼|본|치|쳐|쳤|칠|친|찍|뛰|뛴|뛸"
)
_KO_REST = re.compile(rf"(?:{_KO_NOUNS}){{0,2}}(?:(?:{_KO_OPENERS})[\uac00-\ud7a3]*)?")
# A form of one syllable ("책", "깃", "딸") is a piece of countless words ("책임", "깃발",
# "딸기"): only exact particles, a light verb or a few nouns may follow it.
_KO_PARTICLES = (
    "은|는|이|가|을|를|의|에|에서|에선|에서는|에서도|에는|에도|엔|도|만|로|으로|로는|으로는|로도|"
    "으로도|까지|부터|이랑|랑|하고|과|와|이나|나|이든|든|이라도|라도|처럼|보다|같은|같이|마다|"
    "밖에|뿐|에게|한테|이야|야|이요|인데|이에요|예요|입니다|이고|이지|이죠|인가|인지|이면|이라|"
    "이란|이라는|이라고|이라서|이었|이었어|이었는데|이네|이니|이니까"
)
_KO_SHORT_REST = re.compile(
    rf"(?:추천|읽기|모임|리뷰|후기|목록)?"
    rf"(?:(?:{_KO_PARTICLES})요?|(?:하|해|했|할|한|합|함)[\uac00-\ud7a3]*)?"
)

# Forms that are also units of measure.
_UNITS = frozenset({"ml", "db"})

_NOUN_TAGS = ("NNG", "NNP")
# Particles Kiwi sometimes reads into the noun before them ("통기타랑" as one noun); never the
# end of another noun, unlike 가 (운동가) or 이.
_KIWI_MISREAD = re.compile(
    r"(?:을|를|은|는|와|과|의|에|로|도|만|랑|이랑|에서|으로|하고|까지|부터|처럼|보다|에게|한테)요?"
)


def _is_hangul(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3"


def _hangul_run_end(text: str, start: int) -> int:
    """Where the run of Hangul syllables starting at ``start`` ends (``start`` if none)."""
    stop = start
    while stop < len(text) and _is_hangul(text[stop]):
        stop += 1
    return stop


def _latin_word(char: str) -> bool:
    """A letter or digit that continues a Latin word (Hangul and CJK do not: "python으로")."""
    return char == "_" or (char.isalnum() and ord(char) < 0x250)


def _fold(text: str) -> str:
    """``text`` lowercased, hyphens and white space made spaces, every offset kept."""
    lowered = text.lower()
    if len(lowered) != len(text):  # "İ" lowercases to two characters
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return lowered.translate(_FOLD)


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic: its id (other parts of the feature rely on these), display names, forms."""

    id: str
    ko: str
    en: str
    # A Korean form ending in "*" is a verb stem: any ending may follow ("기타 치*": 기타 치고).
    forms: tuple[str, ...]
    # Latin words that are also everyday English ("go", "react", "swift"): a topic only when
    # a Korean particle follows at once ("Go로", "React에서"), as in Korean chat.
    glued: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicHit:
    """A form found in the text: the topics it names, where it was said, as it was written."""

    topics: tuple[str, ...]
    start: int
    end: int
    surface: str


@dataclass(frozen=True, slots=True)
class _Entry:
    topics: tuple[str, ...]  # empty for a phrase that names no topic ("러닝 커브")
    glued: bool
    stem: bool  # ends in a verb stem: any ending follows
    hangul_start: bool
    hangul_end: bool
    has_hangul: bool
    short: bool  # one Hangul syllable


@dataclass(slots=True)
class _Morphology:
    """Kiwi's tokens for the words of one text that need them, each word read once.

    Only the words a form sits in are analysed, not the whole message: Kiwi costs about 10 µs
    a character on top of 30 µs a call, and a topic word's reading depends on its own word
    (its particles, the noun it is glued to), not on the rest of the sentence.
    """

    analyzer: KoreanAnalyzer
    text: str
    _words: dict[tuple[int, int], tuple[Token, ...]] = field(default_factory=dict)

    def around(self, start: int, end: int) -> tuple[Token, ...]:
        text = self.text
        left = start
        while left > 0 and not text[left - 1].isspace() and start - left < _WINDOW:
            left -= 1
        right = end
        while right < len(text) and not text[right].isspace() and right - end < _WINDOW:
            right += 1
        key = (left, right)
        if key not in self._words:
            self._words[key] = tuple(
                Token(t.form, t.tag, t.start + left, t.end + left)
                for t in self.analyzer.tokens(text[left:right])
            )
        return self._words[key]


class TopicGazetteer:
    """Topics' surface forms in Korean and English, found in text with one Aho-Corasick pass.

    Build it once (``load``, 15-25 ms) and share it. ``find`` then costs about 6 µs for a chat
    message (p99 under 30 µs over the labelled sets); with Kiwi, only a Korean form glued to
    other syllables sends its word to Kiwi (about 0.1 ms), in a quarter of the messages.
    """

    def __init__(self, topics: Iterable[Topic], not_topics: Iterable[str] = ()) -> None:
        self._topics: tuple[Topic, ...] = tuple(topics)
        self._by_id = {topic.id: topic for topic in self._topics}
        if len(self._by_id) != len(self._topics):
            raise ValueError("topic ids must be unique")
        self._entries: dict[str, _Entry] = {}
        # key → (topics, glued); a key is a form folded like the text, without its "*".
        kinds: dict[str, tuple[set[str], bool]] = {}
        stems: set[str] = set()
        for topic in self._topics:
            for forms, glued in ((topic.forms, False), (topic.glued, True)):
                for form in forms:
                    key = self._key(form, stems)
                    ids, was_glued = kinds.setdefault(key, (set(), glued))
                    if was_glued != glued:
                        raise ValueError(f"{form!r} is both glued and not")
                    ids.add(topic.id)
        for phrase in not_topics:
            key = self._key(phrase, stems)
            if key in kinds and kinds[key][0]:
                raise ValueError(f"{phrase!r} is a form and a phrase naming no topic")
            kinds[key] = (set(), False)
        # Korean is often written without the space: "데이터 분석" is also "데이터분석".
        for key, (ids, glued) in list(kinds.items()):
            joined = key.replace(" ", "")
            if joined != key and any(_is_hangul(c) for c in key) and joined not in kinds:
                kinds[joined] = (ids, glued)
                if key in stems:
                    stems.add(joined)
        order = {topic.id: i for i, topic in enumerate(self._topics)}
        self._automaton = ahocorasick.Automaton()
        for key, (ids, glued) in kinds.items():
            self._entries[key] = _Entry(
                topics=tuple(sorted(ids, key=order.__getitem__)),
                glued=glued,
                stem=key in stems,
                hangul_start=_is_hangul(key[0]),
                hangul_end=_is_hangul(key[-1]),
                has_hangul=any(_is_hangul(c) for c in key),
                short=len(key) == 1 and _is_hangul(key),
            )
            self._automaton.add_word(key, key)
        if self._entries:
            self._automaton.make_automaton()

    @staticmethod
    def _key(form: str, stems: set[str]) -> str:
        key = _fold(form.strip())
        if key.endswith("*"):
            key = key[:-1].rstrip()
            if not key or not _is_hangul(key[-1]):
                raise ValueError(f"{form!r}: only a Korean form may end in a verb stem")
            stems.add(key)
        if not key:
            raise ValueError("an empty form")
        return key

    @classmethod
    def load(cls, path: Path = TOPICS_PATH) -> TopicGazetteer:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            (
                Topic(
                    id=str(t["id"]),
                    ko=str(t["ko"]),
                    en=str(t["en"]),
                    forms=tuple(str(f) for f in t["forms"]),
                    glued=tuple(str(f) for f in t.get("glued", ())),
                )
                for t in data["topics"]
            ),
            (str(p) for p in data.get("not_topics", ())),
        )

    @property
    def ids(self) -> tuple[str, ...]:
        """Every topic id, in the gazetteer's order."""
        return tuple(topic.id for topic in self._topics)

    def __len__(self) -> int:
        """How many surface forms are matched (spaceless variants and not-topics included)."""
        return len(self._entries)

    def name(self, topic_id: str, lang: str) -> str:
        """The topic's display name: Korean for "ko", English for every other language."""
        topic = self._by_id[topic_id]
        return topic.ko if lang == "ko" else topic.en

    def find(self, text: str, analyzer: KoreanAnalyzer | None = None) -> list[TopicHit]:
        """Every form named in ``text`` as a word of its own, leftmost-longest, no overlaps.

        A phrase that names no topic ("러닝 커브", "game plan") takes its words like any form,
        so the form inside it is not found, and gives no hit.
        """
        if not self._entries or not text:
            return []
        folded = _fold(text)
        candidates: list[tuple[int, int, str]] = []
        for end_index, key in self._automaton.iter(folded):
            candidates.append((end_index - len(key) + 1, end_index + 1, key))
        if not candidates:
            return []
        candidates.sort(key=lambda c: (c[0], c[0] - c[1]))
        morphology = _Morphology(analyzer, text) if analyzer is not None else None
        hits: list[TopicHit] = []
        taken = 0
        for start, end, key in candidates:
            if start < taken:
                continue
            entry = self._entries[key]
            if not self._standalone(text, start, end, entry, morphology):
                continue
            taken = end
            if entry.topics:
                hits.append(TopicHit(entry.topics, start, end, text[start:end]))
        return hits

    def topics(self, text: str, analyzer: KoreanAnalyzer | None = None) -> frozenset[str]:
        """The ids of every topic ``text`` names."""
        return frozenset(t for hit in self.find(text, analyzer) for t in hit.topics)

    def _standalone(
        self, text: str, start: int, end: int, entry: _Entry, morphology: _Morphology | None
    ) -> bool:
        before = text[start - 1] if start > 0 else " "
        compound = False
        if not entry.hangul_start:
            if _latin_word(before):
                return False
            # "200 ml", "60 dB": after a number, a form that is also a unit is the unit.
            if text[start:end].lower() in _UNITS and (
                before.isdigit() or (before == " " and start > 1 and text[start - 2].isdigit())
            ):
                return False
        elif _is_hangul(before):
            # Inside a longer word: only Kiwi can tell "일본여행" (a compound) from "머싱러닝".
            if entry.short or morphology is None:
                return False
            compound = True
        if entry.hangul_end:
            rest = text[end : _hangul_run_end(text, end)]
            rule = _KO_SHORT_REST if entry.short else _KO_REST
            if not entry.stem and not rule.fullmatch(rest):
                return False
        else:
            last = text[end - 1]
            tail = _LATIN_TAIL.match(text, end) if last.isalpha() or last == "+" else None
            after = tail.end() if tail else end
            if after == end and entry.glued:
                stop = _hangul_run_end(text, end)
                return stop > end and _KO_REST.fullmatch(text[end:stop]) is not None
            if after < len(text) and _latin_word(text[after]):
                return False
            if entry.glued:
                return False
        # Kiwi has a say only when the form is glued to other Hangul: between spaces it is a
        # word of its own whatever Kiwi reads.
        glued_after = end < len(text) and _is_hangul(text[end])
        if morphology is not None and entry.has_hangul and (compound or glued_after):
            return _kiwi_agrees(text, morphology.around(start, end), start, end, compound)
        return True


def _kiwi_agrees(text: str, tokens: Sequence[Token], start: int, end: int, compound: bool) -> bool:
    """Kiwi must read the form as whole words: no noun runs on past its end ("러닝메이트",
    "전세계" = 전 + 세계), it does not begin inside a word ("고양이" has no 양이), and inside a
    compound the word before it is a noun ("일본여행", not "민주화운동")."""
    if not tokens:
        return not compound
    begins = False
    noun_before = False
    for tok in tokens:
        if tok.start < start < tok.end:
            return False
        if (
            start <= tok.start < end < tok.end
            and tok.tag.startswith(_NOUN_TAGS)
            and not _KIWI_MISREAD.fullmatch(text[end : tok.end])
        ):
            return False
        if tok.start == start:
            begins = True
        if tok.end == start:
            noun_before = tok.tag in _NOUN_TAGS
    return begins and (noun_before or not compound)


# ---- entities --------------------------------------------------------------------------------

# Kiwi's nouns that say nothing about a user's interests.
_NOT_ENTITIES = frozenset(
    {"공부", "질문", "방법", "추천", "사용", "정도", "생각", "오늘", "내일", "어제", "요즘", "지금"}
    | {"진짜", "정말", "사람", "문제", "시간", "경우", "부분", "관련", "이번", "다음", "처음"}
    | {"마지막", "하나", "이거", "그거", "저거", "여기", "거기", "무엇", "때문", "이유", "얘기"}
    | {"이야기", "내용", "설명", "정리", "느낌", "기분", "차이", "시작", "최근", "나중", "매일"}
    | {"주말", "평일", "아침", "점심", "저녁", "도움", "부탁", "감사", "혹시", "가능", "필요"}
    | {"이상", "이하", "정보", "의견", "답변", "대답", "예시", "종류", "전체", "결과", "상황"}
    | {"준비", "계획", "고민", "걱정", "이해", "기본", "초보", "입문", "기초", "하루", "가지"}
    | {"대부분", "제일", "조금", "자체", "사실", "다른", "요새", "동안", "이후", "이전", "언제"}
    | {"어디", "누구", "뭔가", "코드", "에러", "오류", "사이", "자신", "우리", "저희", "당신"}
    | {"선택", "비교", "장점", "단점", "중요", "상태", "확인", "사용법", "시도", "경험"}
    | {"친구", "회사", "잠깐", "덕분", "해결", "크기", "그때", "부족", "문장", "번역", "취소"}
    | {"자료", "메일", "업체", "요금", "만료", "사내", "파일", "페이지", "추천", "정도", "거"}
)
_EN_NOT_ENTITIES = frozenset(
    {"i", "i'm", "im", "the", "a", "an", "my", "me", "you", "your", "we", "our", "it", "its"}
    | {"is", "are", "and", "or", "but", "to", "in", "on", "of", "for", "with", "what", "how"}
    | {"why", "when", "where", "who", "can", "could", "should", "would", "do", "does", "ok"}
    | {"okay", "lol", "thanks", "please", "hi", "hello", "hey", "yes", "no", "not", "vs"}
)
# Kiwi reads every message up to here; interest names come early, and Kiwi's cost grows with
# the length.
MAX_ENTITY_CHARS = 1000


def entities(text: str, analyzer: KoreanAnalyzer) -> tuple[str, ...]:
    """The message's names and salient nouns, as written, in order, each once (ignoring case):
    what an interest profile can show ("쿠버네티스", "일본여행", "Django").

    Per Kiwi: proper nouns (NNP) and common nouns (NNG) of two or more syllables, but not the
    everyday ones of ``_NOT_ENTITIES``. Nouns written together are one word, since Kiwi often
    cuts a term it does not know ("파이" + "선", "딥" + "러닝"); everyday nouns at either end
    of such a word fall off ("파이썬공부" → "파이썬"). Kiwi tags every Latin word SL: in a
    Korean message those of two letters or more are names and terms ("AWS", "python"); in a
    Latin-script message only capitalised words that do not begin a sentence are ("I want to
    visit Tokyo" → "Tokyo": a name at the start of a sentence is missed).
    """
    text = text[:MAX_ENTITY_CHARS]
    korean = any(_is_hangul(c) for c in text)
    runs: list[list[Token]] = []
    previous_end = -1
    for tok in analyzer.tokens(text):
        glued = bool(runs) and tok.start == previous_end
        if tok.tag in _NOUN_TAGS or tok.tag == "SL" or (glued and _continues_noun(tok)):
            if glued:
                runs[-1].append(tok)
            else:
                runs.append([tok])
            previous_end = tok.end
        else:
            previous_end = -1
    found: dict[str, str] = {}
    for run in runs:
        while run and _everyday(run[0], text):
            run.pop(0)
        while run and _everyday(run[-1], text):
            run.pop()
        if not run or not _salient(run, text, korean):
            continue
        surface = text[run[0].start : run[-1].end]
        found.setdefault(surface.casefold(), surface)
    return tuple(found.values())


def _continues_noun(tok: Token) -> bool:
    """A suffix or a number written onto a noun: "최적" + "화", "EC" + "2", "C" + "++"."""
    return tok.tag in ("XSN", "SN") or (tok.tag == "SW" and tok.form in ("+", "++", "#"))


def _everyday(tok: Token, text: str) -> bool:
    if tok.tag == "SL":
        return text[tok.start : tok.end].lower() in _EN_NOT_ENTITIES
    return tok.tag in _NOUN_TAGS and tok.form in _NOT_ENTITIES


def _salient(run: list[Token], text: str, korean: bool) -> bool:
    """Two letters or syllables at least (Kiwi's one-syllable nouns are mostly misreadings:
    "랑" as a name), and a Latin word alone only as ``entities`` says."""
    if run[-1].end - run[0].start < 2:
        return False
    tok = run[0]
    if len(run) > 1 or tok.tag != "SL":
        return True
    word = text[tok.start : tok.end]
    return korean or (word != word.lower() and not _begins_sentence(text, tok.start))


def _begins_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in ".!?:\n"


# ---- headings --------------------------------------------------------------------------------

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r" {0,3}#{1,6}(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*")
_BOLD_LINE = re.compile(r" {0,3}(\*\*|__)(?=\S)(.+?)(?<=\S)\1[ \t]*:?[ \t]*")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|`")


def headings(markdown: str) -> list[str]:
    """The headings of an answer, as plain text: ATX headings ("## 설치", "# Setup #") and
    lines that are bold and nothing else ("**1. 준비물**", "__Step 2:__"), outside code blocks
    (where "# install" is a shell comment). Topics are read from them as from a message: an
    answer headed "파이썬 가상환경 만들기" is about python whatever its words in between."""
    found: list[str] = []
    fence = ""
    for line in markdown.splitlines():
        opening = _FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                if not line.strip().strip(fence[0]):
                    fence = ""
            continue
        if opening:
            fence = opening.group(1)
            continue
        atx = _ATX.fullmatch(line)
        if atx:
            title = atx.group(1) or ""
        else:
            bold = _BOLD_LINE.fullmatch(line)
            if bold is None or bold.group(1) in bold.group(2):
                continue
            title = bold.group(2)
        title = _EMPHASIS.sub("", _LINK.sub(r"\1", title)).strip().rstrip(":").strip()
        if title:
            found.append(title)
    return found
