"""terms and LexicalScorer: Korean-aware BM25 for picking relevant older messages."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.context.lexical import LexicalScorer, terms

HISTORY = [
    "내 이름은 민수야",
    "오늘 서울 날씨 어때?",
    "점심은 김치찌개 먹었어",
    "주말에 부산 여행 가고 싶어",
    "My favourite colour is green",
    "I booked a hotel in Paris for May 3",
]


# --- terms ----------------------------------------------------------------------------------


def test_korean_particles_are_stripped_so_forms_of_a_word_meet() -> None:
    assert "민수" in terms("민수야") and "민수" in terms("민수는") and "민수" in terms("민수가")
    assert "이름" in terms("이름은") and "이름" in terms("이름이") and "이름" in terms("이름을")
    assert "서울" in terms("서울에서") and "서울" in terms("서울로")
    assert terms("내 이름은 민수야") == ["내", "이름", "민수"]


def test_longer_korean_words_give_bigrams() -> None:
    assert terms("김치찌개") == ["김치", "치찌", "찌개"]
    assert terms("김치찌개를") == ["김치", "치찌", "찌개"]


def test_a_one_syllable_stem_keeps_the_whole_word_too() -> None:
    # "나이" may be 나 + 이 or the word for age; both are kept.
    assert terms("나이가") == ["나이"]
    assert terms("나이") == ["나", "나이"]


def test_english_words_are_lowercased_without_stopwords_plurals_or_possessives() -> None:
    assert terms("What was the name of John's cats?") == ["name", "john", "cat"]
    assert terms("Hotels and BOXES, cities") == ["hotel", "box", "city"]
    assert terms("the a of and is") == []


def test_numbers_are_whole_and_cjk_gives_bigrams() -> None:
    assert terms("room 1204 on May 3") == ["room", "1204", "may", "3"]
    assert terms("東京に行きます") == ["東京", "京に", "に行", "行き", "きま", "ます"]
    assert terms("猫") == ["猫"]


def test_mixed_scripts_in_one_chunk_are_split() -> None:
    # A particle right after a Latin word or a number belongs to it, and is dropped.
    assert terms("GPT-4o는 iPhone15에서") == ["gpt", "4", "iphone", "15"]
    assert terms("2024년에") == ["2024", "년", "년에"]
    assert terms("abc한글") == ["abc", "한글"]


def test_empty_and_symbol_only_text_have_no_terms() -> None:
    assert terms("") == []
    assert terms("   ?!… ㅋㅋㅋ ㅠㅠ") == []


# --- scoring --------------------------------------------------------------------------------


def test_a_korean_question_finds_the_message_that_answers_it() -> None:
    scorer = LexicalScorer(HISTORY)
    scores = scorer.scores("내 이름이 뭐였지?")
    assert scores[0] > 0
    assert scores[0] == max(scores)
    assert all(s == 0 for s in scores[1:])
    assert scorer.best("내 이름이 뭐였지?", 3) == [(0, scores[0])]


def test_an_english_question_finds_its_message() -> None:
    scores = LexicalScorer(HISTORY).scores("What is my favourite colour?")
    assert scores.index(max(scores)) == 4
    assert sorted(scores)[-2] == 0


def test_mixed_language_history_and_query() -> None:
    scores = LexicalScorer(HISTORY).scores("Paris 호텔 예약 언제였지? May")
    assert scores.index(max(scores)) == 5
    scores = LexicalScorer(HISTORY).scores("부산 trip 계획")
    assert scores.index(max(scores)) == 3


def test_rarer_terms_weigh_more() -> None:
    docs = ["서울 날씨", "서울 맛집", "서울 지하철", "부산 날씨"]
    scores = LexicalScorer(docs).scores("부산 서울")
    assert scores[3] > scores[0] > 0


def test_the_query_itself_scores_one_and_a_partial_match_less() -> None:
    docs = ["민수는 커피를 좋아해", "오늘 날씨 맑음", "민수는 오늘 바빠", "회의는 세 시"]
    scorer = LexicalScorer(docs)
    scores = scorer.scores("민수는 커피를 좋아해")
    assert abs(scores[0] - 1.0) < 1e-9
    assert 0 < scores[2] < scores[0]


def test_empty_inputs() -> None:
    assert LexicalScorer([]).scores("아무거나") == []
    assert LexicalScorer([]).best("아무거나", 5) == []
    assert LexicalScorer(HISTORY).scores("") == [0.0] * len(HISTORY)
    assert LexicalScorer(HISTORY).scores("?!") == [0.0] * len(HISTORY)
    assert LexicalScorer(["", "?!", ""]).scores("민수") == [0.0, 0.0, 0.0]
    assert LexicalScorer(["", "민수야"]).scores("민수")[0] == 0.0
    assert len(LexicalScorer(HISTORY)) == len(HISTORY)


def test_best_orders_by_score_then_newest_and_honours_the_threshold() -> None:
    docs = ["민수 커피", "민수 커피", "민수 차", "날씨"]
    scorer = LexicalScorer(docs)
    best = scorer.best("민수 커피", 10)
    assert [i for i, _ in best] == [1, 0, 2]
    assert scorer.best("민수 커피", 1) == best[:1]
    assert all(score >= best[0][1] for _, score in scorer.best("민수 커피", 10, best[0][1]))
    assert scorer.best("민수 커피", 0) == []


def test_duplicate_documents_score_alike() -> None:
    scores = LexicalScorer(["부산 여행", "서울", "부산 여행"]).scores("부산")
    assert scores[0] == scores[2] > 0


@pytest.mark.parametrize("strategy", ["scan", "find", "merge"])
def test_every_way_of_matching_gives_the_same_scores(
    strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scorer picks how to find matching documents by the sizes at hand (a long query
    # goes document by document); the scores must not depend on it.
    docs = [f"메시지 {i} 민수 서울 커피 여행 {i % 7}" for i in range(300)] + HISTORY
    queries = [" ".join(f"단어{i}" for i in range(60)) + " 민수 커피 3", "민수", "Paris hotel"]
    expected = [LexicalScorer(docs).scores(q) for q in queries]
    monkeypatch.setattr(LexicalScorer, "_strategy", lambda _self, _n: strategy)
    for query, want in zip(queries, expected, strict=True):
        assert LexicalScorer(docs).scores(query) == pytest.approx(want, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="민수커피날씨 abcdé12東京", max_size=30), max_size=12),
    st.text(alphabet="민수커피날씨 abcdé12東京", max_size=30),
)
def test_scores_are_in_range_one_per_document(docs: list[str], query: str) -> None:
    scores = LexicalScorer(docs).scores(query)
    assert len(scores) == len(docs)
    assert all(0.0 <= s <= 1.0 for s in scores)
    query_terms = set(terms(query))
    for doc, score in zip(docs, scores, strict=True):
        if not query_terms & set(terms(doc)):
            assert score == 0.0
        else:
            assert score > 0.0


def test_a_thousand_messages_build_and_score_fast() -> None:
    words = "오늘 날씨 민수 이름 점심 회의 서울 부산 주말 영화 meeting lunch hotel train".split()
    docs = [" ".join(words[(i * 7 + k * 3) % len(words)] for k in range(8)) for i in range(1000)]
    LexicalScorer(docs).scores("warm the cache")
    started = time.perf_counter()
    for _ in range(20):
        LexicalScorer(docs).scores("지난주 예약한 호텔 이름이 뭐였지?")
    per_request = (time.perf_counter() - started) / 20
    assert per_request < 0.02  # generous for slow CI; about 0.5 ms on a quiet machine
