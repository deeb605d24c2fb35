"""Two replicas of the bot share one platform budget through Redis: 50 answers streaming at
once into one Telegram group and into one Slack workspace, half from each replica, and the
platforms never answer 429.

Each "replica" is its own Bot / Web API client and its own pacer with its own Redis
connection, as two processes would have. The platforms' documented limits are scaled down
(a minute becomes a second or three) in the fakes and in the pacers alike, so that 50 answers
take seconds, not minutes; the control tests show that the same load with each replica pacing
on its own does draw 429s from the fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot

from adapters.slack_pacing import SlackBudget, SlackPolicy
from adapters.slack_stream import SlackReplyStream, SlackTarget
from adapters.telegram_pacing import FloodPolicy, TelegramOutbox
from adapters.telegram_stream import ChatTarget, TelegramReplyStream
from bot.pacing import MemoryLedger, PaceLedger, RedisLedger, Window
from bot.reply import ReplyStream
from bot.sessions.redis import make_client
from tests.fakes.slack import TEAM, FakeSlack
from tests.fakes.slack import Limits as SlackLimits
from tests.fakes.slack import Window as FakeWindow
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.telegram import Limits as TelegramLimits

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

ANSWERS = 50
GROUP, USER = -100900, 77
CHANNEL, SLACK_USER = "C0TEAMALL01", "U0JIHOON01"

# The documented limits with time running twenty times faster: a minute is 3 s, a second 50 ms.
# Telegram: one message a second per chat, 20 a minute per group, 30 a second for the bot.
TG_POLICY = FloodPolicy(
    chat=Window(0.05, 1), group=Window(3.0, 20), bot=Window(0.05, 30), typing_interval=0.5
)
TG_LIMITS = TelegramLimits(per_chat=(0.05, 1), per_group=(3.0, 20), per_bot=(0.05, 30))

# Slack: the tiers per minute per workspace, chat.postMessage one a second per channel.
TIERS = {
    "chat.startStream": 20,
    "chat.appendStream": 100,
    "chat.stopStream": 20,
    "chat.update": 50,
    "chat.delete": 50,
    "assistant.threads.setStatus": 50,
    "conversations.replies": 50,
    "chat.postMessage": 300,
}
SLACK_POLICY = SlackPolicy(
    methods={m: Window(3.0, n) for m, n in TIERS.items()},
    per_channel={"chat.postMessage": Window(0.05, 1)},
    append_interval=0.2,
    update_interval=0.3,
)
SLACK_LIMITS = SlackLimits(
    methods={"auth.test": FakeWindow(3.0, 100)} | {m: FakeWindow(3.0, n) for m, n in TIERS.items()},
    per_channel={"chat.postMessage": FakeWindow(0.05, 1)},
)


def chunks(n: int) -> list[str]:
    return [f"답변{n}의 {i}번째 조각입니다. " for i in range(12)]


async def answer(reply: ReplyStream, parts: Sequence[str]) -> None:
    """What the manager does: start, a chunk at a time, then the whole text."""
    await reply.start()
    for part in parts:
        await asyncio.sleep(0.1)
        reply.append(part)
    await reply.finish("".join(parts))


async def two_ledgers(stack: AsyncExitStack, redis_url: str | None) -> list[PaceLedger]:
    """Two replicas' ledgers: on Redis (shared), or each in its own memory (None)."""
    if redis_url is None:
        return [MemoryLedger(), MemoryLedger()]
    ledgers: list[PaceLedger] = []
    for _ in range(2):
        client = make_client(redis_url, cluster=False)
        stack.push_async_callback(client.aclose)
        ledgers.append(RedisLedger(client))
    return ledgers


# ---- Telegram: one group --------------------------------------------------------------------


async def telegram_group(redis_url: str | None) -> FakeTelegram:
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(FakeTelegram(limits=TG_LIMITS))
        user = fake.user(USER, "지훈")
        fake.group(GROUP, "전사 공지방", members=[user])
        ledgers = await two_ledgers(stack, redis_url)
        outboxes = []
        for ledger in ledgers:
            bot = await stack.enter_async_context(Bot(TOKEN, base_url=fake.base_url))
            outboxes.append(TelegramOutbox(bot, TG_POLICY, ledger=ledger))
        replies = []
        for n in range(ANSWERS):
            question = fake.say(fake.chats[GROUP], fake.users[USER], f"@glm_test_bot 질문 {n}")
            target = ChatTarget(GROUP, private=False, reply_to=question["message"]["message_id"])
            replies.append(TelegramReplyStream(outboxes[n % 2], target))
        await asyncio.wait_for(
            asyncio.gather(*(answer(r, chunks(n)) for n, r in enumerate(replies))), 120
        )
        return fake


async def test_telegram_two_replicas_stream_50_answers_into_one_group_without_a_429(
    redis_url: str,
) -> None:
    fake = await telegram_group(redis_url)
    assert fake.rejected(429) == []
    texts = fake.bot_texts(GROUP)
    for n in range(ANSWERS):
        assert "".join(chunks(n)).strip() in texts, f"answer {n} incomplete"


async def test_control_telegram_replicas_pacing_alone_draw_429s() -> None:
    fake = await telegram_group(None)
    assert fake.rejected(429), "the load must exceed the group's limit when not shared"


# ---- Slack: one workspace -------------------------------------------------------------------


async def slack_workspace(redis_url: str | None) -> FakeSlack:
    async with AsyncExitStack() as stack:
        slack = await stack.enter_async_context(FakeSlack(limits=SLACK_LIMITS))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        slack.channel(CHANNEL)
        ledgers = await two_ledgers(stack, redis_url)
        budgets = [SlackBudget(SLACK_POLICY, ledger=ledger) for ledger in ledgers]
        clients = [
            AsyncWebClient(token=slack.token, base_url=slack.base_url, session=session)
            for _ in budgets
        ]
        replies = []
        for n in range(ANSWERS):
            thread = slack.say(CHANNEL, SLACK_USER, f"질문 {n}")[0]["event"]["ts"]
            target = SlackTarget(TEAM, CHANNEL, thread, TEAM, SLACK_USER, private=False, lang="ko")
            replies.append(SlackReplyStream(clients[n % 2], budgets[n % 2], target))
        await asyncio.wait_for(
            asyncio.gather(*(answer(r, chunks(n)) for n, r in enumerate(replies))), 120
        )
        return slack


async def test_slack_two_replicas_stream_50_answers_in_one_workspace_without_a_429(
    redis_url: str,
) -> None:
    slack = await slack_workspace(redis_url)
    assert slack.rate_limited() == []
    assert slack.refused() == []
    shown = [m.shown for m in slack.bot_messages(CHANNEL)]
    for n in range(ANSWERS):
        assert any("".join(chunks(n)).strip() in s for s in shown), f"answer {n} incomplete"


async def test_control_slack_replicas_pacing_alone_draw_429s() -> None:
    slack = await slack_workspace(None)
    assert slack.rate_limited(), "the load must exceed the workspace's tiers when not shared"
