"""ContextWindow: what of a session goes into the next model request, within a token budget.

A request holds, in this order:

1. the system prompt (platform, the user's language, any form state);
2. the rolling summary of the conversation so far, when there is one;
3. older exchanges chosen by relevance to the new message, in their original order (also
   ones the summary covers: their own words may hold a detail the summary left out);
4. the most recent exchanges not yet covered by the summary, newest first until the budget
   is spent (the last one always);
5. the new message.

An exchange is a user message with the answer that followed it, never split. How the budget
(``GLM_CONTEXT_TOKENS``) is shared, after the system prompt and the new message:

* the summary may use up to ``SUMMARY_SHARE`` (15%) of what is left; a longer one is clipped;
* the last exchange always goes in; any of its messages longer than ``MESSAGE_SHARE`` (25%)
  of what is left is clipped to that, head and tail kept with a marker between;
* relevant older exchanges may use up to ``RELEVANT_SHARE`` (25%), each message clipped to
  ``RELEVANT_MESSAGE_SHARE`` (10%);
* the recent exchanges use the rest, each message clipped to ``MESSAGE_SHARE``; what the
  relevant ones left unused goes to them too.

A long message is clipped, never a reason to drop everything before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.context.lexical import LexicalScorer
from bot.context.summary import summary_upto
from bot.context.tokens import MESSAGE_OVERHEAD, TokenEstimator
from bot.sessions.base import Message, Session

SUMMARY_SHARE = 0.15
MESSAGE_SHARE = 0.25
RELEVANT_SHARE = 0.25
RELEVANT_MESSAGE_SHARE = 0.10
MIN_RELEVANCE = 0.2  # below this an older exchange is noise, whatever the budget
LEXICAL_MIN = 0.08  # the same for the lexical score (BM25 over the best possible: lower)
RECENCY_WEIGHT = 0.15  # how much a newer exchange is preferred at equal similarity

# query, documents -> one similarity in 0..1 per document
Scorer = Callable[[str, Sequence[str]], list[float]]


def lexical_scores(query: str, documents: Sequence[str]) -> list[float]:
    """The Korean-aware BM25 score of each document for ``query`` (0..1): the fallback when
    no embedding is at hand, and the offline mode's only score."""
    return LexicalScorer(documents).scores(query)


def clip(text: str, max_chars: int) -> str:
    """``text`` within ``max_chars``: its head and tail, with a marker saying what was cut."""
    if len(text) <= max_chars:
        return text
    keep = max(max_chars - 40, 20)
    head = keep * 2 // 3
    tail = keep - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[… {omitted:,} characters omitted …]\n{text[-tail:]}"


@dataclass(slots=True)
class Exchange:
    """A user message and the answer that followed it (either may be missing)."""

    messages: list[Message]
    position: int  # 0 for the oldest exchange

    @property
    def text(self) -> str:
        return "\n".join(m.content for m in self.messages)

    @property
    def question(self) -> str:
        """What the lexical score reads: the user's own words (facts live there), or the
        message itself when the exchange has no question."""
        return self.messages[0].content


def exchanges(history: Sequence[Message]) -> list[Exchange]:
    """The history as exchanges, oldest first; system entries are left out."""
    found: list[Exchange] = []
    current: list[Message] = []
    for message in history:
        role = message.role
        if role == "user":
            if current:
                found.append(Exchange(current, len(found)))
            current = [message]
        elif role == "assistant":
            current.append(message)
    if current:
        found.append(Exchange(current, len(found)))
    return found


