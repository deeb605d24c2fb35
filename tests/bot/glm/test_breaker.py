"""Tests of the circuit breaker (with a fake clock) and the asyncio bulkhead."""

from __future__ import annotations

import asyncio

import pytest

from bot.glm.breaker import Bulkhead, CircuitBreaker
from bot.glm.errors import GlmUnavailable
from tests.bot.helpers import FakeClock, state


def make(clock: FakeClock, **kwargs: float) -> CircuitBreaker:
    options: dict[str, float] = {
        "window_seconds": 30.0,
        "min_calls": 10,
        "failure_rate": 0.5,
        "open_seconds": 15.0,
    }
    options.update(kwargs)
    return CircuitBreaker(
        window_seconds=options["window_seconds"],
        min_calls=int(options["min_calls"]),
        failure_rate=options["failure_rate"],
        open_seconds=options["open_seconds"],
        clock=clock,
    )


def trip(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(10):
        assert breaker.allow()
        breaker.record_failure()
    assert state(breaker) == "open"


# --------------------------------------------------------------------------- closed → open


def test_starts_closed_and_allows() -> None:
    breaker = make(FakeClock())
    assert state(breaker) == "closed"
    assert breaker.allow()
    assert breaker.opened_at is None
    assert breaker.retry_after() == 0.0


def test_does_not_open_before_min_calls_even_if_all_fail() -> None:
    breaker = make(FakeClock())
    for _ in range(9):
        breaker.record_failure()
    assert state(breaker) == "closed"
    assert breaker.failures_in_window == 9
    breaker.record_failure()
    assert state(breaker) == "open"


def test_opens_exactly_at_the_failure_rate() -> None:
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(5):
        breaker.record_success()
    for _ in range(4):
        breaker.record_failure()
    assert state(breaker) == "closed"  # 4 of 9: below min_calls anyway
    breaker.record_failure()  # 5 of 10 = 50 %
    assert state(breaker) == "open"
    assert breaker.opened_at == clock.now
    assert not breaker.allow()


def test_stays_closed_below_the_failure_rate() -> None:
    breaker = make(FakeClock())
    for _ in range(100):
        for _ in range(3):
            breaker.record_success()
        breaker.record_failure()  # 25 % failures, far more than min_calls
    assert state(breaker) == "closed"
    assert breaker.calls_in_window == 400
    assert breaker.failures_in_window == 100


def test_old_outcomes_fall_out_of_the_window() -> None:
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(9):
        breaker.record_failure()
    clock.advance(30.0)  # those 9 are now exactly window_seconds old: gone
    assert breaker.calls_in_window == 0
    breaker.record_failure()
    assert state(breaker) == "closed"
    assert breaker.failures_in_window == 1


def test_window_slides_one_outcome_at_a_time() -> None:
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(5):
        breaker.record_failure()
        clock.advance(10.0)
    # 50 s later, the failures of 50, 40 and 30 s ago are out; those of 20 and 10 s ago remain.
    assert breaker.calls_in_window == 2
    assert breaker.failures_in_window == 2
    clock.advance(5.0)
    assert breaker.calls_in_window == 2
    clock.advance(5.0)
    assert breaker.calls_in_window == 1


def test_failures_that_left_the_window_do_not_count() -> None:
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(9):
        breaker.record_failure()
    clock.advance(31.0)
    for _ in range(9):
        breaker.record_success()
    breaker.record_failure()
    # 1 of 10 now; had the old failures stayed, 10 of 19 (53 %) would have opened it.
    assert state(breaker) == "closed"


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
def test_opens_at_exact_decimal_rates(rate: float) -> None:
    failures = round(rate * 10)
    # Exactly `rate` of 10 calls: opens (0.3 * 10 > 3 in floating point must not prevent it).
    exact = make(FakeClock(), failure_rate=rate)
    for _ in range(10 - failures):
        exact.record_success()
    for _ in range(failures):
        exact.record_failure()
    assert exact.state == "open"
    # The same failures among 11 calls: just below the rate, stays closed.
    below = make(FakeClock(), failure_rate=rate)
    for _ in range(11 - failures):
        below.record_success()
    for _ in range(failures):
        below.record_failure()
    assert below.state == "closed"


def test_successes_after_failures_keep_it_closed() -> None:
    breaker = make(FakeClock(), failure_rate=0.6)
    for _ in range(5):
        breaker.record_failure()
    for _ in range(5):
        breaker.record_success()
    assert state(breaker) == "closed"  # 50 % < 60 %


# --------------------------------------------------------------------------- open → half-open


def test_open_refuses_until_open_seconds_then_admits_one_probe() -> None:
    clock = FakeClock()
    breaker = make(clock)
    trip(breaker, clock)
    clock.advance(10.0)
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(5.0)
    clock.advance(5.0)
    assert breaker.retry_after() == 0.0
    assert state(breaker) == "half_open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    assert not breaker.allow()
    assert breaker.retry_after() == 15.0  # worst case: the probe fails


def test_probe_success_closes_with_an_empty_window() -> None:
    clock = FakeClock()
    breaker = make(clock)
    trip(breaker, clock)
    clock.advance(15.0)
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) == "closed"
    assert breaker.opened_at is None
    assert breaker.calls_in_window == 0
    assert all(breaker.allow() for _ in range(20))
    for _ in range(9):
        breaker.record_failure()
    assert state(breaker) == "closed"  # needs min_calls again


