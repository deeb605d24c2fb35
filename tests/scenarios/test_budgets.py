"""Token budgets end to end: the real bot process on Telegram and on Slack, against the fakes
(the fake GLM's answers carry ``usage`` as the API's do), with the counters on a real Redis
that outlives the process."""

from __future__ import annotations

import asyncio

from bot.i18n import t
from tests.fakes.glm import DETAILED_USAGE, FakeGlm, Reply
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.scenarios import test_slack as slack_scenario
from tests.scenarios import test_telegram as telegram_scenario
from tests.scenarios.test_slack import DM_MINSU, MINSU, thread_of
from tests.scenarios.test_telegram import ANN, MIN

# The two platforms' scenario fixtures, shared.
glm = slack_scenario.glm
slack = slack_scenario.slack
tg = telegram_scenario.tg
slack_answered, slack_running = slack_scenario.answered, slack_scenario.running
telegram_running = telegram_scenario.running

ANSWER = "네, 알겠어요."
# 120 tokens an answer, as the API reports them (thinking and cached are parts of them).
USAGE = DETAILED_USAGE
BUDGET = {"USER_DAILY_TOKEN_BUDGET": "250"}  # three answers: 0, 120 and 240 spent before each


def notice_start(lang: str) -> str:
    """The daily budget notice up to the time it names."""
    return t("budget_user_day", lang, reset="\0", at="\0").split("\0")[0]


async def test_telegram_a_user_is_stopped_at_the_budget_and_a_restart_does_not_reset_it(
    tg: FakeTelegram,
    glm: FakeGlm,
    redis_url: str,
) -> None:
    glm.default = Reply(ANSWER, usage=USAGE)
    env = {"REDIS_URL": redis_url, **BUDGET}

    async def says(chat: int, text: str) -> str:
        before = len(tg.bot_texts(chat))
        tg.say(tg.chats[chat], tg.users[chat], text)
        await tg.wait_for(lambda f: len(f.bot_texts(chat)) > before, within=15)
        return tg.bot_texts(chat)[-1]

    async with telegram_running(tg, glm, **env):
        for n in range(3):
            assert await says(MIN, f"질문 {n}번이에요") == ANSWER
        # The tokens are written just after the answer is shown: until /usage counts them.
        for _ in range(50):
            if "360" in await says(MIN, "/usage"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the three answers' 360 tokens were never counted")
        assert (await says(MIN, "하나 더 물어볼게요")).startswith(notice_start("ko"))
        assert len(glm.requests) == 3  # the fourth turn asked no model
    async with telegram_running(tg, glm, **env):  # a new process on the same Redis
        assert (await says(MIN, "다시 켜졌나요?")).startswith(notice_start("ko"))
        assert len(glm.requests) == 3
        assert await says(ANN, "Hello, a question please") == ANSWER  # others are not held
        usage = await says(MIN, "/usage")
    assert "360" in usage and t("usage_left_day", "ko", n="0") in usage


async def test_slack_a_user_is_stopped_at_the_budget(
    slack: FakeSlack,
    glm: FakeGlm,
) -> None:
    glm.default = Reply(ANSWER, usage=USAGE)
    async with slack_running(slack, glm, **BUDGET) as bot:
        for n in range(3):
            envelopes = slack.say(DM_MINSU, MINSU, f"질문 {n}번이에요")
            await bot.send.events(envelopes)
            await slack_answered(slack, DM_MINSU, thread_of(envelopes), ANSWER)
        envelopes = slack.say(DM_MINSU, MINSU, "하나 더 물어볼게요")
        await bot.send.events(envelopes)
        thread = thread_of(envelopes)
        start = notice_start("ko")
        await slack.wait_for(
            lambda f: any(m.shown.startswith(start) for m in f.bot_messages(DM_MINSU, thread)),
            within=15,
        )
    assert len(glm.requests) == 3
