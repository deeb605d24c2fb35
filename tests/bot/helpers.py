"""Test helpers: a recording ReplyStream and a manager wired to the fake GLM server."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.forms.builtin.intake import RecordSubmissionStore
from bot.glm.breaker import BreakerState, CircuitBreaker
from bot.glm.client import GlmClient
from bot.glm.guarded import GuardedGlm
from bot.manager import ConversationManager, ManagerConfig
from bot.reply import Button, ReplyStream
from bot.sessions.base import SessionStore
from bot.sessions.index import StoredIndex
from bot.turn import Turn


@dataclass
class RecordingReply(ReplyStream):
    """Records what a platform would have been asked to show, in order."""

    events: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)  # under the final answer

    async def start(self) -> None:
        self.events.append(("start", ""))

    def append(self, text: str) -> None:
        self.events.append(("append", text))

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        self.events.append(("finish", text))
        self.buttons = list(buttons or ())

    async def fail(self, notice: str) -> None:
        self.events.append(("fail", notice))

    async def retract(self, notice: str) -> None:
        self.events.append(("retract", notice))

    @property
    def streamed(self) -> str:
        return "".join(text for kind, text in self.events if kind == "append")

    @property
    def final(self) -> tuple[str, str]:
        return self.events[-1]


def turn(text: str, user: str = "7", chat: str = "7", **kw: object) -> Turn:
    return Turn(platform="test", chat_id=chat, user_id=user, text=text, **kw)  # type: ignore[arg-type]


def make_manager(
    base_url: str,
    api_key: str,
    store: SessionStore,
    *,
    first_token_timeout: float = 2.0,
    stall_timeout: float = 1.0,
    breaker: CircuitBreaker | None = None,
    max_answer_tokens: int = 4096,
    **config: object,
) -> ConversationManager:
    client = GlmClient(base_url=base_url, api_key=api_key, backoff_factor=0.01, backoff_max=0.02)
    glm = GuardedGlm(
        client,
        model="glm-4.5",
        first_token_timeout=first_token_timeout,
        stall_timeout=stall_timeout,
        breaker=breaker,
        max_answer_tokens=max_answer_tokens,
    )
    return ConversationManager(store=store, glm=glm, config=ManagerConfig(**config))  # type: ignore[arg-type]


async def book(
    store: SessionStore,
    index: StoredIndex,
    user: str | int,
    name: str,
    platform: str = "test",
    *,
    team: str = "",
) -> None:
    """A consultation booking two days ahead, stored as the intake form stores it."""
    when = datetime.now(ZoneInfo("Asia/Seoul")) + timedelta(days=2)
    record = {
        "id": f"{int(time.time() * 1000):013d}-{user}",
        "ref": "0613-ABCD",
        "name": name,
        "phone": "010-1234-5678",
        "date": when.date().isoformat(),
        "time": "15:00",
        "topic": "이사 문제",
        "lang": "ko",
        "platform": platform,
        "user_id": str(user),
    }
    turn = Turn(platform, str(user), str(user), "네", team_id=team)
    await RecordSubmissionStore(store, index=index).add("intake", record, turn, 5 * 86_400)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def state(breaker: CircuitBreaker) -> BreakerState:
    # Through a function so that mypy does not narrow ``breaker.state`` between asserts.
    return breaker.state
