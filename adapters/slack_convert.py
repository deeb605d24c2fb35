"""Slack payloads → Turns: which events the bot answers, with whose session, and the plain text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.slack_blocks import ACTION_PATTERN, decode_value, read_block_id
from bot.i18n import detect_language
from bot.turn import SessionScope, Turn

PLATFORM = "slack"

# Message subtypes that are still a person writing to the bot; every other subtype is an edit,
# a deletion, a join notice, a bot post... and is never answered.
ANSWERED_SUBTYPES = frozenset({"", "thread_broadcast", "file_share"})

_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_ENTITY = re.compile(r"<([^<>]+)>")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in the workspace (from ``auth.test``)."""

    user_id: str
    bot_id: str = ""
    team_id: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """How shared conversations are grouped and followed (see ``SlackOptions``)."""

    scope: SessionScope = SessionScope.THREAD
    thread_replies: bool = True  # answer later messages in the bot's threads without a mention


@dataclass(frozen=True, slots=True)
class SlackTurn(Turn):
    """A Turn with what only Slack's answer needs: the user's own team.

    Its ``scope`` is set from ``SLACK_SESSION_SCOPE`` (a channel conversation is a thread),
    which wins over the group setting meant for Telegram groups; DMs stay per user.
    """

    recipient_team_id: str = ""  # the user's own team (differs in Slack Connect channels)


@dataclass(frozen=True, slots=True)
class Inbound:
    """An event the bot should answer.

    ``follow_up`` marks a thread reply without a mention: it is answered only in a thread the
    bot takes part in, which the channel has to look up (the payload does not say).
    """

    turn: SlackTurn
    follow_up: bool = False


@dataclass(frozen=True, slots=True)
class Ignore:
    """An event that gets no answer, and why (for debug logs and tests)."""

    reason: str


def mentions(text: str, user_id: str) -> bool:
    """Whether Slack-formatted ``text`` mentions ``user_id`` (``<@U123>`` or ``<@U123|name>``)."""
    return bool(user_id) and any(m.group(1) == user_id for m in _MENTION.finditer(text))


def mentioned_users(text: str) -> set[str]:
    return {m.group(1) for m in _MENTION.finditer(text)}


