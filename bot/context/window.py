"""ContextWindow: the system prompt, a summary, and the most recent history within a budget."""

from __future__ import annotations

from bot.context.tokens import MESSAGE_OVERHEAD, TokenEstimator
from bot.sessions.base import Session


class ContextWindow:
    """Builds the message list of a request: newest history first until the budget is spent.

    The user's new message and the system prompt always go in; history is dropped oldest
    first, whole messages only, and never leaves an assistant answer without its question.
    """

    def __init__(self, budget_tokens: int, estimator: TokenEstimator | None = None) -> None:
        self.budget_tokens = budget_tokens
        self.estimator = estimator or TokenEstimator()

    def build(
        self, session: Session, user_text: str, *, system_prompt: str
    ) -> list[dict[str, object]]:
        head: list[dict[str, object]] = [{"role": "system", "content": system_prompt}]
        if session.summary:
            head.append(
                {
                    "role": "system",
                    "content": f"Summary of the earlier conversation:\n{session.summary}",
                }
            )
        tail: dict[str, object] = {"role": "user", "content": user_text}
        left = self.budget_tokens - self.estimator.count_messages([*head, tail])
        picked: list[dict[str, object]] = []
        for message in reversed(session.history):
            if message.role not in ("user", "assistant"):
                continue
            cost = self.estimator.count(message.content) + MESSAGE_OVERHEAD
            if cost > left:
                break
            left -= cost
            picked.append({"role": message.role, "content": message.content})
        picked.reverse()
        while picked and picked[0]["role"] == "assistant":
            picked.pop(0)
        return [*head, *picked, tail]
