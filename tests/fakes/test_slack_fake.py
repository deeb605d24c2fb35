"""FakeSlack answers as Slack does: the real slack-sdk parses every answer, and Slack's own
signature check accepts what SlackSender delivers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import (
    APP_TOKEN,
    BOT_ID,
    BOT_USER,
    SIGNING_SECRET,
    TEAM,
    TOKEN,
    FakeSlack,
    Limits,
    SlackSender,
    Window,
)

CHANNEL, DM, USER = "C0GENERAL1", "D0MINSU001", "U0MINSU001"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.channel(CHANNEL)
        fake.channel(DM, "im")
        fake.user(USER, "민수")
        yield fake


def client(fake: FakeSlack, token: str = TOKEN, **kw: Any) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.base_url, **kw)


async def test_auth_test_names_the_bot(slack: FakeSlack) -> None:
    response = await client(slack).auth_test()
    assert (response["user_id"], response["bot_id"], response["team_id"]) == (
        BOT_USER,
        BOT_ID,
        TEAM,
    )


async def test_a_wrong_or_missing_token_is_refused_in_slacks_shape(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as wrong:
        await client(slack, token="xoxb-not-it").auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=slack.base_url).auth_test()
    assert missing.value.response.data == {"ok": False, "error": "not_authed"}


async def test_post_update_delete_a_threaded_message(slack: FakeSlack) -> None:
    web_client = client(slack)
    parent = slack.say(CHANNEL, USER, "question")[0]["event"]["ts"]
    posted = await web_client.chat_postMessage(channel=CHANNEL, thread_ts=parent, text="first")
    await web_client.chat_update(channel=CHANNEL, ts=posted["ts"], text="first, then more")
    assert slack.bot_texts(CHANNEL, parent) == ["first, then more"]
    assert slack.bot_messages(CHANNEL)[0].versions == ["first", "first, then more"]
    await web_client.chat_delete(channel=CHANNEL, ts=posted["ts"])
    assert slack.bot_texts(CHANNEL) == []

    with pytest.raises(SlackApiError) as unknown:
        await web_client.chat_postMessage(channel="C0NOWHERE", text="x")
    assert unknown.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as empty, pytest.warns(UserWarning, match="`text`"):
        await web_client.chat_postMessage(channel=DM, text="")
    assert empty.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as not_ours:
        user_ts = slack.messages[CHANNEL][0].ts
        await web_client.chat_update(channel=CHANNEL, ts=user_ts, text="edit")
    assert not_ours.value.response["error"] == "cant_update_message"


async def test_the_sdks_chat_stream_helper_streams_into_a_thread(slack: FakeSlack) -> None:
    parent = slack.say(CHANNEL, USER, "hi")[0]["event"]["ts"]
    streamer = await client(slack).chat_stream(
        channel=CHANNEL,
        thread_ts=parent,
        recipient_team_id=TEAM,
        recipient_user_id=USER,
        buffer_size=5,
    )
    await streamer.append(markdown_text="**안녕")
    await streamer.append(markdown_text="하세요**")
    await streamer.stop(markdown_text=" 반가워요")

    (message,) = slack.bot_messages(CHANNEL, parent)
    assert message.shown == "**안녕하세요** 반가워요"
    assert not message.streaming
    # The helper buffers 5 characters: the first piece went out with the second.
    assert [c.method for c in slack.calls] == ["chat.startStream", "chat.stopStream"]


async def test_stream_rules_and_refusals(slack: FakeSlack) -> None:
    web_client = client(slack)
    parent = slack.say(CHANNEL, USER, "hi")[0]["event"]["ts"]
    with pytest.raises(SlackApiError) as missing:
        await web_client.chat_startStream(channel=CHANNEL, thread_ts=parent, markdown_text="a")
    assert missing.value.response["error"] == "invalid_arguments"
    assert "recipient_user_id" in str(missing.value.response["response_metadata"])

    # In a DM the recipients are not required.
    dm_parent = slack.say(DM, USER, "hi")[0]["event"]["ts"]
    started = await web_client.chat_startStream(channel=DM, thread_ts=dm_parent, markdown_text="a")
    await web_client.chat_stopStream(channel=DM, ts=started["ts"])
    with pytest.raises(SlackApiError) as stopped:
        await web_client.chat_appendStream(channel=DM, ts=started["ts"], markdown_text="b")
    assert stopped.value.response["error"] == "message_not_in_streaming_state"

    slack.refuse_streaming = "unknown_method"
    with pytest.raises(SlackApiError) as refused:
        await web_client.chat_startStream(channel=DM, thread_ts=dm_parent, markdown_text="a")
    assert refused.value.response.data == {"ok": False, "error": "unknown_method"}


async def test_a_tier_limit_answers_429_with_retry_after_that_the_sdk_honours() -> None:
    limits = Limits(methods={"chat.update": Window(1.0, 2)}, per_channel={})
    async with FakeSlack(limits=limits) as fake:
        fake.channel(CHANNEL)
        plain = client(fake)
        posted = await plain.chat_postMessage(channel=CHANNEL, text="0")
        for n in (1, 2):
            await plain.chat_update(channel=CHANNEL, ts=posted["ts"], text=str(n))
        with pytest.raises(SlackApiError) as limited:
            await plain.chat_update(channel=CHANNEL, ts=posted["ts"], text="3")
        response = limited.value.response
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert response["error"] == "ratelimited"
        assert fake.bot_texts(CHANNEL) == ["2"]  # the refused edit changed nothing

        patient = client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
        started = time.monotonic()
        await patient.chat_update(channel=CHANNEL, ts=posted["ts"], text="4")
        assert time.monotonic() - started >= 0.9
        assert fake.bot_texts(CHANNEL) == ["4"]
        assert len(fake.rate_limited()) == 2


async def test_a_channel_gets_about_one_post_a_second(slack: FakeSlack) -> None:
    web_client = client(slack)
    await web_client.chat_postMessage(channel=CHANNEL, text="a")
    with pytest.raises(SlackApiError) as limited:
        await web_client.chat_postMessage(channel=CHANNEL, text="b")
    assert limited.value.response.status_code == 429
    await web_client.chat_postMessage(channel=DM, text="another channel is fine")


async def test_thinking_status_until_the_bot_replies(slack: FakeSlack) -> None:
    web_client = client(slack)
    parent = slack.say(CHANNEL, USER, "hi")[0]["event"]["ts"]
    await web_client.assistant_threads_setStatus(
        channel_id=CHANNEL, thread_ts=parent, status="is thinking…"
    )
    assert slack.status_of(CHANNEL, parent) == "is thinking…"
    await web_client.chat_postMessage(channel=CHANNEL, thread_ts=parent, text="answer")
    assert slack.status_of(CHANNEL, parent) == ""

    slack.refuse_status = "channel_type_not_supported"
    with pytest.raises(SlackApiError) as refused:
        await web_client.assistant_threads_setStatus(
            channel_id=CHANNEL, thread_ts=parent, status="x"
        )
    assert refused.value.response["error"] == "channel_type_not_supported"


async def test_suggested_prompts_are_set_on_a_thread_and_a_click_posts_the_message(
    slack: FakeSlack,
) -> None:
    web_client = client(slack)
    parent = slack.say(DM, USER, "hi")[0]["event"]["ts"]
    prompts = [{"title": "Yes", "message": "/suggestions accept python"}]
    await web_client.assistant_threads_setSuggestedPrompts(
        channel_id=DM, thread_ts=parent, prompts=prompts, title="Suggested"
    )
    assert slack.prompts[(DM, parent)] == ("Suggested", [("Yes", "/suggestions accept python")])
    event = slack.choose_prompt(DM, parent, USER)[0]["event"]
    assert (event["text"], event["thread_ts"], event["user"]) == (
        "/suggestions accept python",
        parent,
        USER,
    )

    for bad in ([], [{"title": "t"}], [{"title": "t", "message": "m"}] * 5):
        with pytest.raises(SlackApiError) as refused:
            await web_client.assistant_threads_setSuggestedPrompts(
                channel_id=DM, thread_ts=parent, prompts=bad
            )
        assert refused.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as unknown:
        await web_client.assistant_threads_setSuggestedPrompts(
            channel_id=DM, thread_ts="1.000001", prompts=prompts
        )
    assert unknown.value.response["error"] == "invalid_thread_ts"
    slack.refuse_status = "channel_type_not_supported"
    with pytest.raises(SlackApiError) as refused:
        await web_client.assistant_threads_setSuggestedPrompts(
            channel_id=DM, thread_ts=parent, prompts=prompts
        )
    assert refused.value.response["error"] == "channel_type_not_supported"


async def test_conversations_replies_pages_through_a_thread(slack: FakeSlack) -> None:
    web_client = client(slack)
    parent = slack.say(CHANNEL, USER, "root")[0]["event"]["ts"]
    for n in range(3):
        slack.say(CHANNEL, USER, f"reply {n}", thread_ts=parent)
    await web_client.chat_postMessage(channel=CHANNEL, thread_ts=parent, text="bot")
    first = await web_client.conversations_replies(channel=CHANNEL, ts=parent, limit=3)
    cursor = first["response_metadata"]["next_cursor"]
    rest = await web_client.conversations_replies(channel=CHANNEL, ts=parent, cursor=cursor)
    messages = first["messages"] + rest["messages"]
    assert [m["text"] for m in messages] == ["root", "reply 0", "reply 1", "reply 2", "bot"]
    assert messages[-1]["bot_id"] == BOT_ID and first["has_more"] and not rest["has_more"]


async def test_say_sends_app_mention_and_message_for_a_mention(slack: FakeSlack) -> None:
    envelopes = slack.say(CHANNEL, USER, f"<@{BOT_USER}> hi")
    assert [e["event"]["type"] for e in envelopes] == ["app_mention", "message"]
    assert len({e["event_id"] for e in envelopes}) == 2
    assert [e["event"]["type"] for e in slack.say(DM, USER, "hi")] == ["message"]


async def test_deliveries_pass_slacks_signature_check() -> None:
    verifier = SignatureVerifier(SIGNING_SECRET)
    seen: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.text()
        valid = verifier.is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
        )
        seen.append(
            {
                "valid": valid,
                "retry": request.headers.get("X-Slack-Retry-Num"),
                "reason": request.headers.get("X-Slack-Retry-Reason"),
                "type": request.content_type,
                "body": body,
            }
        )
        return web.Response(status=200 if valid else 401)

    app = web.Application()
    app.router.add_post("/slack/events", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with FakeSlack() as fake, SlackSender(f"http://127.0.0.1:{port}/slack/events") as s:
            fake.channel(CHANNEL)
            event = fake.say(CHANNEL, USER, f"<@{BOT_USER}> hi")[0]
            assert (await s.event(event)).status == 200
            assert (await s.event(event, retry_num=1)).status == 200
            assert (await s.event(event, forged=True)).status == 401
            assert (await s.event(event, age=6 * 60)).status == 401  # older than 5 minutes
            fields = fake.slash("/reset", "all", user=USER, channel=CHANNEL)
            assert (await s.command(fields)).status == 200
    finally:
        await runner.cleanup()
    assert [x["valid"] for x in seen] == [True, True, False, False, True]
    assert (seen[1]["retry"], seen[1]["reason"]) == ("1", "http_timeout")
    assert seen[4]["type"] == "application/x-www-form-urlencoded"
    assert parse_qs(seen[4]["body"])["command"] == ["/reset"]


async def test_a_response_url_takes_an_ephemeral_reply(slack: FakeSlack) -> None:
    fields = slack.slash("/forget", "", user=USER, channel=CHANNEL)
    response = await AsyncWebhookClient(fields["response_url"]).send(
        text="지웠어요", response_type="ephemeral"
    )
    assert response.status_code == 200 and response.body == "ok"
    assert slack.responses[0]["text"] == "지웠어요"
    assert slack.responses[0]["response_type"] == "ephemeral"


async def test_socket_mode_delivers_envelopes_and_records_acks(slack: FakeSlack) -> None:
    received: list[SocketModeRequest] = []

    async def listener(socket: SocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        await socket.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    socket = SocketModeClient(app_token=APP_TOKEN, web_client=client(slack))
    socket.socket_mode_request_listeners.append(listener)  # type: ignore[arg-type]
    await socket.connect()
    try:
        await slack.wait_for(lambda f: f.socket_connected, within=5)
        event = slack.say(DM, USER, "소켓으로 안녕")[0]
        envelope_id = await slack.push(event)
        await slack.wait_for(lambda f: envelope_id in f.acks, within=5)
    finally:
        await socket.close()
    assert received[0].type == "events_api"
    assert received[0].payload["event"]["text"] == "소켓으로 안녕"
    assert [c.method for c in slack.calls] == ["apps.connections.open"]
    await asyncio.sleep(0)
