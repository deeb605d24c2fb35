"""The time budget of one turn: the user sees words (or the fallback) by one deadline.

Every model call of a turn (tool-call extraction, phrasing, the answer) runs through
:class:`~bot.glm.guarded.GuardedGlm`, which reads the turn's budget from a context variable
that the manager sets for the turn. So a stage that spends time (a tool call, a fetch) leaves
less of it to the answer instead of pushing the fallback past the promised deadline, and a
call added later by a form handler is bounded without any plumbing.

Times are event-loop times (``loop.time()``), like asyncio's own deadlines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["TurnBudget", "current_budget", "use_budget"]


@dataclass(frozen=True, slots=True)
class TurnBudget:
    """``seconds`` from ``started`` until the user must see the first words of the answer."""

    started: float
    seconds: float

    @property
    def deadline(self) -> float:
        return self.started + self.seconds

    def at(self, share: float) -> float:
        """The loop time when ``share`` (0..1) of the budget has been spent."""
        return self.started + self.seconds * share


_current: ContextVar[TurnBudget | None] = ContextVar("glm_turn_budget", default=None)


def current_budget() -> TurnBudget | None:
    """The budget of the turn being handled in this task, if any."""
    return _current.get()


@contextmanager
def use_budget(budget: TurnBudget) -> Iterator[TurnBudget]:
    """Model calls inside the ``with`` block (in this task) share ``budget``."""
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)
