"""AiohttpRequest: PTB's Bot API calls over aiohttp, against the fake Bot API on loopback (and a
small echo server for what the fake does not model: file uploads, a slow answer)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from telegram.request import BaseRequest

from adapters.telegram import build_application
from adapters.telegram_http import AiohttpRequest, ThreadedPollRequest
from adapters.telegram_pacing import retry_seconds
from bench.common import free_port
from tests.fakes.telegram import TOKEN, FakeTelegram

MIN = 111


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        fake.private_chat(fake.user(MIN, "민수"))
        yield fake


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """``/bot<token>/<method>``: answers with the fields it got (a file as name and content);
    ``slow`` answers after 2 s."""

    async def handle(request: web.Request) -> web.Response:
        if request.match_info["method"] == "getMe":
            me = {"id": 7000001, "is_bot": True, "first_name": "GLM", "username": "echo_bot"}
            return web.json_response({"ok": True, "result": me})
        if request.match_info["method"] == "slow":
            await asyncio.sleep(2)
        fields: dict[str, Any] = {}
        for name, value in (await request.post()).items():
            if isinstance(value, str):
                fields[name] = value
            else:
                fields[name] = {"filename": value.filename, "content": value.file.read().decode()}
        return web.json_response({"ok": True, "result": fields})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/bot"
    finally:
        await runner.cleanup()


def bot(base_url: str, **request: Any) -> Bot:
    return Bot(TOKEN, base_url=base_url, request=AiohttpRequest(**request))


async def test_calls_reach_the_bot_api_and_answers_parse(tg: FakeTelegram) -> None:
    keys = InlineKeyboardMarkup([[InlineKeyboardButton("더 보기", callback_data="more")]])
    async with bot(tg.base_url) as b:
        assert b.username == "glm_test_bot"  # getMe, on initialize
        sent = await b.send_message(
            MIN, "<b>서울</b>은 맑아요", parse_mode="HTML", reply_markup=keys
        )
        assert await b.send_message_draft(MIN, 7, "쓰는 중")
    assert sent.text == "서울은 맑아요" and sent.chat.id == MIN
    call = tg.calls_to("sendMessage")[0]
    assert call.params["reply_markup"] == keys.to_dict()  # objects travel as JSON fields
    assert tg.bot_messages(MIN)[0].entities == [{"type": "bold", "offset": 0, "length": 2}]
    assert tg.drafts[(MIN, None)] == (7, "쓰는 중")


async def test_refusals_and_flood_waits_are_ptbs_errors(tg: FakeTelegram) -> None:
    async with bot(tg.base_url) as b:
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await b.send_message(999, "누구?")
        tg.flood("sendMessage", MIN, seconds=3)
        with pytest.raises(RetryAfter) as flood:
            await b.send_message(MIN, "안녕")
    assert retry_seconds(flood.value) == 3


async def failed_post(url: str, request: BaseRequest | None = None) -> NetworkError:
    request = request or AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as failed:
            await request.post(url)
    finally:
        await request.shutdown()
    return failed.value


async def test_an_unreachable_api_is_a_network_error() -> None:
    failed = await failed_post(f"http://127.0.0.1:{free_port()}/bot{TOKEN}/getMe")
    assert not isinstance(failed, TimedOut)
    assert failed.__cause__ is None and failed.__suppress_context__


async def test_an_error_naming_the_url_does_not_show_the_token() -> None:
    failed = await failed_post(f"http://exa mple.invalid:99999/bot{TOKEN}/getMe")
    secret = TOKEN.split(":", 1)[1]
    assert secret not in str(failed) and secret not in repr(failed)
    assert failed.__cause__ is None and failed.__suppress_context__


async def test_a_slow_answer_times_out(echo: str) -> None:
    request = AiohttpRequest(read_timeout=0.2)
    await request.initialize()
    try:
        with pytest.raises(TimedOut):
            await request.post(f"{echo}{TOKEN}/slow")
        # A longer timeout for one call (getUpdates' long poll passes its own).
        assert await request.post(f"{echo}{TOKEN}/slow", read_timeout=5) == {}
    finally:
        await request.shutdown()


async def test_files_go_as_multipart_with_the_other_fields(echo: str) -> None:
    async with bot(echo) as b:
        got = await b.do_api_request(
            "uploadNotes",  # any method: what matters is how a file travels
            api_kwargs={
                "chat_id": MIN,
                "caption": "메모",
                "document": InputFile(b"hello", filename="notes.txt"),
            },
        )
    assert got["chat_id"] == str(MIN) and got["caption"] == "메모"
    assert got["document"] == {"filename": "notes.txt", "content": "hello"}


async def test_lifecycle() -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:1/x", "POST")
    await request.initialize()
    await request.initialize()  # already initialized: no second pool
    await request.shutdown()
    await request.shutdown()
    await request.initialize()  # as PTB does when an Application is started again
    await request.shutdown()
    with pytest.raises(ValueError):
        AiohttpRequest(connection_pool_size=0)


def test_the_channel_sends_through_it_and_polls_as_before() -> None:
    application = build_application(TOKEN, "http://127.0.0.1:1/bot")
    assert isinstance(application.bot.request, AiohttpRequest)
    # getUpdates keeps PTB's own request (one connection, the long poll's timeouts).
    assert not isinstance(application.bot._request[0], AiohttpRequest)


async def test_a_proxy_named_in_the_environment_carries_the_calls(
    echo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY is honoured as by PTB's default client (here the echo server is the
    proxy: a Bot API host that does not resolve is reached through it)."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", echo.removesuffix("/bot"))
    request = AiohttpRequest()
    await request.initialize()
    try:
        for _ in range(2):  # the proxy is looked up once per host, then reused
            status, body = await request.do_request(
                "http://api.telegram.invalid/bot123:secret/getMe", "POST"
            )
            assert status == 200 and b"echo_bot" in body
    finally:
        await request.shutdown()


# ---- getUpdates in a thread of its own ----------------------------------------------------------


def poller(base_url: str, **request: Any) -> Bot:
    return Bot(TOKEN, base_url=base_url, get_updates_request=ThreadedPollRequest(**request))


async def test_a_poll_in_its_thread_brings_the_updates_and_leaves_the_loop_free(
    tg: FakeTelegram,
) -> None:
    user = tg.users[MIN]
    async with poller(tg.base_url) as b:
        tg.say(tg.chats[MIN], user, "안녕하세요")
        first = await b.get_updates(timeout=1)
        assert [u.message.text for u in first if u.message] == ["안녕하세요"]
        # A long poll with nothing to bring: the loop keeps turning meanwhile.
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(tick())
        waiting = asyncio.create_task(b.get_updates(offset=first[-1].update_id + 1, timeout=2))
        await asyncio.sleep(0.3)
        assert not waiting.done() and ticks >= 15
        tg.say(tg.chats[MIN], user, "서울 날씨")  # arrives while the poll waits
        later = await asyncio.wait_for(waiting, 1)
        ticking.cancel()
    assert [u.message.text for u in later if u.message] == ["서울 날씨"]


async def test_a_cancelled_poll_and_a_shutdown_end_at_once(tg: FakeTelegram) -> None:
    request = ThreadedPollRequest()
    async with Bot(TOKEN, base_url=tg.base_url, get_updates_request=request) as b:
        waiting = asyncio.create_task(b.get_updates(timeout=30))
        await asyncio.sleep(0.2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # PTB's last call on stopping (offset confirmed, no wait) is answered at once; the
        # fake ends the older poll still waiting in its thread, as Telegram does.
        assert await asyncio.wait_for(b.get_updates(timeout=0), 2) == ()
    loop = asyncio.get_running_loop()
    started = loop.time()
    while any(t.name == "telegram-getUpdates" for t in threading.enumerate()):
        assert loop.time() - started < 2
        await asyncio.sleep(0.05)


async def poll_failure(url: str, **settings: Any) -> NetworkError:
    return await failed_post(url, ThreadedPollRequest(**settings))


async def test_poll_errors_are_ptbs_and_name_no_token(echo: str) -> None:
    secret = TOKEN.split(":", 1)[1]
    unreachable = await poll_failure(f"http://127.0.0.1:{free_port()}/bot{TOKEN}/getUpdates")
    invalid = await poll_failure(f"http://exa mple.invalid:99999/bot{TOKEN}/getUpdates")
    for failed in (unreachable, invalid):
        assert not isinstance(failed, TimedOut)
        assert secret not in str(failed) and secret not in repr(failed)
        assert failed.__cause__ is None
    slow = await poll_failure(f"{echo}{TOKEN}/slow", read_timeout=0.3)
    assert isinstance(slow, TimedOut)
