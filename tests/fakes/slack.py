"""FakeSlack: the Slack Web API methods the bot uses, on real loopback HTTP, with Slack's tiers.

Also Socket Mode (``apps.connections.open`` and its WebSocket), and ``SlackSender``, which delivers
Events API, slash-command and interactivity (``block_actions``) requests to the bot signed as
Slack signs them. Messages keep their Block Kit ``blocks``, checked as Slack checks them
(``invalid_blocks``); ``response_url`` posts and ``chat.postEphemeral`` are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

__all__ = [
    "APP_TOKEN",
    "BOT_ID",
    "BOT_USER",
    "SIGNING_SECRET",
    "TEAM",
    "TOKEN",
    "Call",
    "Delivery",
    "Ephemeral",
    "FakeMessage",
    "FakeSlack",
    "Limits",
    "SlackSender",
    "Window",
    "block_problems",
    "sign",
]

TEAM = "T0FAKE0001"
APP_ID = "A0FAKE0001"
BOT_USER = "U0BOT00001"
BOT_ID = "B0BOT00001"
TOKEN = "xoxb-1000000001-2000000002-FakeSlackBotTokenForTests01"
APP_TOKEN = "xapp-1-A0FAKE0001-3000000003-fakeslackapptokenfortests0001"
SIGNING_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
MAX_TEXT = 40_000  # chat.postMessage / chat.update truncate... we refuse, as msg_too_long
MAX_MARKDOWN = 12_000  # markdown_text per call (chat.*Stream)
RESPONSE_URL_USES = 5  # "up to 5 times within 30 minutes"
MAX_PROMPTS = 4  # assistant.threads.setSuggestedPrompts: "up to four suggested prompts"

# Block Kit limits, from Slack's reference (https://docs.slack.dev/reference/block-kit/):
MAX_BLOCKS = 50  # blocks in a message
MAX_BLOCK_ID = 255
MAX_ACTION_ID = 255
MAX_ACTIONS_ELEMENTS = 25  # "a maximum of 25 elements in each action block"
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75  # "Maximum length for the text in this field is 75 characters."
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_MARKDOWN_BLOCKS = 12_000  # "cumulative limit for all markdown blocks in a single payload"
BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
ELEMENT_TYPES = frozenset(
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "image",
        "overflow",
        "radio_buttons",
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "timepicker",
        "workflow_button",
        "multi_static_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
        "multi_external_select",
    }
)


@dataclass(frozen=True)
class Window:
    """At most ``limit`` calls in any ``span`` seconds."""

    span: float
    limit: int


TIER_1 = Window(60.0, 1)
TIER_2 = Window(60.0, 20)
TIER_3 = Window(60.0, 50)
TIER_4 = Window(60.0, 100)


@dataclass(frozen=True)
class Limits:
    """Per method per workspace (``methods``) and per method per channel (``per_channel``).

    The defaults are the documented tiers: chat.startStream and chat.stopStream Tier 2,
    chat.appendStream Tier 4, chat.update Tier 3, chat.postEphemeral Tier 4, chat.postMessage
    about one a second per channel and several hundred a minute per workspace.
    """

    methods: Mapping[str, Window] = field(
        default_factory=lambda: {
            "auth.test": TIER_4,
            "apps.connections.open": Window(60.0, 100),
            "chat.startStream": TIER_2,
            "chat.appendStream": TIER_4,
            "chat.stopStream": TIER_2,
            "chat.update": TIER_3,
            "chat.delete": TIER_3,
            "assistant.threads.setStatus": TIER_3,
            "assistant.threads.setSuggestedPrompts": TIER_4,
            "conversations.replies": TIER_3,
            "chat.postMessage": Window(60.0, 300),
            "chat.postEphemeral": TIER_4,
        }
    )
    per_channel: Mapping[str, Window] = field(
        default_factory=lambda: {"chat.postMessage": Window(1.0, 1)}
    )

    @classmethod
    def unlimited(cls) -> Limits:
        return cls(methods={}, per_channel={})


@dataclass
class Call:
    """One Web API request as the fake saw it."""

    method: str
    params: dict[str, Any]
    at: float  # the fake's clock when the request arrived
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str:
        return str(self.response.get("error") or "")

    @property
    def text(self) -> str:
        """The text this call carried (``text`` or ``markdown_text`` / markdown chunks)."""
        if "text" in self.params:
            return str(self.params["text"])
        return markdown_of(self.params)

    @property
    def channel(self) -> str:
        return str(self.params.get("channel") or self.params.get("channel_id") or "")


@dataclass
class FakeMessage:
    """A message in a channel: a person's, or the bot's (posted or streamed)."""

    channel: str
    ts: str
    user: str
    text: str = ""
    thread_ts: str = ""
    bot: bool = False
    streaming: bool = False
    streamed: bool = False
    chunks: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)  # every text it showed, in order
    deleted: bool = False
    blocks: list[dict[str, Any]] = field(default_factory=list)  # as Slack keeps them

    @property
    def shown(self) -> str:
        """What a reader sees now (streamed Markdown is shown as Slack renders it, unchanged).

        A posted message with ``blocks`` shows its blocks, not its ``text`` (that is only the
        notification's); a streamed one shows its text with the blocks under it.
        """
        if self.streamed and not self.text:
            return "".join(self.chunks)
        if self.blocks:
            return blocks_text(self.blocks)
        return self.text

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The button elements the message shows, in order."""
        return [
            element
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements") or []
            if element.get("type") == "button"
        ]

    def as_api(self) -> dict[str, Any]:
        text = self.text or ("".join(self.chunks) if self.streamed else "")
        data: dict[str, Any] = {"type": "message", "ts": self.ts, "text": text}
        data["user"] = self.user
        if self.bot:
            data.update(bot_id=BOT_ID, app_id=APP_ID)
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        if self.blocks:
            data["blocks"] = json.loads(json.dumps(self.blocks))
        return data


@dataclass
class Ephemeral:
    """A message only ``user`` sees (``chat.postEphemeral`` or a ``response_url`` post)."""

    channel: str
    user: str
    text: str
    thread_ts: str = ""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    via: str = "chat.postEphemeral"  # or "response_url"


def blocks_text(blocks: Iterable[Mapping[str, Any]]) -> str:
    """The words a reader sees in ``blocks`` (sections, headers, markdown, context), one
    block per paragraph; buttons and the like show none."""
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind in ("section", "header"):
            text = block.get("text")
            if isinstance(text, Mapping):
                out.append(str(text.get("text") or ""))
            for item in block.get("fields") or []:
                out.append(str(item.get("text") or ""))
        elif kind == "markdown":
            out.append(str(block.get("text") or ""))
        elif kind == "context":
            out.extend(str(e.get("text") or "") for e in block.get("elements") or [])
    return "\n\n".join(piece for piece in out if piece)


def _text_object(obj: object, where: str, *, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, Mapping):
        return [f"must provide an object [json-pointer:{where}]"]
    kind = obj.get("type")
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if kind not in allowed:
        return [f"must be one of {', '.join(allowed)} [json-pointer:{where}/type]"]
    text = obj.get("text")
    if not isinstance(text, str):
        return [f"missing required field: text [json-pointer:{where}]"]
    problems = []
    if not text:
        problems.append(f"must be more than 0 characters [json-pointer:{where}/text]")
    if len(text) > limit:
        problems.append(f"must be less than {limit + 1} characters [json-pointer:{where}/text]")
    if "emoji" in obj and kind != "plain_text":
        problems.append(f"emoji is only for plain_text [json-pointer:{where}/emoji]")
    return problems


def _element_problems(element: object, where: str) -> list[str]:
    if not isinstance(element, Mapping):
        return [f"must provide an object [json-pointer:{where}]"]
    kind = element.get("type")
    if not isinstance(kind, str) or not kind:
        return [f"missing required field: type [json-pointer:{where}]"]
    if kind not in ELEMENT_TYPES:
        return [f"unsupported element type: {kind} [json-pointer:{where}/type]"]
    problems = []
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > MAX_ACTION_ID):
        problems.append(
            f"must be a string of at most {MAX_ACTION_ID} characters "
            f"[json-pointer:{where}/action_id]"
        )
    if kind == "button":
        if "text" not in element:
            problems.append(f"missing required field: text [json-pointer:{where}]")
        else:
            problems += _text_object(
                element["text"], f"{where}/text", limit=MAX_BUTTON_TEXT, plain_only=True
            )
        for name, limit in (("value", MAX_BUTTON_VALUE), ("url", MAX_BUTTON_URL)):
            value = element.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                problems.append(
                    f"must be less than {limit + 1} characters [json-pointer:{where}/{name}]"
                )
        style = element.get("style")
        if style is not None and style not in ("primary", "danger"):
            problems.append(f"must be one of primary, danger [json-pointer:{where}/style]")
    return problems


