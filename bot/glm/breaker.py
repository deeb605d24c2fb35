"""Circuit breaker and bulkhead for asyncio calls to the GLM API (our own, see below).

:class:`Breaker` and :class:`CallLimit` are what a guarded call needs of them; the classes
here are the in-process implementations, :mod:`bot.glm.shared` has the ones on Redis that
every replica of the bot shares.
"""

# We looked for a maintained library and chose our own: the ones we found (pybreaker,
# aiobreaker, circuitbreaker, purgatory) trip on a count of consecutive failures rather than a
# failure rate over a time window, and mostly wrap one function call, which does not fit a
# streamed answer whose outcome is known only at its end. This module is small, pure and tested.
#
# Both classes are for a single event loop: they are not thread-safe and need no locks, since
# nothing here awaits between reading and changing state.

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Literal, Protocol

from bot.glm.errors import GlmUnavailable

__all__ = ["Breaker", "BreakerState", "Bulkhead", "CallLimit", "CircuitBreaker", "Verdict"]

BreakerState = Literal["closed", "open", "half_open"]

# What a call's end says about the service: see CircuitBreaker for each.
Verdict = Literal["success", "failure", "ignored"]


class Breaker(Protocol):
    """A circuit breaker as a guarded call uses it: ``await admit()`` before the call (False:
    don't call, fail fast), then ``await report(verdict)`` exactly once when its outcome is
    known. The rules are :class:`CircuitBreaker`'s."""

    @property
    def state(self) -> BreakerState:
        """The state as this process last knew it (read by the metrics at every scrape)."""
        ...

    async def admit(self) -> bool: ...

    async def report(self, verdict: Verdict) -> None: ...


class CallLimit(Protocol):
    """A bulkhead: at most ``max_concurrent`` calls hold a slot at once."""

    @property
    def in_use(self) -> int:
        """Slots held by this process."""
        ...

    @property
    def max_concurrent(self) -> int: ...

    def slot(self, timeout: float | None = None) -> AbstractAsyncContextManager[None]:
        """Hold one slot for the ``async with`` body, waiting for it at most ``timeout``
        seconds (None: as long as it takes); :class:`GlmUnavailable` if none freed in time."""
        ...


