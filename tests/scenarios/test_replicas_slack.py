"""Two replicas of the real bot behind nginx (deploy/nginx-replicas.conf), Slack HTTP events
(signed Events API requests), sessions and the turn journal on a real 3-master Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from bench.common import free_port
from bot.i18n import t
from tests.fakes.glm import FakeGlm
from tests.fakes.slack import Call, FakeMessage, FakeSlack, SlackSender
from tests.scenarios.process import BotProcess, start_bot
from tests.scenarios.test_replicas import FULL, behaviour, nginx
from tests.scenarios.test_slack import (
    ANN,
    AT_BOT,
    BOSS,
    DM_ANN,
    DM_MINSU,
    GENERAL,
    MINSU,
    STUDY,
    _listening,
    answered,
    glm,
    slack,
    slack_env,
    thread_of,
)

__all__ = ["glm", "slack"]  # the fixtures, shared with the Slack scenario

SHOWS = ("chat.startStream", "chat.postMessage")  # the calls that begin an answer


@dataclass
class Replicas:
    front: SlackSender  # nginx's /slack/events
    own: list[SlackSender]  # each replica's own /slack/events
    procs: list[BotProcess]


@asynccontextmanager
async def replicas(slack: FakeSlack, glm: FakeGlm, cluster_url: str) -> AsyncIterator[Replicas]:
    """nginx and two bot replicas in Slack HTTP mode sharing the Redis Cluster."""
    ports = (free_port(), free_port())
    front = free_port()
    with nginx(front, ports) as base:
        procs = []
        for port in ports:
            env = slack_env(slack, glm, port, REDIS_URL=cluster_url, REDIS_CLUSTER="true")
            procs.append(await start_bot(env=env))
        try:
            for proc, port in zip(procs, ports, strict=True):
                await _listening(port, proc)
            await _listening(front, procs[0])
            async with AsyncExitStack() as stack:
                senders = [
                    await stack.enter_async_context(SlackSender(f"{url}/slack/events"))
                    for url in (base, *(f"http://127.0.0.1:{port}" for port in ports))
                ]
                yield Replicas(senders[0], senders[1:], procs)
        finally:
            for proc in procs:
                if proc.running:
                    assert await proc.stop(within=30) == 0, proc.stderr


def begun(slack: FakeSlack, channel: str, thread: str) -> list[Call]:
    """The answers begun in a thread (accepted chat.startStream / chat.postMessage calls)."""
    return [
        c
        for c in slack.calls
        if c.method in SHOWS
        and c.ok
        and c.channel == channel
        and str(c.params.get("thread_ts")) == thread
    ]


def touching(slack: FakeSlack, message: FakeMessage) -> list[Call]:
    """The accepted Web API calls that created or changed ``message``."""
    return [
        c
        for c in slack.calls
        if c.ok and c.channel == message.channel and c.response.get("ts") == message.ts
    ]


async def test_slack_replicas_answer_once_keep_order_and_finish_a_dead_ones_answer(
    slack: FakeSlack, glm: FakeGlm, redis_cluster_url: str
) -> None:
    glm.default = behaviour
    slack.channel("D0BOSS0001", "im")
    async with replicas(slack, glm, redis_cluster_url) as bot:
        a, b = bot.own

        # Through nginx: each event answered once, in its thread, whichever replica took it.
        hello = {
            GENERAL: slack.say(GENERAL, MINSU, f"{AT_BOT} 안녕 민수"),  # app_mention + message
            DM_MINSU: slack.say(DM_MINSU, MINSU, "안녕 DM"),
            STUDY: slack.say(STUDY, ANN, f"{AT_BOT} 안녕 Ann"),
        }
        for envelopes in hello.values():
            assert [d.status for d in await bot.front.events(envelopes)] == [200] * len(envelopes)
        threads = {channel: thread_of(envelopes) for channel, envelopes in hello.items()}
        await answered(slack, GENERAL, threads[GENERAL], "echo: 안녕 민수")
        await answered(slack, DM_MINSU, threads[DM_MINSU], "echo: 안녕 DM")
        await answered(slack, STUDY, threads[STUDY], "echo: 안녕 Ann")

        # One event delivered to both replicas: Slack retried it at the other one...
        retried = slack.say(DM_ANN, ANN, "재시도된 이벤트")[0]
        assert (await a.event(retried)).status == 200
        assert (await b.event(retried, retry_num=1, retry_reason="http_timeout")).status == 200
        # ... or sent the same event_id to both at once, without a retry header.
        twice = slack.say("D0BOSS0001", BOSS, "같은 이벤트 두 번")[0]
        deliveries = await asyncio.gather(a.event(twice), b.event(twice))
        assert [d.status for d in deliveries] == [200, 200]
        await answered(slack, DM_ANN, thread_of([retried]), "echo: 재시도된 이벤트")
        await answered(slack, "D0BOSS0001", thread_of([twice]), "echo: 같은 이벤트 두 번")

        # A session's order across replicas: a slow reply in the thread reaches replica A,
        # the next one reaches replica B at once; B answers after A's answer is complete.
        thread = threads[GENERAL]
        first = slack.say(GENERAL, ANN, "천천히 첫째", thread_ts=thread)
        second = slack.say(GENERAL, MINSU, "둘째", thread_ts=thread)
        assert (await a.events(first))[0].status == 200
        await slack.wait_for(lambda f: len(begun(f, GENERAL, thread)) >= 2, within=15)
        assert (await b.events(second))[0].status == 200
        await answered(
            slack, GENERAL, thread, "echo: 안녕 민수\n\necho: 천천히 첫째\n\necho: 둘째", within=30
        )
        _, slow, quick = slack.bot_messages(GENERAL, thread)
        assert max(c.at for c in touching(slack, slow)) <= min(c.at for c in touching(slack, quick))

        # A replica dies mid-answer (SIGKILL): the other one gives the whole answer, noted.
        long = slack.say(STUDY, MINSU, f"{AT_BOT} 길게 설명해 줘")
        long_thread = thread_of(long)
        assert [d.status for d in await a.events(long)] == [200, 200]
        await slack.wait_for(lambda f: bool(begun(f, STUDY, long_thread)), within=15)
        await bot.procs[0].kill()

        def whole(f: FakeSlack) -> list[FakeMessage]:
            return [
                m for m in f.bot_messages(STUDY, long_thread) if FULL in m.shown and not m.streaming
            ]

        await slack.wait_for(lambda f: bool(whole(f)), within=40)
        (resumed,) = whole(slack)
        assert t("notice_resumed", "ko").strip("()") in resumed.shown
        # Besides it, at most the dead replica's beginning of the answer (its stream stays).
        cut = [m for m in slack.bot_messages(STUDY, long_thread) if m is not resumed]
        assert len(cut) <= 1 and all(FULL.startswith(m.shown.strip()) for m in cut), cut

        # nginx sends new events to the replica that is left.
        still = {
            DM_ANN: slack.say(DM_ANN, ANN, "아직 있나요"),
            GENERAL: slack.say(GENERAL, BOSS, f"{AT_BOT} 살아 있니"),
        }
        for envelopes in still.values():
            assert [d.status for d in await bot.front.events(envelopes)] == [200] * len(envelopes)
        await answered(slack, DM_ANN, thread_of(still[DM_ANN]), "echo: 아직 있나요")
        await answered(slack, GENERAL, thread_of(still[GENERAL]), "echo: 살아 있니")
        await asyncio.sleep(1.0)  # a late second answer would show by now

    # Once each, in its thread.
    once = {
        (GENERAL, threads[GENERAL]): 3,
        (DM_MINSU, threads[DM_MINSU]): 1,
        (STUDY, threads[STUDY]): 1,
        (DM_ANN, thread_of([retried])): 1,
        ("D0BOSS0001", thread_of([twice])): 1,
        (DM_ANN, thread_of(still[DM_ANN])): 1,
        (GENERAL, thread_of(still[GENERAL])): 1,
    }
    for (channel, thread_ts), count in once.items():
        assert len(slack.bot_messages(channel, thread_ts)) == count, slack.bot_texts(channel)
    asked = glm.last_user_messages()
    for envelopes in (*hello.values(), [retried], [twice], first, second, *still.values()):
        text = str(envelopes[-1]["event"]["text"]).removeprefix(AT_BOT).strip()
        assert asked.count(text) == 1, (text, asked)
    assert slack.rate_limited() == []
