"""The real ``python -m bot run`` process against FakeSlack (Web API, signed events) and FakeGlm."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from bench.common import free_port
from bot.i18n import t
from tests.fakes.glm import FakeGlm, RecordedRequest, Reply
from tests.fakes.slack import (
    APP_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    TEAM,
    TOKEN,
    Call,
    FakeSlack,
    SlackSender,
)
from tests.scenarios.process import BotProcess, clean_env, run_bot, start_bot

GENERAL, STUDY = "C0GENERAL1", "C0STUDY001"
MINSU, ANN, BOSS = "U0MINSU001", "U0ANN00001", "U0BOSS0001"
DM_MINSU, DM_ANN = "D0MINSU001", "D0ANN00001"
AT_BOT = f"<@{BOT_USER}>"
SECRETS = (TOKEN, SIGNING_SECRET, APP_TOKEN)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:  # Slack's documented tiers
        for channel in (GENERAL, STUDY):
            fake.channel(channel)
        fake.channel(DM_MINSU, "im")
        fake.channel(DM_ANN, "im")
        fake.user(MINSU, "민수")
        fake.user(ANN, "Ann")
        fake.user(BOSS, "팀장")
        yield fake


@pytest.fixture
async def glm() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as fake:
        yield fake


@dataclass
class Bot:
    proc: BotProcess
    send: SlackSender
    port: int


async def _listening(port: int, proc: BotProcess) -> None:
    async with asyncio.timeout(20):
        while proc.running:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the bot exited at start")


def slack_env(slack: FakeSlack, glm: FakeGlm, port: int, **env: str) -> dict[str, str]:
    """The environment of a Slack bot process on ``port`` talking to these fakes."""
    # Adapter scenarios: forms and suggestions have their own (test_suggestions.py); an offer
    # under an answer would break the exact comparisons here.
    env = {"FORMS_ENABLED": "false", "SUGGESTIONS_ENABLED": "false", **env}
    return clean_env(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.base_url,
        SLACK_PORT=str(port),
        GLM_API_KEY=glm.api_key,
        GLM_BASE_URL=glm.base_url,
        **env,
    )


@asynccontextmanager
async def running(slack: FakeSlack, glm: FakeGlm, **env: str) -> AsyncIterator[Bot]:
    """The bot process, ready once it receives events; its output is checked when it stops."""
    port = free_port()
    proc = await start_bot(env=slack_env(slack, glm, port, **env))
    try:
        if "SLACK_APP_TOKEN" in env:
            await slack.wait_for(lambda f: f.socket_connected or not proc.running, within=20)
            assert proc.running, "the bot exited at start"
        else:
            await _listening(port, proc)
        async with SlackSender(f"http://127.0.0.1:{port}/slack/events") as sender:
            yield Bot(proc, sender, port)
    finally:
        code = await proc.stop()
        output = proc.stdout + proc.stderr
        assert code == 0, output
        for secret in SECRETS:
            assert secret not in output
        assert "Traceback" not in output, output


async def answered(
    slack: FakeSlack, channel: str, thread: str, text: str, within: float = 15
) -> None:
    """Wait until the bot's messages in the thread show ``text`` (and no stream is open)."""

    def done(f: FakeSlack) -> bool:
        messages = f.bot_messages(channel, thread)
        shown = "\n\n".join(m.shown.strip() for m in messages)
        return shown == text and not any(m.streaming for m in messages)

    await slack.wait_for(done, within)


def thread_of(envelopes: list[dict[str, object]]) -> str:
    event = envelopes[0]["event"]
    assert isinstance(event, dict)
    return str(event.get("thread_ts") or event["ts"])


def either(key: str) -> tuple[str, str]:
    """``key`` in Korean and in English (which one a Latin command gets is the core's choice)."""
    return t(key, "ko"), t(key, "en")


def history(request: RecordedRequest) -> list[str]:
    return [str(m["content"]) for m in request.messages if m["role"] in ("user", "assistant")]


def showing(slack: FakeSlack) -> list[Call]:
    shows = ("chat.startStream", "chat.appendStream", "chat.stopStream")
    return [c for c in slack.calls if c.method in (*shows, "chat.postMessage", "chat.update")]


# ---- channels and DMs ----------------------------------------------------------------------------


