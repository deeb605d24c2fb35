"""FakeTelegram: the Bot API methods the bot uses, on real loopback HTTP, with real limits."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

__all__ = [
    "TOKEN",
    "Call",
    "CallbackAnswer",
    "FakeCallback",
    "FakeMessage",
    "FakeTelegram",
    "Limits",
    "ParseError",
    "parse_html",
    "utf16_len",
]

TOKEN = "7000001:AAH-fake-telegram-token_for-tests-only"
MAX_TEXT = 4096
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
MAX_CALLBACK_DATA = 64  # bytes (InlineKeyboardButton.callback_data: "1-64 bytes")
MAX_CALLBACK_TEXT = 200  # characters of an answerCallbackQuery notice ("0-200 characters")
# Fields of an InlineKeyboardButton that give it something to do; one of them is required.
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# ---- HTML as Telegram parses it ----------------------------------------------------------------


class ParseError(Exception):
    """The text of Telegram's "can't parse entities: ..." error."""


_ENTITY_OF_TAG = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTR = re.compile(r"""\s*([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


def _attrs(raw: str) -> dict[str, str]:
    found: dict[str, str] = {}
    pos = 0
    raw = raw.rstrip("/ \t\n")
    while pos < len(raw):
        m = _ATTR.match(raw, pos)
        if m is None or m.end() == pos:
            break
        value = next((g for g in m.groups()[1:] if g is not None), "")
        found[m.group(1).lower()] = _unescape(value)
        pos = m.end()
    return found


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("#x") or name.startswith("#X"):
            return chr(int(name[2:], 16))
        if name.startswith("#"):
            return chr(int(name[1:]))
        return _NAMED.get(name, m.group(0))

    return re.sub(r"&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);", one, text)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Visible text and entities (UTF-16 offsets) of ``source`` in parse_mode HTML.

    Raises ParseError with Telegram's wording for unsupported or unbalanced tags.
    """
    out: list[str] = []
    units = 0
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []

    def byte_offset(index: int) -> int:
        return len(source[:index].encode())

    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "<":
            end = source.find(">", i)
            if end < 0:
                raise ParseError(f"Unclosed start tag at byte offset {byte_offset(i)}")
            inner = source[i + 1 : end]
            if inner.startswith("/"):
                name = inner[1:].strip().lower()
                if not stack:
                    raise ParseError(f"Unexpected end tag at byte offset {byte_offset(i)}")
                open_name, start, attrs = stack.pop()
                if open_name != name:
                    raise ParseError(
                        f"Unmatched end tag at byte offset {byte_offset(i)}, "
                        f'expected "</{open_name}>", found "</{name}>"'
                    )
                entity = _entity(open_name, start, units - start, attrs)
                if entity is not None and entity["type"] == "pre":
                    # <pre><code class="language-x"> is one pre entity with a language.
                    for inner_code in entities:
                        if inner_code["type"] == "code" and inner_code["offset"] == start:
                            entities.remove(inner_code)
                            if "language" in inner_code:
                                entity["language"] = inner_code["language"]
                            break
                if entity is not None:
                    entities.append(entity)
            else:
                m = re.match(r"([a-zA-Z][a-zA-Z0-9-]*)(.*)$", inner, re.S)
                name = m.group(1).lower() if m else inner
                if m is None or name not in _ENTITY_OF_TAG:
                    raise ParseError(
                        f'Unsupported start tag "{name}" at byte offset {byte_offset(i)}'
                    )
                attrs = _attrs(m.group(2))
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise ParseError(
                        f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(i)}'
                    )
                stack.append((name, units, attrs))
            i = end + 1
            continue
        if ch == "&":
            m = re.match(r"&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);", source[i:])
            if m is not None:
                decoded = _unescape(m.group(0))
                out.append(decoded)
                units += utf16_len(decoded)
                i += len(m.group(0))
                continue
        if ch == ">":
            pass  # a bare ">" is text, as in Telegram
        out.append(ch)
        units += utf16_len(ch)
        i += 1
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _entity(tag: str, offset: int, length: int, attrs: dict[str, str]) -> dict[str, Any] | None:
    if length <= 0:
        return None
    kind = _ENTITY_OF_TAG[tag]
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    if kind == "text_link":
        if not attrs.get("href"):
            return None
        entity["url"] = attrs["href"]
    if kind == "custom_emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "0")
    if kind == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    if kind == "code":
        lang = attrs.get("class", "")
        if lang.startswith("language-"):
            entity["language"] = lang[len("language-") :]
    return entity


