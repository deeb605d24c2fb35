"""Telegram updates → Turns: recorded-shape payloads, and the same through PTB's own objects."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from telegram import Update

from adapters.telegram_convert import (
    BotIdentity,
    Ignore,
    TextOnly,
    command_addressee,
    decide,
    strip_bot_mentions,
)
from bot.turn import SessionScope, Turn

BOT = BotIdentity(7000001, "glm_test_bot")
MIN = {"id": 111, "is_bot": False, "first_name": "민수", "last_name": "김", "language_code": "ko"}
ANN = {"id": 222, "is_bot": False, "first_name": "Ann", "username": "ann", "language_code": "en"}
BOT_USER = {"id": 7000001, "is_bot": True, "first_name": "GLM", "username": "glm_test_bot"}
PRIVATE = {"id": 111, "type": "private", "first_name": "민수"}
GROUP = {"id": -1001234567890, "type": "supergroup", "title": "스터디"}
OLD_GROUP = {"id": -4011, "type": "group", "title": "Friends"}
FORUM = {"id": -1009876543210, "type": "supergroup", "title": "포럼", "is_forum": True}


def update(
    message: dict[str, Any], update_id: int = 900001, kind: str = "message"
) -> dict[str, Any]:
    base = {"message_id": 55, "date": 1767225600, "from": MIN, "chat": PRIVATE}
    return {"update_id": update_id, kind: {**base, **message}}


def mention(text: str, name: str = "@glm_test_bot") -> list[dict[str, Any]]:
    """The entity Telegram attaches to ``name`` in ``text`` (UTF-16 offsets)."""
    start = text.index(name)
    offset = len(text[:start].encode("utf-16-le")) // 2
    return [{"type": "mention", "offset": offset, "length": len(name)}]


def as_turn(decision: object) -> Turn:
    assert isinstance(decision, Turn), decision
    return decision


# ---- private chats ------------------------------------------------------------------------------


def test_private_text_becomes_a_turn_with_everything_the_core_needs() -> None:
    raw = update({"text": "서울 날씨 알려줘"})
    turn = as_turn(decide(raw, BOT))
    assert turn.platform == "telegram"
    assert (turn.chat_id, turn.user_id, turn.user_name) == ("111", "111", "민수 김")
    assert (turn.text, turn.message_id, turn.delivery_id) == ("서울 날씨 알려줘", "55", "900001")
    assert turn.is_private and turn.thread_id == "" and turn.language == "ko"
    assert str(turn.session_key()) == "telegram:-:111:-:111"


def test_ptb_objects_convert_exactly_like_their_json() -> None:
    raw = update(
        {"chat": GROUP, "text": "@glm_test_bot 안녕 😀", "entities": mention("@glm_test_bot 안녕")}
    )
    from_json = decide(raw, BOT)
    from_ptb = decide(Update.de_json(raw, None), BOT)
    assert as_turn(from_ptb).text == "안녕 😀"
    assert replace(as_turn(from_ptb), received_at=0) == replace(as_turn(from_json), received_at=0)


def test_language_comes_from_language_code() -> None:
    raw = update({"from": ANN, "chat": {**PRIVATE, "id": 222}, "text": "123"})
    assert as_turn(decide(raw, BOT)).language == "en"


def test_private_chat_answers_every_text_even_unknown_commands() -> None:
    assert as_turn(decide(update({"text": "아무 말"}), BOT)).text == "아무 말"
    cmd = update(
        {"text": "/weather", "entities": [{"type": "bot_command", "offset": 0, "length": 8}]}
    )
    assert as_turn(decide(cmd, BOT)).text == "/weather"


# ---- groups -------------------------------------------------------------------------------------


def test_group_message_without_mention_is_ignored() -> None:
    decision = decide(update({"chat": GROUP, "text": "오늘 점심 뭐 먹지"}), BOT)
    assert isinstance(decision, Ignore)


def test_group_mention_is_stripped_and_answered() -> None:
    text = "@glm_test_bot, 오늘 날씨 어때?"
    turn = as_turn(decide(update({"chat": GROUP, "text": text, "entities": mention(text)}), BOT))
    assert turn.text == "오늘 날씨 어때?"
    assert not turn.is_private
    assert str(turn.session_key()) == "telegram:-:-1001234567890:-:111"
    assert str(turn.session_key(SessionScope.CHAT)) == "telegram:-:-1001234567890:-:-"


def test_mention_in_the_middle_after_an_emoji_uses_utf16_offsets() -> None:
    text = "😀😀 what do you think @glm_test_bot about this?"
    turn = as_turn(decide(update({"chat": GROUP, "text": text, "entities": mention(text)}), BOT))
    assert turn.text == "😀😀 what do you think about this?"


def test_other_users_mentions_stay_and_do_not_address_the_bot() -> None:
    text = "@ann 이거 봤어?"
    raw = update({"chat": GROUP, "text": text, "entities": mention(text, "@ann")})
    assert isinstance(decide(raw, BOT), Ignore)
    text = "@ann 한테 @glm_test_bot 가 설명해 줘"
    entities = mention(text, "@ann") + mention(text)
    turn = as_turn(decide(update({"chat": GROUP, "text": text, "entities": entities}), BOT))
    assert turn.text == "@ann 한테 가 설명해 줘"


def test_text_mention_of_the_bot_counts_as_a_mention() -> None:
    text = "GLM 도와줘"
    entities = [{"type": "text_mention", "offset": 0, "length": 3, "user": BOT_USER}]
    turn = as_turn(decide(update({"chat": GROUP, "text": text, "entities": entities}), BOT))
    assert turn.text == "도와줘"


def test_reply_to_the_bot_is_answered_in_groups() -> None:
    answer = {"message_id": 54, "date": 1767225500, "from": BOT_USER, "chat": GROUP, "text": "…"}
    raw = update({"chat": GROUP, "text": "좀 더 자세히", "reply_to_message": answer})
    turn = as_turn(decide(raw, BOT))
    assert turn.text == "좀 더 자세히"


def test_reply_to_someone_else_is_not_for_the_bot() -> None:
    other = {"message_id": 50, "date": 1767225500, "from": ANN, "chat": GROUP, "text": "hi"}
    raw = update({"chat": OLD_GROUP, "text": "ㅋㅋ", "reply_to_message": other})
    assert isinstance(decide(raw, BOT), Ignore)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/reset", "us"),
        ("/reset@glm_test_bot 222", "us"),
        ("/RESET@GLM_TEST_BOT", "us"),
        ("/reset@other_bot", "other"),
        ("/weather", ""),  # a bare unknown command in a group may be another bot's
        ("/weather@glm_test_bot", "us"),
    ],
)
def test_commands_in_groups(text: str, expected: str) -> None:
    length = len(text.split()[0])
    entities = [{"type": "bot_command", "offset": 0, "length": length}]
    assert command_addressee(text, entities, BOT) == expected
    decision = decide(update({"chat": GROUP, "text": text, "entities": entities}), BOT)
    if expected == "us":
        assert as_turn(decision).text == text  # the manager parses /cmd@bot itself
    else:
        assert isinstance(decision, Ignore)


def test_forum_topic_sets_the_thread_and_its_root_is_not_a_reply_to_the_bot() -> None:
    root = {
        "message_id": 7,
        "date": 1767225000,
        "from": BOT_USER,  # even when the bot created the topic
        "chat": FORUM,
        "message_thread_id": 7,
        "is_topic_message": True,
        "forum_topic_created": {"name": "날씨", "icon_color": 7322096},
    }
    plain = {
        "chat": FORUM,
        "text": "비 와?",
        "message_thread_id": 7,
        "is_topic_message": True,
        "reply_to_message": root,
    }
    assert isinstance(decide(update(plain), BOT), Ignore)
    text = "@glm_test_bot 비 와?"
    turn = as_turn(decide(update({**plain, "text": text, "entities": mention(text)}), BOT))
    assert turn.thread_id == "7"


def test_reply_thread_in_a_plain_supergroup_is_not_a_topic() -> None:
    text = "@glm_test_bot 요약해 줘"
    raw = update({"chat": GROUP, "text": text, "entities": mention(text), "message_thread_id": 40})
    assert as_turn(decide(raw, BOT)).thread_id == ""


def test_anonymous_admin_speaks_as_the_group() -> None:
    anonymous = {
        "id": 1087968824,
        "is_bot": True,
        "first_name": "Group",
        "username": "GroupAnonymousBot",
    }
    text = "@glm_test_bot /reset all"
    raw = update(
        {
            "chat": GROUP,
            "from": anonymous,
            "sender_chat": GROUP,
            "text": text,
            "entities": mention(text),
        }
    )
    turn = as_turn(decide(raw, BOT))
    assert turn.user_id == str(GROUP["id"]) and turn.text == "/reset all"


# ---- what is not answered, or answered "text only" ----------------------------------------------


STICKER = {"file_id": "f", "file_unique_id": "u", "type": "regular", "width": 512, "height": 512,
           "is_animated": False, "is_video": False}  # fmt: skip
PHOTO = [{"file_id": "p", "file_unique_id": "pu", "width": 90, "height": 90}]
VOICE = {"file_id": "v", "file_unique_id": "vu", "duration": 2}


@pytest.mark.parametrize("media", [{"sticker": STICKER}, {"photo": PHOTO}, {"voice": VOICE}])
def test_media_in_a_private_chat_gets_text_only(media: dict[str, Any]) -> None:
    decision = decide(update(media), BOT)
    assert isinstance(decision, TextOnly)
    assert decision.turn.chat_id == "111" and decision.turn.language == "ko"


def test_media_in_a_group_only_when_addressed() -> None:
    assert isinstance(decide(update({"chat": GROUP, "photo": PHOTO}), BOT), Ignore)
    caption = "@glm_test_bot 이거 뭐야?"
    raw = update(
        {"chat": GROUP, "photo": PHOTO, "caption": caption, "caption_entities": mention(caption)}
    )
    decision = decide(raw, BOT)
    assert isinstance(decision, TextOnly) and decision.turn.text == "이거 뭐야?"


def test_edited_messages_are_not_answered_again() -> None:
    raw = update({"text": "수정된 질문", "edit_date": 1767225700}, kind="edited_message")
    assert isinstance(decide(raw, BOT), Ignore)


@pytest.mark.parametrize(
    "message",
    [
        {"chat": GROUP, "new_chat_members": [ANN]},
        {"chat": GROUP, "pinned_message": {"message_id": 3, "date": 0, "chat": GROUP}},
        {"from": BOT_USER, "text": "from a bot"},
        {"chat": {"id": -100777, "type": "channel", "title": "news"}, "text": "post"},
    ],
)
def test_service_messages_bots_and_channels_are_ignored(message: dict[str, Any]) -> None:
    assert isinstance(decide(update(message), BOT), Ignore)


def test_callback_button_payload_becomes_the_next_message() -> None:
    answer = {"message_id": 60, "date": 1767225500, "from": BOT_USER, "chat": GROUP, "text": "?"}
    raw = {
        "update_id": 900010,
        "callback_query": {
            "id": "4382",
            "from": ANN,
            "message": answer,
            "chat_instance": "-99",
            "data": "부산 날씨",
        },
    }
    turn = as_turn(decide(raw, BOT))
    assert (turn.text, turn.user_id, turn.chat_id) == ("부산 날씨", "222", str(GROUP["id"]))
    assert turn.language == "en" and turn.delivery_id == "900010"


def test_strip_keeps_the_rest_of_the_text_exactly() -> None:
    text = "@glm_test_bot\n첫 줄\n  들여쓴 줄"
    assert strip_bot_mentions(text, mention(text), BOT) == ("첫 줄\n  들여쓴 줄", True)
    assert strip_bot_mentions("no mention", [], BOT) == ("no mention", False)