async def test_a_channel_mention_streams_a_threaded_answer(slack: FakeSlack, glm: FakeGlm) -> None:
    chunks = ["**서울**은 ", "오늘 ", "맑고 ", "최고 ", "21도예요. ", "내일은 ", "비가 ", "와요."]
    glm.enqueue(Reply("".join(chunks), chunks=chunks, first_delay=0.1, delay=0.12))
    async with running(slack, glm) as bot:
        envelopes = slack.say(GENERAL, MINSU, f"{AT_BOT} 서울 날씨 알려줘")
        deliveries = await bot.send.events(envelopes)  # app_mention and message
        thread = thread_of(envelopes)
        await answered(slack, GENERAL, thread, "".join(chunks))

    assert [d.status for d in deliveries] == [200, 200]
    assert all(d.elapsed < 1.0 for d in deliveries)
    assert glm.last_user_messages() == ["서울 날씨 알려줘"]  # once, without the mention
    (message,) = slack.bot_messages(GENERAL)
    assert message.thread_ts == envelopes[0]["event"]["ts"]  # in a thread under the mention
    calls = [c.method for c in slack.calls if c.method != "auth.test"]
    assert calls[0] == "assistant.threads.setStatus"
    assert slack.statuses[0][3] == "답변을 준비하고 있어요…"
    assert calls[1] == "chat.startStream" and calls[-1] == "chat.stopStream"
    start = slack.calls_to("chat.startStream")[0]
    assert start.text == "**서울**은 "  # the first words, not a 256-character buffer
    assert (start.params["recipient_team_id"], start.params["recipient_user_id"]) == (TEAM, MINSU)
    assert 1 <= len(slack.calls_to("chat.appendStream")) < len(chunks) - 1  # batched
    assert slack.rate_limited() == [] and slack.refused() == []


async def test_a_dm_streams_in_the_dm(slack: FakeSlack, glm: FakeGlm) -> None:
    glm.enqueue(Reply("Hi Ann! How can I help?", chunks=["Hi Ann! ", "How can I help?"], delay=0.1))
    async with running(slack, glm) as bot:
        envelopes = slack.say(DM_ANN, ANN, "hello there")
        await bot.send.events(envelopes)
        await answered(slack, DM_ANN, thread_of(envelopes), "Hi Ann! How can I help?")
    assert showing(slack)[0].method == "chat.startStream"
    assert slack.statuses[0][3] == "is thinking…"
    assert slack.bot_messages(GENERAL) == []


async def test_a_thread_continues_without_a_new_mention(slack: FakeSlack, glm: FakeGlm) -> None:
    glm.default = lambda r: Reply(f"답: {r.last_user_text()}")
    async with running(slack, glm) as bot:
        first = slack.say(STUDY, MINSU, f"{AT_BOT} 파이썬 공부 중이야")
        await bot.send.events(first)
        thread = thread_of(first)
        await answered(slack, STUDY, thread, "답: 파이썬 공부 중이야")
        # Someone else in the thread, no mention: the same conversation (thread scope).
        await bot.send.events(slack.say(STUDY, ANN, "리스트 정렬은?", thread_ts=thread))
        await answered(slack, STUDY, thread, "답: 파이썬 공부 중이야\n\n답: 리스트 정렬은?")
        # A thread the bot is not in: people talking among themselves get no answer.
        other = slack.say(STUDY, ANN, "점심 뭐 먹지")[0]["event"]["ts"]
        await bot.send.events(slack.say(STUDY, MINSU, "김밥?", thread_ts=other))
        await slack.wait_for(lambda f: bool(f.calls_to("conversations.replies")))
        await asyncio.sleep(0.3)

    assert glm.last_user_messages() == ["파이썬 공부 중이야", "리스트 정렬은?"]
    assert "파이썬 공부 중이야" in history(glm.requests[1])
    assert slack.bot_messages(STUDY, other) == []


