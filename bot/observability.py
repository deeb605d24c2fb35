"""Operations: Prometheus metrics, the ``/livez`` ``/readyz`` ``/metrics`` server, JSON logs."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger(__name__)

# Bucket boundaries the OpenTelemetry GenAI semantic conventions recommend: seconds for
# gen_ai.client.operation.duration and .time_to_first_chunk, tokens for gen_ai.client.token.usage.
GENAI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GENAI_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
# What a user waits for: dense below 2 s, and a boundary at the 8 s fallback deadline.
VISIBLE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 30.0, 60.0)

GENAI_PROVIDER = "z_ai"  # gen_ai.provider.name: not a well-known value, so spelt like "x_ai"
OTHER = "other"  # a label value that does not look like one of ours

# Label values are short words of our own; anything else is folded into OTHER, so that a bug
# can neither put an id into a label nor explode the number of series. Platforms, results and
# stages are lower-case words (a Telegram user id is a number, a Slack one upper-case); model
# names and error codes (``glm-4.5``, ``1302``) are a little freer.
_WORD = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")


def _word(value: object) -> str:
    text = str(value)
    return text if _WORD.fullmatch(text) else OTHER


def _code(value: object) -> str:
    text = str(value)
    return text if _CODE.fullmatch(text) else OTHER


class Metrics:
    """Every metric of one bot process, in its own registry (not the global one, so tests
    and several apps in one process do not clash).

    Label values are bounded words of the bot's own: platform names, ``TurnResult`` values,
    filter stages, model names and error codes; never a user, chat or session id. A metrics
    object that nobody serves costs a few microseconds a call: components built without one
    use :data:`NO_METRICS`, which records nothing.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.turns = Counter(
            "bot_turns_total",
            "Turns handled, by platform and result (TurnResult).",
            ("platform", "result"),
            registry=r,
        )
        self.turns_in_flight = Gauge(
            "bot_turns_in_flight", "Turns being handled right now.", registry=r
        )
        self.first_visible = Histogram(
            "bot_time_to_first_visible_seconds",
            "From the model request to the first text shown on the platform.",
            ("platform",),
            buckets=VISIBLE_BUCKETS,
            registry=r,
        )
        genai = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
        self.operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (gen_ai.client.operation.duration).",
            (*genai, "error_type"),
            buckets=GENAI_DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "From the streamed request to its first chunk of visible text "
            "(gen_ai.client.operation.time_to_first_chunk).",
            genai,
            buckets=GENAI_DURATION_BUCKETS,
            registry=r,
        )
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Input and output tokens used (gen_ai.client.token.usage).",
            (*genai, "gen_ai_token_type"),
            buckets=GENAI_TOKEN_BUCKETS,
            registry=r,
        )
        self.model_errors = Counter(
            "bot_model_errors_total",
            "Model calls that ended in an error, by the provider's code or our class of failure.",
            ("code",),
            registry=r,
        )
        self.breaker = Gauge(
            "bot_breaker_open", "1 while the GLM circuit breaker is open, else 0.", registry=r
        )
        self.rate_limited = Counter(
            "bot_platform_rate_limited_total",
            "429 (rate limited) answers received from a platform API.",
            ("platform",),
            registry=r,
        )
        self.tokens = Counter(
            "bot_tokens_total",
            "Tokens counted against budgets, by model and type (input, output, thinking, "
            "cached; thinking is part of output and cached part of input, as billed).",
            ("model", "type"),
            registry=r,
        )
        self.filter_hits = Counter(
            "bot_filter_hits_total",
            "Content filter hits: input blocked, output masked, provider withdrew the answer.",
            ("stage",),
            registry=r,
        )

    # -- turns --

    def turn_started(self) -> None:
        if self.enabled:
            self.turns_in_flight.inc()

    def turn_ended(self) -> None:
        if self.enabled:
            self.turns_in_flight.dec()

    def turn_finished(self, platform: str, result: str) -> None:
        """One turn is done; ``result`` is a ``TurnResult`` value (or ``error``)."""
        if self.enabled:
            self.turns.labels(_word(platform), _word(result)).inc()

    def first_text_shown(self, platform: str, seconds: float) -> None:
        if self.enabled:
            self.first_visible.labels(_word(platform)).observe(max(0.0, seconds))

    def filter_hit(self, stage: str) -> None:
        """``stage``: ``input`` (blocked), ``output`` (masked) or ``provider`` (withdrawn)."""
        if self.enabled:
            self.filter_hits.labels(_word(stage)).inc()

    # -- the model --

    def model_call(
        self,
        model: str,
        seconds: float,
        *,
        operation: str = "chat",
        first_chunk_seconds: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        error: str | None = None,
    ) -> None:
        """One model call ended after ``seconds``; ``error``: the provider's error code (e.g.
        ``1302``) or our class of failure (``timeout``), counted in ``bot_model_errors_total``.
        """
        if not self.enabled:
            return
        base = (_word(operation), GENAI_PROVIDER, _code(model))
        error_type = _code(error) if error else ""
        self.operation_duration.labels(*base, error_type).observe(max(0.0, seconds))
        if first_chunk_seconds is not None:
            self.time_to_first_chunk.labels(*base).observe(max(0.0, first_chunk_seconds))
        if input_tokens is not None:
            self.token_usage.labels(*base, "input").observe(max(0, input_tokens))
        if output_tokens is not None:
            self.token_usage.labels(*base, "output").observe(max(0, output_tokens))
        if error_type:
            self.model_errors.labels(error_type).inc()

    def tokens_counted(self, model: str, kind: str, count: int) -> None:
        """``count`` tokens of ``kind`` (input, output, thinking, cached) of ``model``."""
        if self.enabled and count > 0:
            self.tokens.labels(_code(model), _word(kind)).inc(count)

    def breaker_open(self, is_open: bool) -> None:
        if self.enabled:
            self.breaker.set(1 if is_open else 0)

    def watch_breaker(self, is_open: Callable[[], bool]) -> None:
        """Read the breaker at every scrape: an open breaker turns half-open with time alone,
        with no call that could report it."""
        if self.enabled:
            self.breaker.set_function(lambda: 1.0 if is_open() else 0.0)

    # -- platforms --

    def platform_rate_limited(self, platform: str) -> None:
        if self.enabled:
            self.rate_limited.labels(_word(platform)).inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (``/metrics``)."""
        return generate_latest(self.registry)


NO_METRICS = Metrics(enabled=False)


class FirstVisible:
    """Times one answer from its model request (``ReplyStream.start``) to its first text
    accepted by the platform, once; an answer that was never requested is not timed."""

    __slots__ = ("_clock", "_done", "_metrics", "_platform", "_since")

    def __init__(
        self, metrics: Metrics, platform: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._metrics = metrics
        self._platform = platform
        self._clock = clock
        self._since: float | None = None
        self._done = False

    def requested(self) -> None:
        if self._since is None:
            self._since = self._clock()

    def shown(self) -> None:
        if self._since is None or self._done:
            return
        self._done = True
        self._metrics.first_text_shown(self._platform, self._clock() - self._since)


# ---- /livez, /readyz, /metrics ---------------------------------------------------------------


class Readiness(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"


READY_CHECK_TIMEOUT = 2.0  # a store that takes longer to answer a ping is not ready


class OpsServer:
    """Serves ``/livez`` (the event loop answers), ``/readyz`` (200 only when the app said it
    is ready and ``ready_check`` passes; 503 while starting and while stopping) and
    ``/metrics`` (Prometheus text format).

    ``ready_check`` (e.g. the session store's ``ping``) fails by raising, by returning
    ``False`` or by taking longer than ``check_timeout``.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        ready_check: Callable[[], Awaitable[object]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        check_timeout: float = READY_CHECK_TIMEOUT,
    ) -> None:
        self.metrics = metrics
        self.ready_check = ready_check
        self.host = host
        self.port = port
        self.check_timeout = check_timeout
        self.state = Readiness.STARTING
        self._runner: web.AppRunner | None = None
        self._check_failing = False  # logged once per failure, not once per probe

    def mark_ready(self) -> None:
        if self.state is Readiness.STARTING:
            self.state = Readiness.READY

    def mark_stopping(self) -> None:
        self.state = Readiness.STOPPING

    async def start(self) -> int:
        """Listen on ``host:port`` (0: a free port); returns the port bound."""
        if self._runner is not None:
            return self.port
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("operations endpoints on %s:%d (/livez /readyz /metrics)", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self.state = Readiness.STOPPING
        if runner is not None:
            await runner.cleanup()

    async def ready(self) -> tuple[bool, str]:
        """Whether ``/readyz`` answers 200, and why not."""
        if self.state is not Readiness.READY:
            return False, self.state.value
        if self.ready_check is None:
            return True, "ready"
        try:
            async with asyncio.timeout(self.check_timeout):
                ok = await self.ready_check() is not False
            problem = "" if ok else "check returned False"
        except Exception as exc:
            ok, problem = False, f"{type(exc).__name__}: {exc}"[:200]
        if not ok and not self._check_failing:
            log.warning("not ready: the store does not answer: %s", problem)
        elif ok and self._check_failing:
            log.info("ready again: the store answers")
        self._check_failing = not ok
        return (True, "ready") if ok else (False, "store unreachable")

    async def _livez(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ok, reason = await self.ready()
        return web.Response(status=200 if ok else 503, text=reason + "\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST}
        )


# ---- LOG_FORMAT=json ---------------------------------------------------------------------------

# Fields a log call may add with ``extra=``: the session key, the turn's result, its timings.
LOG_EXTRAS = ("session", "result", "timings")

# json.dumps leaves these as they are, and str.splitlines() would split a line on them.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    any of :data:`LOG_EXTRAS` the record carries, and ``exception`` as one string.

    Works from what a handler's filters left on the record (the message as
    ``getMessage()`` gives it, ``exc_text``), so the ``SecretFilter`` applies as in text.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in LOG_EXTRAS:
            value = record.__dict__.get(name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = dataclasses.asdict(value)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":"))
        return line.translate(_LINE_BREAKS)
