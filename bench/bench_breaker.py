"""What the shared GLM breaker and bulkhead add to a model call, with Redis on loopback.

Before a call: the breaker's admit (one Lua call) and a bulkhead slot (one Lua call); after it:
the breaker's report (one Lua call, at the first token for an answer) and the slot given back
(ZREM). Printed for each step and for the sum before and after a call, median and p99, for
the in-process guards and for the Redis ones: one caller at a time, then 50 callers on each of
two replicas (two clients) whose model calls take a second (100 calls a second in all: an
account limit of 100 concurrent calls at most allows that), and a refusal by an open breaker.

Run from the repository root:
    .venv/bin/python -m bench.bench_breaker [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import banner, redis_server, summary
from bot.glm.breaker import Breaker, Bulkhead, CallLimit, CircuitBreaker
from bot.glm.shared import RedisBreaker, RedisBulkhead
from bot.sessions.redis import make_client

WARM_UP = 100


async def one_call(
    breaker: Breaker,
    bulkhead: CallLimit,
    steps: dict[str, list[float]] | None,
    model_seconds: float = 0.0,
) -> None:
    t0 = time.perf_counter()
    assert await breaker.admit()
    t1 = time.perf_counter()
    slot = bulkhead.slot(timeout=5.0)
    await slot.__aenter__()
    t2 = time.perf_counter()
    await asyncio.sleep(model_seconds)  # the model call
    t3 = time.perf_counter()
    await breaker.report("success")
    t4 = time.perf_counter()
    await slot.__aexit__(None, None, None)
    t5 = time.perf_counter()
    if steps is not None:
        steps["admit"].append(t1 - t0)
        steps["slot"].append(t2 - t1)
        steps["report"].append(t4 - t3)
        steps["give back"].append(t5 - t4)
        steps["before the call"].append(t2 - t0)
        steps["after the call"].append(t5 - t3)


def new_steps() -> dict[str, list[float]]:
    names = ("admit", "slot", "report", "give back", "before the call", "after the call")
    return {name: [] for name in names}


async def sequential(breaker: Breaker, bulkhead: CallLimit, calls: int) -> dict[str, list[float]]:
    steps = new_steps()
    for n in range(calls + WARM_UP):
        await one_call(breaker, bulkhead, steps if n >= WARM_UP else None)
    return steps


async def concurrent(
    guards: list[tuple[Breaker, CallLimit]], callers: int, per_caller: int
) -> dict[str, list[float]]:
    steps = new_steps()

    async def caller(breaker: Breaker, bulkhead: CallLimit, index: int) -> None:
        await asyncio.sleep(index / callers)  # spread the calls over the second
        for n in range(per_caller + 1):
            await one_call(breaker, bulkhead, steps if n >= 1 else None, model_seconds=1.0)

    await asyncio.gather(*(caller(b, h, i) for b, h in guards for i in range(callers)))
    return steps


async def refusals(breaker: Breaker, calls: int) -> list[float]:
    while await breaker.admit():
        await breaker.report("failure")
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        assert not await breaker.admit()
        times.append(time.perf_counter() - t0)
    return times


def show(title: str, steps: dict[str, list[float]]) -> None:
    print(f"   {title}")
    for name, values in steps.items():
        print(f"      {name + ':':17} {summary(values)}")


async def run(calls: int) -> None:
    show(
        "in process, one caller at a time",
        await sequential(CircuitBreaker(min_calls=10**9), Bulkhead(100), calls),
    )
    with redis_server() as url:
        first = make_client(url, cluster=False)
        second = make_client(url, cluster=False)
        try:
            one = (RedisBreaker(first, min_calls=10**9), RedisBulkhead(first, 100))
            two = (RedisBreaker(second, min_calls=10**9), RedisBulkhead(second, 100))
            show("Redis, one caller at a time", await sequential(*one, calls))
            show(
                "Redis, 50 callers on each of two replicas, model calls of 1 s",
                await concurrent([one, two], 50, max(1, calls // 300)),
            )
            open_breaker = RedisBreaker(first, name="bench", min_calls=1, open_seconds=3600)
            refused = await refusals(open_breaker, calls)
            print(f"   Redis, an open breaker refusing: {summary(refused)}")
        finally:
            await first.aclose()
            await second.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    banner("shared GLM breaker and bulkhead: cost per model call")
    asyncio.run(run(args.calls))


if __name__ == "__main__":
    main()
