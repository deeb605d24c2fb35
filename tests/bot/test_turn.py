"""SessionKey: one string per conversation, and back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.turn import SessionKey, SessionScope, Turn

ids = st.one_of(st.sampled_from(["", "-", ":", "%", "%3A", "a:b", "-100123", "T1"]), st.text())


@given(ids, ids, ids, ids, ids)
def test_the_string_form_reads_back_as_the_same_key(
    platform: str, team: str, chat: str, thread: str, user: str
) -> None:
    key = SessionKey(platform, team, chat, thread, user)
    assert SessionKey.parse(str(key)) == key


@given(st.tuples(ids, ids, ids, ids, ids), st.tuples(ids, ids, ids, ids, ids))
def test_different_keys_never_share_a_string(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    if a != b:
        assert str(SessionKey(*a)) != str(SessionKey(*b))


def test_ordinary_keys_keep_their_stored_form() -> None:
    # Keys written before ids were escaped must still be found.
    assert str(SessionKey("telegram", "", "-100123", "", "42")) == "telegram:-:-100123:-:42"
    assert str(SessionKey("slack", "T1", "C1", "1712.5", "")) == "slack:T1:C1:1712.5:-"
    assert str(SessionKey("x", "-", "a:b", "", "%")) == "x:%2D:a%3Ab:-:%25"


def test_private_chats_are_per_user_whatever_the_scope() -> None:
    turn = Turn("telegram", chat_id="42", user_id="42", text="hi", is_private=True)
    for scope in SessionScope:
        assert turn.session_key(scope) == SessionKey("telegram", "", "42", "", "42")
