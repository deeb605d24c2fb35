"""Slack payloads → Turns: which events are answered, where, in which session, with what text."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack_convert import (
    BotIdentity,
    ConvertOptions,
    Ignore,
    Inbound,
    SlackTurn,
    command_turn,
    decide,
    plain_text,
)
from bot.commands import parse_command
from bot.turn import SessionKey, SessionScope

ME = BotIdentity(user_id="U0BOT", bot_id="B0BOT", team_id="T1", name="glmbot")
MENTION = "<@U0BOT>"


def envelope(event: dict[str, Any], *, event_id: str = "Ev001", team: str = "T1") -> dict[str, Any]:
    """An Events API envelope as Slack posts it (docs: "Events API: event_callback")."""
    return {
        "token": "verification",
        "team_id": team,
        "api_app_id": "A1",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1700000000,
        "authorizations": [{"team_id": team, "user_id": "U0BOT", "is_bot": True}],
    }


def mention(text: str, *, ts: str = "1700000000.000100", **extra: Any) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": text,
        "ts": ts,
        "channel": "C1",
        "event_ts": ts,
        "team": "T1",
    }
    return envelope({**event, **extra})


def message(
    text: str, *, channel: str = "C1", channel_type: str = "channel", **extra: Any
) -> dict[str, Any]:
    ts = str(extra.pop("ts", "1700000000.000200"))
    event = {
        "type": "message",
        "user": "U1",
        "text": text,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "event_ts": ts,
        "team": "T1",
    }
    return envelope({**event, **extra})


def answered(decision: Inbound | Ignore) -> SlackTurn:
    assert isinstance(decision, Inbound), decision
    return decision.turn


# ---- channels ----------------------------------------------------------------------------------


def test_a_channel_mention_is_answered_in_a_new_thread_under_it() -> None:
    turn = answered(decide(mention(f"{MENTION} 서울 날씨 알려줘"), ME))

    assert turn.text == "서울 날씨 알려줘"  # the bot's own mention is not part of the question
    assert (turn.platform, turn.team_id, turn.chat_id, turn.user_id) == ("slack", "T1", "C1", "U1")
    assert turn.thread_id == "1700000000.000100"  # the answer's thread is the mention itself
    assert turn.message_id == "1700000000.000100"
    assert turn.delivery_id == "Ev001"
    assert not turn.is_private
    assert turn.session_key() == SessionKey("slack", "T1", "C1", "1700000000.000100", "")


def test_the_message_event_of_a_mention_is_left_to_app_mention() -> None:
    # Slack sends both app_mention and message.channels (two event ids) for one mention.
    decision = decide(message(f"{MENTION} hello"), ME)
    assert isinstance(decision, Ignore)
    assert "app_mention" in decision.reason


def test_a_mention_inside_a_thread_continues_that_thread() -> None:
    turn = answered(decide(mention(f"{MENTION} 그리고?", thread_ts="1699999999.000001"), ME))
    assert turn.thread_id == "1699999999.000001"
    assert turn.session_key().thread == "1699999999.000001"


def test_thread_replies_without_a_mention_are_follow_ups_when_the_setting_allows() -> None:
    reply = message("내일은?", thread_ts="1699999999.000001")

    decision = decide(reply, ME)
    assert isinstance(decision, Inbound) and decision.follow_up
    assert decision.turn.thread_id == "1699999999.000001"
    assert decision.turn.text == "내일은?"

    off = decide(reply, ME, ConvertOptions(thread_replies=False))
    assert isinstance(off, Ignore)


def test_a_thread_reply_to_someone_else_is_not_for_the_bot() -> None:
    decision = decide(message("<@U2> 어떻게 생각해?", thread_ts="1699999999.000001"), ME)
    assert isinstance(decision, Ignore)


def test_a_channel_message_without_a_mention_is_not_answered() -> None:
    assert isinstance(decide(message("점심 뭐 먹지"), ME), Ignore)
    # The parent of a thread carries thread_ts == ts: still not a reply.
    parent = message("hi", ts="1700000000.000300", thread_ts="1700000000.000300")
    assert isinstance(decide(parent, ME), Ignore)


def test_a_broadcast_thread_reply_is_still_a_reply() -> None:
    reply = message(
        f"{MENTION} also to channel", thread_ts="1699999999.000001", subtype="thread_broadcast"
    )
    assert isinstance(decide(reply, ME), Ignore)  # answered through its app_mention
    follow = message("and this?", thread_ts="1699999999.000001", subtype="thread_broadcast")
    assert isinstance(decide(follow, ME), Inbound)


def test_per_user_in_thread_scope_gives_each_person_their_own_conversation() -> None:
    options = ConvertOptions(scope=SessionScope.USER_IN_THREAD)
    turn = answered(decide(mention(f"{MENTION} hi", thread_ts="1699999999.000001"), ME, options))
    assert turn.session_key() == SessionKey("slack", "T1", "C1", "1699999999.000001", "U1")


def test_the_slack_scope_wins_over_the_scope_configured_for_groups() -> None:
    # The manager asks with settings.group_session_scope (USER by default).
    turn = answered(decide(mention(f"{MENTION} hi"), ME))
    for configured in SessionScope:
        assert turn.session_key(configured).thread == "1700000000.000100"
        assert turn.session_key(configured).user == ""


def test_slack_connect_users_get_the_stream_for_their_own_team() -> None:
    turn = answered(decide(mention(f"{MENTION} hi", user_team="T9", team="T9"), ME))
    assert turn.team_id == "T1"  # limits are counted in the installing workspace
    assert turn.recipient_team_id == "T9"


# ---- direct messages ---------------------------------------------------------------------------


def test_a_dm_is_answered_in_the_dm_in_the_users_own_session() -> None:
    turn = answered(decide(message("안녕하세요", channel="D1", channel_type="im"), ME))

    assert turn.is_private
    assert turn.chat_id == "D1"
    assert turn.text == "안녕하세요"
    assert turn.thread_id == "1700000000.000200"  # Slack streams replies into a thread
    assert turn.session_key() == SessionKey("slack", "T1", "D1", "", "U1")
    in_thread = answered(
        decide(message("more", channel="D1", channel_type="im", thread_ts="1.000001"), ME)
    )
    assert in_thread.session_key() == turn.session_key()  # one conversation per person


def test_a_mention_inside_a_dm_is_answered_once_through_the_message_event() -> None:
    event = mention(f"{MENTION} hi")
    event["event"]["channel"] = "D1"
    assert isinstance(decide(event, ME), Ignore)
    dm = decide(message(f"{MENTION} hi", channel="D1", channel_type="im"), ME)
    assert answered(dm).text == "hi"


# ---- what is never answered --------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        message("my own answer", user="U0BOT"),
        message("echo", channel="D1", channel_type="im", user="U0BOT"),
        message("another bot", channel="D1", channel_type="im", bot_id="B2"),
        message("bot post", channel="D1", channel_type="im", subtype="bot_message", bot_id="B2"),
        message("", channel="D1", channel_type="im", subtype="message_changed"),
        message("", channel="D1", channel_type="im", subtype="message_deleted"),
        message("joined", subtype="channel_join"),
        envelope({"type": "reaction_added", "user": "U1"}),
        {"type": "url_verification", "challenge": "abc"},
    ],
    ids=[
        "own-channel",
        "own-dm",
        "other-bot",
        "bot_message",
        "edited",
        "deleted",
        "join",
        "reaction",
        "url_verification",
    ],
)
def test_ignored(payload: dict[str, Any]) -> None:
    assert isinstance(decide(payload, ME), Ignore)


# ---- text --------------------------------------------------------------------------------------


def test_slack_markup_becomes_the_text_a_person_reads() -> None:
    raw = (
        f"{MENTION} <@U2|민수> 님이 <#C9|general> 에서 <https://example.com/a?b=1&amp;c=2|이 글> "
        "봤대요 &lt;중요&gt; &amp; <!here> <mailto:a@b.co|a@b.co> <https://x.io>"
    )
    assert plain_text(raw, "U0BOT") == (
        "@민수 님이 #general 에서 이 글 (https://example.com/a?b=1&c=2) 봤대요 <중요> & "
        "@here a@b.co https://x.io"
    )
    assert plain_text("hi <@U0BOT>\n\n  second   line", "U0BOT") == "hi\n\nsecond line"


def test_a_bare_mention_leaves_an_empty_question_for_the_manager() -> None:
    assert answered(decide(mention(MENTION), ME)).text == ""


# ---- slash commands ----------------------------------------------------------------------------


def command(text: str, channel: str = "C1", **extra: str) -> dict[str, str]:
    return {
        "team_id": "T1",
        "channel_id": channel,
        "channel_name": "directmessage" if channel.startswith("D") else "general",
        "user_id": "U1",
        "user_name": "minsu",
        "command": "/reset",
        "text": text,
        "response_url": "https://hooks.slack.com/commands/1/2/3",
        "trigger_id": "1.2.3",
        **extra,
    }


def test_a_slash_command_in_a_channel_addresses_the_channel_session() -> None:
    turn = command_turn(command(""))
    assert turn.text == "/reset"
    assert not turn.is_private
    assert turn.session_key() == SessionKey("slack", "T1", "C1", "", "")


def test_a_slash_command_in_a_dm_addresses_the_callers_session() -> None:
    turn = command_turn(command("", channel="D1"))
    assert turn.is_private
    assert turn.session_key() == SessionKey("slack", "T1", "D1", "", "U1")


def test_a_user_picked_in_a_slash_command_reaches_the_core_as_an_id() -> None:
    turn = command_turn(command("<@U2|jiwoo>"))
    parsed = parse_command(turn.text)
    assert parsed is not None and parsed.name == "reset"
    assert parsed.args == ("@U2",)  # the core strips "@" and compares user ids
    forget = command_turn(command("", command="/forget"))
    assert forget.text == "/forget"
