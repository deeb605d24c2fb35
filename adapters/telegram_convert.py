"""Telegram updates (Bot API JSON or PTB objects) → a Turn, or the reason the bot stays quiet."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.commands import KNOWN
from bot.turn import Turn

PLATFORM = "telegram"

# Message fields that carry content the bot cannot read; anything else without text is a
# service message (someone joined, a pin, a topic was created) and gets no reply at all.
NON_TEXT_CONTENT = (
    "sticker",
    "photo",
    "voice",
    "video",
    "video_note",
    "audio",
    "document",
    "animation",
    "contact",
    "location",
    "venue",
    "poll",
    "dice",
    "game",
    "story",
    "paid_media",
    "checklist",
    "invoice",
)


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, from getMe: mentions and replies are recognised by these."""

    id: int
    username: str


@dataclass(frozen=True, slots=True)
class Ignore:
    """No reply at all; ``reason`` is for the debug log."""

    reason: str


@dataclass(frozen=True, slots=True)
class TextOnly:
    """Media addressed to the bot: reply "text only" in the user's language, no model call.

    ``turn`` carries the caption (possibly empty) so that language and target are known.
    """

    turn: Turn


@dataclass(frozen=True, slots=True)
class NotYours:
    """A quick-reply button offered to one user, pressed by another: the press is answered
    with ``t("button_not_yours")`` in ``language`` (the presser's client language) and makes
    no turn."""

    user_id: str
    language: str


Decision = Turn | TextOnly | Ignore | NotYours


# ---- quick-reply buttons: callback_data ----------------------------------------------------------

# Telegram carries 1-64 bytes of callback_data per button (InlineKeyboardButton).
MAX_CALLBACK_DATA = 64
# Between a button's payload and the user id of its owner. The ASCII unit separator never
# appears in a command or a message a user could type, and a payload holding it is refused
# (its button is left out), so the last field of the data is always the owner's.
OWNER_SEPARATOR = "\x1f"


def callback_data(payload: str, owner: str | None = None) -> str | None:
    """A button's callback_data: ``payload``, then, when only ``owner`` (a Telegram user id)
    may press it, the separator and that id. The owner travels with the button, so the check
    needs no state and survives restarts. None when the button cannot be carried: an empty
    payload, one holding the separator, an owner that is no Telegram id, or more than 64 bytes
    in all.

    A negative owner is a chat, not a user (an anonymous group admin or a channel speaking in
    the group): the real person pressing cannot be told from the others, so the button is
    anyone's.

    Who may press is a courtesy, not a permission: a press makes a turn of the presser's own
    (in their own session), whatever the data says.
    """
    if not payload or OWNER_SEPARATOR in payload:
        return None
    data = payload
    if owner is not None:
        owner = owner.strip()
        if not re.fullmatch(r"-?[0-9]{1,20}", owner):
            return None
        if not owner.startswith("-"):
            data = f"{payload}{OWNER_SEPARATOR}{owner}"
    return data if len(data.encode()) <= MAX_CALLBACK_DATA else None


def split_callback_data(data: str) -> tuple[str, str | None]:
    """(payload, owner or None) of a button's callback_data (see ``callback_data``)."""
    payload, separator, owner = data.partition(OWNER_SEPARATOR)
    return payload, (owner if separator else None)


def as_dict(update: Any) -> Mapping[str, Any]:
    """A Bot API update as a JSON-shaped mapping (PTB objects are converted)."""
    if isinstance(update, Mapping):
        return update
    to_dict = getattr(update, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"not a Telegram update: {type(update).__name__}")
    result: Mapping[str, Any] = to_dict()
    return result


def decide(update: Any, bot: BotIdentity) -> Decision:
    """What to do with one update: answer a Turn, answer "text only", or stay quiet."""
    data = as_dict(update)
    update_id = str(data.get("update_id", ""))
    if "message" in data:
        return _message(data["message"], bot, update_id)
    if "callback_query" in data:
        return _callback(data["callback_query"], bot, update_id)
    if "edited_message" in data:
        return Ignore("edited message: the answer to the original stands")
    kinds = [k for k in data if k != "update_id"]
    return Ignore(f"update kind {kinds[0] if kinds else 'empty'} is not handled")


# ---- messages --------------------------------------------------------------------------------


def _message(message: Mapping[str, Any], bot: BotIdentity, update_id: str) -> Decision:
    chat = message.get("chat") or {}
    chat_type = chat.get("type")
    if chat_type not in ("private", "group", "supergroup"):
        return Ignore(f"chat type {chat_type} is not served")
    if message.get("is_automatic_forward"):
        return Ignore("automatic forward from a linked channel")
    sender = _sender(message)
    if sender is None:
        return Ignore("message from a bot or without a sender")
    private = chat_type == "private"

    if "text" in message:
        text, entities = str(message["text"]), message.get("entities") or []
    else:
        text, entities = str(message.get("caption") or ""), message.get("caption_entities") or []
    stripped, mentioned = strip_bot_mentions(text, entities, bot)
    replied = _replies_to_bot(message, bot)

    if "text" not in message:
        if not any(message.get(kind) for kind in NON_TEXT_CONTENT):
            return Ignore("service message")
        if not private and not (mentioned or replied):
            return Ignore("media in a group, not addressed to the bot")
        return TextOnly(_turn(message, sender, stripped, update_id, private))

    command = command_addressee(text, entities, bot)
    if command == "other":
        return Ignore("command for another bot")
    if not private and not (mentioned or replied or command == "us"):
        return Ignore("group message not addressed to the bot")
    return _turn(message, sender, stripped, update_id, private)


