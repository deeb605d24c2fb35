"""GuardedGlm: the latency and failure guards around every model call of a turn.

A first-token deadline (then the caller shows a fallback), an inter-token stall timeout (then
the answer ends with what arrived), no whole-stream timeout, a circuit breaker that makes an
outage cost milliseconds instead of the full deadline, and a bulkhead on concurrent calls.
Inside a turn (:mod:`bot.glm.budget`) the deadline is the turn's, counted from its start, so
the calls before the answer (tool-call extraction) spend the same budget as the answer itself.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace

from bot.glm.breaker import Breaker, Bulkhead, CallLimit, CircuitBreaker
from bot.glm.budget import TurnBudget, current_budget
from bot.glm.client import GlmClient
from bot.glm.errors import (
    GlmContextTooLong,
    GlmEmptyAnswer,
    GlmError,
    GlmStreamInterrupted,
    GlmTimeout,
    GlmUnavailable,
)
from bot.glm.sse import ToolCallAccumulator
from bot.glm.types import (
    FINISH_CONTEXT_EXCEEDED,
    FINISH_LENGTH,
    FINISH_SENSITIVE,
    FINISH_TOOL_CALLS,
    ChatRequest,
    Chunk,
    Completion,
    ToolCall,
    Usage,
)
from bot.observability import NO_METRICS, Metrics
from bot.usage import count_usage, model_allowed

log = logging.getLogger(__name__)

BUDGET_SPENT = "not called: the token budget is spent"


class Outcome(enum.StrEnum):
    """How a streamed answer ended, from the user's point of view."""

    COMPLETE = "complete"  # the model finished normally
    TRUNCATED = "truncated"  # the model stopped at max tokens / context window
    STALLED = "stalled"  # tokens stopped coming; what arrived is kept
    INTERRUPTED = "interrupted"  # the stream broke after text was shown; what arrived is kept
    SENSITIVE = "sensitive"  # the provider blocked the answer: retract what was shown
    TIMEOUT = "timeout"  # no first token before the deadline: fallback answer
    UNAVAILABLE = "unavailable"  # breaker open or bulkhead full: fallback answer at once
    FAILED = "failed"  # an error before any text: fallback answer


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    text: str = ""  # every visible character handed to ``on_text``
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    error: GlmError | None = None
    model: str = ""
    first_token_at: float | None = None  # loop time of the first visible text

    @property
    def shown(self) -> bool:
        return bool(self.text)


