"""/reset and /forget on Slack, end to end: the real bot process, FakeSlack, real Redis.

Slash commands carry no thread; messages in a thread are one shared conversation (the default
``SLACK_SESSION_SCOPE=thread``). Each promise is checked in Redis afterwards.
"""

from __future__ import annotations

from tests.fakes.glm import FakeGlm, Reply
from tests.fakes.slack import TEAM, FakeSlack
from tests.scenarios.test_slack import (
    ANN,
    AT_BOT,
    BOSS,
    DM_MINSU,
    GENERAL,
    MINSU,
    answered,
    either,
    glm,
    running,
    slack,
    thread_of,
)
from tests.scenarios.test_trust_telegram import dump

__all__ = ["glm", "slack"]  # the fixtures, shared with the Slack scenarios


async def shows(slack: FakeSlack, channel: str, thread: str, text: str) -> None:
    """Wait until one of the bot's finished messages in the thread shows ``text``."""

    def done(f: FakeSlack) -> bool:
        messages = f.bot_messages(channel, thread)
        return any(m.shown.strip() == text and not m.streaming for m in messages)

    await slack.wait_for(done, 15)


async def test_slash_reset_resets_the_callers_conversations_in_the_channel(
    slack: FakeSlack, glm: FakeGlm, redis_url: str
) -> None:
    glm.default = lambda r: Reply(f"답: {r.last_user_text()}")
    async with running(slack, glm, REDIS_URL=redis_url, SLACK_ADMIN_USER_IDS=BOSS) as bot:
        mine = slack.say(GENERAL, MINSU, f"{AT_BOT} 내 별명은 감자야")
        await bot.send.events(mine)
        await answered(slack, GENERAL, thread_of(mine), "답: 내 별명은 감자야")
        hers = slack.say(GENERAL, ANN, f"{AT_BOT} my nickname is tomato")
        await bot.send.events(hers)
        await answered(slack, GENERAL, thread_of(hers), "답: my nickname is tomato")

        await bot.send.command(slack.slash("/reset", "", user=MINSU, channel=GENERAL))
        await slack.wait_for(lambda f: len(f.responses) == 1)
        after_mine = dump(redis_url)
        await bot.send.command(slack.slash("/reset", "all", user=MINSU, channel=GENERAL))
        await slack.wait_for(lambda f: len(f.responses) == 2)
        after_refused = dump(redis_url)
        await bot.send.command(slack.slash("/reset", "all", user=BOSS, channel=GENERAL))
        await slack.wait_for(lambda f: len(f.responses) == 3)
        after_admin = dump(redis_url)

    assert "감자" not in after_mine and "tomato" in after_mine
    assert "tomato" in after_refused
    assert "tomato" not in after_admin
    mine_reply, refused, _ = (r["text"] for r in slack.responses)
    assert "1" in mine_reply
    assert refused in either("reset_denied")
    assert all(r["response_type"] == "ephemeral" for r in slack.responses)
    assert slack.bot_messages(GENERAL, "") == []  # nothing said in the channel itself


async def test_own_reset_in_a_thread_resets_that_thread(
    slack: FakeSlack, glm: FakeGlm, redis_url: str
) -> None:
    glm.default = lambda r: Reply(f"답: {r.last_user_text()}")
    async with running(slack, glm, REDIS_URL=redis_url) as bot:
        first = slack.say(GENERAL, MINSU, f"{AT_BOT} 내 별명은 감자야")
        await bot.send.events(first)
        thread = thread_of(first)
        await answered(slack, GENERAL, thread, "답: 내 별명은 감자야")
        reset = slack.say(GENERAL, MINSU, f"{AT_BOT} /reset", thread_ts=thread)
        await bot.send.events(reset)
        await slack.wait_for(lambda f: len(f.bot_messages(GENERAL, thread)) == 2, within=15)
        later = slack.say(GENERAL, MINSU, f"{AT_BOT} 내 별명이 뭐지?", thread_ts=thread)
        await bot.send.events(later)
        await shows(slack, GENERAL, thread, "답: 내 별명이 뭐지?")

    assert "감자" not in " ".join(str(m["content"]) for m in glm.requests[-1].messages)
    assert slack.bot_texts(GENERAL, thread)[1] not in either("reset_denied")


async def test_forget_drops_the_shared_threads_the_user_wrote_in(
    slack: FakeSlack, glm: FakeGlm, redis_url: str
) -> None:
    glm.default = lambda r: Reply(f"답: {r.last_user_text()}")
    async with running(slack, glm, REDIS_URL=redis_url) as bot:
        opened = slack.say(GENERAL, ANN, f"{AT_BOT} let's plan the trip")
        await bot.send.events(opened)
        thread = thread_of(opened)
        await answered(slack, GENERAL, thread, "답: let's plan the trip")
        joined = slack.say(
            GENERAL, MINSU, f"{AT_BOT} 내 전화번호는 010-5555-1234", thread_ts=thread
        )
        await bot.send.events(joined)
        await shows(slack, GENERAL, thread, "답: 내 전화번호는 010-5555-1234")
        dm = slack.say(DM_MINSU, MINSU, "비밀: 고양이")
        await bot.send.events(dm)
        await answered(slack, DM_MINSU, thread_of(dm), "답: 비밀: 고양이")
        await bot.send.command(slack.slash("/forget", "", user=MINSU, channel=DM_MINSU))
        await slack.wait_for(lambda f: len(f.responses) == 1)

    stored = dump(redis_url)
    for trace in ("010-5555-1234", "고양이", MINSU):
        assert trace not in stored, trace
    assert TEAM  # the workspace's own data (other users' DMs) is not touched by this test
