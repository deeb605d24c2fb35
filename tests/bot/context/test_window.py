"""ContextWindow: order, budget, whole exchanges, clipping, summary; the token estimator."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.context.tokens import TokenEstimator
from bot.context.window import (
    MESSAGE_SHARE,
    SUMMARY_SHARE,
    ContextWindow,
    clip,
    exchanges,
    session_factor,
)
from bot.sessions.base import Message, Session

SYSTEM = "You are a helpful assistant."


def session(*pairs: tuple[str, str], summary: str = "") -> Session:
    history = []
    for n, (question, answer) in enumerate(pairs):
        history.append(Message("user", question, float(2 * n)))
        history.append(Message("assistant", answer, float(2 * n + 1)))
    return Session(key="test:-:1:-:1", history=history, summary=summary)


def contents(messages: list[dict[str, object]]) -> list[str]:
    return [str(m["content"]) for m in messages]


def test_one_long_answer_does_not_drop_everything_before_it() -> None:
    s = session(("내 이름은 민수야", "반가워요, 민수 님!"), ("긴 설명 부탁해", "가" * 18_000))
    built = ContextWindow(12_000).build(s, "내 이름이 뭐였지?", system_prompt=SYSTEM)
    texts = contents(built)
    assert texts[1] == "내 이름은 민수야"  # still there, right after the system prompt
    assert "characters omitted" in texts[4]  # the long answer is clipped, not dropped
    assert texts[-1] == "내 이름이 뭐였지?"


def test_the_request_is_ordered_and_never_splits_an_exchange() -> None:
    s = session(*((f"질문 {n}", f"답 {n}") for n in range(30)))
    built = ContextWindow(200).build(s, "새 질문", system_prompt=SYSTEM)
    roles = [m["role"] for m in built]
    assert roles[0] == "system" and roles[-1] == "user"
    middle = roles[1:-1]
    assert middle and middle[0] == "user" and len(middle) % 2 == 0
    assert all(a != b for a, b in itertools.pairwise(middle))
    numbers = [int(str(m["content"]).split()[1]) for m in built[1:-1]]
    assert numbers == sorted(numbers) and numbers[-1] == 29  # newest kept, in order


def test_the_last_exchange_always_goes_in_even_over_a_tight_budget() -> None:
    s = session(("앞 질문", "앞 답"), ("마지막 질문", "나" * 5_000))
    built = ContextWindow(300).build(s, "다음", system_prompt=SYSTEM)
    texts = contents(built)
    assert texts[-3] == "마지막 질문"
    assert "characters omitted" in texts[-2] and len(texts[-2]) < 5_000


def test_the_summary_comes_after_the_system_prompt_and_is_capped() -> None:
    s = session(("a", "b"), summary="요약: 민수는 서울에 산다. " * 2_000)
    window = ContextWindow(4_000)
    built = window.build(s, "질문", system_prompt=SYSTEM)
    assert built[1]["role"] == "system" and "민수는 서울에 산다" in str(built[1]["content"])
    share = int((4_000 - window.estimator.count_messages([built[0], built[-1]])) * SUMMARY_SHARE)
    assert window.estimator.count(str(built[1]["content"])) <= share + 10


def test_relevant_older_exchanges_come_back_in_their_place() -> None:
    pairs = [("내 고향은 강릉이야", "강릉 좋죠!")] + [(f"잡담 {n}", "네" * 3_000) for n in range(8)]
    s = session(*pairs)

    def scorer(query: str, docs: list[str] | tuple[str, ...]) -> list[float]:
        return [1.0 if "고향" in d else 0.0 for d in docs]

    window = ContextWindow(8_000, scorer=scorer)  # type: ignore[arg-type]
    built = contents(window.build(s, "내 고향이 어디라고 했지?", system_prompt=SYSTEM))
    assert built[1] == "내 고향은 강릉이야" and window.last_relevant == 1
    without = contents(ContextWindow(8_000).build(s, "내 고향?", system_prompt=SYSTEM))
    assert "내 고향은 강릉이야" not in without  # only recency: it fell out of the window


def test_a_score_below_the_minimum_is_not_recalled() -> None:
    s = session(*((f"잡담 {n}", "네" * 3_000) for n in range(8)))
    window = ContextWindow(8_000, scorer=lambda q, docs: [0.1] * len(docs))
    window.build(s, "질문", system_prompt=SYSTEM)
    assert window.last_relevant == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=0, max_size=3_000), st.text(min_size=0, max_size=9_000)),
        max_size=12,
    ),
    st.integers(min_value=400, max_value=6_000),
    st.text(min_size=1, max_size=500),
)
def test_the_request_stays_within_the_budget(
    pairs: list[tuple[str, str]], budget: int, question: str
) -> None:
    window = ContextWindow(budget, scorer=lambda q, docs: [0.5] * len(docs))
    built = window.build(session(*pairs), question, system_prompt=SYSTEM)
    fixed = window.estimator.count_messages([built[0], built[-1]])
    # The system prompt and the new message always go in; the rest keeps within the budget,
    # but for the last exchange, which goes in clipped to its share however small the budget.
    last = 0
    if pairs:
        cap = int((budget - fixed) * MESSAGE_SHARE)
        last = 2 * (max(cap, 60) + 20)
    assert window.estimator.count_messages(built) <= max(budget, fixed) + last


def test_exchanges_keep_a_lone_message_as_its_own_exchange() -> None:
    history = [
        Message("assistant", "안녕하세요"),
        Message("user", "q1"),
        Message("user", "q2"),
        Message("assistant", "a2"),
    ]
    assert [[m.content for m in e.messages] for e in exchanges(history)] == [
        ["안녕하세요"],
        ["q1"],
        ["q2", "a2"],
    ]


def test_clip_keeps_head_and_tail() -> None:
    text = "처음" + "가" * 1_000 + "끝"
    clipped = clip(text, 200)
    assert clipped.startswith("처음") and clipped.endswith("끝") and len(clipped) <= 200
    assert "[… 843 characters omitted …]" in clipped  # says how much was left out
    assert clip("짧다", 200) == "짧다"


# ---- the estimator --------------------------------------------------------------------------


def test_estimates_per_kind_of_text_are_in_a_sane_range() -> None:
    est = TokenEstimator()
    cases = {
        "korean": ("안녕하세요 오늘 서울 날씨는 맑고 기온은 스물한 도입니다. " * 10, 0.6, 1.2),
        "english": (
            "The weather in Seoul is clear today with a high of 21 degrees. " * 10,
            0.2,
            0.4,
        ),
        "code": ("def f(x):\n    return [i * 2 for i in range(x)]\n" * 10, 0.2, 0.45),
        "emoji": ("😀🎉👍🙏" * 25, 0.2, 2.0),
        "cjk": ("東京の天気は晴れです。北京今天天气很好。" * 10, 0.6, 1.2),
    }
    for name, (text, low, high) in cases.items():
        per_char = est.count(text) / len(text)
        assert low <= per_char <= high, (name, per_char)


def test_calibration_belongs_to_a_session() -> None:
    est = TokenEstimator()
    korean = [{"role": "user", "content": "가나다라마바사" * 100}]
    factor = 1.0
    for _ in range(10):  # the API keeps counting more tokens than estimated
        factor = est.calibrated(factor, korean, est.count_messages(korean) * 2)
    assert 1.8 < factor <= 2.0
    s = Session(key="k", meta={"token_factor": factor})
    assert session_factor(s) == factor
    assert session_factor(Session(key="other")) == 1.0  # another session is not swung
    assert session_factor(Session(key="k", meta={"token_factor": 99})) == 1.0  # bounded
    assert est.count("가" * 100, factor) > est.count("가" * 100)
