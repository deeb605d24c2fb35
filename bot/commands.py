"""Chat commands shared by every platform: /start /help /reset /forget, and who may do what.

Two kinds of administrator exist, and they are never confused:

* the bot's own admins, configured by the operator (``TELEGRAM_ADMIN_IDS``,
  ``SLACK_ADMIN_USER_IDS``): they may reset any conversation and list bookings (privately,
  and only their own tenant's);
* a group's admins (Telegram ``getChatMember``): they may reset that group's conversations,
  in that group, and nothing else.

What each command deletes is looked up in the store's user and chat indexes
(``bot.sessions.index``), never by scanning the keyspace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.i18n import localized, t
from bot.sessions.base import SessionStore
from bot.sessions.index import (
    RecordRef,
    StoredIndex,
    chat_index,
    parse_member,
    tenant_of,
    user_index,
)
from bot.turn import SessionKey, SessionScope, Turn

log = logging.getLogger(__name__)

AdminCheck = Callable[[Turn], Awaitable[bool]]
# Something a feature keeps about a user outside sessions and records (e.g. a rate-limit
# counter): called by /forget to delete it.
Forgetter = Callable[[Turn], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who runs a command, where, and with which rights."""

    turn: Turn
    lang: str
    bot_admin: bool  # one of the operator's configured admins (not a group's admin)

    @property
    def tenant(self) -> str:
        return tenant_of(self.turn)


class ExtraCommand(Protocol):
    """A command contributed by a feature (e.g. ``/submissions`` of the intake form)."""

    @property
    def names(self) -> Sequence[str]: ...

    async def run(self, args: Sequence[str], caller: Caller) -> str: ...


KNOWN = ("start", "help", "reset", "forget", "memory", "usage", "interests", "suggestions")
CHAT_TARGETS = ("all", "group", "chat", "channel", "전체", "그룹")
THREAD_TARGETS = ("thread", "스레드")

TEXT: dict[str, dict[str, str]] = {
    "help_offline": {
        "ko": "※ GLM API 키가 설정되지 않아 지금은 내장 오프라인 모델이 답해요 "
        "(실제 AI 답변이 아니에요).",
        "en": "Note: no GLM API key is set, so the built-in offline model is answering "
        "(these are not real AI answers).",
    },
    "reset_shared_done": {
        "ko": "이 대화는 여기 있는 모두가 함께 쓰는 대화라서, 모두에게 새로 시작돼요. "
        "대화를 초기화했어요.",
        "en": "Conversation reset. It is shared by everyone here, so it starts over for all "
        "of them.",
    },
    "reset_mine_done": {
        "ko": "이 채널에서 내가 참여한 대화 {count}개를 초기화했어요. "
        "(스레드 대화는 함께 쓰는 대화라 그 스레드의 모두에게 새로 시작돼요.)",
        "en": "Reset the {count} conversation(s) you took part in on this channel. "
        "(Thread conversations are shared, so they start over for everyone in them.)",
    },
    "reset_chat_done": {
        "ko": "이 대화방의 모든 대화 {count}개를 초기화했어요.",
        "en": "Reset every conversation in this chat ({count}).",
    },
    "reset_thread_done": {
        "ko": "이 스레드의 모든 대화 {count}개를 초기화했어요.",
        "en": "Reset every conversation in this thread ({count}).",
    },
    "reset_private_usage": {
        "ko": "개인 대화에서는 /reset 으로 이 대화만 초기화할 수 있어요.",
        "en": "In a private chat, /reset starts this conversation over; it takes no argument.",
    },
    "memory_empty": {
        "ko": "이 대화에 대해 기억하고 있는 것이 없어요.",
        "en": "I keep nothing about this conversation.",
    },
    "memory_kept": {
        "ko": "이 대화에서 기억하는 것: 최근 메시지 {count}개 ({since}부터).",
        "en": "What I keep of this conversation: the latest {count} message(s) (since {since}).",
    },
    "memory_summary": {
        "ko": "그 전 대화의 요약:\n{summary}",
        "en": "A summary of what came before:\n{summary}",
    },
    "memory_no_summary": {
        "ko": "(아직 요약은 없어요.)",
        "en": "(No summary yet.)",
    },
    "memory_clear": {
        "ko": "/reset 은 이 대화를, /forget 은 저장된 내 정보 전부를 지워요.",
        "en": "/reset clears this conversation; /forget clears everything stored about you.",
    },
    "forget_done": {
        "ko": "저장된 내 정보를 모두 삭제했어요: 대화 {sessions}개, 예약 {records}건.",
        "en": "I deleted everything I had stored about you: {sessions} conversation(s) "
        "and {records} booking(s).",
    },
    "forget_shared": {
        "ko": "그중 {shared}개는 여러 사람이 함께 쓰던 그룹·스레드 대화라서, "
        "그 대화의 기억은 모두에게서 지워졌어요.",
        "en": "{shared} of them were group or thread conversations shared with others; "
        "their memory was cleared for everyone in them.",
    },
}


