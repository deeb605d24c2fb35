"""Quick-reply buttons on Telegram: the keyboard under the final answer, who may press it, and
what a press does. Over loopback HTTP: FakeTelegram, a real PTB Bot, the real channel (long
polling or webhook) and a real manager on the fake GLM."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from telegram import Bot, Update
from telegram.error import BadRequest

from adapters.telegram import TelegramChannel
from adapters.telegram_convert import (
    OWNER_SEPARATOR,
    BotIdentity,
    Ignore,
    NotYours,
    callback_data,
    decide,
    split_callback_data,
)
from adapters.telegram_pacing import FloodPolicy, TelegramOutbox
from adapters.telegram_stream import ChatTarget, TelegramReplyStream
from bot.app import App
from bot.i18n import t
from bot.manager import TurnResult
from bot.pacing import Window
from bot.reply import Button, ReplyStream
from bot.sessions.memory import MemorySessionStore
from bot.settings import Settings
from bot.turn import Turn
from tests.bot.helpers import make_manager
from tests.fakes.glm import FakeGlm, RecordedRequest, Reply
from tests.fakes.telegram import TOKEN, FakeMessage, FakeTelegram, Limits

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

MIN, ANN, JI = 111, 222, 444  # Korean, English, Korean clients
GROUP = -1001234567890
SEP = OWNER_SEPARATOR
BOT = BotIdentity(7000001, "glm_test_bot")
SECRET = "hook-Secret_42"

# Telegram's limits scaled down (as in test_telegram_stream): the fake enforces the same
# scaled limits, so a 429 here means the pacing is wrong.
FAST = FloodPolicy(
    chat=Window(0.1, 1),
    group=Window(1.0, 8),
    bot=Window(0.1, 30),
    drafts=(Window(0.02, 1), Window(0.5, 20), Window(3.0, 40)),
    group_reserve=2,
    typing_interval=0.05,
    typing_delay=0.0,
)
FAST_LIMITS = Limits(per_chat=(0.1, 1), per_group=(1.0, 8), per_bot=(0.1, 30), drafts=((0.5, 20),))


def offered(owner: int | None = MIN) -> list[Button]:
    who = str(owner) if owner is not None else None
    return [Button("좋아요", "파이썬 좋아요", owner=who), Button("다른 거", "다른 추천", owner=who)]


# ---- callback_data: the payload and its owner --------------------------------------------------


def test_callback_data_carries_the_owner_after_a_separator() -> None:
    data = callback_data("/suggestions accept python", str(MIN))
    assert data == f"/suggestions accept python{SEP}{MIN}"
    assert split_callback_data(data) == ("/suggestions accept python", str(MIN))
    assert callback_data("/help") == "/help"
    assert split_callback_data("/help") == ("/help", None)
    # Whatever a command may hold travels as it is.
    for payload in ("/suggestions accept c#", "a|b:c", "부산 날씨", "#1"):
        encoded = callback_data(payload, "42")
        assert encoded is not None and split_callback_data(encoded) == (payload, "42")


def test_data_that_cannot_round_trip_is_refused() -> None:
    assert callback_data("") is None
    assert callback_data(f"a{SEP}b") is None  # would be read as an owner
    assert callback_data("x" * 64) == "x" * 64
    assert callback_data("x" * 65) is None
    owner = "1234567890"
    fits = "x" * (64 - len(SEP) - len(owner))
    assert len(str(callback_data(fits, owner)).encode()) == 64  # the owner counts
    assert callback_data(fits + "x", owner) is None
    assert callback_data("가" * 21) is not None and callback_data("가" * 22) is None  # bytes
    assert callback_data("/help", "U024BE7LH") is None  # not a Telegram id: not shown
    # A chat speaking in a group (an anonymous admin): the person cannot be told apart.
    assert callback_data("/help", "-1001234567890") == "/help"


def pressed(data: str, presser: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
    bot_user = {"id": BOT.id, "is_bot": True, "first_name": "GLM", "username": BOT.username}
    message = {"message_id": 60, "date": 1767225500, "from": bot_user, "chat": chat, "text": "?"}
    query = {"id": "77", "from": presser, "message": message, "chat_instance": "1", "data": data}
    return {"update_id": 900100, "callback_query": query}


USERS = {
    MIN: {"id": MIN, "is_bot": False, "first_name": "민수", "language_code": "ko"},
    ANN: {"id": ANN, "is_bot": False, "first_name": "Ann", "language_code": "en"},
}
SUPERGROUP = {"id": GROUP, "type": "supergroup", "title": "스터디"}


def test_the_owners_press_is_a_turn_of_the_payload_alone() -> None:
    turn = decide(pressed(f"/suggestions accept python{SEP}{MIN}", USERS[MIN], SUPERGROUP), BOT)
    assert isinstance(turn, Turn)
    assert (turn.text, turn.user_id, turn.chat_id) == (
        "/suggestions accept python",
        "111",
        str(GROUP),
    )
    assert turn.delivery_id == "900100" and not turn.is_private


def test_someone_elses_press_is_not_theirs_and_says_so_in_their_language() -> None:
    decision = decide(pressed(f"/suggestions accept python{SEP}{MIN}", USERS[ANN], SUPERGROUP), BOT)
    assert decision == NotYours(str(ANN), "en")


def test_an_unowned_button_is_anyones_and_empty_data_is_nothing() -> None:
    turn = decide(pressed("부산 날씨", USERS[ANN], SUPERGROUP), BOT)
    assert isinstance(turn, Turn) and (turn.text, turn.user_id) == ("부산 날씨", str(ANN))
    assert isinstance(decide(pressed(f"{SEP}{MIN}", USERS[MIN], SUPERGROUP), BOT), Ignore)


# ---- the keyboard under the final answer -------------------------------------------------------


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(limits=FAST_LIMITS) as fake:
        minsu = fake.user(MIN, "민수")
        ann = fake.user(ANN, "Ann", language_code="en")
        ji = fake.user(JI, "지우")
        for user in (minsu, ann, ji):
            fake.private_chat(user)
        fake.group(GROUP, "스터디", members=[minsu, ann, ji])
        yield fake


@pytest.fixture
async def outbox(tg: FakeTelegram) -> AsyncIterator[TelegramOutbox]:
    async with Bot(TOKEN, base_url=tg.base_url) as bot:
        yield TelegramOutbox(bot, FAST)


def answer_stream(
    tg: FakeTelegram, outbox: TelegramOutbox, *, private: bool, limit: int = 4096
) -> TelegramReplyStream:
    if private:
        return TelegramReplyStream(outbox, ChatTarget(MIN, private=True), limit=limit)
    question = tg.say(tg.chats[GROUP], tg.users[MIN], "@glm_test_bot 추천해 줘")
    target = ChatTarget(GROUP, private=False, reply_to=question["message"]["message_id"])
    return TelegramReplyStream(outbox, target, limit=limit)


async def stream_and_finish(
    stream: TelegramReplyStream, text: str, buttons: Sequence[Button] | None
) -> None:
    await stream.start()
    words = text.split(" ")
    for i, word in enumerate(words):
        stream.append(word if i == len(words) - 1 else word + " ")
        await asyncio.sleep(0.005)
    await stream.finish(text, buttons)


async def test_private_final_message_carries_the_keyboard(
    tg: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = answer_stream(tg, outbox, private=True)
    await stream_and_finish(stream, "**파이썬**은 어때요? 배우기 쉬워요.", offered())
    [message] = tg.bot_messages(MIN)
    assert tg.keyboard(message) == [
        ("좋아요", f"파이썬 좋아요{SEP}{MIN}"),
        ("다른 거", f"다른 추천{SEP}{MIN}"),
    ]
    [send] = tg.calls_to("sendMessage", MIN)
    assert (
        send.params["parse_mode"] == "HTML" and send.params["reply_markup"] == message.reply_markup
    )
    drafts = tg.calls_to("sendMessageDraft", MIN)
    assert drafts and all("reply_markup" not in c.params for c in drafts)
    assert tg.rejected() == []

    # PTB reads the press back: the data round-trips, the message shows its keyboard.
    async with Bot(TOKEN, base_url=tg.base_url) as bot:
        update = Update.de_json(tg.press_button(message, tg.users[MIN], "다른 거"), bot)
        query = update.callback_query
        assert query is not None and query.data == f"다른 추천{SEP}{MIN}"
        assert query.from_user.language_code == "ko"
        shown = query.message
        assert shown is not None and shown.reply_markup is not None  # type: ignore[union-attr]
        assert await bot.answer_callback_query(query.id, text="ok") is True
        assert tg.callback(query.id).answer is not None


async def test_group_answer_gets_its_keyboard_with_the_last_edit(
    tg: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = answer_stream(tg, outbox, private=False)
    await stream_and_finish(stream, "파이썬은 어때요? 배우기 쉽고 쓸 데도 많아요.", offered())
    [message] = tg.bot_messages(GROUP)
    sends = tg.calls_to("sendMessage", GROUP)
    edits = tg.calls_to("editMessageText", GROUP)
    assert len(sends) == 1 and "reply_markup" not in sends[0].params  # the live preview
    assert edits and edits[-1].params["reply_markup"] == message.reply_markup
    assert all("reply_markup" not in c.params for c in edits[:-1])
    assert [data for _, data in tg.keyboard(message)] == [
        f"파이썬 좋아요{SEP}{MIN}",
        f"다른 추천{SEP}{MIN}",
    ]
    assert tg.rejected() == []


@pytest.mark.parametrize("private", [True, False], ids=["private", "group"])
async def test_a_split_answer_has_its_keyboard_on_the_last_part(
    tg: FakeTelegram, outbox: TelegramOutbox, private: bool
) -> None:
    chat = MIN if private else GROUP
    stream = answer_stream(tg, outbox, private=private, limit=120)
    text = "\n\n".join(
        f"{i}번째 문단은 이렇게 조금 길게 씁니다. 나뉘어 보일 거예요." for i in range(10)
    )
    await stream_and_finish(stream, text, offered())
    messages = tg.bot_messages(chat)
    assert len(messages) >= 3 and "\n\n".join(m.text for m in messages) == text
    assert [bool(tg.keyboard(m)) for m in messages] == [False] * (len(messages) - 1) + [True]
    assert tg.rejected() == []


async def test_buttons_whose_data_cannot_be_carried_are_left_out(
    tg: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = answer_stream(tg, outbox, private=True)
    long_payload = "/suggestions accept " + "x" * 42  # 62 bytes: fits alone, not with an owner
    buttons = [
        Button("너무 김", long_payload, owner=str(MIN)),
        Button("구분자", f"a{SEP}b"),
        Button(" ", "/help"),  # no label
        Button("좋아요", "파이썬 좋아요", owner=str(MIN)),
        Button("혼자", long_payload),
    ]
    await stream.finish("골라 보세요", buttons)
    [message] = tg.bot_messages(MIN)
    assert tg.keyboard(message) == [("좋아요", f"파이썬 좋아요{SEP}{MIN}"), ("혼자", long_payload)]

    stream = answer_stream(tg, outbox, private=True)
    await stream.finish("아무것도 못 골라요", [Button("너무 김", "x" * 65)])
    assert "reply_markup" not in tg.calls_to("sendMessage", MIN)[-1].params
    assert tg.rejected() == []


async def test_the_fake_refuses_keyboards_telegram_refuses(tg: FakeTelegram) -> None:
    def keys(button: dict[str, Any]) -> dict[str, Any]:
        return {"inline_keyboard": [[button]]}

    bad = [
        (keys({"text": "a", "callback_data": "x" * 65}), "BUTTON_DATA_INVALID"),
        (keys({"text": "a", "callback_data": ""}), "Text buttons are unallowed"),
        (keys({"text": "", "callback_data": "a"}), "text must be non-empty"),
    ]
    async with Bot(TOKEN, base_url=tg.base_url) as bot:
        for markup, error in bad:
            with pytest.raises(BadRequest, match=f"(?i){error}"):
                await bot.send_message(MIN, "hi", reply_markup=markup)  # type: ignore[arg-type]
    assert tg.bot_messages(MIN) == []


async def test_edit_message_reply_markup_and_answer_callback_query_as_telegram_answers(
    tg: FakeTelegram,
) -> None:
    message = tg.bot_message(tg.chats[MIN], "골라 보세요", [("좋아요", "yes")])
    async with Bot(TOKEN, base_url=tg.base_url) as bot:
        edited = await bot.edit_message_reply_markup(MIN, message.message_id)
        assert not isinstance(edited, bool) and edited.reply_markup is None
        assert message.reply_markup is None
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_reply_markup(MIN, message.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_reply_markup(MIN, 9999)

        press = tg.press(message, tg.users[MIN], "yes")
        query_id = press["callback_query"]["id"]
        assert await bot.answer_callback_query(query_id, text="됐어요", show_alert=True)
        answer = tg.callback(press).answer
        assert answer is not None and (answer.text, answer.show_alert) == ("됐어요", True)
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query(query_id)  # answered already
        tg.callback_lifetime = 0.05
        late = tg.press(message, tg.users[MIN], "yes")
        await asyncio.sleep(0.1)
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query(late["callback_query"]["id"])
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query("no-such-query")


# ---- presses, through the channel and the manager ----------------------------------------------


class Offering(ReplyStream):
    """What the core will do for a suggestion: its answer ends with ``buttons``."""

    def __init__(self, inner: ReplyStream, buttons: Sequence[Button]) -> None:
        self.inner = inner
        self.buttons = list(buttons)

    async def start(self) -> None:
        await self.inner.start()

    def append(self, text: str) -> None:
        self.inner.append(text)

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        await self.inner.finish(text, buttons or self.buttons)

    async def fail(self, notice: str) -> None:
        await self.inner.fail(notice)

    async def retract(self, notice: str) -> None:
        await self.inner.retract(notice)


@dataclass
class Served:
    channel: TelegramChannel
    turns: list[Turn] = field(default_factory=list)  # as the manager was handed them
    offers: dict[str, list[Button]] = field(default_factory=dict)  # question → its buttons


@pytest.fixture
async def glm() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as fake:
        yield fake


@asynccontextmanager
async def serving(tg: FakeTelegram, glm: FakeGlm, **settings: Any) -> AsyncIterator[Served]:
    """The channel receiving updates from the fake (long polling, or the webhook when
    ``telegram_webhook_url`` is given) and answering with a manager on the fake GLM."""
    store = MemorySessionStore()
    manager = make_manager(glm.base_url, glm.api_key, store)
    config = Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_token=TOKEN,
        telegram_base_url=tg.base_url,
        shutdown_grace_seconds=2,
        **settings,
    )
    app = App(config, store, manager.glm.client, manager.glm, manager)
    channel = TelegramChannel(app, policy=FAST)
    served = Served(channel)
    handle = manager.handle

    async def recording(
        turn: Turn, reply: ReplyStream, *, deduplicated: bool = False
    ) -> TurnResult:
        served.turns.append(turn)
        return await handle(turn, reply, deduplicated=deduplicated)

    manager.handle = recording  # type: ignore[method-assign]
    stream_for = channel.stream_for

    def offering(turn: Turn) -> ReplyStream:
        stream = stream_for(turn)
        buttons = served.offers.get(turn.text)
        return Offering(stream, buttons) if buttons else stream

    channel.stream_for = offering  # type: ignore[assignment,method-assign]
    interval = sys.getswitchinterval()  # the channel shortens it for its poller thread
    task = asyncio.get_running_loop().create_task(channel.run())
    try:
        async with asyncio.timeout(10):
            while not (tg.calls_to("getUpdates") or tg.webhook):
                assert not task.done(), "the channel stopped at start"
                await asyncio.sleep(0.02)
        yield served
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sys.setswitchinterval(interval)
        await manager.glm.client.close()


async def shows(tg: FakeTelegram, chat: int, text: str, within: float = 10.0) -> FakeMessage:
    """The bot's message in ``chat`` showing ``text``, once there is one."""
    await tg.wait_for(lambda f: any(m.text == text for m in f.bot_messages(chat)), within)
    return next(m for m in tg.bot_messages(chat) if m.text == text)


