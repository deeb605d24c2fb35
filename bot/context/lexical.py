"""Lexical relevance without a model: Korean-aware terms and BM25 scores normalised to 0..1.

The fallback for choosing relevant older messages when no embedding endpoint is configured or
reachable (and in the offline mode). Pure and fast: a document's terms are computed once per
distinct text (an LRU cache), so rebuilding a scorer for a session's history on every request
costs a cache lookup per message, and scoring finds the documents holding the query's terms at
C speed and does arithmetic only for those.

Terms (:func:`terms`):

* Hangul: each run of syllables loses a common trailing particle or copula (은/는/이/가/을/를,
  에서, 으로, 이야, 입니다, ...) and then yields its character bigrams; a stem of one or two
  syllables is a term itself. "민수야" and "민수는" both yield "민수", "이름은" and "이름이"
  both "이름". When stripping leaves a single syllable, the whole word is kept as well, since
  the "particle" may have been part of the word ("나이" is not "나" + 이).
* Latin and other alphabets: lowercased words, a possessive "'s" and a simple plural dropped,
  very common English words left out.
* Digits: whole numbers.
* Kana and Han (Japanese, Chinese): character bigrams, a lone character as itself.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate, chain, compress, repeat
from operator import attrgetter
from typing import Literal, NamedTuple

__all__ = ["K1", "B", "LexicalScorer", "terms"]

K1 = 1.2  # term-frequency saturation
B = 0.75  # length normalisation

# Within a whitespace-separated chunk, one alternative per script.
_HANGUL = "\uac00-\ud7a3"
_JAMO = "\u1100-\u11ff\u3130-\u318f"  # lone consonants and vowels (ㅋㅋ, ㅠㅠ): ignored
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana, Han
_LETTER = rf"[^\W\d_{_HANGUL}{_JAMO}{_CJK}]"
_TOKEN = re.compile(
    rf"[{_HANGUL}]+"
    rf"|[{_CJK}]+"
    r"|\d+"  # decimal digits of any script
    rf"|{_LETTER}+(?:['’]{_LETTER}+)*"  # other letters, with inner apostrophes
)
_IS_HANGUL = re.compile(rf"[{_HANGUL}]").match
_IS_CJK = re.compile(rf"[{_CJK}]").match

# Trailing particles and copulas; the longest match wins ("에서는" over "는").
_PARTICLES = frozenset(
    {
        # case and topic particles
        "은", "는", "이", "가", "을", "를", "에", "의", "도", "로", "으로", "에서", "에게",
        "한테", "께", "께서", "와", "과", "랑", "이랑", "하고", "만", "까지", "부터", "보다",
        "처럼", "마다", "조차", "이나", "나", "에서는", "에게는", "으로는", "로는", "에는",
        "에도", "까지는", "부터는", "이랑은", "하고는", "에서도", "으로도",
        # vocatives and copulas
        "야", "아", "이야", "요", "이요", "예요", "이에요", "이다", "입니다", "이었어",
        "였어", "이었다", "였다", "이지", "이죠", "죠", "인데", "이고",
    }
)  # fmt: skip
_PARTICLES_BY_SIZE = tuple(
    (size, frozenset(p for p in _PARTICLES if len(p) == size))
    for size in sorted({len(p) for p in _PARTICLES}, reverse=True)
)

_STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing don't down during each few for from further
    had has have having he her here hers herself him himself his how i i'm if in into is it it's
    its itself just let's me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that that's the their theirs
    them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves
    """.split()
)


def _strip_particle(word: str) -> str:
    n = len(word)
    for size, particles in _PARTICLES_BY_SIZE:
        if n > size and word[-size:] in particles:
            return word[:-size]
    return word


def _bigrams(run: str) -> tuple[str, ...]:
    if len(run) <= 2:
        return (run,)
    return tuple(run[i : i + 2] for i in range(len(run) - 1))


def _latin(word: str) -> tuple[str, ...]:
    word = word.lower().replace("’", "'")
    if word in _STOPWORDS:
        return ()
    if word.endswith("'s"):
        word = word[:-2]
    elif "'" in word:
        word = word.replace("'", "")
    n = len(word)
    if n > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif n > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        word = word[:-2]
    elif n > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) < 2 or word in _STOPWORDS:
        return ()
    return (word,)