def say(key: str, lang: str, **values: object) -> str:
    return localized(TEXT[key], lang, **values)


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


@dataclass(slots=True)
class ForgetReport:
    sessions: int = 0
    shared: int = 0
    records: int = 0
    kinds: set[str] = field(default_factory=set)


class CommandRouter:
    """Runs commands; who may reset whom is decided here, platform facts come from AdminCheck."""

    def __init__(
        self,
        store: SessionStore,
        *,
        scope: SessionScope = SessionScope.USER,
        admin_ids: Mapping[str, Iterable[str]] | None = None,
        admin_checks: dict[str, AdminCheck] | None = None,
        extra: Sequence[ExtraCommand] = (),
        index: StoredIndex | None = None,
        offline: bool = False,
    ) -> None:
        self.store = store
        self.scope = scope
        # The operator's admins, per platform; ``admin_checks`` answers "is this user an
        # administrator of this group" (the adapter asks the platform).
        self.admin_ids: dict[str, frozenset[str]] = {
            platform: frozenset(ids) for platform, ids in (admin_ids or {}).items()
        }
        self.admin_checks: dict[str, AdminCheck] = dict(admin_checks or {})
        self.extra: dict[str, ExtraCommand] = {name: c for c in extra for name in c.names}
        self.index = index or StoredIndex(store, session_ttl_seconds=30 * 86_400)
        self.offline = offline
        self.forgetters: list[Forgetter] = []

    def is_bot_admin(self, turn: Turn) -> bool:
        return turn.user_id in self.admin_ids.get(turn.platform, frozenset())

    async def is_chat_admin(self, turn: Turn) -> bool:
        """An administrator of the group ``turn`` came from (never of a private chat)."""
        if turn.is_private:
            return False
        check = self.admin_checks.get(turn.platform)
        if check is None:
            return False
        try:
            return await check(turn)
        except Exception:  # a failed lookup must not grant rights
            log.exception("admin check failed platform=%s user=%s", turn.platform, turn.user_id)
            return False

    def caller(self, turn: Turn, lang: str) -> Caller:
        return Caller(turn, lang, bot_admin=self.is_bot_admin(turn))

    async def run(self, command: Command, turn: Turn, lang: str) -> str:
        """The reply text for ``command``; raises SessionStoreError when storage is down."""
        if command.name in ("start", "help"):
            text = t("help", lang)
            return f"{text}\n\n{say('help_offline', lang)}" if self.offline else text
        if command.name == "forget":
            report = await self.forget(turn)
            log.info(
                "forget user=%s:%s sessions=%d shared=%d records=%d",
                turn.platform,
                turn.user_id,
                report.sessions,
                report.shared,
                report.records,
            )
            text = say("forget_done", lang, sessions=report.sessions, records=report.records)
            if report.shared:
                text += " " + say("forget_shared", lang, shared=report.shared)
            return text
        if command.name == "reset":
            return await self._reset(command, turn, lang)
        if command.name == "memory":
            return await self.memory(turn, lang)
        extra = self.extra.get(command.name)
        if extra is not None:
            return await extra.run(command.args, self.caller(turn, lang))
        return t("unknown_command", lang, command=f"/{command.name}")

    # --- /memory ------------------------------------------------------------------------

    async def memory(self, turn: Turn, lang: str) -> str:
        """What is kept of the conversation this turn belongs to: messages and summary."""
        session = await self.store.load(turn.session_key(self.scope))
        kept = [m for m in session.history if m.role in ("user", "assistant")]
        if not kept and not session.summary:
            return say("memory_empty", lang)
        lines = []
        if kept:
            since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(kept[0].ts)) + " UTC"
            lines.append(say("memory_kept", lang, count=len(kept), since=since))
        summary = session.summary[:3_000]
        lines.append(
            say("memory_summary", lang, summary=summary)
            if summary
            else say("memory_no_summary", lang)
        )
        lines.append(say("memory_clear", lang))
        return "\n".join(lines)

    # --- /reset -------------------------------------------------------------------------

    async def _reset(self, command: Command, turn: Turn, lang: str) -> str:
        own = turn.session_key(self.scope)
        arg = command.args[0].lstrip("@") if command.args else ""
        if not arg or arg == turn.user_id:
            if turn.ephemeral and not turn.is_private:
                # A Slack slash command carries no thread: "my conversations in this channel".
                mine = await self._users_sessions_in(turn, turn.user_id)
                count = await self._delete_all(mine)
                log.info(
                    "reset own sessions in chat=%s by=%s n=%d", turn.chat_id, turn.user_id, count
                )
                return say("reset_mine_done", lang, count=count)
            await self._delete(own)
            log.info("reset session=%s by=%s", own, turn.user_id)
            return say("reset_shared_done", lang) if not own.user else t("reset_done", lang)
        if turn.is_private:
            if arg.lower() in CHAT_TARGETS:
                await self._delete(own)
                return t("reset_done", lang)
            return say("reset_private_usage", lang)
        lowered = arg.lower()
        in_chat = await self.index.chat_sessions(turn.platform, turn.team_id, turn.chat_id)
        if lowered in CHAT_TARGETS:
            targets = in_chat | {replace(own, thread="", user=""), own}
            done: tuple[str, str | None] = ("reset_chat_done", None)
        elif lowered in THREAD_TARGETS:
            targets = {k for k in in_chat if k.thread == turn.thread_id} | {own}
            done = ("reset_thread_done", None)
        else:
            targets = {k for k in in_chat if k.user == arg} | {replace(own, user=arg)}
            done = ("reset_other_done", arg)
        if any(k.user != turn.user_id for k in targets) and not await self._may_reset_others(turn):
            log.info("reset refused chat=%s target=%s caller=%s", turn.chat_id, arg, turn.user_id)
            return t("reset_denied", lang)
        count = await self._delete_all(targets)
        log.info("reset chat=%s target=%s by=%s n=%d", turn.chat_id, arg, turn.user_id, count)
        key, target = done
        if target is not None:
            return t(key, lang, target=target)
        return say(key, lang, count=count)

    async def _may_reset_others(self, turn: Turn) -> bool:
        return self.is_bot_admin(turn) or await self.is_chat_admin(turn)

    async def _users_sessions_in(self, turn: Turn, user: str) -> set[SessionKey]:
        members = await self.store.index_members(user_index(turn.platform, turn.team_id, user))
        found = set()
        for member in members:
            ref = parse_member(member)
            if isinstance(ref, SessionKey) and ref.chat == turn.chat_id:
                found.add(ref)
        return found

    # --- /forget ------------------------------------------------------------------------

    async def forget(self, turn: Turn) -> ForgetReport:
        """Delete everything stored for the caller: sessions (shared ones dropped whole),
        form state (it lives in the sessions), records such as bookings, and the indexes."""
        report = ForgetReport()
        index = user_index(turn.platform, turn.team_id, turn.user_id)
        own = turn.session_key(self.scope)
        handled: set[str] = set()
        first = True
        # A turn in flight may enter a new session in the index while this runs: read again
        # until nothing new appears (each session is deleted under its lock, after that turn).
        for _ in range(3):
            members = await self.store.index_members(index) - handled
            if first:
                members.add(f"s|{own}")
                first = False
            if not members:
                break
            for member in members:
                handled.add(member)
                ref = parse_member(member)
                if isinstance(ref, SessionKey):
                    await self._forget_session(ref, turn, report)
                elif isinstance(ref, RecordRef):
                    if await self.store.delete_record(ref.kind, ref.tenant, ref.record_id):
                        report.records += 1
                        report.kinds.add(ref.kind)
        await self.store.index_drop(index)
        for forget in self.forgetters:
            await forget(turn)
        return report

    async def _forget_session(self, key: SessionKey, turn: Turn, report: ForgetReport) -> None:
        if key.platform != turn.platform or key.team != turn.team_id:
            return
        if key.user and key.user != turn.user_id:
            return  # never someone else's own session
        if await self._drop(key):
            report.sessions += 1
            if not key.user:
                report.shared += 1

    # --- helpers ------------------------------------------------------------------------

    async def _delete_all(self, keys: Iterable[SessionKey]) -> int:
        count = 0
        for key in keys:
            count += await self._drop(key)
        return count

    async def _drop(self, key: SessionKey) -> bool:
        """Delete a session and its entry in its chat's index (which names its user)."""
        deleted = await self._delete(key)
        await self.store.index_remove(chat_index(key.platform, key.team, key.chat), [str(key)])
        return deleted

    async def _delete(self, key: SessionKey) -> bool:
        async with self.store.lock(key):
            return await self.store.delete(key)
