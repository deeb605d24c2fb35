"""Capacity of one process: 1,000 private chats each send a message within one second.

The whole Telegram channel runs in-process (PTB polling the fake Bot API with its documented
limits, the manager, the GLM client against the fake GLM streaming 3 characters every 10 ms),
all on loopback. Prints: answers delivered, 429s, time from a message to the first text shown
in its chat (median, p95, p99), time to the complete answer, event-loop lag (p99), memory per
conversation in flight and CPU time per turn.

Run from the repository root:
    .venv/bin/python -m bench.bench_capacity [--chats 1000] [--within 1.0] [--length 120]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time

from bench.bench_telegram import answer_body, first_showing, paced, people, rig
from bench.common import banner
from tests.fakes.telegram import Limits


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """How late a 10 ms sleep wakes up: the event loop's responsiveness under load."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        samples.append(time.perf_counter() - before - 0.01)


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def run(chats: int, within: float, length: int) -> None:
    async with rig(Limits()) as r:
        r.glm.default = lambda req: paced(answer_body(req.last_user_text(), length), 300.0)
        users = people(r.tg, chats, 50_000)
        lag: list[float] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(loop_lag(lag, stop))
        rss_before = rss_kib()
        cpu_before = time.process_time()
        asked: dict[int, float] = {}
        started = time.perf_counter()
        for i, user in enumerate(users):
            chat_id = int(str(user["id"]))
            await asyncio.sleep(max(0.0, started + within * i / chats - time.perf_counter()))
            asked[chat_id] = time.perf_counter()
            r.tg.say(r.tg.chats[chat_id], user, f"c{i}")
        peak_rss = rss_kib()
        finals = {
            int(str(u["id"])): answer_body(f"c{i}", length).replace("**", "")
            for i, u in enumerate(users)
        }
        await r.tg.wait_for(
            lambda f: all(text in f.bot_texts(c) for c, text in finals.items()), within=300
        )
        done = time.perf_counter()
        cpu = time.process_time() - cpu_before
        stop.set()
        await sampler
        first = []
        for chat_id, at in asked.items():
            call = first_showing(r.tg, chat_id, at)
            assert call is not None
            first.append(call.time - at)
        complete = []
        for chat_id, at in asked.items():
            final = [
                c.time
                for c in r.tg.calls_to(chat_id=chat_id)
                if c.method == "sendMessage" and c.ok and c.time >= at
            ]
            complete.append(max(final) - at)
        print(
            f"== {chats} private chats, one message each within {within:g} s; answers of "
            f"{length} characters streamed 3 characters every 10 ms"
        )
        answered = sum(1 for c, text in finals.items() if text in r.tg.bot_texts(c))
        print(
            f"   answered: {answered}/{chats}; 429s received: {len(r.tg.rejected(429))}; "
            f"all done in {done - started:.1f} s"
        )
        print(
            f"   message -> first visible text: median {statistics.median(first):.2f} s, "
            f"p95 {pct(first, 0.95):.2f} s, p99 {pct(first, 0.99):.2f} s (target p95 <= 2.0 s)"
        )
        print(
            f"   message -> complete answer:    median {statistics.median(complete):.2f} s, "
            f"p95 {pct(complete, 0.95):.2f} s (finals paced at the bot-wide 30 messages/s)"
        )
        print(
            f"   event-loop lag: p99 {pct(lag, 0.99) * 1e3:.1f} ms, "
            f"max {max(lag) * 1e3:.1f} ms (n={len(lag)})"
        )
        print(
            f"   memory: {(peak_rss - rss_before) / chats:.1f} KiB per conversation in flight "
            f"(RSS {rss_before / 1024:.0f} -> {peak_rss / 1024:.0f} MiB, "
            f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB); "
            f"CPU {cpu / chats * 1e3:.1f} ms per turn (bot and fakes in one process)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--within", type=float, default=1.0)
    parser.add_argument("--length", type=int, default=120)
    args = parser.parse_args()
    banner("capacity: one process, fake Telegram and GLM on loopback")
    asyncio.run(run(args.chats, args.within, args.length))


if __name__ == "__main__":
    main()
