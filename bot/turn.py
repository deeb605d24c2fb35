"""The inbound Turn and the SessionKey that decides which conversation it belongs to."""

from __future__ import annotations

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
        # ':' separates fields; ids never contain it on any platform we serve, and '{' '}'
        # never appear, so the string is safe inside a Redis Cluster hash tag.
        return ":".join(
            (self.platform, self.team or "-", self.chat, self.thread or "-", self.user or "-")
        )

    @classmethod
    def parse(cls, value: str) -> SessionKey:
        platform, team, chat, thread, user = value.split(":", 4)
        return cls(
            platform=platform,
            team="" if team == "-" else team,
            chat=chat,
            thread="" if thread == "-" else thread,
            user="" if user == "-" else user,
        )


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
    received_at: float = field(default_factory=time.time)
    raw: Any = field(default=None, compare=False, repr=False)

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
