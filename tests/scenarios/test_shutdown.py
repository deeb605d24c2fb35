"""SIGTERM: no new work, answers in flight finish within SHUTDOWN_GRACE_SECONDS, then exit."""

from __future__ import annotations

import asyncio
import time

from bench.common import free_port
from bot.i18n import t
from tests.fakes.glm import FakeGlm, Reply
from tests.fakes.slack import FakeMessage, FakeSlack, SlackSender
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.scenarios.process import BotProcess, clean_env, start_bot
from tests.scenarios.test_slack import DM_MINSU, MINSU, _listening, slack, slack_env, thread_of
from tests.scenarios.test_telegram import MIN, glm, tg

__all__ = ["glm", "slack", "tg"]  # the fixtures, shared with the channel scenarios

WORDS = [f"{n}번째 문장입니다. " for n in range(1, 13)]
FULL = "".join(WORDS).strip()


def telegram_env(tg: FakeTelegram, glm: FakeGlm, **env: str) -> dict[str, str]:
    """The environment of a Telegram bot process (long polling) on these fakes."""
    env = {"FORMS_ENABLED": "false", "SUGGESTIONS_ENABLED": "false", **env}
    return clean_env(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_BASE_URL=tg.base_url,
        GLM_API_KEY=glm.api_key,
        GLM_BASE_URL=glm.base_url,
        **env,
    )


async def telegram_bot(tg: FakeTelegram, glm: FakeGlm, **env: str) -> BotProcess:
    """A Telegram bot process on these fakes, returned once it polls."""
    polls = len(tg.calls_to("getUpdates"))  # an earlier process may have polled already
    proc = await start_bot(env=telegram_env(tg, glm, **env))
    await tg.wait_for(lambda f: len(f.calls_to("getUpdates")) > polls, within=20)
    return proc


async def test_telegram_finishes_the_answer_in_flight_then_exits(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    glm.enqueue(Reply(FULL, chunks=WORDS, delay=0.35))  # about 4 s of answer
    proc = await telegram_bot(tg, glm)
    tg.say(tg.chats[MIN], tg.users[MIN], "길게 설명해 줘")
    await tg.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", MIN)), within=15)
    code = await proc.stop(within=20)
    assert code == 0, proc.stdout + proc.stderr
    assert tg.bot_texts(MIN) == [FULL]  # the whole answer, as one final message
    assert "Traceback" not in proc.stderr


async def test_telegram_waits_no_longer_than_the_grace(tg: FakeTelegram, glm: FakeGlm) -> None:
    glm.enqueue(Reply(FULL, chunks=WORDS, delay=1.0))  # about 12 s of answer
    proc = await telegram_bot(tg, glm, SHUTDOWN_GRACE_SECONDS="1")
    tg.say(tg.chats[MIN], tg.users[MIN], "아주 길게 설명해 줘")
    await tg.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", MIN)), within=15)
    started = time.monotonic()
    code = await proc.stop(within=20)
    assert code == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started < 6  # the grace, not the answer's 12 s
    assert "cut at shutdown" in proc.stderr


async def slack_answer_cut_by_sigterm(
    slack: FakeSlack, glm: FakeGlm, delay: float, **env: str
) -> tuple[int, str, FakeMessage]:
    """A DM answered by the real process, SIGTERMed once the answer shows; the exit code,
    the process output and the bot's message in the thread."""
    glm.enqueue(Reply(FULL, chunks=WORDS, delay=delay))
    port = free_port()
    proc = await start_bot(env=slack_env(slack, glm, port, **env))
    await _listening(port, proc)
    async with SlackSender(f"http://127.0.0.1:{port}/slack/events") as sender:
        envelopes = slack.say(DM_MINSU, MINSU, "길게 설명해 줘")
        await sender.events(envelopes)
        thread = thread_of(envelopes)
        await slack.wait_for(lambda f: bool(f.bot_messages(DM_MINSU, thread)), within=15)
        await asyncio.sleep(0.5)
        code = await proc.stop(within=30)
    (message,) = slack.bot_messages(DM_MINSU, thread)
    return code, proc.stdout + proc.stderr, message


async def test_slack_finishes_a_long_stream_in_flight_then_exits(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    # About 7 s of answer: past the old 5 s cut.
    code, output, message = await slack_answer_cut_by_sigterm(slack, glm, 0.6)
    assert code == 0, output
    assert not message.streaming  # the stream was stopped properly
    assert message.shown.strip() == FULL


async def test_slack_stops_a_stream_cut_by_the_grace_with_a_notice(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    # About 12 s of answer, 1 s of grace.
    code, output, message = await slack_answer_cut_by_sigterm(
        slack, glm, 1.0, SHUTDOWN_GRACE_SECONDS="1"
    )
    assert code == 0, output
    assert not message.streaming  # not half-shown forever
    assert t("notice_shutdown", "ko") in message.shown


async def test_telegram_replaces_a_draft_cut_by_the_grace_with_a_notice(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    glm.enqueue(Reply(FULL, chunks=WORDS, delay=1.0))
    proc = await telegram_bot(tg, glm, SHUTDOWN_GRACE_SECONDS="1")
    tg.say(tg.chats[MIN], tg.users[MIN], "아주 길게 설명해 줘")
    await tg.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", MIN)), within=15)
    assert await proc.stop(within=20) == 0
    (final,) = tg.bot_texts(MIN)
    assert final.endswith(t("notice_shutdown", "ko"))
