"""Operations endpoints, metrics and JSON logs: the real server over loopback HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from bot.app import SecretFilter
from bot.observability import NO_METRICS, OTHER, FirstVisible, JsonFormatter, Metrics, OpsServer
from bot.settings import Settings

REQUIRED = (
    "bot_turns_total",
    "bot_time_to_first_visible_seconds",
    "gen_ai_client_operation_duration_seconds",
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "gen_ai_client_token_usage",
    "bot_model_errors_total",
    "bot_breaker_open",
    "bot_platform_rate_limited_total",
    "bot_filter_hits_total",
    "bot_turns_in_flight",
)
TELEGRAM_USER = "987654321"
SLACK_USER = "U024BE7LH"


class Store:
    """A stand-in for the session store's ``ping``: answers, fails, or hangs."""

    def __init__(self) -> None:
        self.mode = "up"

    async def ping(self) -> None:
        if self.mode == "down":
            raise ConnectionError("redis at 127.0.0.1:1 refused the connection")
        if self.mode == "hung":
            await asyncio.sleep(30)


Get = Callable[[str], Awaitable[tuple[int, str, str]]]


@dataclass
class Ops:
    server: OpsServer
    store: Store
    get: Get


@pytest.fixture
async def ops() -> AsyncIterator[Ops]:
    store = Store()
    server = OpsServer(Metrics(), ready_check=store.ping, port=0, check_timeout=0.2)
    port = await server.start()
    async with aiohttp.ClientSession() as http:

        async def get(path: str) -> tuple[int, str, str]:
            async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                return resp.status, resp.headers.get("Content-Type", ""), await resp.text()

        yield Ops(server, store, get)
    await server.stop()


async def test_livez_answers_while_the_loop_runs(ops: Ops) -> None:
    status, _, body = await ops.get("/livez")
    assert (status, body.strip()) == (200, "ok")
    ops.server.mark_stopping()  # alive until the process ends, ready or not
    assert (await ops.get("/livez"))[0] == 200


async def test_readyz_follows_the_app_and_the_store(ops: Ops) -> None:
    status, _, body = await ops.get("/readyz")
    assert (status, body.strip()) == (503, "starting")

    ops.server.mark_ready()
    assert (await ops.get("/readyz"))[0] == 200

    ops.store.mode = "down"
    status, _, body = await ops.get("/readyz")
    assert (status, body.strip()) == (503, "store unreachable")
    assert "127.0.0.1" not in body  # the reason stays in the log

    ops.store.mode = "hung"  # a store that does not answer in time is not ready either
    assert (await ops.get("/readyz"))[0] == 503

    ops.store.mode = "up"  # recovers without a restart
    assert (await ops.get("/readyz"))[0] == 200

    ops.server.mark_stopping()
    status, _, body = await ops.get("/readyz")
    assert (status, body.strip()) == (503, "stopping")
    ops.server.mark_ready()  # a stopping process does not become ready again
    assert (await ops.get("/readyz"))[0] == 503


async def test_a_check_that_returns_false_is_not_ready() -> None:
    async def no() -> bool:
        return False

    server = OpsServer(Metrics(), ready_check=no)
    server.mark_ready()
    assert await server.ready() == (False, "store unreachable")
    server.ready_check = None
    assert await server.ready() == (True, "ready")


def record_one_of_each(metrics: Metrics) -> None:
    metrics.turn_started()
    metrics.turn_started()
    metrics.turn_ended()
    metrics.turn_finished("telegram", "answered")
    metrics.turn_finished("slack", "fallback")
    visible = FirstVisible(metrics, "telegram", clock=iter([10.0, 10.7]).__next__)
    visible.requested()
    visible.shown()
    visible.shown()  # once per answer
    metrics.model_call("glm-4.5", 2.5, first_chunk_seconds=0.4, input_tokens=812, output_tokens=96)
    metrics.model_call("glm-4.5", 8.0, error="timeout")
    metrics.model_call("glm-4.5", 0.3, error="1302")
    metrics.breaker_open(True)
    metrics.platform_rate_limited("slack")
    metrics.filter_hit("input")
    metrics.filter_hit("output")


Sample = tuple[str, dict[str, str], float]


