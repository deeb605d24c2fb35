"""Button presses reaching the real ``python -m bot run`` process (FakeSlack, FakeGlm).

The offer is put in the thread by hand, the way the reply stream posts one (an answer's text
as sections, the buttons under it), for an offer the core never made (so the core calls the
press stale); everything after the press is the process's own doing.
"""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_blocks import buttons_blocks, text_sections
from bot.i18n import t
from bot.reply import Button
from bot.suggest.service import say as suggestion_text
from tests.fakes.glm import FakeGlm, Reply
from tests.fakes.slack import TEAM, TOKEN, FakeSlack
from tests.scenarios.test_slack import (
    ANN,
    AT_BOT,
    MINSU,
    STUDY,
    answered,
    glm,
    running,
    slack,
    thread_of,
)

__all__ = ["glm", "slack"]  # the fixtures, shared with the Slack scenarios


async def test_the_owners_press_is_answered_in_the_thread_and_anyone_elses_is_not(
    slack: FakeSlack, glm: FakeGlm
) -> None:
    glm.enqueue(Reply("파이썬을 추천해요"))
    async with running(slack, glm, SUGGESTIONS_ENABLED="true") as bot:
        envelopes = slack.say(STUDY, MINSU, f"{AT_BOT} 뭘 배우면 좋을까?")
        await bot.send.events(envelopes)
        thread = thread_of(envelopes)
        await answered(slack, STUDY, thread, "파이썬을 추천해요")

        offer = "이렇게 해 볼까요?"
        button = Button("파이썬 배우기", "/suggestions accept python", owner=MINSU)
        await asyncio.sleep(1.1)  # the channel's one post a second
        async with aiohttp.ClientSession() as session:
            client = AsyncWebClient(token=TOKEN, base_url=slack.base_url, session=session)
            posted = await client.chat_postMessage(
                channel=STUDY,
                thread_ts=thread,
                text=offer,
                blocks=text_sections(offer) + buttons_blocks([button], TEAM),
            )
        (message,) = [m for m in slack.bot_messages(STUDY, thread) if m.ts == posted["ts"]]
        await asyncio.sleep(1.1)  # our post is not in the bot's budget: leave the second to it

        # Someone else: told privately, nothing else happens.
        refused = await bot.send.action(slack.block_actions(STUDY, message.ts, ANN))
        assert refused.status == 200 and refused.elapsed < 3
        await slack.wait_for(lambda f: bool(f.ephemerals))
        assert [(e.user, e.text) for e in slack.ephemerals] == [(ANN, t("button_not_yours", "ko"))]

        # The owner: the buttons go, and the payload is the owner's turn in that thread.
        pressed = await bot.send.action(slack.block_actions(STUDY, message.ts, MINSU))
        assert pressed.status == 200 and pressed.elapsed < 3
        # No offer about python was made to this user: the core says the button is stale.
        notice = suggestion_text("stale", "ko")
        await answered(slack, STUDY, thread, f"파이썬을 추천해요\n\n{offer}\n\n{notice}")
        assert message.buttons == [] and message.shown == offer

    assert len(glm.requests) == 1  # the command never reached the model
    assert len(slack.ephemerals) == 1
    assert slack.rate_limited() == [] and slack.refused() == []