def _token_terms(token: str) -> tuple[str, ...]:
    """The terms of one token of :data:`_TOKEN`."""
    if _IS_HANGUL(token):
        stem = _strip_particle(token)
        if len(stem) == 1 and stem != token:
            return (stem, token)
        return _bigrams(stem)
    if _IS_CJK(token):
        return _bigrams(token)
    if token[0].isdigit():
        return (token,)
    return _latin(token)


@lru_cache(maxsize=32768)
def _chunk_terms(chunk: str) -> tuple[str, ...]:
    """The terms of a whitespace-free chunk; cached, as words repeat across messages."""
    found: list[str] = []
    after_other = False  # the previous token was not Hangul: "GPT는", "15에서"
    for token in _TOKEN.findall(chunk):
        hangul = _IS_HANGUL(token) is not None
        if not (hangul and after_other and token in _PARTICLES):
            found.extend(_token_terms(token))
        after_other = not hangul
    return tuple(found)


def terms(text: str) -> list[str]:
    """The terms of ``text`` in order, repeats kept (see the module docstring)."""
    out: list[str] = []
    for chunk in text.split():
        out.extend(_chunk_terms(chunk))
    return out


class _Doc(NamedTuple):
    counts: dict[str, int]  # term -> occurrences; never mutated (shared through the cache)
    length: int  # number of terms
    signature: str  # the distinct terms, each between two _SEP, for str.find


_SEP = "\x00"  # never part of a term (the token pattern matches no control character)


# A document's terms come from its first _MAX_DOCUMENT_CHARS characters, which bounds the memory
# of the cache below (a long answer's opening says what it is about).
_MAX_DOCUMENT_CHARS = 4000


@lru_cache(maxsize=4096)
def _document(text: str) -> _Doc:
    """Term counts, length and signature of one document; cached per distinct text."""
    counts: dict[str, int] = {}
    found = terms(text[:_MAX_DOCUMENT_CHARS])
    for term in found:
        counts[term] = counts.get(term, 0) + 1
    signature = _SEP + _SEP.join(counts) + _SEP if counts else ""
    return _Doc(counts, len(found), signature)


def _idf(documents: int, holding: int) -> float:
    """BM25's inverse document frequency, in its never-negative form."""
    return math.log(1.0 + (documents - holding + 0.5) / (holding + 0.5))


_COUNTS = attrgetter("counts")
_LENGTH = attrgetter("length")
_SIGNATURE = attrgetter("signature")

# Rough costs (ns) of the three ways to find the documents holding the query's terms (see
# LexicalScorer._postings), measured on CPython 3.11; only their ratios matter.
_SCAN_PER_DOC = 50.0  # one membership test of one query term in one document
_FIND_PER_CHAR = 1.0  # str.find over the joined signatures, per character and query term
_FIND_SETUP_PER_DOC = 60.0  # joining the signatures and their offsets, once per scorer
_MERGE_PER_DOC = 200.0  # one set intersection call per document, for all query terms ...
_MERGE_PER_TERM = 12.0  # ... walking each distinct term of the document