async def test_per_user_scope_keeps_people_apart_in_one_thread(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    glm.default = lambda r: Reply(f"답: {r.last_user_text()}")
    async with running(slack, glm, SLACK_SESSION_SCOPE="user_in_thread") as bot:
        first = slack.say(STUDY, MINSU, f"{AT_BOT} 내 이름은 민수야")
        await bot.send.events(first)
        thread = thread_of(first)
        await answered(slack, STUDY, thread, "답: 내 이름은 민수야")
        await bot.send.events(slack.say(STUDY, ANN, f"{AT_BOT} what is my name?", thread_ts=thread))
        await answered(slack, STUDY, thread, "답: 내 이름은 민수야\n\n답: what is my name?")
    assert "내 이름은 민수야" not in history(glm.requests[1])


async def test_a_6000_character_answer_continues_in_a_second_message(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    paragraphs = [f"{i}. " + " ".join(["긴 답변의 한 문단입니다."] * 13) for i in range(1, 31)]
    text = "\n\n".join(paragraphs)
    assert 5900 < len(text) < 6500
    glm.enqueue(
        Reply(text, chunks=[text[i : i + 150] for i in range(0, len(text), 150)], delay=0.01)
    )
    async with running(slack, glm) as bot:
        envelopes = slack.say(DM_MINSU, MINSU, "길게 설명해 줘")
        await bot.send.events(envelopes)
        await slack.wait_for(
            lambda f: (
                len(f.bot_messages(DM_MINSU)) == 2
                and not any(m.streaming for m in f.bot_messages(DM_MINSU))
            ),
            within=15,
        )
        await asyncio.sleep(0.3)  # nothing more should follow

    parts = [m.shown for m in slack.bot_messages(DM_MINSU, thread_of(envelopes))]
    assert len(parts) == 2
    assert all(len(p) <= 4000 for p in parts)
    assert parts[1][0].isdigit()  # the second message starts a paragraph
    assert "\n\n".join(p.strip() for p in parts) == text
    assert slack.rate_limited() == []


# ---- delivery ------------------------------------------------------------------------------------


async def test_the_same_event_delivered_three_times_gets_one_answer(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    glm.enqueue(Reply("한 번만 답해요", delay=0.05))
    async with running(slack, glm) as bot:
        envelope = slack.say(DM_MINSU, MINSU, "안녕")[0]
        deliveries = [
            await bot.send.event(envelope),
            await bot.send.event(envelope, retry_num=1, retry_reason="http_timeout"),
            await bot.send.event(envelope, retry_num=2, retry_reason="http_timeout"),
        ]
        await answered(slack, DM_MINSU, thread_of([envelope]), "한 번만 답해요")
        await asyncio.sleep(0.5)  # a late second answer would show by now

    assert [d.status for d in deliveries] == [200, 200, 200]
    assert len(glm.requests) == 1
    assert len(slack.bot_messages(DM_MINSU)) == 1


async def test_forged_or_stale_requests_get_401_and_no_answer(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    async with running(slack, glm) as bot:
        envelope = slack.say(DM_MINSU, MINSU, "위조된 요청")[0]
        forged = await bot.send.event(envelope, forged=True)
        stale = await bot.send.event(envelope, age=10 * 60)
        command = await bot.send.command(
            slack.slash("/forget", "", user=MINSU, channel=DM_MINSU), forged=True
        )
        await asyncio.sleep(0.5)
    assert (forged.status, stale.status, command.status) == (401, 401, 401)
    assert glm.requests == []
    assert [c.method for c in slack.calls] == ["auth.test"]
    assert slack.responses == []


async def test_the_ack_never_waits_for_the_model(slack: FakeSlack, glm: FakeGlm) -> None:
    glm.enqueue(Reply("늦었지만 답해요", first_delay=3.5))
    async with running(slack, glm) as bot:
        envelope = slack.say(DM_MINSU, MINSU, "천천히 답해도 돼")[0]
        delivery = await bot.send.event(envelope)
        assert delivery.status == 200 and delivery.elapsed < 0.5  # Slack waits 3 s at most
        await answered(slack, DM_MINSU, thread_of([envelope]), "늦었지만 답해요", within=15)
    # The status showed that an answer was coming while the model was silent.
    assert slack.statuses[0][3] == "답변을 준비하고 있어요…"


async def test_two_processes_sharing_redis_answer_each_event_once(
    slack: FakeSlack, glm: FakeGlm, redis_url: str
) -> None:
    glm.default = lambda r: Reply(f"답: {r.last_user_text()}", delay=0.02)
    async with (
        running(slack, glm, REDIS_URL=redis_url) as one,
        running(slack, glm, REDIS_URL=redis_url) as two,
    ):
        threads = []
        for n in range(6):
            envelopes = slack.say(DM_MINSU if n % 2 else DM_ANN, MINSU if n % 2 else ANN, f"q{n}")
            threads.append((envelopes[0]["event"]["channel"], thread_of(envelopes), f"답: q{n}"))
            # Slack retried the event at the other process while the first was answering.
            await asyncio.gather(
                one.send.event(envelopes[0]),
                two.send.event(envelopes[0], retry_num=1, retry_reason="http_timeout"),
            )
        for channel, thread, text in threads:
            await answered(slack, str(channel), thread, text)
        await asyncio.sleep(0.5)

    assert sorted(glm.last_user_messages()) == [f"q{n}" for n in range(6)]
    for channel, thread, _ in threads:
        assert len(slack.bot_messages(str(channel), thread)) == 1


# ---- fallback ------------------------------------------------------------------------------------


async def test_refused_streaming_falls_back_to_post_and_update_within_the_tier(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    chunks = [
        "**첫** 단어가 ",
        "먼저 ",
        "보이고, ",
        "조금씩 ",
        "늘어나서 ",
        "마지막엔 ",
        "완성돼요.",
    ]
    text = "".join(chunks)
    slack.refuse_streaming = "unknown_method"  # an older workspace, GovSlack...
    glm.enqueue(Reply(text, chunks=chunks, delay=0.4), Reply("두 번째 답", delay=0.05))
    async with running(slack, glm) as bot:
        first = slack.say(GENERAL, MINSU, f"{AT_BOT} 설명해 줘")
        await bot.send.events(first)
        final = "*첫* 단어가 먼저 보이고, 조금씩 늘어나서 마지막엔 완성돼요."  # as mrkdwn
        await answered(slack, GENERAL, thread_of(first), final)
        second = slack.say(GENERAL, ANN, f"{AT_BOT} again")
        await bot.send.events(second)
        await answered(slack, GENERAL, thread_of(second), "두 번째 답")

    (message, _) = slack.bot_messages(GENERAL)
    assert message.versions[0] == "**첫** 단어가"  # posted with the first words, as written
    assert len(message.versions) >= 3  # then edited as the answer grew
    assert len(set(message.versions)) == len(message.versions)
    updates = [c.at for c in slack.calls_to("chat.update") if c.params["ts"] == message.ts]
    interim = updates[:-1]  # the last edit is the final, formatted text
    assert all(b - a >= 1.2 for a, b in itertools.pairwise(interim))
    assert len(slack.calls_to("chat.update")) <= 50  # Tier 3, per minute and workspace
    assert len(slack.calls_to("chat.startStream")) == 1  # remembered for the workspace
    assert slack.rate_limited() == []


# ---- slash commands ------------------------------------------------------------------------------


async def test_forget_in_a_dm_deletes_the_callers_history(slack: FakeSlack, glm: FakeGlm) -> None:
    glm.default = lambda r: Reply(f"기억할게요: {r.last_user_text()}")
    async with running(slack, glm) as bot:
        first = slack.say(DM_MINSU, MINSU, "내 비밀번호 힌트는 고양이야")
        await bot.send.events(first)
        await answered(slack, DM_MINSU, thread_of(first), "기억할게요: 내 비밀번호 힌트는 고양이야")
        await bot.send.command(slack.slash("/forget", "", user=MINSU, channel=DM_MINSU))
        await slack.wait_for(lambda f: len(f.responses) == 1)
        later = slack.say(DM_MINSU, MINSU, "힌트가 뭐였지?")
        await bot.send.events(later)
        await answered(slack, DM_MINSU, thread_of(later), "기억할게요: 힌트가 뭐였지?")

    assert slack.responses[0]["response_type"] == "ephemeral"
    assert "고양이" not in " ".join(history(glm.requests[-1]))


# ---- Socket Mode ---------------------------------------------------------------------------------


async def test_socket_mode_receives_events_over_the_socket(slack: FakeSlack, glm: FakeGlm) -> None:
    glm.enqueue(Reply("소켓으로 받았어요", delay=0.05))
    async with running(slack, glm, SLACK_APP_TOKEN=APP_TOKEN):
        envelope = slack.say(DM_MINSU, MINSU, "소켓 모드 되나요?")[0]
        envelope_id = await slack.push(envelope)
        await slack.wait_for(lambda f: envelope_id in f.acks)
        await answered(slack, DM_MINSU, thread_of([envelope]), "소켓으로 받았어요")
        retry_id = await slack.push(envelope, retry_attempt=1)
        await slack.wait_for(lambda f: retry_id in f.acks)
        await asyncio.sleep(0.3)
    assert len(glm.requests) == 1  # the redelivery was acknowledged, not answered again
    assert [c.method for c in slack.calls][:2] == ["auth.test", "apps.connections.open"]


# ---- configuration -------------------------------------------------------------------------------


async def test_a_rejected_token_stops_the_bot_with_a_clear_error(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    wrong = "xoxb-1000000001-2000000002-NotTheRightTokenForThisFake"
    finished = await run_bot(
        "run",
        env=clean_env(
            SLACK_BOT_TOKEN=wrong,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.base_url,
            SLACK_PORT=str(free_port()),
            GLM_API_KEY=glm.api_key,
            GLM_BASE_URL=glm.base_url,
        ),
        within=20,
    )
    output = finished.stdout + finished.stderr
    assert finished.code == 2
    assert "SLACK_BOT_TOKEN was rejected (invalid_auth)" in output
    assert wrong not in output and "Traceback" not in output
