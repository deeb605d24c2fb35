"""Two replicas, one group and one workspace: 50 answers streaming at once in each, with the
platforms' documented limits.

Two real bot processes behind nginx (deploy/nginx-replicas.conf), sessions, journal and
pacing on a real 3-master Redis Cluster, the fake GLM streaming each answer over ~3 s.
Telegram (webhook mode): the fake Bot API enforces one message a second per chat, 20 a minute
per group, 30 a second per bot; 50 members of one group mention the bot within one second.
Slack (HTTP events): the fake Web API enforces the tiers per method per workspace and
chat.postMessage's one a second per channel; 50 members mention the bot in one channel within
one second. Prints: answers delivered, 429s, time from a question to the first text of its
answer and to its complete answer (median, p95, max).

Run from the repository root (needs redis-server and nginx, as the test suite does):
    .venv/bin/python -m bench.bench_replicas [--answers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import banner
from tests.fakes.glm import FakeGlm, RecordedRequest, Reply
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.redis_servers import start_cluster
from tests.scenarios.test_replicas import replicas
from tests.scenarios.test_replicas_slack import begun as begun_in
from tests.scenarios.test_replicas_slack import replicas as slack_replicas
from tests.scenarios.test_replicas_slack import touching
from tests.scenarios.test_slack import AT_BOT, thread_of

GROUP = -100424242
CHANNEL = "C0ALLHANDS1"
LAST = "8번째 문장입니다."


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def answer_for(request: RecordedRequest) -> Reply:
    tag = request.last_user_text().split()[-1]
    words = [f"{tag}번 답변의 {i}번째 문장입니다. " for i in range(1, 9)]
    return Reply("".join(words).strip(), chunks=words, delay=0.4)


async def run(answers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp))
        try:
            async with FakeTelegram() as tg, FakeGlm() as glm:
                glm.default = answer_for
                members = [tg.user(7000 + n, f"멤버{n}") for n in range(answers)]
                tg.group(GROUP, "전사 공지방", members=members)
                async with replicas(tg, glm, cluster.url) as _:
                    asked: dict[int, float] = {}
                    started = time.perf_counter()
                    for n, member in enumerate(members):
                        await asyncio.sleep(max(0.0, started + n / answers - time.perf_counter()))
                        tg.say(tg.chats[GROUP], member, f"@glm_test_bot 설명해 줘 {n}")
                        asked[n] = tg.clock()

                    def complete(fake: FakeTelegram) -> bool:
                        done = {t.split("번", 1)[0] for t in fake.bot_texts(GROUP) if LAST in t}
                        return all(str(n) in done for n in asked)

                    await tg.wait_for(complete, within=600)
                    report(tg, asked, time.perf_counter() - started)
        finally:
            cluster.stop()


def report(tg: FakeTelegram, asked: dict[int, float], took: float) -> None:
    shown = [
        c
        for c in tg.calls_to(chat_id=GROUP)
        if c.ok and c.method in ("sendMessage", "editMessageText")
    ]
    first: list[float] = []
    whole: list[float] = []
    for n, at in asked.items():
        mine = [c for c in shown if c.text.startswith(f"{n}번 답변") and c.time >= at]
        first.append(min(c.time for c in mine) - at)
        whole.append(min(c.time for c in mine if LAST in c.text) - at)
    limited = tg.rejected(429)
    banner(f"Two replicas behind nginx, one group, {len(asked)} answers at once")
    print("setup: 2 webhook replicas, nginx, 3-master Redis Cluster, Telegram's documented limits")
    print(f"answers complete: {len(whole)}/{len(asked)} in {took:.1f} s")
    print(f"platform 429s: {len(limited)}")
    print(f"sends and edits in the group: {len(shown)} ({len(shown) / took * 60:.1f} a minute)")
    for name, values in (("first text", first), ("complete answer", whole)):
        print(
            f"{name}: median {statistics.median(values):.1f} s, "
            f"p95 {pct(values, 0.95):.1f} s, max {max(values):.1f} s"
        )


async def run_slack(answers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp))
        try:
            async with FakeSlack() as slack, FakeGlm() as glm:
                glm.default = answer_for
                slack.channel(CHANNEL)
                members = [f"U0MEMBER{n:03d}" for n in range(answers)]
                for n, member in enumerate(members):
                    slack.user(member, f"멤버{n}")
                async with slack_replicas(slack, glm, cluster.url) as bot:
                    asked: dict[int, float] = {}
                    threads: dict[int, str] = {}
                    started = time.perf_counter()
                    for n, member in enumerate(members):
                        await asyncio.sleep(max(0.0, started + n / answers - time.perf_counter()))
                        envelopes = slack.say(CHANNEL, member, f"{AT_BOT} 설명해 줘 {n}")
                        threads[n] = thread_of(envelopes)
                        asked[n] = slack.clock()
                        await bot.front.events(envelopes)

                    def complete(fake: FakeSlack) -> bool:
                        return all(
                            any(LAST in m.shown for m in fake.bot_messages(CHANNEL, thread))
                            for thread in threads.values()
                        )

                    await slack.wait_for(complete, within=600)
                    report_slack(slack, asked, threads, time.perf_counter() - started)
        finally:
            cluster.stop()


def report_slack(
    slack: FakeSlack, asked: dict[int, float], threads: dict[int, str], took: float
) -> None:
    first: list[float] = []
    whole: list[float] = []
    for n, at in asked.items():
        begun = [c for c in begun_in(slack, CHANNEL, threads[n])]
        first.append(min(c.at for c in begun) - at)
        done = [
            c.at
            for m in slack.bot_messages(CHANNEL, threads[n])
            if LAST in m.shown
            for c in touching(slack, m)
        ]
        whole.append(max(done) - at)
    modes: dict[str, int] = {}
    for c in slack.calls:
        if c.ok:
            modes[c.method] = modes.get(c.method, 0) + 1
    banner(f"Two replicas behind nginx, one Slack channel, {len(asked)} answers at once")
    print("setup: 2 HTTP-events replicas, nginx, 3-master Redis Cluster, Slack's documented tiers")
    print(f"answers complete: {len(whole)}/{len(asked)} in {took:.1f} s")
    print(f"platform 429s: {len(slack.rate_limited())}; refused calls: {len(slack.refused())}")
    print("Web API calls: " + ", ".join(f"{m} {k}" for m, k in sorted(modes.items())))
    for name, values in (("first text", first), ("complete answer", whole)):
        print(
            f"{name}: median {statistics.median(values):.1f} s, "
            f"p95 {pct(values, 0.95):.1f} s, max {max(values):.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--only", choices=("telegram", "slack"))
    args = parser.parse_args()
    if args.only != "slack":
        asyncio.run(run(args.answers))
    if args.only != "telegram":
        asyncio.run(run_slack(args.answers))


if __name__ == "__main__":
    main()
