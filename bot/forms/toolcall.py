"""The model as the second extractor: forms offered to GLM as tools when rules find nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.forms.extractors import Utterance
from bot.forms.spec import Form
from bot.glm.budget import current_budget
from bot.glm.errors import GlmError
from bot.glm.types import ChatRequest, Completion

log = logging.getLogger(__name__)

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CompletionClient(Protocol):
    """What the extractor needs from ``bot.glm.guarded.GuardedGlm``: a non-streamed call
    through the answer path's breaker and bulkhead, given up at ``deadline`` (loop time)."""

    async def complete(
        self, request: ChatRequest, *, deadline: float | None = None
    ) -> Completion: ...


@dataclass(frozen=True, slots=True)
class ToolFill:
    """The model called ``form`` with these (raw, unvalidated) string arguments."""

    form: Form
    arguments: dict[str, str]


class ToolExtractor:
    """Asks GLM (non-streamed, ``tool_choice: auto``) whether a message fills a form.

    A failure of any kind (timeout, API error, malformed arguments) means "nothing found": the
    turn goes on as if the model had not called a tool, and the log says why. The call goes
    through the answer path's guards (``client`` is the ``GuardedGlm``), so an open breaker
    costs no extraction attempt at all and a full bulkhead no unbounded wait.

    Within a turn (:mod:`bot.glm.budget`) the extraction spends at most ``budget_share`` of the
    turn's first-token budget, counted from the turn's start, so the answer keeps the rest;
    when less than ``min_budget_share`` of it would be left to the extraction, the model is not
    asked at all. ``timeout`` caps it in any case (and alone outside a turn).
    """

    def __init__(
        self,
        client: CompletionClient,
        *,
        model: str,
        timeout: float = 4.0,
        max_tokens: int = 256,
        budget_share: float = 0.5,
        min_budget_share: float = 0.1,
    ) -> None:
        if not 0.0 < min_budget_share <= budget_share < 1.0:
            raise ValueError("need 0 < min_budget_share <= budget_share < 1")
        self.client = client
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.budget_share = budget_share
        self.min_budget_share = min_budget_share
        self.calls = 0  # requests attempted (for tests and benchmarks)

    async def extract(
        self,
        forms: Sequence[Form],
        utt: Utterance,
        *,
        pending: str | None = None,
        session_key: str = "",
    ) -> ToolFill | None:
        """The form (among ``forms``) the model says the message fills, with its arguments."""
        if not forms:
            return None
        give_up_at = self._give_up_at()
        if give_up_at is None:
            log.info("tool extraction skipped: too little of the turn left session=%s", session_key)
            return None
        request = ChatRequest(
            messages=[
                {"role": "system", "content": self._instructions(utt, pending)},
                {"role": "user", "content": utt.text},
            ],
            model=self.model,
            user_id=session_key,
            tools=[form.tool() for form in forms],
            tool_choice="auto",  # the only choice Z.AI's GLM accepts
            temperature=0.1,
            max_tokens=self.max_tokens,
        )
        self.calls += 1
        try:
            completion = await self.client.complete(request, deadline=give_up_at)
        except GlmError as err:
            log.warning(
                "tool extraction failed session=%s error=%s code=%s",
                session_key,
                type(err).__name__,
                err.code or "-",
            )
            return None
        by_name = {form.name: form for form in forms}
        for call in completion.tool_calls:
            form = by_name.get(call.name)
            if form is None:
                continue
            arguments = _arguments(call.arguments, form)
            if arguments is not None:
                return ToolFill(form, arguments)
            log.warning("tool call with unusable arguments session=%s", session_key)
        return None

    def _give_up_at(self) -> float | None:
        """The loop time the extraction gives up at; ``None``: too little time to try."""
        now = asyncio.get_running_loop().time()
        at = now + self.timeout
        budget = current_budget()
        if budget is None:
            return at
        at = min(at, budget.at(self.budget_share))
        if at - now < budget.seconds * self.min_budget_share:
            return None
        return at

    def _instructions(self, utt: Utterance, pending: str | None) -> str:
        today = utt.today
        lines = [
            "You route a chatbot user's message to a form by calling a function, or do nothing.",
            f"Today is {today.isoformat()} ({_WEEKDAYS[today.weekday()]}).",
            "Call a function only if the message asks for it or answers its question; pass "
            "only values the user actually gave, in the user's words, dates as YYYY-MM-DD. "
            "Never guess a value. If the message is about something else, do not call anything "
            "and answer with the single word NONE.",
        ]
        if pending:
            lines.append(f'The bot has just asked the user: "{pending}"')
        return "\n".join(lines)


def _arguments(raw: str, form: Form) -> dict[str, str] | None:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    arguments: dict[str, str] = {}
    for name, value in data.items():
        if not form.has_slot(name) or value is None:
            continue
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value).strip()
            if text:
                arguments[name] = text
    return arguments
