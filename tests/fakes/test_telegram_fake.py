"""The fake Bot API is faithful: PTB's Bot and Application parse everything it answers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllGroupChats,
    ChatMemberAdministrator,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest, Conflict, InvalidToken, RetryAfter
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from tests.fakes.telegram import TOKEN, FakeTelegram, Limits, ParseError, parse_html

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

USER, ADMIN, OWNER, GROUP = 42, 43, 44, -100500


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    # No flood limits here (they have their own test), so calls need no pauses.
    async with FakeTelegram(limits=Limits.off()) as server:
        user = server.user(USER, "민수")
        admin = server.user(ADMIN, "Ann", language_code="en")
        owner = server.user(OWNER, "Boss")
        server.private_chat(user)
        server.group(GROUP, "스터디", members=[user], admins=[admin], creator=owner)
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=fake.base_url) as client:
        yield client


async def raw_post(fake: FakeTelegram, method: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.base_url}{fake.token}/{method}", **kw) as resp,
    ):
        return resp.status, await resp.json()


# ---- answers PTB parses ----------------------------------------------------------------------


async def test_get_me_initialises_ptb(bot: Bot) -> None:
    assert bot.username == "glm_test_bot" and bot.id == 7000001
    assert bot.can_join_groups is True


async def test_send_edit_delete_round_trip(fake: FakeTelegram, bot: Bot) -> None:
    question = fake.say(fake.chats[GROUP], fake.users[USER], "@glm_test_bot 안녕")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("다시", callback_data="again")]])
    sent = await bot.send_message(
        GROUP,
        "<b>굵게</b> 그리고 <a href='https://x.io'>링크</a>",
        parse_mode="HTML",
        reply_parameters=ReplyParameters(question["message"]["message_id"]),
        reply_markup=markup,
    )
    assert isinstance(sent, Message)
    assert sent.text == "굵게 그리고 링크"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 2),
        ("text_link", 7, 2),
    ]
    assert sent.reply_to_message is not None and sent.reply_to_message.text == "@glm_test_bot 안녕"
    assert sent.reply_markup == markup

    edited = await bot.edit_message_text("바뀐 글", chat_id=GROUP, message_id=sent.message_id)
    assert isinstance(edited, Message) and edited.text == "바뀐 글" and edited.edit_date
    assert await bot.delete_message(GROUP, sent.message_id) is True
    assert fake.bot_texts(GROUP) == []
    assert fake.bot_messages(GROUP, deleted=True)[0].history == ["굵게 그리고 링크", "바뀐 글"]


async def test_draft_typing_commands_members_callbacks(fake: FakeTelegram, bot: Bot) -> None:
    assert await bot.send_message_draft(USER, 9, "쓰는 중") is True
    assert fake.drafts[(USER, None)] == (9, "쓰는 중")
    assert await bot.send_chat_action(GROUP, ChatAction.TYPING) is True

    assert await bot.set_my_commands([BotCommand("reset", "대화 초기화")], language_code="ko")
    scope = BotCommandScopeAllGroupChats()
    assert await bot.set_my_commands([BotCommand("help", "Help")], scope=scope)
    assert await bot.get_my_commands(language_code="ko") == (BotCommand("reset", "대화 초기화"),)
    assert await bot.get_my_commands(scope=scope) == (BotCommand("help", "Help"),)

    assert isinstance(await bot.get_chat_member(GROUP, OWNER), ChatMemberOwner)
    assert isinstance(await bot.get_chat_member(GROUP, ADMIN), ChatMemberAdministrator)
    assert isinstance(await bot.get_chat_member(GROUP, USER), ChatMemberMember)
    fake.user(99, "Stranger")
    assert isinstance(await bot.get_chat_member(GROUP, 99), ChatMemberLeft)

    sent = await bot.send_message(USER, "고르세요")
    message = fake.bot_messages(USER)[0]
    press = fake.press(message, fake.users[USER], "부산")
    update = Update.de_json(press, bot)
    assert update.callback_query is not None and update.callback_query.data == "부산"
    assert update.callback_query.message is not None
    assert update.callback_query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(update.callback_query.id) is True
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("12345")


async def test_updates_from_say_parse_as_ptb_updates(fake: FakeTelegram, bot: Bot) -> None:
    forum = fake.group(-100777, "포럼", forum=True, members=[fake.users[USER]])
    topic = fake.create_topic(forum, "날씨", fake.users[USER])
    fake.say(forum, fake.users[USER], "/reset@glm_test_bot 43", thread_id=topic)
    fake.say(fake.chats[USER], fake.users[USER], media="sticker")
    fake.say(fake.chats[GROUP], fake.users[USER], media="photo", caption="@glm_test_bot 이거")
    updates = await bot.get_updates(timeout=0)
    assert len(updates) == 3
    command = updates[0].message
    assert command is not None and command.is_topic_message and command.message_thread_id == topic
    assert command.entities[0].type == "bot_command" and command.entities[0].length == 19
    assert command.reply_to_message is not None
    assert command.reply_to_message.forum_topic_created is not None
    assert updates[1].message is not None and updates[1].message.sticker is not None
    photo = updates[2].message
    assert photo is not None and photo.photo and photo.caption_entities[0].type == "mention"


# ---- errors with the real shapes ---------------------------------------------------------------


async def test_error_bodies_have_the_bot_api_shape(fake: FakeTelegram) -> None:
    status, body = await raw_post(fake, "sendMessage", json={"chat_id": USER, "text": "a" * 4097})
    assert status == 400
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message is too long",
    }

    status, body = await raw_post(fake, "sendMessage", data={"chat_id": "1", "text": "x"})
    assert (status, body["description"]) == (400, "Bad Request: chat not found")

    fake.flood("sendMessage", USER, seconds=3)
    status, body = await raw_post(fake, "sendMessage", data={"chat_id": str(USER), "text": "x"})
    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }

    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{fake.base_url}123:wrong/getMe")
        assert resp.status == 401 and (await resp.json())["description"] == "Unauthorized"
        resp = await http.post(f"{fake.base_url}{fake.token}/noSuchMethod")
        assert resp.status == 404 and (await resp.json())["description"] == "Not Found"


async def test_ptb_raises_its_own_error_types(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(USER, "같은 글")
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("같은 글", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities: unsupported start tag"):
        await bot.send_message(USER, "x <y> z", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(USER, "   ")
    fake.flood(seconds=2)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "flood")
    assert caught.value.retry_after in (2, timedelta(seconds=2))
    with pytest.raises(InvalidToken):
        async with Bot("123:wrong", base_url=fake.base_url):
            pass


def test_html_parser_matches_telegram_rules() -> None:
    text, entities = parse_html("<b>a<i>b</i></b> &lt;3 &amp; <code>x</code> 😀<s>y</s>")
    assert text == "ab <3 & x 😀y"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "italic", "offset": 1, "length": 1},
        {"type": "code", "offset": 8, "length": 1},
        {"type": "strikethrough", "offset": 12, "length": 1},  # 😀 is two UTF-16 units
    ]
    for bad, message in [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("x <b", "Unclosed start tag at byte offset 2"),
    ]:
        with pytest.raises(ParseError, match=message.replace("(", r"\(")):
            parse_html(bad)


# ---- flood limits ------------------------------------------------------------------------------


async def test_flood_limits_per_chat_group_and_drafts() -> None:
    limits = Limits(per_chat=(0.2, 1), per_group=(1.0, 3), per_bot=None, drafts=((0.5, 2),))
    async with FakeTelegram(limits=limits) as fake, Bot(TOKEN, base_url=fake.base_url) as b:
        user = fake.user(USER)
        fake.private_chat(user)
        fake.group(GROUP, members=[user])
        await b.send_message(USER, "1")
        with pytest.raises(RetryAfter):
            await b.send_message(USER, "2")  # one a second per chat (scaled: per 0.2 s)
        await b.send_message(GROUP, "other chats are not held up")
        for i in range(2):
            await asyncio.sleep(0.21)
            await b.send_message(GROUP, f"g{i}")
        await asyncio.sleep(0.21)
        with pytest.raises(RetryAfter):
            await b.send_message(GROUP, "4th within the group window")
        assert await b.send_message_draft(USER, 1, "a") and await b.send_message_draft(USER, 1, "b")
        with pytest.raises(RetryAfter):
            await b.send_message_draft(USER, 1, "c")
        rejected = fake.rejected(429)
        assert [c.method for c in rejected] == ["sendMessage", "sendMessage", "sendMessageDraft"]
        assert all(c.retry_after == 1 for c in rejected)


# ---- receiving: getUpdates and webhooks -------------------------------------------------------


async def test_long_polling_waits_for_updates_and_offsets_confirm(
    fake: FakeTelegram, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    assert not poll.done()  # held open: nothing to deliver yet
    first = fake.say(fake.chats[USER], fake.users[USER], "하나")
    updates = await asyncio.wait_for(poll, 1)
    assert [u.update_id for u in updates] == [first["update_id"]]
    fake.say(fake.chats[USER], fake.users[USER], "둘")
    again = await bot.get_updates(timeout=0)
    assert [u.message.text for u in again if u.message] == ["하나", "둘"]  # not confirmed yet
    latest = await bot.get_updates(offset=again[-1].update_id + 1, timeout=0)
    assert latest == () and fake.pending_updates == 0
    started = asyncio.get_running_loop().time()
    assert await bot.get_updates(timeout=1) == ()
    assert asyncio.get_running_loop().time() - started >= 0.9


async def test_a_second_poller_terminates_the_first(fake: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    async with Bot(TOKEN, base_url=fake.base_url) as another_instance:
        second = asyncio.create_task(another_instance.get_updates(timeout=1))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await first
        assert await second == ()


async def test_ptb_application_polls_the_fake(fake: FakeTelegram) -> None:
    seen: list[str] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message and update.message.text:
            seen.append(update.message.text)

    app: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder().token(TOKEN).base_url(fake.base_url).build()
    )
    app.add_handler(TypeHandler(Update, record))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(allowed_updates=["message"])
        await app.start()
        for text in ("하나", "둘", "셋"):
            fake.say(fake.chats[USER], fake.users[USER], text)
        await fake.wait_for(lambda f: f.pending_updates == 0 and len(seen) == 3)
        await app.updater.stop()
        await app.stop()
    assert seen == ["하나", "둘", "셋"]
    assert [c.method for c in fake.calls[:2]] == ["getMe", "deleteWebhook"]
    polls = fake.calls_to("getUpdates")
    assert polls and all(c.params["allowed_updates"] == ["message"] for c in polls)


async def test_webhook_secret_is_checked_by_ptb(fake: FakeTelegram) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    seen: list[int] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update.update_id)

    app: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder().token(TOKEN).base_url(fake.base_url).build()
    )
    app.add_handler(TypeHandler(Update, record))
    async with app:
        assert app.updater is not None
        await app.updater.start_webhook(
            listen="127.0.0.1", port=port, url_path="hook", webhook_url=url, secret_token="s3cret"
        )
        await app.start()
        assert fake.webhook == {"url": url, "secret_token": "s3cret"}
        update = fake.say(fake.chats[USER], fake.users[USER], "웹훅")  # delivered by the fake
        bad = {**update, "update_id": update["update_id"] + 1}
        assert await fake.deliver(bad, secret="wrong") == 403
        assert await fake.deliver(bad, secret=None) == 403
        await fake.wait_for(lambda f: (update["update_id"], 200) in f.webhook_deliveries)
        async with Bot(TOKEN, base_url=fake.base_url) as bot:
            with pytest.raises(Conflict, match="webhook is active"):
                await bot.get_updates()
            info = await bot.get_webhook_info()
            assert info.url == url
        await app.updater.stop()
        await app.stop()
    assert seen == [update["update_id"]]
    assert (update["update_id"], 200) in fake.webhook_deliveries


async def test_form_and_json_posts_are_both_accepted(fake: FakeTelegram) -> None:
    markup = {"inline_keyboard": [[{"text": "a", "callback_data": "a"}]]}
    status, body = await raw_post(
        fake, "sendMessage", json={"chat_id": USER, "text": "json", "reply_markup": markup}
    )
    assert status == 200 and body["result"]["reply_markup"] == markup
    status, body = await raw_post(
        fake,
        "sendMessage",
        data={"chat_id": str(USER), "text": "form", "reply_markup": json.dumps(markup)},
    )
    assert status == 200 and body["result"]["text"] == "form"
    assert fake.calls[-1].params["reply_markup"] == markup  # recorded decoded
    times = [c.time for c in fake.calls]
    assert times == sorted(times)


async def test_webhook_deliveries_at_once_are_held_to_max_connections(fake: FakeTelegram) -> None:
    in_flight, most = 0, 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with Bot(TOKEN, base_url=fake.base_url) as bot:
            await bot.set_webhook(f"http://127.0.0.1:{port}/hook", max_connections=3)
        for n in range(10):
            fake.say(fake.chats[USER], fake.users[USER], f"메시지 {n}")
        await fake.wait_for(lambda f: len(f.webhook_deliveries) == 10, within=5)
    finally:
        await runner.cleanup()
    assert most == 3 == fake.webhook_most_in_flight