class ContextWindow:
    """Builds the message list of a request (see the module docstring for the rule)."""

    def __init__(
        self,
        budget_tokens: int,
        estimator: TokenEstimator | None = None,
        *,
        scorer: Scorer | None = None,
        min_relevance: float = MIN_RELEVANCE,
    ) -> None:
        self.budget_tokens = budget_tokens
        self.estimator = estimator or TokenEstimator()
        self.scorer = scorer
        self.min_relevance = min_relevance  # on the scorer's own scale
        self.last_relevant = 0  # how many older exchanges the last build chose by relevance

    def build(
        self,
        session: Session,
        user_text: str,
        *,
        system_prompt: str,
        scores: Sequence[float] | None = None,
    ) -> list[dict[str, object]]:
        """The request's messages. ``scores``: a similarity per exchange of the history
        (e.g. from embeddings), else the window's own ``scorer`` is used, if any."""
        factor = session_factor(session)
        head: list[dict[str, object]] = [{"role": "system", "content": system_prompt}]
        tail: dict[str, object] = {"role": "user", "content": user_text}
        left = self.budget_tokens - self._cost_messages([*head, tail], factor)
        total = max(left, 0)
        if session.summary and left > 0:
            summary = self._clip(session.summary, int(total * SUMMARY_SHARE), factor)
            text = f"Summary of the earlier conversation:\n{summary}"
            head.append({"role": "system", "content": text})
            left -= self._cost(text, factor)

        units = exchanges(session.history)
        self.last_relevant = 0
        if not units:
            return [*head, tail]
        chosen: dict[int, list[dict[str, object]]] = {}
        cap = int(total * MESSAGE_SHARE)
        # The last exchange always goes in, clipped if it must.
        last = units[-1]
        chosen[last.position], cost = self._render(last, cap, factor)
        left -= cost

        relevant_budget = int(total * RELEVANT_SHARE)
        older = units[:-1]
        for unit in self._relevant(older, user_text, scores):
            rendered, cost = self._render(unit, int(total * RELEVANT_MESSAGE_SHARE), factor)
            if cost > relevant_budget or cost > left:
                continue
            chosen[unit.position] = rendered
            relevant_budget -= cost
            left -= cost
            self.last_relevant += 1

        covered = summary_upto(session) if session.summary else None
        for unit in reversed(older):
            if unit.position in chosen:
                continue
            if covered is not None and unit.messages[-1].ts <= covered:
                break  # the summary stands for it and everything before it
            rendered, cost = self._render(unit, cap, factor)
            if cost > left:
                break
            chosen[unit.position] = rendered
            left -= cost
        picked = [m for position in sorted(chosen) for m in chosen[position]]
        return [*head, *picked, tail]

    # --- relevance ------------------------------------------------------------------------

    def _relevant(
        self, older: Sequence[Exchange], query: str, scores: Sequence[float] | None
    ) -> list[Exchange]:
        """Older exchanges worth recalling, best first (similarity, then recency)."""
        if not older:
            return []
        if scores is None or len(scores) < len(older):
            if self.scorer is None:
                return []
            scores = self.scorer(query, [u.question for u in older])
        ranked = []
        for unit, similarity in zip(older, scores, strict=False):
            if similarity < self.min_relevance:
                continue
            recency = unit.position / max(len(older) - 1, 1)
            ranked.append((similarity * (1 - RECENCY_WEIGHT) + recency * RECENCY_WEIGHT, unit))
        ranked.sort(key=lambda pair: pair[0], reverse=True)
        return [unit for _, unit in ranked]

    # --- costs ----------------------------------------------------------------------------

    def _render(
        self, unit: Exchange, cap: int, factor: float
    ) -> tuple[list[dict[str, object]], int]:
        rendered: list[dict[str, object]] = []
        cost = 0
        for message in unit.messages:
            content = self._clip(message.content, cap, factor)
            rendered.append({"role": message.role, "content": content})
            cost += self._cost(content, factor)
        return rendered, cost

    def _clip(self, text: str, max_tokens: int, factor: float) -> str:
        if self._cost(text, factor) <= max_tokens:
            return text
        # Characters in proportion to tokens, then trimmed until it fits.
        chars = max(int(len(text) * max_tokens / max(self._cost(text, factor), 1)), 1)
        clipped = clip(text, chars)
        while chars > 60 and self._cost(clipped, factor) > max_tokens:
            chars = int(chars * 0.9)
            clipped = clip(text, chars)
        return clipped

    def _cost(self, text: str, factor: float) -> int:
        return self.estimator.count(text, factor) + MESSAGE_OVERHEAD

    def _cost_messages(self, messages: list[dict[str, object]], factor: float) -> int:
        return sum(self._cost(str(m.get("content") or ""), factor) for m in messages)


def session_factor(session: Session) -> float:
    """The session's own token correction factor (see ``TokenEstimator.calibrated``)."""
    value = session.meta.get("token_factor")
    return float(value) if isinstance(value, int | float) and 0.3 <= value <= 3.0 else 1.0
