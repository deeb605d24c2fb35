"""Context window: which part of a session's history goes into the next model request."""

from bot.context.tokens import TokenEstimator
from bot.context.window import ContextWindow

__all__ = ["ContextWindow", "TokenEstimator"]