def test_probe_failure_reopens_for_another_open_period() -> None:
    clock = FakeClock()
    breaker = make(clock)
    trip(breaker, clock)
    clock.advance(20.0)
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) == "open"
    assert breaker.opened_at == clock.now
    assert breaker.retry_after() == pytest.approx(15.0)
    clock.advance(14.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


def test_record_ignored_frees_the_probe_slot() -> None:
    clock = FakeClock()
    breaker = make(clock)
    trip(breaker, clock)
    clock.advance(15.0)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_ignored()  # e.g. the user cancelled the probe
    assert state(breaker) == "half_open"
    assert breaker.allow()
    assert not breaker.allow()


def test_record_ignored_when_closed_changes_nothing() -> None:
    breaker = make(FakeClock())
    breaker.record_failure()
    breaker.record_ignored()
    assert breaker.calls_in_window == 1
    assert state(breaker) == "closed"


def test_outcomes_while_open_are_ignored() -> None:
    clock = FakeClock()
    breaker = make(clock)
    trip(breaker, clock)
    opened = breaker.opened_at
    breaker.record_success()  # a call started before it opened, ending late
    breaker.record_failure()
    assert state(breaker) == "open"
    assert breaker.opened_at == opened


def test_min_calls_one_and_rate_one() -> None:
    clock = FakeClock()
    breaker = make(clock, min_calls=1, failure_rate=1.0, open_seconds=0.0)
    breaker.record_success()
    breaker.record_failure()
    assert state(breaker) == "closed"  # 1 of 2 < 100 %
    clock.advance(30.0)
    breaker.record_failure()
    assert state(breaker) == "half_open"  # opened, and open_seconds=0 passed at once
    assert breaker.allow()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_seconds": 0.0},
        {"min_calls": 0},
        {"failure_rate": 0.0},
        {"failure_rate": 1.5},
        {"open_seconds": -1.0},
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        make(FakeClock(), **kwargs)


def test_window_memory_stays_bounded_by_time() -> None:
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(10_000):
        breaker.record_success()
        clock.advance(0.01)
    # 30 s of outcomes at 100 per second; the rest was pruned as it aged.
    assert 2_990 <= breaker.calls_in_window <= 3_000


# --------------------------------------------------------------------------- bulkhead


async def test_bulkhead_limits_concurrency() -> None:
    bulkhead = Bulkhead(3)
    gate = asyncio.Event()
    current = 0
    highest = 0

    async def work() -> None:
        nonlocal current, highest
        async with bulkhead.slot(timeout=None):
            current += 1
            highest = max(highest, current)
            await gate.wait()
            current -= 1

    tasks = [asyncio.create_task(work()) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert bulkhead.in_use == 3
    assert current == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert highest == 3
    assert bulkhead.in_use == 0


async def test_bulkhead_times_out_with_glm_unavailable() -> None:
    bulkhead = Bulkhead(1)
    async with bulkhead.slot(timeout=1.0):
        with pytest.raises(GlmUnavailable, match="too many concurrent requests"):
            async with bulkhead.slot(timeout=0.01):
                pytest.fail("the body must not run")
        with pytest.raises(GlmUnavailable):
            async with bulkhead.slot(timeout=0):
                pytest.fail("the body must not run")
        assert bulkhead.in_use == 1
    assert bulkhead.in_use == 0
    async with bulkhead.slot(timeout=0):  # free again
        assert bulkhead.in_use == 1


async def test_bulkhead_waiter_gets_a_slot_when_one_frees() -> None:
    bulkhead = Bulkhead(1)
    release = asyncio.Event()
    entered = asyncio.Event()

    async def holder() -> None:
        async with bulkhead.slot():
            entered.set()
            await release.wait()

    async def waiter() -> str:
        async with bulkhead.slot(timeout=10.0):
            return "got it"

    hold = asyncio.create_task(holder())
    await entered.wait()
    wait = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    assert not wait.done()
    release.set()
    assert await wait == "got it"
    await hold
    assert bulkhead.in_use == 0


async def test_bulkhead_releases_on_error_and_on_cancelled_wait() -> None:
    bulkhead = Bulkhead(1)
    with pytest.raises(RuntimeError):
        async with bulkhead.slot():
            raise RuntimeError("boom")
    assert bulkhead.in_use == 0

    async def wait_forever() -> None:
        async with bulkhead.slot():
            pytest.fail("the body must not run")

    async with bulkhead.slot():
        task = asyncio.create_task(wait_forever())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # The cancelled waiter must not have taken (and leaked) the slot.
    assert bulkhead.in_use == 0
    async with bulkhead.slot(timeout=0):
        assert bulkhead.in_use == 1


def test_bulkhead_rejects_zero_slots() -> None:
    with pytest.raises(ValueError):
        Bulkhead(0)
    assert Bulkhead(7).max_concurrent == 7