def plain_text(text: str, bot_user_id: str = "", *, ids: bool = False) -> str:
    """Slack's message markup as the words a person reads.

    The bot's own mention is removed (it only addresses the bot). Other mentions become
    ``@name`` (``@U123`` with ``ids``, which commands need), channels ``#name``, links their
    label and address, and the ``&amp;`` ``&lt;`` ``&gt;`` escapes their characters.
    """

    def entity(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            user = target[1:]
            if user == bot_user_id:
                return ""
            return f"@{user}" if ids or not label else f"@{label}"
        if target.startswith("#"):
            return f"#{label}" if label else target
        if target.startswith("!"):
            name = target[1:]
            if name.startswith("subteam^"):
                return label or "@team"
            if name.startswith("date^"):
                return label or ""
            return f"@{name}"
        if target.startswith("mailto:"):
            return label or target[len("mailto:") :]
        if label and label != target:
            return f"{label} ({target})"
        return target

    text = _ENTITY.sub(entity, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    # Removing a mention leaves doubled spaces ("hi <@BOT> there"); lines are kept as written.
    lines = [re.sub(r"[ \t]{2,}", " ", line).strip() for line in text.split("\n")]
    return "\n".join(lines).strip()


def decide(
    envelope: Mapping[str, Any], me: BotIdentity, options: ConvertOptions | None = None
) -> Inbound | Ignore:
    """What to do with one Events API envelope (``event_callback``)."""
    options = options or ConvertOptions()
    if envelope.get("type") != "event_callback":
        return Ignore(f"{envelope.get('type')} is not an event")
    event = envelope.get("event")
    if not isinstance(event, Mapping):
        return Ignore("no event")
    kind = str(event.get("type") or "")
    if kind not in ("app_mention", "message"):
        return Ignore(f"{kind} events are not answered")
    subtype = str(event.get("subtype") or "")
    if subtype not in ANSWERED_SUBTYPES:
        return Ignore(f"message subtype {subtype}")
    user = str(event.get("user") or "")
    if event.get("bot_id") or event.get("bot_profile") or not user:
        return Ignore("written by a bot")
    if user == me.user_id:
        return Ignore("the bot's own message")
    channel = str(event.get("channel") or "")
    if not channel:
        return Ignore("no channel")
    channel_type = str(event.get("channel_type") or "")
    private = channel_type == "im" or (not channel_type and channel.startswith("D"))
    raw_text = str(event.get("text") or "")
    ts = str(event.get("ts") or "")
    thread_ts = str(event.get("thread_ts") or "")
    follow_up = False
    if kind == "app_mention":
        if private:
            return Ignore("a DM is answered through its message event")
    elif not private:
        if mentions(raw_text, me.user_id):
            # The same message also arrives as app_mention (another event_id): answer that one.
            return Ignore("a mention is answered through app_mention")
        if not thread_ts or thread_ts == ts:
            return Ignore("a channel message without a mention")
        if not options.thread_replies:
            return Ignore("thread replies need a mention")
        if mentioned_users(raw_text) - {me.user_id}:
            return Ignore("a thread reply addressed to someone else")
        follow_up = True
    team = str(envelope.get("team_id") or event.get("team") or me.team_id)
    profile = event.get("user_profile")
    name = ""
    if isinstance(profile, Mapping):
        name = str(profile.get("display_name") or profile.get("real_name") or "")
    turn = SlackTurn(
        platform=PLATFORM,
        chat_id=channel,
        user_id=user,
        text=plain_text(raw_text, me.user_id),
        team_id=team,
        # Where the answer goes: the thread the message is in, or a new one under it.
        thread_id=thread_ts or ts,
        user_name=name,
        message_id=ts,
        is_private=private,
        delivery_id=str(envelope.get("event_id") or ""),
        raw=envelope,
        scope=options.scope,
        recipient_team_id=str(event.get("user_team") or event.get("team") or team),
    )
    return Inbound(turn, follow_up=follow_up)


def command_turn(payload: Mapping[str, Any], options: ConvertOptions | None = None) -> SlackTurn:
    """A slash command (``/reset U123``) as the command text the core understands.

    Slack sends no thread with a slash command, so in a channel it addresses the channel's
    session; in a DM, the caller's own.
    """
    options = options or ConvertOptions()
    command = str(payload.get("command") or "").strip()
    args = plain_text(str(payload.get("text") or ""), ids=True)
    channel = str(payload.get("channel_id") or "")
    team = str(payload.get("team_id") or "")
    private = channel.startswith("D") or payload.get("channel_name") == "directmessage"
    return SlackTurn(
        platform=PLATFORM,
        chat_id=channel,
        user_id=str(payload.get("user_id") or ""),
        text=f"{command} {args}".strip(),
        team_id=team,
        user_name=str(payload.get("user_name") or ""),
        is_private=private,
        raw=payload,
        scope=options.scope,
        ephemeral=True,  # answered through response_url as an ephemeral message
        recipient_team_id=team,
    )


@dataclass(frozen=True, slots=True)
class ButtonPress:
    """A press of one of the bot's buttons (a ``block_actions`` payload).

    ``turn`` is the presser's turn: the button's payload as its text, in the session the
    button was offered in (the same team, channel and thread as the answer it came with).
    """

    turn: SlackTurn
    owner: str | None  # only this user may press it (None: anyone)
    channel: str
    message_ts: str  # the message that carries the buttons
    message: Mapping[str, Any] | None  # that message as Slack sent it (with its blocks)
    response_url: str
    ephemeral: bool  # pressed in an ephemeral message (Slack sends no ``message`` then)
    lang: str  # the language of the message it was offered with (for notices)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def button_press(
    payload: Mapping[str, Any], me: BotIdentity, options: ConvertOptions | None = None
) -> ButtonPress | Ignore:
    """What one ``block_actions`` payload asks for: a turn, if it is a press of our button.

    The thread is the pressed message's (``container.thread_ts``, else the message's own
    ``thread_ts``): every answer of the bot is a reply in the thread of the conversation, so
    this is the ``thread_id`` of the turns the answer was given to. The team comes from the
    button's block (see ``adapters.slack_blocks``). ``action_ts`` and the presser make the
    delivery id: Slack sending the same press twice makes one turn.
    """
    options = options or ConvertOptions()
    if payload.get("type") != "block_actions":
        return Ignore(f"{payload.get('type')} is not a button press")
    actions = payload.get("actions")
    action = next(
        (
            a
            for a in actions or []
            if isinstance(a, Mapping) and ACTION_PATTERN.fullmatch(str(a.get("action_id") or ""))
        ),
        None,
    )
    if action is None:
        return Ignore("not one of the bot's buttons")
    user = _mapping(payload.get("user"))
    user_id = str(user.get("id") or "")
    container = _mapping(payload.get("container"))
    channel_info = _mapping(payload.get("channel"))
    channel = str(channel_info.get("id") or container.get("channel_id") or "")
    if not user_id or not channel:
        return Ignore("a press without a user or a channel")
    message = payload.get("message")
    message = message if isinstance(message, Mapping) else None
    message_ts = str(container.get("message_ts") or (message or {}).get("ts") or "")
    thread = str(container.get("thread_ts") or (message or {}).get("thread_ts") or message_ts or "")
    offer = read_block_id(str(action.get("block_id") or ""))
    team = (
        (offer.team if offer is not None else "")
        or str(_mapping(payload.get("team")).get("id") or "")
        or str(user.get("team_id") or "")
        or me.team_id
    )
    private = channel.startswith("D") or channel_info.get("name") == "directmessage"
    text, owner = decode_value(str(action.get("value") or ""))
    shown = str((message or {}).get("text") or "")
    lang = detect_language(shown) if shown.strip() else "ko"
    action_ts = str(action.get("action_ts") or payload.get("action_ts") or "")
    turn = SlackTurn(
        platform=PLATFORM,
        chat_id=channel,
        user_id=user_id,
        text=text,
        team_id=team,
        thread_id=thread,
        user_name=str(user.get("username") or user.get("name") or ""),
        message_id=action_ts,
        is_private=private,
        language=lang,
        delivery_id=f"press-{action_ts}-{user_id}" if action_ts else "",
        raw=payload,
        scope=options.scope,
        recipient_team_id=str(user.get("team_id") or team),
    )
    return ButtonPress(
        turn=turn,
        owner=owner,
        channel=channel,
        message_ts=message_ts,
        message=message,
        response_url=str(payload.get("response_url") or ""),
        ephemeral=bool(container.get("is_ephemeral")),
        lang=lang,
    )