class GuardedGlm:
    """Streams one answer through the guards; see the module docstring."""

    def __init__(
        self,
        client: GlmClient,
        *,
        model: str,
        first_token_timeout: float = 8.0,
        stall_timeout: float = 30.0,
        fallback_model: str | None = None,
        thinking: bool = False,
        breaker: Breaker | None = None,
        bulkhead: CallLimit | None = None,
        max_answer_tokens: int | None = 4096,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.first_token_timeout = first_token_timeout
        self.stall_timeout = stall_timeout
        self.fallback_model = fallback_model
        self.thinking = thinking
        # In this process by default; app.py gives the ones shared through Redis when it has them.
        self.breaker: Breaker = breaker if breaker is not None else CircuitBreaker()
        self.bulkhead: CallLimit = bulkhead if bulkhead is not None else Bulkhead(100)
        self.max_answer_tokens = max_answer_tokens  # GLM_MAX_ANSWER_TOKENS (max_tokens)
        self.metrics = metrics if metrics is not None else NO_METRICS

    def request(self, messages: list[dict[str, object]], *, user_id: str = "") -> ChatRequest:
        """An answer request (the reply to the user, or a form's phrasing), bounded in length."""
        return ChatRequest(
            messages=messages,
            model=self.model,
            user_id=user_id,
            thinking=self.thinking,
            max_tokens=self.max_answer_tokens,
        )

    def budget(self, started: float | None = None) -> TurnBudget:
        """The budget of a turn that started at loop time ``started`` (now by default)."""
        if started is None:
            started = asyncio.get_running_loop().time()
        return TurnBudget(started, self.first_token_timeout)

    def deadline(self) -> float:
        """When the first words are due: the turn's deadline, else the timeout from now."""
        budget = current_budget()
        if budget is not None:
            return budget.deadline
        return asyncio.get_running_loop().time() + self.first_token_timeout

    async def stream_answer(self, request: ChatRequest, on_text: Callable[[str], None]) -> Answer:
        """Stream ``request``; every visible chunk goes to ``on_text`` as soon as it arrives."""
        loop = asyncio.get_running_loop()
        deadline = self.deadline()
        if loop.time() >= deadline:
            # The turn's earlier stages spent its budget: no call, and no fault of the service.
            log.warning("glm not called: the turn's first-token deadline has passed")
            return Answer(Outcome.TIMEOUT, model=request.model)
        if not model_allowed():
            return Answer(Outcome.UNAVAILABLE, error=GlmUnavailable(BUDGET_SPENT))
        if not await self.breaker.admit():
            return Answer(Outcome.UNAVAILABLE, error=GlmUnavailable("circuit breaker is open"))
        answer = await self._timed_attempt(request, on_text, deadline)
        if (
            answer.outcome is Outcome.FAILED
            and self.fallback_model
            and self.fallback_model != request.model
            and loop.time() < deadline
        ):
            log.warning("glm primary failed (%s); trying %s", answer.error, self.fallback_model)
            answer = await self._timed_attempt(
                replace(request, model=self.fallback_model), on_text, deadline
            )
        return answer

    async def _timed_attempt(
        self, request: ChatRequest, on_text: Callable[[str], None], deadline: float
    ) -> Answer:
        started = asyncio.get_running_loop().time()
        answer = await self._attempt(request, on_text, deadline)
        first = answer.first_token_at
        self._record(
            request,
            started,
            answer.usage,
            first_chunk=None if first is None else first - started,
            error=error_code(answer.outcome, answer.error),
        )
        return answer

    def _record(
        self,
        request: ChatRequest,
        started: float,
        usage: Usage | None,
        *,
        first_chunk: float | None = None,
        error: str | None = None,
    ) -> None:
        count_usage(request.model, usage)  # against the turn's user and tenant (bot/usage.py)
        self.metrics.model_call(
            request.model,
            asyncio.get_running_loop().time() - started,
            first_chunk_seconds=first_chunk,
            input_tokens=usage.prompt_tokens if usage is not None else None,
            output_tokens=usage.completion_tokens if usage is not None else None,
            error=error,
        )

    async def complete(self, request: ChatRequest, *, deadline: float | None = None) -> Completion:
        """One non-streamed answer through the same breaker and bulkhead, by ``deadline``.

        ``deadline`` is a loop time (the turn's deadline by default). Raises
        :class:`GlmUnavailable` when the breaker is open or no bulkhead slot frees in time
        (nothing was sent), :class:`GlmTimeout` when no answer came by the deadline, or the
        client's :class:`GlmError`.
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = self.deadline()
        if loop.time() >= deadline:
            raise GlmTimeout("not called: no time left before the deadline")
        if not model_allowed():
            raise GlmUnavailable(BUDGET_SPENT)
        if not await self.breaker.admit():
            raise GlmUnavailable("circuit breaker is open")
        recorded = False
        started = loop.time()
        try:
            # The slot first, its wait bounded by the deadline (see _attempt).
            async with (
                self.bulkhead.slot(timeout=max(0.0, deadline - loop.time())),
                asyncio.timeout_at(deadline),
            ):
                completion = await self.client.complete(request)
            recorded = True  # before the await: a verdict is reported once, even if cancelled
            await self.breaker.report("success")
            self._record(request, started, completion.usage)
            return completion
        except TimeoutError:
            recorded = True
            await self.breaker.report("failure")
            self._record(request, started, None, error="timeout")
            raise GlmTimeout("no answer before the deadline") from None
        except GlmError as err:
            self._record(request, started, None, error=error_code(Outcome.FAILED, err))
            recorded = True
            await self.breaker.report("failure" if err.counts_as_failure else "ignored")
            raise
        finally:
            if not recorded:  # cancelled by the caller: says nothing about the service
                await self.breaker.report("ignored")

    async def _attempt(
        self, request: ChatRequest, on_text: Callable[[str], None], deadline: float
    ) -> Answer:
        # The stream is read in the caller's task, so a parsed token reaches ``on_text`` with no
        # hop through a queue or another task. One asyncio timeout guards it: first at the
        # deadline, then re-armed to ``stall_timeout`` past every chunk once text is flowing.
        loop = asyncio.get_running_loop()
        stall = self.stall_timeout
        parts: list[str] = []
        calls = ToolCallAccumulator()
        finish: str | None = None
        usage: Usage | None = None
        first_at: float | None = None
        recorded = False
        try:
            # The slot first, with its own wait bounded by the deadline: a slot granted just
            # as an enclosing timeout fired would swallow that timeout's cancellation.
            async with (
                self.bulkhead.slot(timeout=max(0.0, deadline - loop.time())),
                asyncio.timeout_at(deadline) as guard,
                aclosing(self._chunks(request)) as chunks,
            ):
                async for item in chunks:
                    if first_at is not None:
                        guard.reschedule(loop.time() + stall)
                    if item.content:
                        if first_at is None:
                            first_at = loop.time()
                            guard.reschedule(first_at + stall)
                            recorded = True
                            await self.breaker.report("success")
                        parts.append(item.content)
                        on_text(item.content)
                    if item.tool_calls:
                        calls.add(item.tool_calls)
                    if item.usage is not None:
                        usage = item.usage
                    if item.finish_reason is not None:
                        finish = item.finish_reason
        except TimeoutError:
            text = "".join(parts)
            if first_at is None:
                recorded = True
                await self.breaker.report("failure")
                log.warning("glm no first token by the deadline (%.1fs)", self.first_token_timeout)
                return Answer(Outcome.TIMEOUT, model=request.model)
            log.warning("glm stream stalled for %.1fs after %d chars", stall, len(text))
            return Answer(
                Outcome.STALLED, text, usage=usage, model=request.model, first_token_at=first_at
            )
        except GlmError as err:
            text = "".join(parts)
            if not text and not calls:
                if not recorded:
                    recorded = True
                    await self.breaker.report("failure" if err.counts_as_failure else "ignored")
                log.warning("glm failed before the first token: %s", err)
                return Answer(Outcome.FAILED, error=err, model=request.model)
            log.warning("glm stream interrupted after %d chars: %s", len(text), err)
            if not isinstance(err, GlmStreamInterrupted):
                err = GlmStreamInterrupted(str(err), code=err.code, status=err.status)
            return Answer(
                Outcome.INTERRUPTED,
                text,
                error=err,
                usage=usage,
                model=request.model,
                first_token_at=first_at,
            )
        finally:
            if not recorded:
                # Finished without visible text (e.g. only tool calls) or cancelled by the user.
                await self.breaker.report("success" if calls or finish is not None else "ignored")

        text = "".join(parts)
        outcome = Outcome.COMPLETE
        if finish == FINISH_SENSITIVE:
            outcome = Outcome.SENSITIVE
        elif not text.strip() and not calls:
            # Only reasoning, empty or blank deltas (or the reasoning used up max_tokens):
            # nothing the user could read.
            log.warning("glm answer without visible text (finish_reason=%s)", finish)
            error: GlmError = (
                GlmContextTooLong("context window full before any visible text")
                if finish == FINISH_CONTEXT_EXCEEDED
                else GlmEmptyAnswer(f"no visible text (finish_reason={finish})")
            )
            return Answer(Outcome.FAILED, error=error, model=request.model)
        elif finish in (FINISH_LENGTH, FINISH_CONTEXT_EXCEEDED):
            outcome = Outcome.TRUNCATED
        elif finish == FINISH_TOOL_CALLS and not calls:
            log.warning("glm said tool_calls but sent none")
        return Answer(
            outcome,
            text,
            finish_reason=finish,
            usage=usage,
            tool_calls=calls.result(),
            model=request.model,
            first_token_at=first_at,
        )

    async def _chunks(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """The client's stream, with an unexpected exception turned into a :class:`GlmError`.

        A bug in parsing must end the turn with a fallback, not hang it or crash the caller;
        an exception raised by ``on_text`` is the caller's own and is not caught here.
        """
        try:
            # aclosing: a caller that stops early (on_text raised) closes the response here
            # and now, inside the bulkhead slot, not later from the garbage collector.
            async with aclosing(self.client.stream(request)) as stream:
                async for chunk in stream:
                    yield chunk
        except GlmError:
            raise
        except Exception as err:
            log.exception("glm stream failed unexpectedly")
            raise GlmError(f"unexpected: {type(err).__name__}") from err


def error_code(outcome: Outcome, error: GlmError | None) -> str | None:
    """What ``bot_model_errors_total`` counts a failed call as: the provider's error code
    (``1302``), else the HTTP status (``http_503``), else the kind of failure (``timeout``,
    ``stalled``, ``connection_error``, ``empty_answer``...); None for a call that succeeded."""
    if outcome is Outcome.TIMEOUT:
        return "timeout"
    if outcome is Outcome.STALLED:
        return "stalled"
    if error is None:
        return None
    if error.code:
        return error.code
    if error.status:
        return f"http_{error.status}"
    name = type(error).__name__.removeprefix("Glm") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