def _callback(query: Mapping[str, Any], bot: BotIdentity, update_id: str) -> Decision:
    """A quick-reply button under one of our answers: its payload is the user's next message,
    if the button was offered to this user (or to anyone).

    Whether the button still shows is not asked: a stale press (its keyboard gone, its offer
    taken or unknown) is a turn too, and the core decides what that payload means now.
    """
    message = query.get("message") or {}
    data = query.get("data")
    user = query.get("from") or {}
    if not data or not message.get("chat") or not user or user.get("is_bot"):
        return Ignore("callback without data or chat")
    chat = message["chat"]
    if chat.get("type") not in ("private", "group", "supergroup"):
        return Ignore("callback from a channel")
    user_id, language = str(user["id"]), str(user.get("language_code") or "")
    payload, owner = split_callback_data(str(data))
    if owner is not None and owner != user_id:
        return NotYours(user_id, language)
    if not payload:
        return Ignore("callback without a payload")
    sender = (user_id, _name(user), language)
    return _turn(message, sender, payload, update_id, chat.get("type") == "private")


def _sender(message: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(user id, display name, language code) of whoever wrote ``message``."""
    user = message.get("from") or {}
    sender_chat = message.get("sender_chat")
    if sender_chat:
        # An anonymous group admin or a channel posting in the group: "from" is a placeholder
        # bot, so the chat that speaks is the sender.
        name = str(sender_chat.get("title") or sender_chat.get("username") or "")
        return str(sender_chat["id"]), name, ""
    if not user or user.get("is_bot"):
        return None
    return str(user["id"]), _name(user), str(user.get("language_code") or "")


def _name(user: Mapping[str, Any]) -> str:
    full = " ".join(str(user[k]) for k in ("first_name", "last_name") if user.get(k))
    return full or str(user.get("username") or "")


def _turn(
    message: Mapping[str, Any],
    sender: tuple[str, str, str],
    text: str,
    update_id: str,
    private: bool,
) -> Turn:
    user_id, name, language = sender
    return Turn(
        platform=PLATFORM,
        chat_id=str(message["chat"]["id"]),
        user_id=user_id,
        user_name=name,
        text=text,
        thread_id=topic_of(message),
        message_id=str(message.get("message_id", "")),
        is_private=private,
        language=language,
        delivery_id=update_id,
        raw=message,
    )


def topic_of(message: Mapping[str, Any]) -> str:
    """The forum topic of ``message`` ("" outside topics).

    ``message_thread_id`` alone also marks reply threads in ordinary supergroups, where sending
    to that "thread" fails; only ``is_topic_message`` means a topic.
    """
    if message.get("is_topic_message") and message.get("message_thread_id"):
        return str(message["message_thread_id"])
    return ""


def _replies_to_bot(message: Mapping[str, Any], bot: BotIdentity) -> bool:
    replied = message.get("reply_to_message") or {}
    if not replied or replied.get("forum_topic_created"):
        # Inside a topic every message "replies" to the topic's first service message.
        return False
    author = replied.get("from") or {}
    return bool(author.get("id") == bot.id)


# ---- entities --------------------------------------------------------------------------------


def _spans(
    text: str, entities: Sequence[Mapping[str, Any]]
) -> list[tuple[int, int, Mapping[str, Any]]]:
    """Entities as (start, end) code-point indexes: the Bot API counts in UTF-16 units."""
    starts: dict[int, int] = {}
    units = 0
    for index, ch in enumerate(text):
        starts[units] = index
        units += 2 if ord(ch) > 0xFFFF else 1
    starts[units] = len(text)
    spans = []
    for entity in entities:
        offset, length = int(entity.get("offset", -1)), int(entity.get("length", 0))
        start, end = starts.get(offset), starts.get(offset + length)
        if start is not None and end is not None and end > start:
            spans.append((start, end, entity))
    return spans


def _is_bot_mention(piece: str, entity: Mapping[str, Any], bot: BotIdentity) -> bool:
    if entity.get("type") == "mention":
        return bool(bot.username) and piece.lower() == f"@{bot.username.lower()}"
    if entity.get("type") == "text_mention":
        return bool((entity.get("user") or {}).get("id") == bot.id)
    return False


def strip_bot_mentions(
    text: str, entities: Sequence[Mapping[str, Any]], bot: BotIdentity
) -> tuple[str, bool]:
    """``text`` without the bot's @mentions, and whether there was one.

    "@glm_bot, 오늘 날씨?" → "오늘 날씨?"; "what do you think @glm_bot about X" → "what do you
    think about X". Other users' mentions stay: they may matter to the question.
    """
    cuts = [(s, e) for s, e, ent in _spans(text, entities) if _is_bot_mention(text[s:e], ent, bot)]
    if not cuts:
        return text.strip(), False
    pieces: list[str] = []
    last = 0
    for start, end in sorted(cuts):
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    out = pieces[0]
    for piece in pieces[1:]:
        if out.endswith((" ", "\n")) and piece.startswith(" "):
            piece = piece[1:]  # "a @bot b" → "a b", not "a  b"
        out += piece
    # Punctuation that only separated a leading mention from the question: "@bot, hi".
    out = re.sub(r"^[\s,:;]+", "", out)
    return out.strip(), True


def command_addressee(text: str, entities: Sequence[Mapping[str, Any]], bot: BotIdentity) -> str:
    """ "us", "other" (``/cmd@another_bot``) or "" when the text starts with no command.

    In groups every bot sees a bare ``/start``; only our own commands are answered then, so
    that a command meant for another bot does not get an "unknown command" reply from us.
    """
    for start, end, entity in _spans(text, entities):
        if entity.get("type") != "bot_command" or start != 0:
            continue
        name, _, target = text[1:end].partition("@")
        if target:
            return "us" if target.lower() == bot.username.lower() else "other"
        return "us" if name.lower() in KNOWN else ""
    return ""
