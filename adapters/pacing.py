"""What both channels' pacers share: a platform limit as a window, and the margin that keeps
a window that is exactly full on our clock from being one over on the platform's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` calls in any ``span`` seconds."""

    span: float
    limit: int

    @property
    def counted(self) -> float:
        """How far back calls count against this window on our clock: the platform stamps a
        call when it arrives, a little later than we do (see ``margin``)."""
        return self.span + margin(self.span)


def margin(span: float) -> float:
    """Extra seconds a window is held for: 50 ms plus 1% of its span."""
    return 0.05 + span * 0.01
