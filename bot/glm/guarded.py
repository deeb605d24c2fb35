"""GuardedGlm: the latency and failure guards around a streamed answer.

A first-token deadline (then the caller shows a fallback), an inter-token stall timeout (then
the answer ends with what arrived), no whole-stream timeout, a circuit breaker that makes an
outage cost milliseconds instead of the full deadline, and a bulkhead on concurrent calls.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace

from bot.glm.breaker import Bulkhead, CircuitBreaker
from bot.glm.client import GlmClient
from bot.glm.errors import GlmError, GlmStreamInterrupted, GlmUnavailable
from bot.glm.sse import ToolCallAccumulator
from bot.glm.types import (
    FINISH_CONTEXT_EXCEEDED,
    FINISH_LENGTH,
    FINISH_SENSITIVE,
    FINISH_TOOL_CALLS,
    ChatRequest,
    Chunk,
    ToolCall,
    Usage,
)

log = logging.getLogger(__name__)


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
        breaker: CircuitBreaker | None = None,
        bulkhead: Bulkhead | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.first_token_timeout = first_token_timeout
        self.stall_timeout = stall_timeout
        self.fallback_model = fallback_model
        self.thinking = thinking
        self.breaker = breaker or CircuitBreaker()
        self.bulkhead = bulkhead or Bulkhead(100)

    def request(self, messages: list[dict[str, object]], *, user_id: str = "") -> ChatRequest:
        return ChatRequest(
            messages=messages, model=self.model, user_id=user_id, thinking=self.thinking
        )

    async def stream_answer(self, request: ChatRequest, on_text: Callable[[str], None]) -> Answer:
        """Stream ``request``; every visible chunk goes to ``on_text`` as soon as it arrives."""
        if not self.breaker.allow():
            return Answer(Outcome.UNAVAILABLE, error=GlmUnavailable("circuit breaker is open"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.first_token_timeout
        answer = await self._attempt(request, on_text, deadline)
        if (
            answer.outcome is Outcome.FAILED
            and self.fallback_model
            and self.fallback_model != request.model
            and loop.time() < deadline
        ):
            log.warning("glm primary failed (%s); trying %s", answer.error, self.fallback_model)
            answer = await self._attempt(
                replace(request, model=self.fallback_model), on_text, deadline
            )
        return answer

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
                            self.breaker.record_success()
                            recorded = True
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
                self.breaker.record_failure()
                recorded = True
                log.warning("glm no first token within %.1fs", self.first_token_timeout)
                return Answer(Outcome.TIMEOUT, model=request.model)
            log.warning("glm stream stalled for %.1fs after %d chars", stall, len(text))
            return Answer(
                Outcome.STALLED, text, usage=usage, model=request.model, first_token_at=first_at
            )
        except GlmError as err:
            text = "".join(parts)
            if not text and not calls:
                if not recorded:
                    if err.counts_as_failure:
                        self.breaker.record_failure()
                    else:
                        self.breaker.record_ignored()
                    recorded = True
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
                if calls or finish is not None:
                    self.breaker.record_success()
                else:
                    self.breaker.record_ignored()

        text = "".join(parts)
        outcome = Outcome.COMPLETE
        if finish == FINISH_SENSITIVE:
            outcome = Outcome.SENSITIVE
        elif finish in (FINISH_LENGTH, FINISH_CONTEXT_EXCEEDED):
            outcome = Outcome.TRUNCATED
        elif finish is None and not text and not calls:
            return Answer(Outcome.FAILED, error=GlmError("empty answer"), model=request.model)
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
