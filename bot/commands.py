"""Chat commands shared by every platform: /start /help /reset /forget."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from bot.i18n import t
from bot.sessions.base import SessionStore
from bot.turn import SessionKey, SessionScope, Turn

log = logging.getLogger(__name__)

AdminCheck = Callable[[Turn], Awaitable[bool]]


class ExtraCommand(Protocol):
    """A command contributed by a feature (e.g. ``/submissions`` of the intake form)."""

    @property
    def names(self) -> Sequence[str]: ...

    async def run(self, args: Sequence[str], lang: str, *, is_admin: bool) -> str: ...


KNOWN = ("start", "help", "reset", "forget")
SHARED_TARGETS = ("all", "group", "chat", "thread", "전체", "그룹")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[str, ...]


def parse_command(text: str) -> Command | None:
    """``/reset@MyBot 123`` → Command('reset', ('123',)); None when not a command."""
    if not text.startswith("/") or len(text) < 2:
        return None
    head, *args = text[1:].split()
    name = head.split("@", 1)[0].lower()
    if not name:
        return None
    return Command(name, tuple(args))


class CommandRouter:
    """Runs commands; who may reset whom is decided here, platform facts come from AdminCheck."""

    def __init__(
        self,
        store: SessionStore,
        *,
        scope: SessionScope = SessionScope.USER,
        admin_checks: dict[str, AdminCheck] | None = None,
        extra: Sequence[ExtraCommand] = (),
    ) -> None:
        self.store = store
        self.scope = scope
        self.admin_checks: dict[str, AdminCheck] = dict(admin_checks or {})
        self.extra: dict[str, ExtraCommand] = {name: c for c in extra for name in c.names}

    async def is_admin(self, turn: Turn) -> bool:
        check = self.admin_checks.get(turn.platform)
        if check is None:
            return False
        try:
            return await check(turn)
        except Exception:  # a failed lookup must not grant rights
            log.exception("admin check failed platform=%s user=%s", turn.platform, turn.user_id)
            return False

    async def run(self, command: Command, turn: Turn, lang: str) -> str:
        """The reply text for ``command``; raises SessionStoreError when storage is down."""
        if command.name in ("start", "help"):
            return t("help", lang)
        own = turn.session_key(self.scope)
        if command.name == "forget":
            deleted = await self._forget(turn, own)
            log.info("forget user=%s:%s sessions=%d", turn.platform, turn.user_id, deleted)
            return t("forget_done", lang)
        if command.name == "reset":
            return await self._reset(command, turn, own, lang)
        extra = self.extra.get(command.name)
        if extra is not None:
            return await extra.run(command.args, lang, is_admin=await self.is_admin(turn))
        return t("unknown_command", lang, command=f"/{command.name}")

    async def _reset(self, command: Command, turn: Turn, own: SessionKey, lang: str) -> str:
        target = own
        label = ""
        if command.args:
            arg = command.args[0].lstrip("@")
            if arg.lower() in SHARED_TARGETS:
                target = replace(own, user="")
                label = arg
            elif arg != turn.user_id:
                target = replace(own, user=arg)
                label = arg
        mine = target.user == turn.user_id and target.user != ""
        if not mine and not await self.is_admin(turn):
            log.info("reset refused session=%s caller=%s", target, turn.user_id)
            return t("reset_denied", lang)
        await self._delete(target)
        log.info("reset session=%s by=%s", target, turn.user_id)
        return t("reset_other_done", lang, target=label) if label else t("reset_done", lang)

    async def _forget(self, turn: Turn, own: SessionKey) -> int:
        """Delete the caller's sessions in every chat of this platform and workspace.

        A scan of all keys: /forget is rare, and it must not miss a chat the user talked in.
        The current session goes too even when it is shared (a thread), as the user asked.
        """
        doomed = {own}
        async for raw in self.store.keys():
            try:
                key = SessionKey.parse(raw)
            except ValueError:
                continue  # not a conversation (e.g. a form's submission record)
            if (key.platform, key.team, key.user) == (turn.platform, turn.team_id, turn.user_id):
                doomed.add(key)
        for key in doomed:
            await self._delete(key)
        return len(doomed)

    async def _delete(self, key: SessionKey) -> None:
        async with self.store.lock(key):
            await self.store.delete(key)