class LexicalScorer:
    """BM25 over a fixed sequence of documents, scores normalised to 0..1.

    ``scores(query)[i]`` is 0 for a document sharing no term with the query, and 1.0 for a
    document that matches the query as well as the query itself would (its every term once,
    at the query's length); better-than-that matches (a term repeated, a shorter document) are
    capped at 1.0. So a threshold reads as "this share of the query's weight matched": every
    distinct query term counts with its inverse document frequency, including terms that no
    document has, so a long query that mostly asks about new things scores lower everywhere.

    Building costs a cache lookup per document (terms are computed once per distinct text).
    Scoring finds the documents holding the query's terms at C speed, by whichever of three
    ways is cheapest for the sizes at hand, and does arithmetic only for the matches.
    """

    __slots__ = ("_avgdl", "_docs", "_ends", "_joined", "_vocabulary")

    def __init__(self, documents: Sequence[str]) -> None:
        self._docs: list[_Doc] = list(map(_document, documents))
        total = sum(map(_LENGTH, self._docs))
        self._avgdl = total / len(self._docs) if total else 0.0
        # Built on first need: the sum of distinct terms, the joined signatures and their ends.
        self._vocabulary = -1
        self._joined = ""
        self._ends: list[int] = []

    def __len__(self) -> int:
        return len(self._docs)

    def scores(self, query: str) -> list[float]:
        """One score in 0..1 per document, in document order."""
        n = len(self._docs)
        result = [0.0] * n
        if not n or not self._avgdl:
            return result
        query_terms = list(dict.fromkeys(terms(query)))
        if not query_terms:
            return result
        docs = self._docs
        # The length part of BM25's denominator: K1 * (1 - B + B * length / avgdl).
        norm_a = K1 * (1.0 - B)
        norm_b = K1 * B / self._avgdl
        gain = K1 + 1.0
        # The query as a document: each term once, at the query's length.
        best_per_idf = gain / (1.0 + norm_a + norm_b * len(query_terms))

        strategy = self._strategy(len(query_terms))
        if strategy == "merge":
            # Document by document: which query terms each holds, at C speed, then the
            # arithmetic for the documents that hold any.
            wanted = frozenset(query_terms)
            common = list(map(wanted.intersection, map(_COUNTS, docs)))
            df = Counter(chain.from_iterable(compress(common, common)))
            weights = {term: _idf(n, df[term]) * gain for term in query_terms}
            scale = gain / (best_per_idf * sum(weights.values()))
            for i in compress(range(n), common):
                counts, length, _ = docs[i]
                base = norm_a + norm_b * length
                score = 0.0
                for term in common[i]:
                    tf = counts[term]
                    score += weights[term] * tf / (tf + base)
                result[i] = min(1.0, score * scale)
            return result

        # Term by term: the documents holding each query term, then their arithmetic.
        best = 0.0
        touched: set[int] = set()
        for term in query_terms:
            hits = self._find(term) if strategy == "find" else self._scan(term)
            idf = _idf(n, len(hits))
            best += idf * best_per_idf
            weight = idf * gain
            for i in hits:
                counts, length, _ = docs[i]
                tf = counts[term]
                result[i] += weight * tf / (tf + norm_a + norm_b * length)
            touched.update(hits)
        scale = 1.0 / best  # > 0: every idf is > 0
        for i in touched:
            result[i] = min(1.0, result[i] * scale)
        return result

    def _strategy(self, query_terms: int) -> Literal["scan", "find", "merge"]:
        """The cheapest way to find the documents holding any of ``query_terms`` terms."""
        docs = self._docs
        n = len(docs)
        if self._vocabulary < 0:
            self._vocabulary = sum(map(len, map(_COUNTS, docs)))
        # The signatures are about (mean term length + 1) characters per distinct term.
        chars = self._ends[-1] if self._ends else self._vocabulary * 3.5
        scan = _SCAN_PER_DOC * n * query_terms
        find = _FIND_PER_CHAR * chars * query_terms + (0 if self._ends else _FIND_SETUP_PER_DOC * n)
        merge = _MERGE_PER_DOC * n + _MERGE_PER_TERM * self._vocabulary
        if merge < scan and merge < find:
            return "merge"
        return "find" if find <= scan else "scan"

    def _scan(self, term: str) -> list[int]:
        n = len(self._docs)
        counts = map(_COUNTS, self._docs)
        return list(compress(range(n), map(dict.__contains__, counts, repeat(term, n))))

    def _find(self, term: str) -> list[int]:
        if not self._ends:
            signatures = list(map(_SIGNATURE, self._docs))
            self._joined = "".join(signatures)
            self._ends = list(accumulate(map(len, signatures)))
        joined, ends = self._joined, self._ends
        needle = _SEP + term + _SEP
        hits: list[int] = []
        pos = joined.find(needle)
        while pos >= 0:
            i = bisect_right(ends, pos)  # the document whose signature holds pos
            hits.append(i)
            pos = joined.find(needle, ends[i])
        return hits

    def best(self, query: str, limit: int, min_score: float = 0.0) -> list[tuple[int, float]]:
        """The ``limit`` best ``(index, score)`` pairs with a score > 0 and >= ``min_score``,
        best first; ties go to the newer (higher-index) document."""
        if limit <= 0:
            return []
        ranked = [(i, s) for i, s in enumerate(self.scores(query)) if s > 0.0 and s >= min_score]
        ranked.sort(key=lambda pair: (pair[1], pair[0]), reverse=True)
        return ranked[:limit]