def scrape(text: str) -> tuple[set[str], list[Sample]]:
    """The metric names (a counter's with its ``_total``, which the parser strips from the
    family's name) and every sample of an exposition."""
    names: set[str] = set()
    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for s in family.samples:
            samples.append((s.name, dict(s.labels), s.value))
            if family.type == "counter" and s.name == family.name + "_total":
                names.add(s.name)
    return names, samples


def sample_value(samples: list[Sample], name: str, **labels: str) -> float:
    for sample, sample_labels, number in samples:
        if sample == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            return number
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics_carry_every_contract_name(ops: Ops) -> None:
    record_one_of_each(ops.server.metrics)
    status, content_type, body = await ops.get("/metrics")
    assert status == 200
    assert content_type == CONTENT_TYPE_LATEST
    names, samples = scrape(body)
    assert set(REQUIRED) <= names, set(REQUIRED) - names

    def one(name: str, **labels: str) -> float:
        return sample_value(samples, name, **labels)

    assert one("bot_turns_total", platform="telegram", result="answered") == 1
    assert one("bot_turns_in_flight") == 1
    assert one("bot_breaker_open") == 1
    assert one("bot_model_errors_total", code="1302") == 1
    assert one("bot_model_errors_total", code="timeout") == 1
    assert one("bot_platform_rate_limited_total", platform="slack") == 1
    assert one("bot_filter_hits_total", stage="output") == 1
    assert one("bot_time_to_first_visible_seconds_count", platform="telegram") == 1
    assert one("bot_time_to_first_visible_seconds_sum") == pytest.approx(0.7)
    assert one("gen_ai_client_token_usage_sum", gen_ai_token_type="input") == 812
    assert one("gen_ai_client_token_usage_sum", gen_ai_token_type="output") == 96
    assert one("gen_ai_client_operation_time_to_first_chunk_seconds_sum") == pytest.approx(0.4)
    duration = "gen_ai_client_operation_duration_seconds_count"
    chat = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "z_ai",
        "gen_ai_request_model": "glm-4.5",
    }
    assert one(duration, error_type="", **chat) == 1
    assert one(duration, error_type="timeout", **chat) == 1


async def test_histograms_use_the_genai_bucket_boundaries(ops: Ops) -> None:
    record_one_of_each(ops.server.metrics)
    _, samples = scrape((await ops.get("/metrics"))[2])

    def bounds(name: str) -> list[float]:
        found = {float(labels["le"]) for sample, labels, _ in samples if sample == name + "_bucket"}
        return sorted(found)[:-1]  # without +Inf

    doubling = [0.01 * 2**i for i in range(14)]  # 0.01 ... 81.92 s
    assert bounds("gen_ai_client_operation_duration_seconds") == pytest.approx(doubling)
    assert bounds("gen_ai_client_operation_time_to_first_chunk_seconds") == pytest.approx(doubling)
    assert bounds("gen_ai_client_token_usage") == [4.0**i for i in range(14)]  # 1 ... 4^13
    assert 8.0 in bounds("bot_time_to_first_visible_seconds")  # the fallback deadline


async def test_no_user_id_reaches_a_label(ops: Ops) -> None:
    metrics = ops.server.metrics
    record_one_of_each(metrics)
    # A wiring bug that passes an id (or a display name) where a word belongs.
    for wrong in (TELEGRAM_USER, SLACK_USER, "홍길동", "telegram:0:42:"):
        metrics.turn_finished(wrong, "answered")
        metrics.platform_rate_limited(wrong)
        metrics.filter_hit(wrong)
        metrics.first_text_shown(wrong, 1.0)
        metrics.model_call("glm-4.5", 1.0, error=f"user {wrong}")
    body = (await ops.get("/metrics"))[2]
    label_values = {v for _, labels, _ in scrape(body)[1] for v in labels.values()}
    assert OTHER in label_values
    for wrong in (TELEGRAM_USER, SLACK_USER, "홍길동"):
        assert wrong not in label_values
        assert wrong not in body


