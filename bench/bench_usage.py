"""What token accounting costs a turn, with Redis on loopback (and in memory for comparison).

* The budget check before the model call (one pipelined read of the user's day and month
  counters and, in a group, the group's day): the only part on the answer's path.
* Counting a turn's tokens (one Lua script: user, group and tenant counters, the month's top
  users, tokens by model): after the answer is delivered, in the background.

Setup: 1,000 users of one tenant, half of them in 20 groups, each with some usage already; a
check or a count for a random one of them at a time. Prints median and p99.

Run from the repository root:
    .venv/bin/python -m bench.bench_usage [--turns 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime

from bench.common import banner, redis_server, summary
from bot.sessions.redis import make_client
from bot.usage import (
    Accounting,
    Budgets,
    MemoryUsageLedger,
    RedisUsageLedger,
    Spender,
    Tokens,
    UsageLedger,
)

TENANT = "telegram:7000001"
BUDGETS = Budgets(user_day=100_000, user_month=1_000_000, group_day=10_000_000)


def people(count: int) -> list[Spender]:
    return [
        Spender(TENANT, str(100_000 + i), f"-100{i % 20}" if i % 2 else "") for i in range(count)
    ]


async def measure(name: str, ledger: UsageLedger, turns: int) -> None:
    accounting = Accounting(ledger, BUDGETS)
    now = datetime.now(UTC)
    users = people(1000)
    spent = {"glm-4.5": Tokens(1200, 300, 80, 400), "embedding-3": Tokens(40)}
    for user in users:  # some usage already
        await ledger.add(user, spent, now)
    checks: list[float] = []
    counts: list[float] = []
    rng = random.Random(7)
    for i in range(turns + 200):
        user = rng.choice(users)
        t0 = time.perf_counter()
        verdict = await accounting.check(user)
        t1 = time.perf_counter()
        await ledger.add(user, spent, now)
        t2 = time.perf_counter()
        assert verdict.allowed
        if i >= 200:  # after the warm-up
            checks.append(t1 - t0)
            counts.append(t2 - t1)
    print(f"-- {name}")
    print(f"   budget check before the model call: {summary(checks)} (target <= 1 ms)")
    print(f"   counting a turn (after the answer, in the background): {summary(counts)}")


async def main(turns: int) -> None:
    banner("token accounting: the budget check and the counting of a turn")
    print("   1,000 users of one tenant (half in 20 groups), all three budgets set")
    await measure("in memory", MemoryUsageLedger(), turns)
    with redis_server() as url:
        client = make_client(url, cluster=False)
        try:
            await measure("Redis on loopback", RedisUsageLedger(client), turns)
        finally:
            await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=5000)
    asyncio.run(main(parser.parse_args().turns))
