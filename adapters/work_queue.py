"""SessionWorkQueue: answers run in order per session, a bounded number at once, none hoarded.

A channel hands each turn's work (a coroutine, not yet started) to ``submit`` under its
session's key. Work of one key runs one at a time in arrival order; at most ``max_running``
run at once over all keys, and a key's next work waits for a free slot behind the other keys
already waiting, so a flooding session takes its turn with everyone else rather than ahead of
them. Waiting work is only a queue entry: no task exists for it until it runs, so a flood costs
neither slots nor tasks. At most ``max_waiting`` wait per key; past that ``submit`` refuses, and
says for the first refusal of a burst (which lasts until the key's queue is empty) that the
sender should be told.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
from collections import deque
from collections.abc import Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_RUNNING = 256  # answers in progress at once (the model's own bulkhead is GLM_MAX_CONCURRENCY)
MAX_WAITING = 8  # turns of one session waiting behind the one being answered

Work = Coroutine[Any, Any, None]


class Admission(enum.Enum):
    QUEUED = "queued"
    REFUSED_NOTIFY = "refused_notify"  # the first refusal of a burst: tell the sender
    REFUSED = "refused"  # the sender was told already (or the queue is shut down)


@dataclass(slots=True)
class _Lane:
    waiting: deque[Work] = field(default_factory=deque)
    running: bool = False
    warned: bool = False  # this burst's refusal was announced


class SessionWorkQueue:
    """Per-key ordered work with a global cap on running work and a per-key bound."""

    def __init__(self, *, max_running: int = MAX_RUNNING, max_waiting: int = MAX_WAITING) -> None:
        if max_running < 1 or max_waiting < 0:
            raise ValueError("max_running must be positive and max_waiting not negative")
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._lanes: dict[Hashable, _Lane] = {}
        self._ready: deque[Hashable] = deque()  # keys whose next work may run, oldest first
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def running(self) -> int:
        return len(self._tasks)

    @property
    def waiting(self) -> int:
        return sum(len(lane.waiting) for lane in self._lanes.values())

    def submit(self, key: Hashable, work: Work, *, bounded: bool = True) -> Admission:
        """Queue ``work`` behind ``key``'s earlier work; refused work is the caller's to close.

        ``bounded=False`` queues it whatever the backlog (slash commands: quick, and each one
        answered).
        """
        if self._closed:
            return Admission.REFUSED
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        elif bounded and len(lane.waiting) + lane.running > self.max_waiting:
            if lane.warned:
                return Admission.REFUSED
            lane.warned = True
            return Admission.REFUSED_NOTIFY
        lane.waiting.append(work)
        if not lane.running and len(lane.waiting) == 1:
            self._ready.append(key)
        self._idle.clear()
        self._start_ready()
        return Admission.QUEUED

    def _start_ready(self) -> None:
        loop = asyncio.get_running_loop()
        while self._ready and len(self._tasks) < self.max_running:
            key = self._ready.popleft()
            lane = self._lanes[key]
            work = lane.waiting.popleft()
            lane.running = True
            task = loop.create_task(self._run(key, work))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, key=key, work=work))

    @staticmethod
    async def _run(key: Hashable, work: Work) -> None:
        try:
            await work
        except Exception:
            # The channels' work catches its own failures; this is the last line.
            log.exception("queued work failed key=%s", key)

    def _finished(self, task: asyncio.Task[None], key: Hashable, work: Work) -> None:
        self._tasks.discard(task)
        _close_unstarted(work)  # cancelled before it ran
        lane = self._lanes.get(key)
        if lane is not None:
            lane.running = False
            if lane.waiting and not self._closed:
                self._ready.append(key)  # behind the keys already waiting: turns are shared
            elif not lane.waiting:
                del self._lanes[key]  # the burst, if any, is over
        if not self._closed:
            self._start_ready()
        if not self._tasks and not self._lanes:
            self._idle.set()

    async def join(self) -> None:
        """Until nothing runs or waits."""
        await self._idle.wait()

    async def shutdown(self, grace: float) -> None:
        """Let work (waiting work too) go on for ``grace`` seconds, then cut off the rest."""
        try:
            await asyncio.wait_for(self.join(), grace)
        except TimeoutError:
            pass
        self._closed = True
        self._ready.clear()
        for lane in self._lanes.values():
            while lane.waiting:
                lane.waiting.popleft().close()
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        self._lanes.clear()
        self._idle.set()


def _close_unstarted(work: Work) -> None:
    if inspect.getcoroutinestate(work) == inspect.CORO_CREATED:
        work.close()
