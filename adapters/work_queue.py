"""SessionWorkQueue: answers run in order per session, a bounded number at once, none hoarded.

Both channels queue their turns here: Slack hands each turn's work to ``submit``, and
Telegram's update processor (``adapters.telegram.SessionOrderedProcessor``) to
``submit_and_wait``. Work is a coroutine, not yet started, under its session's key. Work of
one key runs one at a time in arrival order; at most ``max_running`` run at once over all
keys, and a key's next work waits for a free slot behind the other keys already waiting, so a
flooding session takes its turn with everyone else rather than ahead of them. Waiting work is
only a queue entry: no task exists for it until it runs, so a flood costs neither slots nor
tasks. At most ``max_waiting`` wait per key; past that the queue refuses, and says for the
first refusal of a burst (which lasts until the key's queue is empty) that the sender should
be told.
"""

from __future__ import annotations

import asyncio
import contextvars
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


@dataclass(slots=True, eq=False)
class _Entry:
    """One piece of work in its key's lane."""

    work: Work
    # The submitter's context: the work runs in it, as if the submitter had awaited it, and
    # not in that of whichever work happened to free the slot.
    context: contextvars.Context
    finished: asyncio.Future[None] | None = None  # submit_and_wait's: done once run or dropped
    task: asyncio.Task[None] | None = None  # once it runs


@dataclass(slots=True)
class _Lane:
    waiting: deque[_Entry] = field(default_factory=deque)
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
        return self._admit(key, _Entry(work, contextvars.copy_context()), bounded)

    async def submit_and_wait(
        self, key: Hashable, work: Work, *, bounded: bool = True
    ) -> Admission:
        """``submit``, then wait until ``work`` has run (or ``shutdown`` dropped it).

        The wait stands for the work, as if the caller awaited it itself: cancelled while the
        work waits, the work is dropped (closed, never run) and the rest of its key's work
        keeps its order; cancelled while it runs, the work is cancelled and waited for (it may
        close what the user sees first). A failure of the work is logged here, as for
        ``submit``. A refusal is returned at once, and refused work is the caller's to close.
        """
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = _Entry(work, contextvars.copy_context(), finished)
        admission = self._admit(key, entry, bounded)
        if admission is not Admission.QUEUED:
            return admission
        try:
            await asyncio.shield(finished)  # the caller's cancellation is handled below
        except asyncio.CancelledError:
            if not finished.done():  # else it ran, or was dropped, already
                if entry.task is None:
                    self._drop_waiting(key, entry)
                else:
                    entry.task.cancel()
                    await asyncio.shield(finished)
            raise
        return admission

    def _admit(self, key: Hashable, entry: _Entry, bounded: bool) -> Admission:
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
        lane.waiting.append(entry)
        if not lane.running and len(lane.waiting) == 1:
            self._ready.append(key)
        self._idle.clear()
        self._start_ready()
        return Admission.QUEUED

    def _drop_waiting(self, key: Hashable, entry: _Entry) -> None:
        """Take waiting ``entry`` out of its lane; the work never runs."""
        lane = self._lanes[key]
        lane.waiting.remove(entry)
        _retire(entry)
        if not lane.waiting and not lane.running:
            # It was the lane's only work and waited for a slot: the key leaves the line.
            self._ready.remove(key)
            del self._lanes[key]  # the burst, if any, is over
            if not self._tasks and not self._lanes:
                self._idle.set()

    def _start_ready(self) -> None:
        loop = asyncio.get_running_loop()
        while self._ready and len(self._tasks) < self.max_running:
            key = self._ready.popleft()
            lane = self._lanes[key]
            entry = lane.waiting.popleft()
            lane.running = True
            task = loop.create_task(self._run(key, entry.work), context=entry.context)
            entry.task = task
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, key=key, entry=entry))

    @staticmethod
    async def _run(key: Hashable, work: Work) -> None:
        try:
            await work
        except Exception:
            # The channels' work catches its own failures; this is the last line.
            log.exception("queued work failed key=%s", key)

    def _finished(self, task: asyncio.Task[None], key: Hashable, entry: _Entry) -> None:
        self._tasks.discard(task)
        _retire(entry)  # closed if cancelled before it ran
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

    async def cancel_running(self, wait: float) -> int:
        """Cancel the work running now and wait up to ``wait`` seconds for it to end (it may
        close what the user sees); returns how many were cancelled. Waiting work is left
        alone: unless the queue is shut down, it starts as slots free up."""
        running = set(self._tasks)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=wait)
        return len(running)

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
                _retire(lane.waiting.popleft())
        await self.cancel_running(wait=1.0)
        self._lanes.clear()
        self._idle.set()


def _retire(entry: _Entry) -> None:
    """``entry`` leaves the queue (it ran, or is dropped): its work is closed if it never
    started, and a ``submit_and_wait`` waiting for it returns."""
    if inspect.getcoroutinestate(entry.work) == inspect.CORO_CREATED:
        entry.work.close()
    if entry.finished is not None and not entry.finished.done():
        entry.finished.set_result(None)
