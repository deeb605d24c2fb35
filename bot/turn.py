"""The inbound Turn and the SessionKey that decides which conversation it belongs to."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class SessionScope(StrEnum):
    """How turns in shared chats (groups, channels) are grouped into sessions."""

    USER = "user"  # one session per user within the chat (default for groups)
    THREAD = "thread"  # the whole thread shares one session (Slack threads)
    USER_IN_THREAD = "user_in_thread"  # one session per user within the thread
    CHAT = "chat"  # the whole chat shares one session


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Identifies one conversation; its string form is used as the storage key."""

    platform: str
    team: str
    chat: str
    thread: str = ""
    user: str = ""

    def __str__(self) -> str:
        # ':' separates the fields and '-' stands for an empty one; the rare id that holds
        # ':' or '%', or is '-' itself, is escaped, so different keys never share a string
        # while every ordinary id reads as itself. '{' and '}' are escaped by the Redis store.
        return ":".join(
            _field(part) for part in (self.platform, self.team, self.chat, self.thread, self.user)
        )

    @classmethod
    def parse(cls, value: str) -> SessionKey:
        platform, team, chat, thread, user = (_unfield(part) for part in value.split(":", 4))
        return cls(platform=platform, team=team, chat=chat, thread=thread, user=user)


_FIELD_ESCAPES = {"%": "%25", ":": "%3A"}
_FIELD_UNESCAPES = {"%25": "%", "%3A": ":", "%2D": "-"}
_FIELD_ESCAPED = re.compile("%25|%3A|%2D")


def _field(value: str) -> str:
    if not value:
        return "-"
    if value == "-":
        return "%2D"
    if "%" in value or ":" in value:
        return "".join(_FIELD_ESCAPES.get(c, c) for c in value)
    return value


def _unfield(text: str) -> str:
    if text == "-":
        return ""
    return _FIELD_ESCAPED.sub(lambda m: _FIELD_UNESCAPES[m.group(0)], text) if "%" in text else text


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message, the same shape whatever platform it came from."""

    platform: str
    chat_id: str
    user_id: str
    text: str
    team_id: str = ""
    thread_id: str = ""
    user_name: str = ""
    message_id: str = ""
    is_private: bool = True
    language: str = ""  # the platform's hint (Telegram language_code), may be empty
    delivery_id: str = ""  # update_id / event_id, for de-duplication
    scope: SessionScope | None = None  # the platform's own scope, over the manager's default
    ephemeral: bool = False  # the reply is seen by the sender only (a Slack slash command)
    received_at: float = field(default_factory=time.time)
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def delivery_key(self) -> str:
        """The platform delivery this turn came in, unique across platforms and tenants."""
        return f"{self.platform}:{self.team_id}:{self.delivery_id}" if self.delivery_id else ""

    @property
    def unobserved(self) -> bool:
        """Nobody but the sender reads the reply: a private chat or an ephemeral answer."""
        return self.is_private or self.ephemeral

    def session_key(self, scope: SessionScope = SessionScope.USER) -> SessionKey:
        """The session this turn belongs to: private chats are always per user."""
        scope = self.scope or scope
        if self.is_private:
            return SessionKey(self.platform, self.team_id, self.chat_id, "", self.user_id)
        if scope is SessionScope.THREAD:
            return SessionKey(self.platform, self.team_id, self.chat_id, self.thread_id, "")
        if scope is SessionScope.USER_IN_THREAD:
            return SessionKey(
                self.platform, self.team_id, self.chat_id, self.thread_id, self.user_id
            )
        if scope is SessionScope.CHAT:
            return SessionKey(self.platform, self.team_id, self.chat_id, "", "")
        return SessionKey(self.platform, self.team_id, self.chat_id, "", self.user_id)