def block_problems(blocks: Sequence[object]) -> list[str]:
    """What Slack would find wrong with a message's ``blocks`` (empty: valid), in its wording
    (``... [json-pointer:/blocks/0/elements/1/text]``)."""
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    markdown = 0
    for index, block in enumerate(blocks):
        where = f"/blocks/{index}"
        if not isinstance(block, Mapping):
            problems.append(f"must provide an object [json-pointer:{where}]")
            continue
        kind = block.get("type")
        if not isinstance(kind, str) or not kind:
            problems.append(f"missing required field: type [json-pointer:{where}]")
            continue
        if kind not in BLOCK_TYPES:
            problems.append(f"unsupported type: {kind} [json-pointer:{where}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not block_id or len(block_id) > MAX_BLOCK_ID:
                problems.append(
                    f"must be 1 to {MAX_BLOCK_ID} characters [json-pointer:{where}/block_id]"
                )
            elif block_id in block_ids:
                problems.append(f"duplicate block_id [json-pointer:{where}/block_id]")
            else:
                block_ids.add(block_id)
        if kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                problems.append(f"missing required field: elements [json-pointer:{where}]")
                continue
            if len(elements) > MAX_ACTIONS_ELEMENTS:
                problems.append(
                    f"no more than {MAX_ACTIONS_ELEMENTS} items allowed "
                    f"[json-pointer:{where}/elements]"
                )
            action_ids: set[str] = set()
            for n, element in enumerate(elements):
                problems += _element_problems(element, f"{where}/elements/{n}")
                action_id = element.get("action_id") if isinstance(element, Mapping) else None
                if isinstance(action_id, str):
                    if action_id in action_ids:
                        problems.append(
                            f"duplicate action_id [json-pointer:{where}/elements/{n}/action_id]"
                        )
                    action_ids.add(action_id)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"must provide text or fields [json-pointer:{where}]")
            if "text" in block:
                problems += _text_object(block["text"], f"{where}/text", limit=MAX_SECTION_TEXT)
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    problems.append(
                        f"no more than {MAX_SECTION_FIELDS} items allowed "
                        f"[json-pointer:{where}/fields]"
                    )
                else:
                    for n, item in enumerate(fields):
                        problems += _text_object(item, f"{where}/fields/{n}", limit=MAX_FIELD_TEXT)
            if "accessory" in block:
                problems += _element_problems(block["accessory"], f"{where}/accessory")
        elif kind == "header":
            problems += _text_object(
                block.get("text"), f"{where}/text", limit=MAX_HEADER_TEXT, plain_only=True
            )
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text:
                problems.append(f"missing required field: text [json-pointer:{where}]")
            else:
                markdown += len(text)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                problems.append(f"missing required field: elements [json-pointer:{where}]")
            elif len(elements) > MAX_CONTEXT_ELEMENTS:
                problems.append(
                    f"no more than {MAX_CONTEXT_ELEMENTS} items allowed "
                    f"[json-pointer:{where}/elements]"
                )
    if markdown > MAX_MARKDOWN_BLOCKS:
        problems.append(
            f"markdown blocks must total at most {MAX_MARKDOWN_BLOCKS} characters "
            "[json-pointer:/blocks]"
        )
    return problems