async def offer(tg: FakeTelegram, served: Served, chat: int, question: str) -> FakeMessage:
    """``question`` asked by MIN; the answer, once it shows its buttons."""
    served.offers["추천해 줘"] = offered()
    tg.say(tg.chats[chat], tg.users[MIN], question)
    message = await shows(tg, chat, "echo: 추천해 줘")
    await tg.wait_for(lambda f: bool(f.keyboard(message)))
    return message


def history(request: RecordedRequest) -> str:
    return " ".join(str(m["content"]) for m in request.messages)


async def test_the_owners_press_in_a_private_chat_is_their_next_turn(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    async with serving(tg, glm) as served:
        message = await offer(tg, served, MIN, "추천해 줘")
        press = tg.press_button(message, tg.users[MIN], "좋아요")
        await shows(tg, MIN, "echo: 파이썬 좋아요")
        await asyncio.sleep(0.2)

    answer = tg.callback(press).answer
    assert answer is not None and answer.text == "" and not answer.show_alert
    [removal] = tg.calls_to("editMessageReplyMarkup", MIN)
    assert removal.params["message_id"] == message.message_id
    assert "reply_markup" not in removal.params
    assert message.reply_markup is None  # one answer per offer
    # The spinner stops, the keyboard goes, then the answer comes.
    [answering] = tg.calls_to("answerCallbackQuery")
    final = tg.calls_to("sendMessage", MIN)[-1]
    assert answering.time <= removal.time <= final.time
    assert "reply_markup" not in final.params  # the answer to the press offers nothing
    turn = served.turns[-1]
    assert (turn.text, turn.user_id, turn.chat_id) == ("파이썬 좋아요", str(MIN), str(MIN))
    assert turn.is_private and turn.delivery_id == str(press["update_id"])
    # The same session: the model saw the offer's question and answer before the payload.
    assert glm.requests[-1].last_user_text() == "파이썬 좋아요"
    assert "추천해 줘" in history(glm.requests[-1])
    assert [t.text for t in served.turns] == ["추천해 줘", "파이썬 좋아요"]
    assert tg.rejected() == []


async def test_in_a_group_only_the_owner_may_press(tg: FakeTelegram, glm: FakeGlm) -> None:
    async with serving(tg, glm) as served:
        message = await offer(tg, served, GROUP, "@glm_test_bot 추천해 줘")
        ann = tg.press_button(message, tg.users[ANN], "좋아요")
        ji = tg.press_button(message, tg.users[JI], "다른 거")
        await tg.wait_for(lambda f: all(f.callback(p).answer for p in (ann, ji)))
        await asyncio.sleep(0.3)
        assert [t.text for t in served.turns] == ["추천해 줘"]  # no turn for either
        assert tg.keyboard(message)  # kept for its owner
        assert tg.calls_to("editMessageReplyMarkup") == []

        mine = tg.press_button(message, tg.users[MIN], "좋아요")
        await shows(tg, GROUP, "echo: 파이썬 좋아요")

    notices = [tg.callback(p).answer for p in (ann, ji, mine)]
    assert [(a.text, a.show_alert) for a in notices if a is not None] == [
        (t("button_not_yours", "en"), False),  # in each presser's language
        (t("button_not_yours", "ko"), False),
        ("", False),
    ]
    assert tg.keyboard(message) == []
    turn = served.turns[-1]
    assert (turn.text, turn.user_id, turn.chat_id) == ("파이썬 좋아요", str(MIN), str(GROUP))
    assert not turn.is_private
    assert [r.last_user_text() for r in glm.requests] == ["추천해 줘", "파이썬 좋아요"]
    assert "추천해 줘" in history(glm.requests[-1])  # MIN's session in the group
    assert tg.rejected() == []


async def test_a_stale_press_is_answered_and_still_a_turn(tg: FakeTelegram, glm: FakeGlm) -> None:
    async with serving(tg, glm) as served:
        served.channel.offer_seconds = 1
        message = await offer(tg, served, MIN, "추천해 줘")
        tg.press_button(message, tg.users[MIN], "좋아요")
        await shows(tg, MIN, "echo: 파이썬 좋아요")
        await asyncio.sleep(1.1)  # past the moment a second tap is the same tap
        # A client still showing the old keyboard: the message has none any more.
        stale = tg.press(message, tg.users[MIN], f"다른 추천{SEP}{MIN}")
        await shows(tg, MIN, "echo: 다른 추천")
        # A button the bot never offered in this process (an unknown payload): the core decides.
        old = tg.bot_message(tg.chats[MIN], "예전 답")
        unknown = tg.press(old, tg.users[MIN], "예전 제안")
        await shows(tg, MIN, "echo: 예전 제안")
        # Data with nothing to say: answered, no turn.
        empty = tg.press(old, tg.users[MIN], f"{SEP}{MIN}")
        await tg.wait_for(lambda f: f.callback(empty).answer is not None)
        await asyncio.sleep(0.2)

    assert all(tg.callback(p).answer is not None for p in (stale, unknown, empty))
    assert [t.text for t in served.turns] == [
        "추천해 줘",
        "파이썬 좋아요",
        "다른 추천",
        "예전 제안",
    ]
    assert len(tg.calls_to("editMessageReplyMarkup")) == 1  # nothing left to remove after
    assert tg.rejected() == []


async def test_a_double_tap_makes_one_turn(tg: FakeTelegram, glm: FakeGlm) -> None:
    async with serving(tg, glm) as served:
        message = await offer(tg, served, MIN, "추천해 줘")
        # Two taps before the keyboard went: two callback queries, one offer.
        first = tg.press_button(message, tg.users[MIN], "좋아요")
        second = tg.press_button(message, tg.users[MIN], "다른 거")
        await shows(tg, MIN, "echo: 파이썬 좋아요")
        await tg.wait_for(lambda f: all(f.callback(p).answer for p in (first, second)))
        await asyncio.sleep(0.5)

    assert [t.text for t in served.turns] == ["추천해 줘", "파이썬 좋아요"]
    assert "echo: 다른 추천" not in tg.bot_texts(MIN)
    assert len(tg.calls_to("editMessageReplyMarkup")) == 1
    assert tg.rejected() == []


async def test_a_press_is_answered_at_once_while_its_session_is_busy(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    def script(request: RecordedRequest) -> Reply:
        text = request.last_user_text()
        if text == "길게 설명해 줘":
            return Reply("느린 답입니다", chunks=["느린 ", "답", "입", "니다"], delay=0.5)
        return Reply(f"echo: {text}")

    glm.default = script
    async with serving(tg, glm) as served:
        message = await offer(tg, served, MIN, "추천해 줘")
        tg.say(tg.chats[MIN], tg.users[MIN], "길게 설명해 줘")
        await glm.wait_for(lambda g: g.in_flight == 1)
        press = tg.press_button(message, tg.users[MIN], "좋아요")
        # Within a callback query's short life, not after the answer being written.
        await tg.wait_for(lambda f: f.callback(press).answer is not None, within=1.0)
        await tg.wait_for(lambda f: not f.keyboard(message), within=1.0)
        assert "느린 답입니다" not in tg.bot_texts(MIN)
        await shows(tg, MIN, "echo: 파이썬 좋아요")

    # The turn itself kept its place behind the session's earlier one.
    assert [r.last_user_text() for r in glm.requests] == [
        "추천해 줘",
        "길게 설명해 줘",
        "파이썬 좋아요",
    ]
    assert tg.bot_texts(MIN)[-2:] == ["느린 답입니다", "echo: 파이썬 좋아요"]
    assert [t.text for t in served.turns][-1] == "파이썬 좋아요"
    assert tg.rejected() == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def listening(port: int, within: float = 10.0) -> None:
    """PTB may set the webhook a moment before its server accepts connections."""
    async with asyncio.timeout(within):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


async def test_a_redelivered_press_makes_one_turn(tg: FakeTelegram, glm: FakeGlm) -> None:
    port = free_port()
    hook = {
        "telegram_webhook_url": f"http://127.0.0.1:{port}/telegram/hook",
        "telegram_webhook_secret": SECRET,
        "telegram_webhook_listen": "127.0.0.1",
        "telegram_webhook_port": port,
    }
    async with serving(tg, glm, **hook) as served:
        await listening(port)
        message = await offer(tg, served, GROUP, "@glm_test_bot 추천해 줘")
        press = tg.press_button(message, tg.users[MIN], "좋아요")
        await shows(tg, GROUP, "echo: 파이썬 좋아요")
        # Telegram hands the same update over again (it saw no answer in time).
        assert await tg.deliver(press, secret=SECRET) == 200
        await asyncio.sleep(0.5)

    assert [t.text for t in served.turns] == ["추천해 줘", "파이썬 좋아요"]
    assert len(tg.calls_to("answerCallbackQuery")) == 1
    assert tg.bot_texts(GROUP).count("echo: 파이썬 좋아요") == 1
    assert tg.rejected() == []
