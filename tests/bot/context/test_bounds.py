"""bound_history: a session document within a byte cap, oldest exchanges first."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.context.bounds import bound_history
from bot.sessions.base import Message, Session


def size(session: Session) -> int:
    return len(session.to_json().encode("utf-8"))


def with_history(session: Session, history: list[Message]) -> Session:
    clone = copy.deepcopy(session)
    clone.history = history
    return clone


def conversation(exchanges: int, answer: str = "답 " + "가" * 1000) -> Session:
    session = Session(key="test::7::7", meta={"language": "ko", "turns": exchanges})
    for i in range(exchanges):
        session.history.append(Message("user", f"질문 {i}", 1_700_000_000.0 + i))
        session.history.append(Message("assistant", f"{i}: {answer}", 1_700_000_000.5 + i))
    return session


def test_a_session_under_the_cap_is_left_alone() -> None:
    session = conversation(5)
    bounded = bound_history(session, size(session))
    assert bounded.history == session.history
    assert (bounded.dropped, bounded.clipped) == (0, 0)


def test_oldest_exchanges_go_first_and_only_as_many_as_needed() -> None:
    session = conversation(20)
    cap = size(session) // 3
    bounded = bound_history(session, cap)
    kept = with_history(session, bounded.history)
    assert size(kept) <= cap
    assert bounded.history == session.history[-len(bounded.history) :]
    assert bounded.history[0].role == "user" and len(bounded.history) % 2 == 0
    assert bounded.dropped == len(session.history) - len(bounded.history)
    assert bounded.clipped == 0
    # One more exchange would not have fitted.
    one_more = session.history[-len(bounded.history) - 2 :]
    assert size(with_history(session, one_more)) > cap


def test_the_input_session_is_not_changed() -> None:
    session = conversation(20)
    before = session.to_json()
    bound_history(session, 2_000)
    assert session.to_json() == before


def test_the_newest_exchange_stays_and_an_oversized_message_is_clipped_head_and_tail() -> None:
    session = conversation(3)
    huge = "시작 " + "".join(f"{i:05d} " for i in range(20_000)) + " 끝"
    session.history.append(Message("user", "아주 긴 답을 줘"))
    session.history.append(Message("assistant", huge))
    cap = 16 * 1024
    bounded = bound_history(session, cap)
    assert size(with_history(session, bounded.history)) <= cap
    user, assistant = bounded.history
    assert user.content == "아주 긴 답을 줘"
    assert assistant.role == "assistant" and assistant.ts == session.history[-1].ts
    assert assistant.content.startswith("시작 00000 00001")
    assert assistant.content.endswith("19998 19999  끝")
    assert "characters omitted" in assistant.content
    assert len(assistant.content) > 4_000  # the room is used, not thrown away
    assert bounded.clipped == 1 and bounded.dropped == 6


def test_a_big_session_frame_leaves_less_room_for_history() -> None:
    session = conversation(10)
    session.summary = "요약 " * 2000
    cap = size(session) - 1
    bounded = bound_history(session, cap)
    assert size(with_history(session, bounded.history)) <= cap
    assert bounded.dropped >= 2


def test_a_leading_answer_without_its_question_goes_with_the_oldest_exchange() -> None:
    session = conversation(4)
    session.history.insert(0, Message("assistant", "고아 답 " + "나" * 2000))
    cap = size(with_history(session, session.history[1:])) + 10
    bounded = bound_history(session, cap)
    assert bounded.history == session.history[1:]


_TEXT = st.text(
    alphabet=st.sampled_from(['"', "\\", "\n", "\x00", "\x1f", "a", " ", "가", "😀", "é"]),
    max_size=3000,
)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(_TEXT, min_size=1, max_size=12),
    cap=st.integers(min_value=600, max_value=40_000),
)
def test_any_history_fits_any_cap_that_fits_an_empty_one(texts: list[str], cap: int) -> None:
    session = Session(key="k", meta={"language": "ko"}, created_at=1.0, updated_at=2.0)
    for i, text in enumerate(texts):
        session.history.append(Message("user" if i % 2 == 0 else "assistant", text, float(i)))
    bounded = bound_history(session, cap)
    assert size(with_history(session, bounded.history)) <= cap
    # Order kept, newest exchange kept (possibly clipped), nothing invented.
    newest = max(i for i, m in enumerate(session.history) if m.role == "user")
    assert [m.role for m in bounded.history][-(len(texts) - newest) :] == [
        m.role for m in session.history[newest:]
    ]
    assert [m.ts for m in bounded.history] == [m.ts for m in session.history][
        len(session.history) - len(bounded.history) :
    ]
