"""What the turn journal adds to a turn with Redis on loopback.

Per turn a channel records the delivery before acknowledging it (one Lua call), checks for an
earlier turn of the session held elsewhere (XPENDING) before answering, and marks it done
(XACK + XDEL) after. Printed: each step and the sum, median and p99, with 50 other turns in
flight in the same streams (their entries pending, as under load).

Run from the repository root:
    .venv/bin/python -m bench.bench_journal [--turns 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import banner, redis_server, summary
from bot.journal import RedisTurnJournal
from bot.sessions.redis import RedisSessionStore
from bot.turn import SessionKey


async def run(turns: int) -> None:
    with redis_server() as url:
        store = RedisSessionStore.from_url(url, ttl_seconds=86_400)
        await store.ping()
        journal = RedisTurnJournal(store, consumer="bench")
        payload = {"update_id": 0, "message": {"text": "서울 날씨 알려줘", "chat": {"id": 1}}}
        for n in range(50):  # other conversations' turns in flight
            session = str(SessionKey("telegram", "", str(n), "", str(n)))
            await journal.record("telegram", f"telegram::busy{n}", session, payload)
        record, order, done, total = [], [], [], []
        for n in range(turns):
            session = str(SessionKey("telegram", "", str(1000 + n % 200), "", str(1000 + n)))
            t0 = time.perf_counter()
            entry = await journal.record("telegram", f"telegram::{n}", session, payload)
            t1 = time.perf_counter()
            assert entry is not None
            await journal.earlier(entry)
            t2 = time.perf_counter()
            await journal.done(entry)
            t3 = time.perf_counter()
            if n >= 100:  # warm-up
                record.append(t1 - t0)
                order.append(t2 - t1)
                done.append(t3 - t2)
                total.append(t3 - t0)
        print(f"== journal cost per turn, Redis on loopback, {turns} turns, 50 others in flight")
        print(f"   record (before the platform's ack): {summary(record)}")
        print(f"   order check (before answering):     {summary(order)}")
        print(f"   done (after the answer):            {summary(done)}")
        print(f"   all three:                          {summary(total)}")
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=2000)
    args = parser.parse_args()
    banner("turn journal (Redis Streams)")
    asyncio.run(run(args.turns))


if __name__ == "__main__":
    main()