def markdown_of(params: Mapping[str, Any]) -> str:
    """The Markdown of a stream call: ``markdown_text`` and any ``markdown_text`` chunks."""
    text = str(params.get("markdown_text") or "")
    chunks = params.get("chunks")
    if isinstance(chunks, str):
        with contextlib.suppress(ValueError):
            chunks = json.loads(chunks)
    if isinstance(chunks, list):
        for chunk in chunks:
            if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
                text += str(chunk.get("text") or "")
    return text


class ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def sign(body: str, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """Slack's ``X-Slack-Signature``: v0 HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class FakeSlack:
    """Slack on ``http://127.0.0.1:PORT/api/`` (the ``SLACK_API_URL`` of the bot under test).

    Every request is recorded with its arrival time, including refused ones. Tokens are
    checked (``not_authed`` / ``invalid_auth``); limits are sliding windows per method per
    workspace and per channel, answered with HTTP 429, ``Retry-After`` and ``ratelimited``.
    ``refuse_streaming`` makes ``chat.startStream`` answer that error; ``refuse_status`` does
    the same for ``assistant.threads.setStatus`` and ``assistant.threads.setSuggestedPrompts``
    (a conversation that is not an app's assistant thread).
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        team: str = TEAM,
        token: str = TOKEN,
        app_token: str = APP_TOKEN,
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self.team = team
        self.token = token
        self.app_token = app_token
        self.latency = 0.0  # seconds every answer waits (a far-away Slack)
        self.refuse_streaming: str | None = None
        self.refuse_status: str | None = None
        self.calls: list[Call] = []
        self.channels: dict[str, str] = {}  # id → channel_type (channel, group, im, mpim)
        self.users: dict[str, str] = {}
        self.messages: dict[str, list[FakeMessage]] = {}
        self.statuses: list[tuple[float, str, str, str]] = []  # (at, channel, thread, status)
        self.responses: list[dict[str, Any]] = []  # what response_urls got (commands, actions)
        self.ephemerals: list[Ephemeral] = []  # chat.postEphemeral and response_url ephemerals
        self._response_urls: dict[str, dict[str, Any]] = {}  # id → where a press came from
        self.acks: dict[str, float] = {}  # Socket Mode envelope id → when it was acknowledged
        self._status: dict[tuple[str, str], str] = {}
        # (channel, thread) → the list title and the prompts (title, message) shown there
        self.prompts: dict[tuple[str, str], tuple[str, list[tuple[str, str]]]] = {}
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._seq = itertools.count(1)
        self._event_seq = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._sockets: list[web.WebSocketResponse] = []

    # -- lifecycle --

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/commands/{id}", self._response_url)
        app.router.add_post("/actions/{id}", self._action_response)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"{self._url}/api/"

    # -- the workspace --

    def channel(self, channel_id: str, kind: str = "channel") -> str:
        self.channels[channel_id] = kind
        self.messages.setdefault(channel_id, [])
        return channel_id

    def user(self, user_id: str, name: str) -> str:
        self.users[user_id] = name
        return user_id

    def _ts(self) -> str:
        # Unique and increasing, like Slack's: seconds, then a sequence.
        return f"{int(time.time())}.{next(self._seq):06d}"

    def say(
        self, channel: str, user: str, text: str, *, thread_ts: str = "", subtype: str = ""
    ) -> list[dict[str, Any]]:
        """A person writes ``text``; returns the Events API envelopes Slack would send for it.

        A channel message mentioning the bot arrives twice, as ``app_mention`` and as
        ``message`` (two event ids), the way Slack delivers it to an app subscribed to both.
        """
        kind = self.channels[channel]
        ts = self._ts()
        self.messages[channel].append(FakeMessage(channel, ts, user, text, thread_ts))
        event: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel": channel,
            "channel_type": kind,
            "team": self.team,
            "client_msg_id": str(uuid.uuid4()),
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        if subtype:
            event["subtype"] = subtype
        envelopes = []
        if kind != "im" and f"<@{BOT_USER}" in text:
            mention = {k: v for k, v in event.items() if k not in ("channel_type", "subtype")}
            mention["type"] = "app_mention"
            envelopes.append(self.envelope(mention))
        envelopes.append(self.envelope(event))
        return envelopes

    def envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "token": "fake-verification-token",
            "team_id": self.team,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._event_seq):010d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team,
                    "user_id": BOT_USER,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    def slash(self, command: str, text: str, *, user: str, channel: str) -> dict[str, str]:
        """The form fields of a slash command; its ``response_url`` points at this fake."""
        kind = self.channels.get(channel, "channel")
        return {
            "token": "fake-verification-token",
            "team_id": self.team,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "directmessage" if kind == "im" else f"name-{channel.lower()}",
            "user_id": user,
            "user_name": self.users.get(user, user),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self._url}/commands/{uuid.uuid4().hex}",
            "trigger_id": f"{next(self._seq)}.{uuid.uuid4().hex[:12]}",
        }

    # -- what the bot did --

    def calls_to(self, method: str | None = None, channel: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if (method is None or c.method == method) and (channel is None or c.channel == channel)
        ]

    def rate_limited(self) -> list[Call]:
        return [c for c in self.calls if c.status == 429]

    def refused(self) -> list[Call]:
        """Calls Slack answered with an error other than a rate limit."""
        return [c for c in self.calls if c.status == 200 and not c.ok]

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[FakeMessage]:
        return [
            m
            for m in self.messages.get(channel, [])
            if m.bot and not m.deleted and (thread_ts is None or m.thread_ts == thread_ts)
        ]

    def bot_texts(self, channel: str, thread_ts: str | None = None) -> list[str]:
        return [m.shown for m in self.bot_messages(channel, thread_ts)]

    def status_of(self, channel: str, thread_ts: str) -> str:
        return self._status.get((channel, thread_ts), "")

    def choose_prompt(
        self, channel: str, thread_ts: str, user: str, index: int = 0
    ) -> list[dict[str, Any]]:
        """The person clicks suggested prompt ``index`` of the thread: Slack posts its
        ``message`` as their message in that thread (the envelopes, as ``say``)."""
        _, prompts = self.prompts[(channel, thread_ts)]
        return self.say(channel, user, prompts[index][1], thread_ts=thread_ts)

    async def wait_for(self, predicate: Callable[[FakeSlack], bool], within: float = 10.0) -> None:
        """Wait until ``predicate(self)`` holds (checked whenever a request was answered)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    # -- the Web API --

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    def _limit(self, method: str, channel: str, now: float) -> float:
        """Seconds to wait when this call is over a limit (then it is not counted), else 0."""
        keys: list[tuple[tuple[str, str], Window]] = []
        if (window := self.limits.methods.get(method)) is not None:
            keys.append(((method, ""), window))
        if channel and (window := self.limits.per_channel.get(method)) is not None:
            keys.append(((method, channel), window))
        wait = 0.0
        for key, window in keys:
            times = self._windows.setdefault(key, deque())
            while times and times[0] <= now - window.span:
                times.popleft()
            if len(times) >= window.limit:
                wait = max(wait, times[len(times) - window.limit] + window.span - now)
        if wait > 0:
            return wait
        for key, _ in keys:
            self._windows[key].append(now)
        return 0.0

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        now = self.clock()
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else str(params.pop("token", ""))
        params.pop("token", None)
        call = Call(method, params, now)
        headers: dict[str, str] = {}
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            wanted = self.app_token if method == "apps.connections.open" else self.token
            if not token:
                raise ApiError("not_authed")
            if token != wanted:
                raise ApiError("invalid_auth")
            wait = self._limit(method, call.channel, now)
            if wait > 0:
                call.status = 429
                headers["Retry-After"] = str(max(1, math.ceil(wait)))
                raise ApiError("ratelimited")
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                raise ApiError("unknown_method")
            call.response = {"ok": True, **handler(params)}
        except ApiError as exc:
            call.response = {"ok": False, "error": exc.error, **exc.extra}
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()
        return web.json_response(call.response, status=call.status, headers=headers)

    def _channel(self, params: Mapping[str, Any], name: str = "channel") -> str:
        channel = str(params.get(name) or "")
        if channel not in self.channels:
            raise ApiError("channel_not_found")
        return channel

    def _message(self, channel: str, ts: object) -> FakeMessage:
        for message in self.messages[channel]:
            if message.ts == ts and not message.deleted:
                return message
        raise ApiError("message_not_found")

    def _bot_posts(self, channel: str, thread_ts: str) -> FakeMessage:
        message = FakeMessage(channel, self._ts(), BOT_USER, thread_ts=thread_ts, bot=True)
        self.messages[channel].append(message)
        # An app's reply ends its "is thinking…" status in that thread.
        self._set_status(channel, thread_ts or message.ts, "")
        return message

    def _set_status(self, channel: str, thread_ts: str, status: str) -> None:
        if self._status.get((channel, thread_ts), "") != status:
            self._status[(channel, thread_ts)] = status
            self.statuses.append((self.clock(), channel, thread_ts, status))

    @staticmethod
    def _missing(*names: str) -> ApiError:
        return ApiError(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] missing required field: {n}" for n in names]},
        )

    def _m_auth_test(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "glmbot",
            "team_id": self.team,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _blocks(self, params: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The call's ``blocks`` checked as Slack checks them (None: not given), with the
        ``block_id`` and ``action_id`` Slack makes up for those left out."""
        if "blocks" not in params or params["blocks"] is None:
            return None
        blocks = params["blocks"]
        if isinstance(blocks, str):  # form-encoded calls send them as JSON text
            try:
                blocks = json.loads(blocks)
            except ValueError:
                raise ApiError("invalid_blocks_format") from None
        if not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format")
        problems = block_problems(blocks)
        if problems:
            raise ApiError(
                "invalid_blocks",
                errors=problems,
                response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
            )
        kept: list[dict[str, Any]] = json.loads(json.dumps(blocks))
        for block in kept:
            if not block.get("block_id"):
                block["block_id"] = uuid.uuid4().hex[:5]
            for element in block.get("elements") or []:
                if element.get("type") in ELEMENT_TYPES and not element.get("action_id"):
                    element["action_id"] = uuid.uuid4().hex[:5]
        return kept

    def _m_chat_postMessage(self, params: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        blocks = self._blocks(params)
        text = params.get("text")
        if not text and not blocks and not params.get("markdown_text"):
            raise ApiError("no_text")
        text = str(text or params.get("markdown_text") or "")
        if len(text) > MAX_TEXT:
            raise ApiError("msg_too_long")
        message = self._bot_posts(channel, str(params.get("thread_ts") or ""))
        message.text = text
        message.blocks = blocks or []
        message.versions.append(message.shown)
        return {"channel": channel, "ts": message.ts, "message": message.as_api()}

    def _m_chat_update(self, params: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        message = self._message(channel, params.get("ts"))
        if not message.bot:
            raise ApiError("cant_update_message")
        blocks = self._blocks(params)
        text = params.get("text")
        if not text and not blocks:
            raise ApiError("no_text")
        if len(str(text)) > MAX_TEXT:
            raise ApiError("msg_too_long")
        message.text = str(text or "")
        if blocks is not None:  # left out: the message keeps its blocks; [] removes them
            message.blocks = blocks
        message.versions.append(message.shown)
        return {"channel": channel, "ts": message.ts, "text": message.text}

    def _m_chat_postEphemeral(self, params: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        user = str(params.get("user") or "")
        if not user:
            raise self._missing("user")
        blocks = self._blocks(params)
        text = str(params.get("text") or "")
        if not text and not blocks:
            raise ApiError("no_text")
        if len(text) > MAX_TEXT:
            raise ApiError("msg_too_long")
        thread_ts = str(params.get("thread_ts") or "")
        self.ephemerals.append(Ephemeral(channel, user, text, thread_ts, blocks or []))
        return {"message_ts": self._ts()}

    def _m_chat_delete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        message = self._message(channel, params.get("ts"))
        if not message.bot:
            raise ApiError("cant_delete_message")
        message.deleted = True
        return {"channel": channel, "ts": message.ts}

    def _m_chat_startStream(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.refuse_streaming:
            raise ApiError(self.refuse_streaming)
        channel = self._channel(params)
        missing = ["thread_ts"] if not params.get("thread_ts") else []
        if self.channels[channel] != "im":
            # "Required when streaming to channels."
            missing += [
                name for name in ("recipient_team_id", "recipient_user_id") if not params.get(name)
            ]
        if missing:
            raise self._missing(*missing)
        markdown = markdown_of(params)
        if len(markdown) > MAX_MARKDOWN:
            raise ApiError("msg_too_long")
        message = self._bot_posts(channel, str(params["thread_ts"]))
        message.streaming = message.streamed = True
        if markdown:
            message.chunks.append(markdown)
            message.versions.append(message.shown)
        return {"channel": channel, "ts": message.ts}

    def _streaming(self, params: Mapping[str, Any]) -> FakeMessage:
        channel = self._channel(params)
        message = self._message(channel, params.get("ts"))
        if not message.streaming:
            raise ApiError("message_not_in_streaming_state")
        return message

    def _m_chat_appendStream(self, params: Mapping[str, Any]) -> dict[str, Any]:
        message = self._streaming(params)
        markdown = markdown_of(params)
        if not markdown:
            raise self._missing("markdown_text")
        if len(markdown) > MAX_MARKDOWN:
            raise ApiError("msg_too_long")
        message.chunks.append(markdown)
        message.versions.append(message.shown)
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_stopStream(self, params: Mapping[str, Any]) -> dict[str, Any]:
        message = self._streaming(params)
        blocks = self._blocks(params)
        markdown = markdown_of(params)
        if len(markdown) > MAX_MARKDOWN:
            raise ApiError("msg_too_long")
        if markdown:
            message.chunks.append(markdown)
            message.versions.append(message.shown)
        if blocks:  # "rendered at the bottom of the finalized message"
            message.blocks = message.blocks + blocks
        message.streaming = False
        return {"channel": message.channel, "ts": message.ts, "message": message.as_api()}

    def _m_assistant_threads_setStatus(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.refuse_status:
            raise ApiError(self.refuse_status)
        channel = self._channel(params, "channel_id")
        thread_ts = str(params.get("thread_ts") or "")
        if not thread_ts or "status" not in params:
            raise self._missing("thread_ts" if not thread_ts else "status")
        self._set_status(channel, thread_ts, str(params["status"]))
        return {}

    def _m_assistant_threads_setSuggestedPrompts(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Up to four prompts, each a ``title`` and the ``message`` a click posts as the
        user's; an optional ``title`` over the list. Sent as JSON by the SDKs (a form post
        carries ``prompts`` as a JSON string)."""
        if self.refuse_status:
            raise ApiError(self.refuse_status)
        channel = self._channel(params, "channel_id")
        raw = params.get("prompts")
        if raw is None:
            raise self._missing("prompts")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise ApiError("invalid_arguments") from None
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PROMPTS:
            raise ApiError("invalid_arguments")
        prompts: list[tuple[str, str]] = []
        for prompt in raw:
            if not isinstance(prompt, Mapping):
                raise ApiError("invalid_arguments")
            title, message = prompt.get("title"), prompt.get("message")
            if not (isinstance(title, str) and title and isinstance(message, str) and message):
                raise ApiError("invalid_arguments")
            prompts.append((title, message))
        thread_ts = str(params.get("thread_ts") or "")
        if thread_ts:
            if not any(m.ts == thread_ts for m in self.messages[channel] if not m.deleted):
                raise ApiError("invalid_thread_ts")
        else:  # "set for the latest message in the channel"
            latest = [m for m in self.messages[channel] if not m.deleted]
            if not latest:
                raise ApiError("message_not_found")
            thread_ts = latest[-1].thread_ts or latest[-1].ts
        self.prompts[(channel, thread_ts)] = (str(params.get("title") or ""), prompts)
        return {}

    def _m_conversations_replies(self, params: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        ts = str(params.get("ts") or "")
        thread = [
            m for m in self.messages[channel] if not m.deleted and (m.ts == ts or m.thread_ts == ts)
        ]
        if not any(m.ts == ts for m in thread):
            raise ApiError("thread_not_found")
        thread.sort(key=lambda m: float(m.ts))
        limit = int(params.get("limit") or 1000)
        offset = int(params.get("cursor") or 0)
        page = thread[offset : offset + limit]
        more = offset + limit < len(thread)
        return {
            "messages": [m.as_api() for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(offset + limit) if more else ""},
        }

    def _m_apps_connections_open(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": f"ws{self._url[4:]}/link/?ticket={uuid.uuid4().hex}"}

    # -- slash command responses --

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        body["_at"] = self.clock()
        self.responses.append(body)
        async with self._changed:
            self._changed.notify_all()
        return web.Response(text="ok")

    # -- interactivity --

    def block_actions(
        self,
        channel: str,
        message_ts: str,
        user: str,
        *,
        label: str | None = None,
        action_id: str | None = None,
        value: str | None = None,
        block_id: str | None = None,
    ) -> dict[str, Any]:
        """The ``block_actions`` payload Slack posts when ``user`` presses a button of the
        message ``message_ts``: its first button, or the one with ``label`` or ``action_id``.

        ``message`` is the message as it is now (its blocks included); ``response_url`` points
        at this fake (see ``responses``, ``ephemerals``). A press of a button the message no
        longer shows (a client that has not seen an update yet) needs its ``value`` (and its
        ``action_id`` and ``block_id``). Send it with ``SlackSender.action`` (or ``push(...,
        kind="interactive")`` over Socket Mode).
        """
        message = self._message(channel, message_ts)
        found: tuple[dict[str, Any], dict[str, Any]] | None = None
        for block in message.blocks:
            for element in block.get("elements") or [] if block.get("type") == "actions" else []:
                if element.get("type") != "button":
                    continue
                if label is not None and element["text"]["text"] != label:
                    continue
                if action_id is not None and element.get("action_id") != action_id:
                    continue
                found = found or (block, element)
        if found is None:
            if value is None:
                raise LookupError(f"message {message_ts} shows no such button")
            block = {"block_id": block_id or uuid.uuid4().hex[:5]}
            element = {
                "type": "button",
                "action_id": action_id or uuid.uuid4().hex[:5],
                "text": {"type": "plain_text", "text": label or value[:75], "emoji": True},
                "value": value,
            }
            found = (block, element)
        block, element = found
        action: dict[str, Any] = {
            "action_id": element.get("action_id"),
            "block_id": block.get("block_id"),
            "text": element.get("text"),
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        if "value" in element:
            action["value"] = element["value"]
        if value is not None:
            action["value"] = value
        kind = self.channels.get(channel, "channel")
        response_id = uuid.uuid4().hex
        self._response_urls[response_id] = {
            "channel": channel,
            "ts": message_ts,
            "user": user,
            "thread_ts": message.thread_ts,
            "uses": 0,
        }
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
        return {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": self.users.get(user, user),
                "name": self.users.get(user, user),
                "team_id": self.team,
            },
            "api_app_id": APP_ID,
            "token": "fake-verification-token",
            "container": container,
            "trigger_id": f"{next(self._seq)}.{uuid.uuid4().hex[:12]}",
            "team": {"id": self.team, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {
                "id": channel,
                "name": "directmessage" if kind == "im" else f"name-{channel.lower()}",
            },
            "message": message.as_api(),
            "state": {"values": {}},
            "response_url": f"{self._url}/actions/{response_id}",
            "actions": [action],
        }

    async def _action_response(self, request: web.Request) -> web.Response:
        """A press's ``response_url``: a message only the presser sees (the default), one in
        the channel, or the pressed message replaced or deleted."""
        where = self._response_urls.get(request.match_info["id"])
        if where is None:
            return web.Response(status=404, text="expired_url")
        if where["uses"] >= RESPONSE_URL_USES:
            return web.Response(status=404, text="used_url")
        where["uses"] += 1
        body = await request.json()
        try:
            blocks = self._blocks(body)
        except ApiError as exc:
            return web.Response(status=400, text=exc.error)
        body["_at"] = self.clock()
        self.responses.append(body)
        channel, ts = where["channel"], where["ts"]
        text = str(body.get("text") or "")
        if body.get("delete_original"):
            with contextlib.suppress(ApiError):
                self._message(channel, ts).deleted = True
        elif body.get("replace_original"):
            with contextlib.suppress(ApiError):
                message = self._message(channel, ts)
                message.text = text
                message.blocks = blocks or []
                message.versions.append(message.shown)
        elif body.get("response_type") == "in_channel":
            message = self._bot_posts(channel, str(body.get("thread_ts") or where["thread_ts"]))
            message.text, message.blocks = text, blocks or []
            message.versions.append(message.shown)
        else:
            thread_ts = str(body.get("thread_ts") or where["thread_ts"])
            ephemeral = Ephemeral(channel, where["user"], text, thread_ts, blocks or [])
            ephemeral.via = "response_url"
            self.ephemerals.append(ephemeral)
        async with self._changed:
            self._changed.notify_all()
        return web.Response(text="ok")

    # -- Socket Mode --

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        async with self._changed:
            self._changed.notify_all()
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                "connection_info": {"app_id": APP_ID},
            }
        )
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if isinstance(data, dict) and "envelope_id" in data:
                        self.acks[str(data["envelope_id"])] = self.clock()
                        async with self._changed:
                            self._changed.notify_all()
        finally:
            self._sockets.remove(ws)
        return ws

    @property
    def socket_connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    async def push(
        self, payload: Mapping[str, Any], *, kind: str = "events_api", retry_attempt: int = 0
    ) -> str:
        """Send an envelope over Socket Mode; returns its id (see ``acks``)."""
        envelope_id = str(uuid.uuid4())
        message: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": dict(payload),
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            message["retry_attempt"] = retry_attempt
            message["retry_reason"] = "timeout" if retry_attempt else ""
        socket = next(ws for ws in self._sockets if not ws.closed)
        await socket.send_json(message)
        return envelope_id


@dataclass
class Delivery:
    """The bot's answer to one delivered request."""

    status: int
    body: str
    elapsed: float  # seconds until the bot answered (Slack gives up after 3)


class SlackSender:
    """Delivers requests to the bot's ``/slack/events`` signed as Slack signs them."""

    def __init__(
        self,
        url: str,
        *,
        signing_secret: str = SIGNING_SECRET,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlackSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self,
        body: str,
        content_type: str,
        *,
        forged: bool = False,
        age: float = 0.0,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> Delivery:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timestamp = str(int(self.clock() - age))
        secret = "not-the-signing-secret" if forged else self.signing_secret
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(body, timestamp, secret),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        started = time.monotonic()
        async with self._session.post(self.url, data=body.encode(), headers=headers) as response:
            text = await response.text()
        return Delivery(response.status, text, time.monotonic() - started)

    async def event(
        self,
        envelope: Mapping[str, Any],
        *,
        forged: bool = False,
        age: float = 0.0,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> Delivery:
        """One Events API delivery; ``age`` seconds makes the timestamp stale."""
        return await self._post(
            json.dumps(envelope),
            "application/json",
            forged=forged,
            age=age,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )

    async def events(self, envelopes: Iterable[Mapping[str, Any]]) -> list[Delivery]:
        return [await self.event(e) for e in envelopes]

    async def command(
        self, fields: Mapping[str, str], *, forged: bool = False, age: float = 0.0
    ) -> Delivery:
        """A slash command, form-encoded as Slack posts it."""
        return await self._post(
            urlencode(fields), "application/x-www-form-urlencoded", forged=forged, age=age
        )

    async def action(
        self, payload: Mapping[str, Any], *, forged: bool = False, age: float = 0.0
    ) -> Delivery:
        """An interactivity request (``FakeSlack.block_actions``): ``payload=<json>``,
        form-encoded and signed as Slack posts it to the Request URL."""
        body = urlencode({"payload": json.dumps(payload, ensure_ascii=False)})
        return await self._post(body, "application/x-www-form-urlencoded", forged=forged, age=age)