def _strip(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims whitespace around a message; entities move with the text."""
    lead = utf16_len(text) - utf16_len(text.lstrip())
    stripped = text.strip()
    total = utf16_len(stripped)
    kept = []
    for e in entities:
        start = max(0, e["offset"] - lead)
        end = min(total, e["offset"] - lead + e["length"])
        if end > start:
            kept.append({**e, "offset": start, "length": end - start})
    return stripped, kept


# ---- records -------------------------------------------------------------------------------


@dataclass
class Call:
    """One request the bot made, as the fake understood it."""

    method: str
    params: dict[str, Any]
    time: float
    status: int = 200
    description: str = ""
    retry_after: int | None = None
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def text(self) -> str:
        return str(self.params.get("text") or "")

    @property
    def visible(self) -> str:
        """The text as the user sees it (HTML parsed)."""
        if self.params.get("parse_mode") == "HTML":
            try:
                return parse_html(self.text)[0].strip()
            except ParseError:
                return ""
        return self.text.strip()


@dataclass
class FakeMessage:
    """A message in a chat; ``history`` is every text it showed, in order."""

    message_id: int
    chat_id: int
    sender: dict[str, Any]
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    date: int = 0
    thread_id: int | None = None
    reply_to: int | None = None
    reply_markup: dict[str, Any] | None = None
    parse_mode: str | None = None
    edit_date: int | None = None
    deleted: bool = False
    history: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def from_bot(self) -> bool:
        return bool(self.sender.get("is_bot"))

    @property
    def formatted(self) -> bool:
        return bool(self.entities)


@dataclass(frozen=True)
class CallbackAnswer:
    """What the bot answered to a pressed button (answerCallbackQuery)."""

    query_id: str
    text: str = ""
    show_alert: bool = False
    url: str = ""
    time: float = 0.0


@dataclass
class FakeCallback:
    """A pressed inline button: the callback query the bot was sent, and its answer."""

    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    time: float
    update_id: int
    answer: CallbackAnswer | None = None


@dataclass(frozen=True)
class Limits:
    """Flood limits the fake enforces: (seconds, sends) windows; None switches one off.

    Messages (sendMessage, editMessageText, editMessageReplyMarkup: an edit is an edit): one a
    second per chat, 20 a minute per group, 30 a second per bot, as the Bot API FAQ documents.
    Drafts: 20 per 5 s and 40 per 30 s per chat.
    """

    per_chat: tuple[float, int] | None = (1.0, 1)
    per_group: tuple[float, int] | None = (60.0, 20)
    per_bot: tuple[float, int] | None = (1.0, 30)
    drafts: tuple[tuple[float, int], ...] = ((5.0, 20), (30.0, 40))

    @classmethod
    def off(cls) -> Limits:
        return cls(None, None, None, ())


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


# ---- the server --------------------------------------------------------------------------------


class FakeTelegram:
    """``http://127.0.0.1:PORT/bot<token>/<method>``, like api.telegram.org, with its state.

    Tests build chats and users, inject updates (delivered by ``getUpdates`` long polling, or
    POSTed to the webhook once one is set), and read back every call (``calls``) and what each
    chat shows (``messages``, ``bot_texts``).
    """

    def __init__(
        self,
        token: str = TOKEN,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        username: str = "glm_test_bot",
        callback_lifetime: float = 15.0,
    ) -> None:
        self.token = token
        # How long a pressed button waits for answerCallbackQuery. Telegram does not document
        # it; an answer much later than a few seconds is refused as "query is too old".
        self.callback_lifetime = callback_lifetime
        self.limits = limits or Limits()
        self.clock = clock
        self.bot_user: dict[str, Any] = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": "GLM",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.members: dict[int, dict[int, str]] = {}  # chat → user → status
        self.messages: dict[int, dict[int, FakeMessage]] = {}
        self.drafts: dict[tuple[int, int | None], tuple[int, str]] = {}
        self.draft_history: list[tuple[float, int, int, str]] = []  # time, chat, draft id, text
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.webhook: dict[str, Any] | None = None
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status)
        self.callback_answers: list[str] = []  # ids of the answered queries, in order
        self.callbacks: dict[str, FakeCallback] = {}  # every pressed button, by query id
        self._updates: list[dict[str, Any]] = []
        self._offset = 0
        self._allowed: list[str] | None = None
        self._poll_generation = 0
        self._next_update = itertools.count(1001)
        self._next_message: dict[int, itertools.count[int]] = {}
        self._next_callback = itertools.count(1)
        self._sends: dict[tuple[str, int], deque[float]] = {}
        self._floods: list[tuple[str | None, int | None, int]] = []  # injected 429s
        self._throttled: dict[str, list[float]] = {}  # injected 429s of any method
        self._blocked: dict[int, float] = {}
        self._refuse_html = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._delivering: set[asyncio.Task[Any]] = set()
        self._webhook_slots = asyncio.Semaphore(40)
        self.webhook_in_flight = 0
        self.webhook_most_in_flight = 0  # deliveries at once, at most (max_connections)
        self.base_url = ""
        self.root_url = ""

    # -- lifecycle --

    async def start(self) -> str:
        """Listen on a free loopback port; returns the API base (what TELEGRAM_BASE_URL takes)."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        # handler_cancellation: a poll whose client hung up ends, as on the real server.
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._http = aiohttp.ClientSession()
        self.root_url = f"http://{host}:{port}"
        self.base_url = f"{self.root_url}/bot"
        return self.base_url

    async def stop(self) -> None:
        for task in list(self._delivering):
            task.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None
        runner, self._runner = self._runner, None
        self._poll_generation += 1
        await self._notify()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the world: users, chats, updates --

    def user(
        self,
        user_id: int,
        first_name: str = "Min",
        *,
        language_code: str | None = "ko",
        username: str | None = None,
        last_name: str | None = None,
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self.users[user_id] = user
        return user

    def private_chat(self, user: Mapping[str, Any]) -> dict[str, Any]:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if user.get("username"):
            chat["username"] = user["username"]
        self.chats[chat["id"]] = chat
        return chat

    def group(
        self,
        chat_id: int,
        title: str = "Test group",
        *,
        supergroup: bool = True,
        forum: bool = False,
        members: Iterable[Mapping[str, Any]] = (),
        admins: Iterable[Mapping[str, Any]] = (),
        creator: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        chat: dict[str, Any] = {
            "id": chat_id,
            "type": "supergroup" if supergroup else "group",
            "title": title,
        }
        if forum:
            chat["is_forum"] = True
        self.chats[chat_id] = chat
        roles = self.members.setdefault(chat_id, {})
        for u in members:
            roles[u["id"]] = "member"
        for u in admins:
            roles[u["id"]] = "administrator"
        if creator is not None:
            roles[creator["id"]] = "creator"
        return chat

    def _message_id(self, chat_id: int) -> int:
        return next(self._next_message.setdefault(chat_id, itertools.count(1)))

    def create_topic(self, chat: Mapping[str, Any], name: str, by: Mapping[str, Any]) -> int:
        """A forum topic; its id is the id of the service message that created it."""
        mid = self._message_id(chat["id"])
        created = {"name": name, "icon_color": 7322096}
        msg = FakeMessage(mid, chat["id"], dict(by), "", date=int(time.time()), thread_id=mid)
        msg.extra = {"forum_topic_created": created, "is_topic_message": True}
        self.messages.setdefault(chat["id"], {})[mid] = msg
        return mid

    def message_dict(self, msg: FakeMessage) -> dict[str, Any]:
        """``msg`` as the Bot API shows it."""
        data: dict[str, Any] = {
            "message_id": msg.message_id,
            "from": msg.sender,
            "chat": self.chats[msg.chat_id],
            "date": msg.date,
        }
        if msg.thread_id is not None:
            data["message_thread_id"] = msg.thread_id
            if self.chats[msg.chat_id].get("is_forum"):
                data["is_topic_message"] = True
        if msg.text or not msg.extra:
            data["text"] = msg.text
        if msg.entities:
            data["entities"] = msg.entities
        if msg.edit_date is not None:
            data["edit_date"] = msg.edit_date
        if msg.reply_markup:
            data["reply_markup"] = msg.reply_markup
        if msg.reply_to is not None:
            replied = self.messages.get(msg.chat_id, {}).get(msg.reply_to)
            if replied is not None:
                data["reply_to_message"] = self.message_dict(replied)
        data.update(msg.extra)
        return data

    def say(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any],
        text: str | None = None,
        *,
        reply_to: FakeMessage | int | None = None,
        thread_id: int | None = None,
        media: str | None = None,
        caption: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        update_id: int | None = None,
        send: bool = True,
    ) -> dict[str, Any]:
        """A user's message: ``text``, or ``media`` ("sticker", "photo", "voice", "document").

        Mentions (``@name``) and a leading ``/command`` get their entities as Telegram sets
        them. In a forum topic the message "replies" to the topic's first message, as real
        topic messages do. The update is queued (or POSTed to the webhook) unless ``send`` is
        False (to deliver it by hand); it is returned.
        """
        chat_id = int(chat["id"])
        mid = self._message_id(chat_id)
        reply_id = reply_to.message_id if isinstance(reply_to, FakeMessage) else reply_to
        if reply_id is None and thread_id is not None:
            reply_id = thread_id
        msg = FakeMessage(
            mid,
            chat_id,
            dict(user),
            text or "",
            date=int(time.time()),
            thread_id=thread_id,
            reply_to=reply_id,
        )
        if text is not None:
            msg.entities = entities if entities is not None else auto_entities(text)
        else:
            msg.extra = _media(media or "sticker", caption)
            if caption:
                msg.extra["caption_entities"] = auto_entities(caption)
        self.messages.setdefault(chat_id, {})[mid] = msg
        msg.history.append(msg.text)
        update = {
            "update_id": update_id or next(self._next_update),
            "message": self.message_dict(msg),
        }
        return self.push(update) if send else update

    def edit_by_user(self, msg: FakeMessage, text: str) -> dict[str, Any]:
        msg.text, msg.edit_date = text, int(time.time())
        msg.entities = auto_entities(text)
        return self.push({"edited_message": self.message_dict(msg)})

    def bot_message(
        self,
        chat: Mapping[str, Any],
        text: str,
        buttons: Sequence[tuple[str, str]] = (),
        *,
        thread_id: int | None = None,
    ) -> FakeMessage:
        """A message the bot sent before this test looked (a process that ran earlier), with
        an inline keyboard of ``buttons``: (label, callback_data), one a row."""
        chat_id = int(chat["id"])
        markup = None
        if buttons:
            markup = {"inline_keyboard": [[{"text": t, "callback_data": d}] for t, d in buttons]}
            _check_markup(markup)
        msg = FakeMessage(
            self._message_id(chat_id),
            chat_id,
            self.bot_user,
            text,
            date=int(time.time()),
            thread_id=thread_id,
            reply_markup=markup,
        )
        msg.history.append(text)
        self.messages.setdefault(chat_id, {})[msg.message_id] = msg
        return msg

    @staticmethod
    def keyboard(msg: FakeMessage) -> list[tuple[str, str]]:
        """(label, callback_data) of each callback button ``msg`` shows now, row by row."""
        rows = (msg.reply_markup or {}).get("inline_keyboard") or []
        return [
            (b["text"], b["callback_data"]) for row in rows for b in row if "callback_data" in b
        ]

    def press(
        self,
        msg: FakeMessage,
        user: Mapping[str, Any],
        data: str,
        *,
        update_id: int | None = None,
        send: bool = True,
    ) -> dict[str, Any]:
        """The user taps an inline button with ``data`` under ``msg``: a ``callback_query``
        update (id, from, message as it shows now, chat_instance, data), queued (or POSTed to
        the webhook) unless ``send`` is False; it is returned.

        ``data`` is taken as given: a client may still show a keyboard the message no longer
        has (a stale button). ``press_button`` taps a button the message does show.
        """
        query_id = str(next(self._next_callback))
        uid = update_id or next(self._next_update)
        self.callbacks[query_id] = FakeCallback(
            query_id, int(user["id"]), msg.chat_id, msg.message_id, data, self.clock(), uid
        )
        query = {
            "id": query_id,
            "from": dict(user),
            "message": self.message_dict(msg),
            "chat_instance": str(msg.chat_id),
            "data": data,
        }
        update = {"update_id": uid, "callback_query": query}
        return self.push(update) if send else update

    def press_button(
        self,
        msg: FakeMessage,
        user: Mapping[str, Any],
        label: str | None = None,
        *,
        index: int = 0,
        update_id: int | None = None,
        send: bool = True,
    ) -> dict[str, Any]:
        """The user taps the button labelled ``label`` (or the ``index``-th) that ``msg``
        shows now; LookupError when it shows none such (a client cannot tap what is gone)."""
        shown = self.keyboard(msg)
        if label is not None:
            shown = [(t, d) for t, d in shown if t == label]
            index = 0
        if not 0 <= index < len(shown):
            raise LookupError(f"message {msg.message_id} shows no button {label or index!r}")
        return self.press(msg, user, shown[index][1], update_id=update_id, send=send)

    def callback(self, press: Mapping[str, Any] | str) -> FakeCallback:
        """The pressed button of ``press`` (the update ``press`` returned, or a query id)."""
        query_id = press if isinstance(press, str) else str(press["callback_query"]["id"])
        return self.callbacks[query_id]

    def push(self, update: dict[str, Any], *, update_id: int | None = None) -> dict[str, Any]:
        """Queue ``update`` for getUpdates, or deliver it to the webhook when one is set."""
        if "update_id" not in update:
            update = {"update_id": update_id or next(self._next_update), **update}
        self._updates.append(update)
        if self.webhook is not None:
            self._spawn_delivery(update)
        else:
            self._notify_soon()
        return update

    def redeliver(self, update: dict[str, Any]) -> None:
        """Send the same update again (Telegram does when it saw no answer in time)."""
        self._updates.append(update)
        if self.webhook is not None:
            self._spawn_delivery(update)
        else:
            self._notify_soon()

    def _spawn_delivery(self, update: dict[str, Any]) -> None:
        assert self.webhook is not None
        secret = self.webhook.get("secret_token")
        task = asyncio.get_running_loop().create_task(self._deliver_quietly(update, secret))
        self._delivering.add(task)
        task.add_done_callback(self._delivering.discard)

    async def _deliver_quietly(self, update: dict[str, Any], secret: str | None) -> None:
        try:
            async with self._webhook_slots:
                self.webhook_in_flight += 1
                self.webhook_most_in_flight = max(
                    self.webhook_most_in_flight, self.webhook_in_flight
                )
                try:
                    await self.deliver(update, secret=secret)
                finally:
                    self.webhook_in_flight -= 1
        except (aiohttp.ClientError, OSError):
            self.webhook_deliveries.append((int(update["update_id"]), 0))

    async def deliver(
        self, update: dict[str, Any], *, secret: str | None, url: str | None = None
    ) -> int:
        """POST ``update`` to the webhook with this secret header; returns the HTTP status."""
        target = url or (self.webhook or {}).get("url")
        if not target or self._http is None:
            raise RuntimeError("no webhook is set")
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        async with self._http.post(target, json=update, headers=headers) as resp:
            await resp.read()
            status = resp.status
        self.webhook_deliveries.append((int(update["update_id"]), status))
        if 200 <= status < 300 and update in self._updates:
            self._updates.remove(update)
        await self._notify()
        return status

    # -- scripted trouble --

    def flood(
        self, method: str | None = None, chat_id: int | None = None, seconds: int = 1
    ) -> None:
        """The next matching call gets a 429 and the chat is blocked for ``seconds``."""
        self._floods.append((method, chat_id, seconds))

    def throttle(self, method: str, seconds: float = 1) -> None:
        """The next call of ``method`` (any method, e.g. getChatMember) gets a 429 with
        ``retry_after`` seconds, as the Bot API answers a bot that calls too often."""
        self._throttled.setdefault(method, []).append(seconds)

    def refuse_formatting(self, count: int = 1) -> None:
        """The next ``count`` HTML texts fail to parse, as text with a stray "<" would."""
        self._refuse_html += count

    # -- observations --

    def calls_to(self, method: str | None = None, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if (method is None or c.method == method) and (chat_id is None or c.chat_id == chat_id)
        ]

    def bot_messages(self, chat_id: int, *, deleted: bool = False) -> list[FakeMessage]:
        return [
            m
            for m in sorted(self.messages.get(chat_id, {}).values(), key=lambda m: m.message_id)
            if m.from_bot and (deleted or not m.deleted)
        ]

    def bot_texts(self, chat_id: int) -> list[str]:
        """What the chat shows from the bot now, one entry per message."""
        return [m.text for m in self.bot_messages(chat_id)]

    def rejected(self, status: int | None = None) -> list[Call]:
        """Calls answered with an error (``status`` or any)."""
        return [c for c in self.calls if c.status >= 400 and (status is None or c.status == status)]

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    async def wait_for(self, predicate: Callable[[FakeTelegram], bool], within: float = 5) -> None:
        """Wait until ``predicate(self)`` holds (checked after every call and update)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def wait_for_bot_texts(self, chat_id: int, count: int, within: float = 10) -> list[str]:
        """Wait until ``count`` bot messages exist and no answer is being shown live."""
        await self.wait_for(lambda f: len(f.bot_texts(chat_id)) >= count, within)
        return self.bot_texts(chat_id)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _notify_soon(self) -> None:
        # Called from plain methods; a test may build updates before any loop runs.
        with contextlib.suppress(RuntimeError):
            task = asyncio.get_running_loop().create_task(self._notify())
            self._delivering.add(task)  # keep a reference until it ran
            task.add_done_callback(self._delivering.discard)

    # -- HTTP --

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except ApiError as exc:
            return _error(exc)
        call = Call(method, _normalized(params), self.clock())
        self.calls.append(call)
        if request.match_info["token"] != self.token:
            # The real API answers 401 for a well-formed but unknown token, 404 for garbage.
            exc = ApiError(401, "Unauthorized")
        else:
            handler = getattr(self, f"_m_{method.lower()}", None)
            throttled = self._throttled.get(method)
            if handler is None:
                exc = ApiError(404, "Not Found")
            elif throttled:
                exc = _flood(throttled.pop(0))  # any method answers 429 when the bot floods
            else:
                try:
                    result = await handler(params)
                except ApiError as err:
                    exc = err
                except asyncio.CancelledError:
                    call.status, call.description = 0, "the client went away"
                    raise
                else:
                    call.result = result
                    await self._notify()
                    return web.json_response({"ok": True, "result": result})
        call.status, call.description, call.retry_after = exc.code, exc.description, exc.retry_after
        await self._notify()
        return _error(exc)

    # -- flood control --

    def _check_flood(self, method: str, chat: Mapping[str, Any], kind: str) -> None:
        now = self.clock()
        chat_id = int(chat["id"])
        for i, (f_method, f_chat, seconds) in enumerate(self._floods):
            if (f_method is None or f_method == method) and (f_chat is None or f_chat == chat_id):
                del self._floods[i]
                self._blocked[chat_id] = max(self._blocked.get(chat_id, 0.0), now + seconds)
                break
        until = self._blocked.get(chat_id, 0.0)
        if until > now:
            raise _flood(until - now)
        for key, (span, limit) in self._windows(chat, kind):
            sends = self._sends.get(key)
            if not sends:
                continue
            recent = [t for t in sends if t > now - span]
            if len(recent) >= limit:
                raise _flood(recent[len(recent) - limit] + span - now)

    def _count_send(self, chat: Mapping[str, Any], kind: str) -> None:
        now = self.clock()
        for key in dict.fromkeys(k for k, _ in self._windows(chat, kind)):
            sends = self._sends.setdefault(key, deque())
            sends.append(now)
            while sends and sends[0] < now - 120:
                sends.popleft()

    def _windows(
        self, chat: Mapping[str, Any], kind: str
    ) -> list[tuple[tuple[str, int], tuple[float, int]]]:
        chat_id = int(chat["id"])
        lim = self.limits
        if kind == "draft":
            return [(("draft", chat_id), w) for w in lim.drafts]
        windows = []
        if lim.per_chat:
            windows.append((("chat", chat_id), lim.per_chat))
        if lim.per_group and chat["type"] in ("group", "supergroup"):
            windows.append((("group", chat_id), lim.per_group))
        if lim.per_bot:
            windows.append((("bot", 0), lim.per_bot))
        return windows

    # -- helpers for the methods --

    def _chat(self, params: Mapping[str, Any]) -> dict[str, Any]:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self.chats.values():
                if chat.get("username") == raw[1:]:
                    return chat
            raise _bad("chat not found")
        chat = self.chats.get(_as_int(raw, "chat_id"))
        if chat is None:
            raise _bad("chat not found")
        return chat

    def _text(
        self, params: Mapping[str, Any], *, allow_empty: bool = False
    ) -> tuple[str, list[dict[str, Any]], str | None]:
        raw = params.get("text")
        raw = "" if raw is None else str(raw)
        mode = params.get("parse_mode") or None
        if mode == "HTML":
            if self._refuse_html > 0:
                self._refuse_html -= 1
                raise _bad('can\'t parse entities: Unsupported start tag "x" at byte offset 0')
            try:
                text, entities = parse_html(raw)
            except ParseError as exc:
                raise _bad(f"can't parse entities: {exc}") from None
        elif mode in ("Markdown", "MarkdownV2"):
            text, entities = raw, []  # not modelled: the bot sends HTML
        elif mode is None:
            text, entities = raw, list(_json(params, "entities") or [])
        else:
            raise _bad(f"unsupported parse_mode {mode}")
        text, entities = _strip(text, entities)
        if not text and not allow_empty:
            raise _bad("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise _bad("message is too long")
        return text, entities, mode

    def _thread(self, chat: Mapping[str, Any], params: Mapping[str, Any]) -> int | None:
        raw = params.get("message_thread_id")
        if raw in (None, ""):
            return None
        thread = _as_int(raw, "message_thread_id")
        if chat["type"] == "supergroup" and not chat.get("is_forum"):
            raise _bad("message thread not found")
        if chat.get("is_forum") and thread not in self.messages.get(int(chat["id"]), {}):
            raise _bad("message thread not found")
        return thread

    # -- methods (``_m_<lowercased name>``) --

    async def _m_getme(self, params: Mapping[str, Any]) -> Any:
        return self.bot_user

    async def _m_getupdates(self, params: Mapping[str, Any]) -> Any:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = _as_int(params.get("offset") or 0, "offset")
        limit = max(1, min(100, _as_int(params.get("limit") or 100, "limit")))
        timeout = max(0.0, float(params.get("timeout") or 0))
        allowed = _json(params, "allowed_updates")
        if allowed is not None:
            self._allowed = list(allowed) or None  # persists between calls, like the real one
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation
        await self._notify()  # an older poll still waiting is terminated (409)

        def ready() -> list[dict[str, Any]]:
            return [u for u in self._updates if self._wanted(u)][:limit]

        if not ready() and timeout > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout), self._changed:
                    await self._changed.wait_for(
                        lambda: bool(ready()) or self._poll_generation != generation
                    )
        if self._poll_generation != generation and self._runner is not None:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot "
                "instance is running",
            )
        return ready()

    def _wanted(self, update: Mapping[str, Any]) -> bool:
        if not self._allowed:
            return True
        return any(kind in update for kind in self._allowed)

    async def _m_setwebhook(self, params: Mapping[str, Any]) -> Any:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.match(str(secret)):
            raise _bad("secret token contains unallowed characters")
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self._updates.clear()
        allowed = _json(params, "allowed_updates")
        if allowed is not None:
            self._allowed = list(allowed) or None
        if not url:
            self.webhook = None
            return True
        self.webhook = {"url": url, "secret_token": secret}
        # "max_connections: the maximum allowed number of simultaneous HTTPS connections to
        # the webhook for update delivery, 1-100. Defaults to 40." (setWebhook)
        self._webhook_slots = asyncio.Semaphore(
            _as_int(params.get("max_connections") or 40, "max_connections")
        )
        self._poll_generation += 1
        for update in list(self._updates):
            if self._wanted(update):
                self._spawn_delivery(update)
        await self._notify()  # a poll still waiting is terminated; wait_for sees the webhook
        return True

    async def _m_deletewebhook(self, params: Mapping[str, Any]) -> Any:
        self.webhook = None
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self._updates.clear()
        return True

    async def _m_getwebhookinfo(self, params: Mapping[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._allowed:
            info["allowed_updates"] = self._allowed
        return info

    async def _m_sendmessage(self, params: Mapping[str, Any]) -> Any:
        chat = self._chat(params)
        chat_id = int(chat["id"])
        thread = self._thread(chat, params)
        text, entities, mode = self._text(params)
        reply = _json(params, "reply_parameters") or {}
        reply_id = params.get("reply_to_message_id") or reply.get("message_id")
        if reply_id is not None:
            reply_id = _as_int(reply_id, "reply_to_message_id")
            if reply_id not in self.messages.get(chat_id, {}):
                if not reply.get("allow_sending_without_reply"):
                    raise _bad("message to be replied not found")
                reply_id = None
        markup = _json(params, "reply_markup")
        _check_markup(markup)
        self._check_flood("sendMessage", chat, "message")
        self._count_send(chat, "message")
        msg = FakeMessage(
            self._message_id(chat_id),
            chat_id,
            self.bot_user,
            text,
            entities,
            date=int(time.time()),
            thread_id=thread,
            reply_to=reply_id,
            reply_markup=markup,
            parse_mode=mode,
        )
        msg.history.append(text)
        self.messages.setdefault(chat_id, {})[msg.message_id] = msg
        # A real message ends the draft that previewed it.
        self.drafts.pop((chat_id, thread), None)
        return self.message_dict(msg)

    async def _m_sendmessagedraft(self, params: Mapping[str, Any]) -> Any:
        chat = self._chat(params)
        if chat["type"] != "private":
            raise _bad("TEXTDRAFT_PEER_INVALID")
        draft_id = _as_int(params.get("draft_id"), "draft_id")
        if draft_id == 0:
            raise _bad("draft_id must be non-zero")
        thread = (
            _as_int(params["message_thread_id"], "message_thread_id")
            if params.get("message_thread_id")
            else None
        )
        text, _, _ = self._text(params, allow_empty=True)
        self._check_flood("sendMessageDraft", chat, "draft")
        self._count_send(chat, "draft")
        self.drafts[(int(chat["id"]), thread)] = (draft_id, text)
        self.draft_history.append((self.clock(), int(chat["id"]), draft_id, text))
        return True

    async def _m_editmessagetext(self, params: Mapping[str, Any]) -> Any:
        if params.get("inline_message_id"):
            raise _bad("message to edit not found")
        chat = self._chat(params)
        chat_id = int(chat["id"])
        mid = _as_int(params.get("message_id"), "message_id")
        msg = self.messages.get(chat_id, {}).get(mid)
        if msg is None or msg.deleted:
            raise _bad("message to edit not found")
        if not msg.from_bot or msg.extra:
            raise _bad("message can't be edited")
        text, entities, mode = self._text(params)
        markup = _json(params, "reply_markup")
        _check_markup(markup)
        if text == msg.text and entities == msg.entities and markup == msg.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        self._check_flood("editMessageText", chat, "message")
        self._count_send(chat, "message")
        msg.text, msg.entities, msg.parse_mode = text, entities, mode
        msg.reply_markup = markup
        msg.edit_date = int(time.time())
        msg.history.append(text)
        return self.message_dict(msg)

    async def _m_editmessagereplymarkup(self, params: Mapping[str, Any]) -> Any:
        if params.get("inline_message_id"):
            raise _bad("message to edit not found")
        chat = self._chat(params)
        chat_id = int(chat["id"])
        mid = _as_int(params.get("message_id"), "message_id")
        msg = self.messages.get(chat_id, {}).get(mid)
        if msg is None or msg.deleted:
            raise _bad("message to edit not found")
        if not msg.from_bot:
            raise _bad("message can't be edited")
        markup = _json(params, "reply_markup")
        _check_markup(markup)
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad("inline keyboard expected")
        # Without reply_markup (or with an empty keyboard) the keyboard is removed.
        markup = markup if markup and markup.get("inline_keyboard") else None
        if markup == (msg.reply_markup or None):
            raise ApiError(400, NOT_MODIFIED)
        self._check_flood("editMessageReplyMarkup", chat, "message")
        self._count_send(chat, "message")
        msg.reply_markup = markup
        msg.edit_date = int(time.time())
        return self.message_dict(msg)

    async def _m_deletemessage(self, params: Mapping[str, Any]) -> Any:
        chat = self._chat(params)
        mid = _as_int(params.get("message_id"), "message_id")
        msg = self.messages.get(int(chat["id"]), {}).get(mid)
        if msg is None or msg.deleted:
            raise _bad("message to delete not found")
        msg.deleted = True
        return True

    async def _m_sendchataction(self, params: Mapping[str, Any]) -> Any:
        chat = self._chat(params)
        self._thread(chat, params)
        if params.get("action") not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    async def _m_setmycommands(self, params: Mapping[str, Any]) -> Any:
        commands = _json(params, "commands")
        if not isinstance(commands, list) or not commands:
            raise _bad("commands must be non-empty")
        for c in commands:
            if not _COMMAND.match(str(c.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        scope = json.dumps(_json(params, "scope") or {"type": "default"}, sort_keys=True)
        self.commands[(scope, str(params.get("language_code") or ""))] = commands
        return True

    async def _m_getmycommands(self, params: Mapping[str, Any]) -> Any:
        scope = json.dumps(_json(params, "scope") or {"type": "default"}, sort_keys=True)
        return self.commands.get((scope, str(params.get("language_code") or "")), [])

    async def _m_getchatmember(self, params: Mapping[str, Any]) -> Any:
        chat = self._chat(params)
        user_id = _as_int(params.get("user_id"), "user_id")
        user = self.users.get(user_id)
        if user is None:
            raise _bad("user not found")
        if chat["type"] == "private":
            status = "member" if user_id == chat["id"] else "left"
        else:
            status = self.members.get(int(chat["id"]), {}).get(user_id, "left")
        if status == "creator":
            return {"status": "creator", "user": user, "is_anonymous": False}
        if status == "administrator":
            rights = dict.fromkeys(
                (
                    "can_manage_chat",
                    "can_delete_messages",
                    "can_manage_video_chats",
                    "can_restrict_members",
                    "can_invite_users",
                    "can_post_stories",
                    "can_edit_stories",
                    "can_delete_stories",
                    "can_pin_messages",
                    "can_manage_topics",
                ),
                True,
            )
            return {
                "status": "administrator",
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                "can_promote_members": False,
                "can_change_info": False,
                **rights,
            }
        return {"status": status, "user": user}

    async def _m_answercallbackquery(self, params: Mapping[str, Any]) -> Any:
        """One answer per query, within its lifetime; an unknown id, a second answer and a
        late one all get Telegram's QUERY_ID_INVALID wording."""
        query_id = str(params.get("callback_query_id") or "")
        text = str(params.get("text") or "")
        if len(text) > MAX_CALLBACK_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        query = self.callbacks.get(query_id)
        now = self.clock()
        if query is None or query.answer is not None:
            raise _bad(QUERY_INVALID)
        if now - query.time > self.callback_lifetime:
            raise _bad(QUERY_INVALID)
        query.answer = CallbackAnswer(
            query_id,
            text,
            _flag(params.get("show_alert")),
            str(params.get("url") or ""),
            now,
        )
        self.callback_answers.append(query_id)
        return True


# ---- request and response shapes ----------------------------------------------------------------


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string, JSON body, urlencoded or multipart form: all are accepted, like the API."""
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON") from None
            if not isinstance(body, dict):
                raise _bad("JSON body must be an object")
            params.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else "<file>"
    return params


_OBJECT_PARAMS = (
    "reply_markup",
    "entities",
    "caption_entities",
    "reply_parameters",
    "link_preview_options",
    "commands",
    "scope",
    "allowed_updates",
)
_INT_PARAMS = (
    "chat_id",
    "message_id",
    "message_thread_id",
    "draft_id",
    "user_id",
    "offset",
    "limit",
    "timeout",
    "reply_to_message_id",
)


def _normalized(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as a test wants to read them, whether they came as a form or as JSON."""
    out = dict(params)
    for name in _OBJECT_PARAMS:
        if isinstance(out.get(name), str):
            with contextlib.suppress(ValueError):
                out[name] = json.loads(out[name])
    for name in _INT_PARAMS:
        value = out.get(name)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            out[name] = int(value)
    return out


def _json(params: Mapping[str, Any], name: str) -> Any:
    """An object parameter: JSON-serialized in forms, a real object in JSON bodies."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {name} JSON object") from None
    return value


def _flag(value: Any) -> bool:
    return value in (True, "true", "True", "1", 1)


def _check_markup(markup: Any) -> None:
    """Refuse an inline keyboard Telegram would refuse: a button without a label or without
    anything to do, or with callback_data outside 1-64 bytes (the wording of the first is the
    fake's own; the others are Telegram's)."""
    if markup is None:
        return
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return  # reply keyboards and force_reply: not used by the bot, not modelled
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad("can't parse inline keyboard markup JSON object")
    for row in rows:
        for button in row:
            if not isinstance(button, dict):
                raise _bad("can't parse InlineKeyboardButton: object expected")
            label = button.get("text")
            if not isinstance(label, str) or not label.strip():
                raise _bad("can't parse InlineKeyboardButton: text must be non-empty")
            if not any(button.get(action) not in (None, "") for action in _BUTTON_ACTIONS):
                raise _bad(
                    "can't parse InlineKeyboardButton: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and len(str(data).encode()) > MAX_CALLBACK_DATA:
                raise _bad("BUTTON_DATA_INVALID")


def _as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"invalid {name} specified") from None


def _flood(seconds: float) -> ApiError:
    retry = max(1, math.ceil(seconds))
    return ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)


def _error(exc: ApiError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.retry_after is not None:
        body["parameters"] = {"retry_after": exc.retry_after}
    return web.json_response(body, status=exc.code)


def auto_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram's clients add: @mentions and a leading /command (UTF-16 offsets)."""
    found = []
    for m in re.finditer(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b", text):
        found.append(
            {"type": "mention", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])}
        )
    command = re.match(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z][A-Za-z0-9_]{3,31})?", text)
    if command is not None:
        found.append({"type": "bot_command", "offset": 0, "length": utf16_len(command[0])})
    return sorted(found, key=lambda e: e["offset"])


def _media(kind: str, caption: str | None) -> dict[str, Any]:
    file = {"file_id": f"{kind}-file-id", "file_unique_id": f"{kind}-unique"}
    shapes: dict[str, Any] = {
        "sticker": {
            **file,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
        },
        "photo": [{**file, "width": 90, "height": 90}],
        "voice": {**file, "duration": 3, "mime_type": "audio/ogg"},
        "document": {**file, "file_name": "notes.pdf", "mime_type": "application/pdf"},
    }
    extra: dict[str, Any] = {kind: shapes[kind]}
    if caption:
        extra["caption"] = caption
    return extra