class CircuitBreaker:
    """Stops calling a failing service for a while, then lets one probe call test it.

    Usage: ask :meth:`allow` before a call (``False``: don't call, fail fast), then report the
    outcome with exactly one of :meth:`record_success`, :meth:`record_failure` or
    :meth:`record_ignored` (for outcomes that say nothing about the service, e.g. a user's
    cancel or a bad request).

    * closed: every call is allowed; the outcomes of the last ``window_seconds`` are kept, and
      the breaker opens when there are at least ``min_calls`` of them and the share of failures
      is at least ``failure_rate``.
    * open: no call is allowed for ``open_seconds``; then the breaker is half-open.
    * half_open: one probe call is allowed at a time. A success closes the breaker with an empty
      window, a failure opens it for another ``open_seconds``, an ignored outcome frees the slot
      for the next probe. A call started before the breaker opened that ends now counts the
      same, as it says as much about the service's health as the probe.

    Outcomes reported while open are ignored. Every operation is O(1) amortised.

    It is the in-process :class:`Breaker` too: :meth:`admit` and :meth:`report` are
    :meth:`allow` and the ``record_*`` methods, for a caller that may be given a shared one.
    """

    __slots__ = (
        "_clock",
        "_failure_rate",
        "_failures",
        "_min_calls",
        "_open_seconds",
        "_opened_at",
        "_probe_in_flight",
        "_state",
        "_window",
        "_window_seconds",
    )

    def __init__(
        self,
        *,
        window_seconds: float = 30.0,
        min_calls: int = 10,
        failure_rate: float = 0.5,
        open_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        if min_calls < 1:
            raise ValueError("min_calls must be >= 1")
        if not 0.0 < failure_rate <= 1.0:
            raise ValueError("failure_rate must be in (0, 1]")
        if open_seconds < 0:
            raise ValueError("open_seconds must be >= 0")
        self._window_seconds = window_seconds
        self._min_calls = min_calls
        self._failure_rate = failure_rate
        self._open_seconds = open_seconds
        self._clock = clock
        self._state: BreakerState = "closed"
        self._window: deque[tuple[float, bool]] = deque()  # (time, ok), oldest on the left
        self._failures = 0  # failures in _window, kept so no outcome is counted twice
        self._opened_at: float | None = None
        self._probe_in_flight = False

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose ``open_seconds`` passed reads half-open."""
        self._refresh(self._clock())
        return self._state

    @property
    def opened_at(self) -> float | None:
        """Clock time the breaker last opened; ``None`` while closed."""
        return self._opened_at

    @property
    def calls_in_window(self) -> int:
        self._prune(self._clock())
        return len(self._window)

    @property
    def failures_in_window(self) -> int:
        self._prune(self._clock())
        return self._failures

    def retry_after(self) -> float:
        """Seconds until a probe would be admitted.

        0 when closed or half-open with a free probe slot; while a probe is in flight, the
        worst case ``open_seconds`` (the probe fails and the breaker opens again).
        """
        now = self._clock()
        self._refresh(now)
        if self._state == "open":
            assert self._opened_at is not None
            return max(0.0, self._opened_at + self._open_seconds - now)
        if self._state == "half_open" and self._probe_in_flight:
            return self._open_seconds
        return 0.0

    # -- calls ------------------------------------------------------------------------------

    def allow(self) -> bool:
        """May a call be made now? In half-open, ``True`` claims the single probe slot."""
        if self._state == "closed":
            return True
        self._refresh(self._clock())
        if self._state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        now = self._clock()
        self._refresh(now)
        if self._state == "closed":
            self._window.append((now, True))
            self._prune(now)
        elif self._state == "half_open":
            self._close()

    def record_failure(self) -> None:
        now = self._clock()
        self._refresh(now)
        if self._state == "closed":
            self._window.append((now, False))
            self._failures += 1
            self._prune(now)
            calls = len(self._window)
            # A division, not failures >= rate * calls: 0.3 * 10 is 3.0000000000000004 in
            # floating point, but 3 / 10 rounds to the same double as the literal 0.3.
            if calls >= self._min_calls and self._failures / calls >= self._failure_rate:
                self._open(now)
        elif self._state == "half_open":
            self._open(now)

    def record_ignored(self) -> None:
        """The call ended in a way that says nothing about the service; frees a probe slot."""
        self._probe_in_flight = False

    def record(self, verdict: Verdict) -> None:
        """``record_success``, ``record_failure`` or ``record_ignored``, by ``verdict``."""
        if verdict == "success":
            self.record_success()
        elif verdict == "failure":
            self.record_failure()
        else:
            self.record_ignored()

    # -- Breaker ----------------------------------------------------------------------------

    async def admit(self) -> bool:
        return self.allow()

    async def report(self, verdict: Verdict) -> None:
        self.record(verdict)

    # -- internals --------------------------------------------------------------------------

    def _refresh(self, now: float) -> None:
        if (
            self._state == "open"
            and self._opened_at is not None
            and now - self._opened_at >= self._open_seconds
        ):
            self._state = "half_open"
            self._probe_in_flight = False

    def _prune(self, now: float) -> None:
        window = self._window
        horizon = now - self._window_seconds
        while window and window[0][0] <= horizon:
            if not window.popleft()[1]:
                self._failures -= 1

    def _open(self, now: float) -> None:
        self._state = "open"
        self._opened_at = now
        self._probe_in_flight = False
        # Outcomes from before the outage must not reopen the breaker right after a probe closes it.
        self._window.clear()
        self._failures = 0

    def _close(self) -> None:
        self._state = "closed"
        self._opened_at = None
        self._probe_in_flight = False
        self._window.clear()
        self._failures = 0


class Bulkhead:
    """Caps the number of concurrent calls so that a slow API cannot pile up unbounded work.

    The in-process :class:`CallLimit`: the cap holds for this process only."""

    __slots__ = ("_in_use", "_max", "_sem")

    def __init__(self, max_concurrent: int = 100) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self._max = max_concurrent
        self._sem = asyncio.Semaphore(max_concurrent)
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def max_concurrent(self) -> int:
        return self._max

    # The timeout bounds only the wait for a slot, not the body, so asyncio.timeout() around the
    # ``async with`` (what ASYNC109 suggests) would not say the same thing.
    @asynccontextmanager
    async def slot(self, timeout: float | None = None) -> AsyncIterator[None]:  # noqa: ASYNC109
        """Hold one slot for the ``async with`` body, waiting for it at most ``timeout`` seconds.

        Raises :class:`~bot.glm.errors.GlmUnavailable` if no slot freed up in time.
        """
        if self._sem.locked():
            try:
                # wait_for (not asyncio.timeout): if the slot is granted just as the timeout
                # fires, wait_for returns it instead of leaking an acquired slot.
                await asyncio.wait_for(self._sem.acquire(), timeout)
            except TimeoutError:
                raise GlmUnavailable("too many concurrent requests") from None
        else:
            await self._sem.acquire()  # free slot: returns without suspending
        self._in_use += 1
        try:
            yield
        finally:
            self._in_use -= 1
            self._sem.release()
