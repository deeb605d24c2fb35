"""Two replicas, one group: 50 answers streaming at once, with Telegram's documented limits.

Two real bot processes in webhook mode behind nginx (deploy/nginx-replicas.conf), sessions,
journal and pacing on a real 3-master Redis Cluster, the fake Bot API enforcing Telegram's
documented limits (one message a second per chat, 20 a minute per group, 30 a second per
bot), the fake GLM streaming each answer over a few seconds. 50 members of one group mention
the bot within one second. Prints: answers delivered, 429s, time from a question to the first
text of its answer and to its complete answer (median, p95, max), and how the sends spread.

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
from tests.fakes.telegram import FakeTelegram
from tests.redis_servers import start_cluster
from tests.scenarios.test_replicas import replicas

GROUP = -100424242
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=50)
    asyncio.run(run(parser.parse_args().answers))


if __name__ == "__main__":
    main()
