"""Every message a platform handed over is answered, completely, once: the real bot process
SIGKILLed mid-answer and started again, Redis gone while messages arrive (Redis journal)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.common import free_port
from bot.i18n import t
from tests.fakes.glm import FakeGlm, Reply
from tests.fakes.slack import FakeSlack, SlackSender
from tests.fakes.telegram import FakeTelegram
from tests.redis_servers import start_server
from tests.scenarios import test_shutdown as shutdown_scenario
from tests.scenarios.process import BotProcess, start_bot
from tests.scenarios.test_slack import DM_MINSU, MINSU, _listening, slack, slack_env, thread_of
from tests.scenarios.test_telegram import MIN, glm, tg
from tests.scenarios.test_telegram import running as telegram_running

__all__ = ["glm", "slack", "tg"]  # the fixtures, shared with the channel scenarios

WORDS = [f"{n}번째 문장입니다. " for n in range(1, 13)]
FULL = "".join(WORDS).strip()
TAKEOVER_LIMIT = 30.0  # the promise: a dead process's turn is answered within this


async def telegram_bot(tg: FakeTelegram, glm: FakeGlm, redis_url: str) -> BotProcess:
    return await shutdown_scenario.telegram_bot(tg, glm, REDIS_URL=redis_url)


def complete_answers(texts: list[str], answer: str) -> int:
    return sum(1 for text in texts if answer in text)


async def test_telegram_answer_cut_by_sigkill_is_given_whole_after_restart(
    tg: FakeTelegram, glm: FakeGlm, redis_url: str
) -> None:
    glm.enqueue(Reply(FULL, chunks=WORDS, delay=0.5))  # about 6 s: killed in the middle
    first = await telegram_bot(tg, glm, redis_url)
    tg.say(tg.chats[MIN], tg.users[MIN], "길게 설명해 줘")
    await tg.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", MIN)), within=15)
    await first.kill()
    assert tg.pending_updates == 0  # Telegram was told it was received: it won't come again

    glm.enqueue(Reply(FULL, chunks=WORDS))
    restarted = time.monotonic()
    second = await telegram_bot(tg, glm, redis_url)
    try:
        await tg.wait_for(
            lambda f: complete_answers(f.bot_texts(MIN), FULL) >= 1, within=TAKEOVER_LIMIT
        )
        took = time.monotonic() - restarted
        await asyncio.sleep(1.0)  # nothing more comes
        texts = tg.bot_texts(MIN)
        assert complete_answers(texts, FULL) == 1, texts  # whole, and once
        (whole,) = [text for text in texts if FULL in text]
        assert t("notice_resumed", "ko").strip("()") in whole  # says why it comes again
        assert took < TAKEOVER_LIMIT
    finally:
        assert await second.stop(within=20) == 0, second.stderr


async def test_telegram_keeps_a_users_order_across_a_crash(
    tg: FakeTelegram, glm: FakeGlm, redis_url: str
) -> None:
    glm.enqueue(Reply(FULL, chunks=WORDS, delay=0.5))
    first = await telegram_bot(tg, glm, redis_url)
    tg.say(tg.chats[MIN], tg.users[MIN], "첫 번째 질문")
    await tg.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", MIN)), within=15)
    await first.kill()
    tg.say(tg.chats[MIN], tg.users[MIN], "두 번째 질문")  # while the bot is down

    glm.enqueue(Reply("첫 답"), Reply("둘째 답"))
    second = await telegram_bot(tg, glm, redis_url)
    try:
        await tg.wait_for(
            lambda f: any("둘째 답" in text for text in f.bot_texts(MIN)), within=TAKEOVER_LIMIT
        )
        texts = [text for text in tg.bot_texts(MIN) if "답" in text and FULL not in text]
        firsts = [i for i, text in enumerate(texts) if "첫 답" in text]
        seconds = [i for i, text in enumerate(texts) if "둘째 답" in text]
        assert len(firsts) == 1 and len(seconds) == 1, texts
        assert firsts[0] < seconds[0], texts  # the first message is answered first
        asked = [r.last_user_text() for r in glm.requests if r.stream]  # in order
        assert asked[-2:] == ["첫 번째 질문", "두 번째 질문"], asked
    finally:
        assert await second.stop(within=20) == 0, second.stderr


async def test_telegram_messages_sent_while_redis_is_down_are_answered_when_it_is_back(
    tg: FakeTelegram, glm: FakeGlm, tmp_path: Path
) -> None:
    server = start_server(tmp_path, ["--appendonly", "yes", "--appendfsync", "everysec"])
    proc = await telegram_bot(tg, glm, server.url)
    try:
        server.stop()
        tg.say(tg.chats[MIN], tg.users[MIN], "레디스가 없을 때 보낸 말")
        await asyncio.sleep(3)
        assert tg.pending_updates == 1  # not confirmed: the message waits at Telegram
        server.start()
        await tg.wait_for(lambda f: len(f.bot_texts(MIN)) >= 1, within=40)
        await asyncio.sleep(1)
        (answer,) = tg.bot_texts(MIN)
        assert "레디스가 없을 때 보낸 말" in answer  # the fake model echoes it
    finally:
        assert await proc.stop(within=20) == 0, proc.stderr
        server.stop()


async def test_slack_answer_cut_by_sigkill_is_given_whole_after_restart(
    slack: FakeSlack, glm: FakeGlm, redis_url: str
) -> None:
    glm.enqueue(Reply(FULL, chunks=WORDS, delay=0.5))
    port = free_port()
    env = slack_env(slack, glm, port, REDIS_URL=redis_url)
    first = await start_bot(env=env)
    await _listening(port, first)
    async with SlackSender(f"http://127.0.0.1:{port}/slack/events") as sender:
        envelopes = slack.say(DM_MINSU, MINSU, "길게 설명해 줘")
        statuses = [d.status for d in await sender.events(envelopes)]
        assert statuses == [200] * len(envelopes)  # acknowledged: Slack will not retry
        thread = thread_of(envelopes)
        await slack.wait_for(lambda f: bool(f.bot_messages(DM_MINSU, thread)), within=15)
    await first.kill()

    glm.enqueue(Reply(FULL, chunks=WORDS))
    second = await start_bot(env=env)
    try:
        await _listening(port, second)
        await slack.wait_for(
            lambda f: any(
                FULL in m.shown and not m.streaming for m in f.bot_messages(DM_MINSU, thread)
            ),
            within=TAKEOVER_LIMIT,
        )
        await asyncio.sleep(1.0)
        whole = [m for m in slack.bot_messages(DM_MINSU, thread) if FULL in m.shown]
        assert len(whole) == 1
        assert t("notice_resumed", "ko").strip("()") in whole[0].shown
    finally:
        assert await second.stop(within=20) == 0, second.stderr


async def test_telegram_answer_cut_by_sigterm_is_taken_over_by_the_next_process(
    tg: FakeTelegram, glm: FakeGlm, redis_url: str
) -> None:
    glm.enqueue(Reply(FULL, chunks=WORDS, delay=1.0))  # about 12 s; the grace is 1 s
    first = await shutdown_scenario.telegram_bot(
        tg, glm, REDIS_URL=redis_url, SHUTDOWN_GRACE_SECONDS="1"
    )
    tg.say(tg.chats[MIN], tg.users[MIN], "아주 길게 설명해 줘")
    await tg.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", MIN)), within=15)
    assert await first.stop(within=20) == 0, first.stderr
    (cut,) = tg.bot_texts(MIN)
    assert cut.endswith(t("notice_shutdown_resumed", "ko"))  # says it will come, not "resend"

    glm.enqueue(Reply(FULL, chunks=WORDS))
    restarted = time.monotonic()
    second = await telegram_bot(tg, glm, redis_url)
    try:
        await tg.wait_for(lambda f: complete_answers(f.bot_texts(MIN), FULL) == 1, within=15)
        # A clean stop hands its turns over at once: no heartbeat to wait out.
        assert time.monotonic() - restarted < 8
    finally:
        assert await second.stop(within=20) == 0, second.stderr


async def test_no_message_is_taken_before_the_store_answers(
    tg: FakeTelegram, glm: FakeGlm, tmp_path: Path
) -> None:
    server = start_server(tmp_path, [])
    server.stop()  # down when the bot starts
    tg.say(tg.chats[MIN], tg.users[MIN], "시작할 때 보낸 말")
    proc = await start_bot(
        env=shutdown_scenario.telegram_env(tg, glm, REDIS_URL=server.url)  # not ready yet
    )
    try:
        await asyncio.sleep(4)
        assert proc.running
        assert not tg.calls_to("getUpdates")  # nothing is taken while the store is away
        server.start()
        await tg.wait_for(lambda f: len(f.bot_texts(MIN)) >= 1, within=20)
        (answer,) = tg.bot_texts(MIN)
        assert "시작할 때 보낸 말" in answer
    finally:
        assert await proc.stop(within=20) == 0, proc.stderr
        server.stop()


async def test_slack_event_that_cannot_be_recorded_is_refused_and_answered_on_the_retry(
    slack: FakeSlack, glm: FakeGlm, tmp_path: Path
) -> None:
    server = start_server(tmp_path, [])
    port = free_port()
    proc = await start_bot(env=slack_env(slack, glm, port, REDIS_URL=server.url))
    try:
        await _listening(port, proc)
        async with SlackSender(f"http://127.0.0.1:{port}/slack/events") as sender:
            (envelope,) = slack.say(DM_MINSU, MINSU, "레디스가 없을 때 보낸 말")
            server.stop()
            refused = await sender.event(envelope)
            assert refused.status >= 500  # not acknowledged: Slack will send it again
            server.start()
            retried = await sender.event(envelope, retry_num=1, retry_reason="http_error")
            assert retried.status == 200
            again = await sender.event(envelope, retry_num=2, retry_reason="http_error")
            assert again.status == 200  # a retry of a recorded event: acknowledged, not redone
            thread = thread_of([envelope])
            await slack.wait_for(
                lambda f: any(not m.streaming for m in f.bot_messages(DM_MINSU, thread)),
                within=15,
            )
            await asyncio.sleep(1.0)
        (answer,) = slack.bot_messages(DM_MINSU, thread)
        assert "레디스가 없을 때 보낸 말" in answer.shown
    finally:
        assert await proc.stop(within=20) == 0, proc.stderr
        server.stop()


async def test_a_second_long_poller_of_the_same_bot_refuses_to_start(
    tg: FakeTelegram, glm: FakeGlm, redis_url: str
) -> None:
    first = await telegram_bot(tg, glm, redis_url)
    try:
        second = await start_bot(env=shutdown_scenario.telegram_env(tg, glm, REDIS_URL=redis_url))
        # It waits out a lease a dead process may have left (20 s), then exits by itself.
        await asyncio.wait_for(second.proc.wait(), 40)
        code = await second.stop()
        assert code == 2
        assert "already long-polling" in second.stderr
        assert "TELEGRAM_WEBHOOK_URL" in second.stderr
        assert not tg.rejected(409)  # the first poller was never disturbed
        tg.say(tg.chats[MIN], tg.users[MIN], "첫 번째 봇이 답하나요")
        await tg.wait_for(lambda f: len(f.bot_texts(MIN)) >= 1, within=10)
    finally:
        assert await first.stop(within=20) == 0, first.stderr


async def test_telegram_webhook_update_that_cannot_be_recorded_is_refused_then_answered(
    tg: FakeTelegram, glm: FakeGlm, tmp_path: Path
) -> None:
    server = start_server(tmp_path, [])
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    secret = "hook-Secret_42"
    hook = {
        "TELEGRAM_WEBHOOK_URL": url,
        "TELEGRAM_WEBHOOK_SECRET": secret,
        "TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
        "TELEGRAM_WEBHOOK_PORT": str(port),
        "REDIS_URL": server.url,
    }
    try:
        async with telegram_running(tg, glm, **hook) as proc:
            await _listening(port, proc)
            update = tg.say(tg.chats[MIN], tg.users[MIN], "웹훅으로 보낸 말", send=False)
            server.stop()
            assert await tg.deliver(update, secret=secret, url=url) >= 500  # not taken
            server.start()
            assert await tg.deliver(update, secret=secret, url=url) == 200  # Telegram's retry
            await tg.wait_for(lambda f: len(f.bot_texts(MIN)) >= 1, within=15)
            assert await tg.deliver(update, secret=secret, url=url) == 200  # once more
            await asyncio.sleep(1.0)
            (answer,) = tg.bot_texts(MIN)
            assert "웹훅으로 보낸 말" in answer
    finally:
        server.stop()
