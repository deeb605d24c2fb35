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
from bot.glm.errors import GlmError
from bot.glm.types import ChatRequest, Completion

log = logging.getLogger(__name__)

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CompletionClient(Protocol):
    """What the extractor needs from ``bot.glm.client.GlmClient``."""

    async def complete(self, request: ChatRequest) -> Completion: ...


class Breaker(Protocol):
    """What the extractor needs from ``bot.glm.breaker.CircuitBreaker``."""

    def allow(self) -> bool: ...
    def record_success(self) -> None: ...
    def record_failure(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ToolFill:
    """The model called ``form`` with these (raw, unvalidated) string arguments."""

    form: Form
    arguments: dict[str, str]


class ToolExtractor:
    """Asks GLM (non-streamed, ``tool_choice: auto``) whether a message fills a form.

    A failure of any kind (timeout, API error, malformed arguments) means "nothing found": the
    turn goes on as if the model had not called a tool, and the log says why. With the answer
    path's circuit breaker passed in, an outage costs no extraction attempt at all.
    """

    def __init__(
        self,
        client: CompletionClient,
        *,
        model: str,
        timeout: float = 4.0,
        max_tokens: int = 256,
        breaker: Breaker | None = None,
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.calls = 0  # requests made (for tests and benchmarks)

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
        if self.breaker is not None and not self.breaker.allow():
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
            async with asyncio.timeout(self.timeout):
                completion = await self.client.complete(request)
        except TimeoutError:
            log.warning("tool extraction timed out session=%s", session_key)
            if self.breaker is not None:
                self.breaker.record_failure()
            return None
        except GlmError as err:
            log.warning("tool extraction failed session=%s code=%s", session_key, err.code or "-")
            if self.breaker is not None and err.counts_as_failure:
                self.breaker.record_failure()
            return None
        if self.breaker is not None:
            self.breaker.record_success()
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