async def test_breaker_gauge_reads_the_breaker_at_scrape_time(ops: Ops) -> None:
    state = {"open": False}
    ops.server.metrics.watch_breaker(lambda: state["open"])
    for is_open in (False, True, False):
        state["open"] = is_open
        samples = scrape((await ops.get("/metrics"))[2])[1]
        assert sample_value(samples, "bot_breaker_open") == float(is_open)


def test_each_metrics_object_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()  # no "Duplicated timeseries" error
    one.turn_finished("telegram", "answered")
    assert b'bot_turns_total{platform="telegram"' in one.exposition()
    assert b'bot_turns_total{platform="telegram"' not in two.exposition()


def test_the_default_records_nothing() -> None:
    record_one_of_each(NO_METRICS)
    NO_METRICS.watch_breaker(lambda: True)
    assert b"bot_turns_total{" not in NO_METRICS.exposition()
    assert b"bot_breaker_open 0.0" in NO_METRICS.exposition()


def test_first_visible_ignores_an_answer_that_was_never_requested() -> None:
    metrics = Metrics()
    FirstVisible(metrics, "slack").shown()  # a command's reply: no model request
    assert b"bot_time_to_first_visible_seconds_count" not in metrics.exposition()


# ---- LOG_FORMAT=json ------------------------------------------------------------------------

SECRET = "123456:ABC-telegram-bot-token"


def json_logger(stream: io.StringIO) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(SecretFilter([SECRET]))
    logger = logging.getLogger("tests.observability.json")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


@dataclass
class Timings:
    first_token_ms: float
    total_ms: float


def test_json_logs_one_object_a_line_with_the_turn_fields() -> None:
    stream = io.StringIO()
    log = json_logger(stream)
    log.info("plain line")
    log.info(
        "turn done",
        extra={"session": "telegram:0:42:", "result": "answered", "timings": {"total_ms": 812.5}},
    )
    log.info("timings as a dataclass", extra={"timings": Timings(410.0, 812.5)})
    log.warning("multi\nline\u2028message 서울 날씨")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed session=%s", "slack:T1:C1:1.2:")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
        assert entry["logger"] == "tests.observability.json"
        assert entry["time"].endswith("+00:00")
    assert "session" not in entries[0] and "exception" not in entries[0]
    assert entries[1]["session"] == "telegram:0:42:"
    assert entries[1]["result"] == "answered"
    assert entries[1]["timings"] == {"total_ms": 812.5}
    assert entries[2]["timings"] == {"first_token_ms": 410.0, "total_ms": 812.5}
    assert entries[3]["message"] == "multi\nline\u2028message 서울 날씨"
    assert entries[3]["level"] == "WARNING"
    assert entries[4]["message"] == "failed session=slack:T1:C1:1.2:"
    assert entries[4]["exception"].startswith("Traceback")
    assert "RuntimeError: boom" in entries[4]["exception"]


def test_json_logs_never_carry_a_secret() -> None:
    stream = io.StringIO()
    log = json_logger(stream)
    log.error("telegram said 401 for https://api.telegram.org/bot%s/getMe", SECRET)
    try:
        raise ValueError(f"invalid token {SECRET}")
    except ValueError:
        log.exception("while starting")
    out = stream.getvalue()
    assert SECRET not in out
    entries = [json.loads(line) for line in out.splitlines()]
    assert "bot****/getMe" in entries[0]["message"]
    assert "invalid token ****" in entries[1]["exception"]


# ---- settings -------------------------------------------------------------------------------


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("METRICS_PORT", raising=False)
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    return monkeypatch


def test_metrics_are_off_and_logs_text_by_default(clean_env: pytest.MonkeyPatch) -> None:
    s = settings()
    assert (s.metrics_port, s.log_format) == (None, "text")
    clean_env.setenv("METRICS_PORT", "")  # `METRICS_PORT=` in .env: the default
    assert settings().metrics_port is None


def test_metrics_port_and_log_format_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("METRICS_PORT", "9464")
    clean_env.setenv("LOG_FORMAT", "JSON")
    s = settings()
    assert (s.metrics_port, s.log_format) == (9464, "json")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("METRICS_PORT", "0"),
        ("METRICS_PORT", "70000"),
        ("METRICS_PORT", "on"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_unusable_ops_settings_are_refused(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError):
        settings()
