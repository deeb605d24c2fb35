"""Composition root: settings → store, GLM client, manager; starts the configured channels."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.commands import CommandRouter
from bot.context import ContextWindow
from bot.context.embeddings import EmbeddingClient
from bot.context.recall import EmbeddingRecall
from bot.context.summary import Summarizer, guarded_complete
from bot.context.window import LEXICAL_MIN, lexical_scores
from bot.glm.client import GlmClient
from bot.glm.guarded import GuardedGlm
from bot.glm.offline import OfflineModel
from bot.glm.shared import build_guards
from bot.journal import TurnJournal, build_journal
from bot.manager import ContentFilter, ConversationManager, ManagerConfig
from bot.notify import AdminNotices
from bot.observability import NO_METRICS, JsonFormatter, Metrics, OpsServer
from bot.ratelimit import build_rate_limiter
from bot.sessions.base import SessionStore, SessionStoreError
from bot.sessions.index import StoredIndex
from bot.sessions.memory import MemorySessionStore
from bot.settings import Settings
from bot.usage import Accounting, Budgets, UsageCommand, build_usage_ledger

if TYPE_CHECKING:
    from bot.forms.runtime import FormsRuntime

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:****@host`` (for logs and ``check``)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1****@", url)


class SecretFilter(logging.Filter):
    """Last line of defence: replace any configured secret that reaches a log record."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Tracebacks may quote a token (e.g. an "invalid token" error): clean them too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return text


def secrets_of(settings: Settings) -> list[str]:
    values = [
        settings.glm_api_key,
        settings.telegram_bot_token,
        settings.telegram_webhook_secret,
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.embedding_api_key,
        settings.web_api_keys,
    ]
    found = [v.get_secret_value() for v in values if v is not None]
    found.extend(settings.web_keys)  # each key alone, not only the whole list
    if settings.redis_url:
        match = re.search(r"://[^:/@]*:([^@/]+)@", settings.redis_url)
        if match:
            found.append(match.group(1))
    return found


def setup_logging(settings: Settings, *, terminal: bool = False) -> None:
    """Log to stderr at ``LOG_LEVEL``. ``terminal``: the log shares a terminal with a
    conversation (the terminal chat), so only warnings and errors are logged there; a
    stricter ``LOG_LEVEL`` still applies, and a redirected stderr keeps the full log."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets_of(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    if terminal and root.level < logging.WARNING:
        root.setLevel(logging.WARNING)
    # Library loggers print request URLs, and the Telegram Bot API puts the token in the URL.
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@dataclass
class App:
    """Everything the running bot owns; ``close`` releases it in reverse order."""

    settings: Settings
    store: SessionStore
    client: GlmClient
    glm: GuardedGlm
    manager: ConversationManager
    offline_model: OfflineModel | None = None
    content_filter: ContentFilter | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    notices: AdminNotices = field(default_factory=AdminNotices)
    index: StoredIndex | None = None
    summarizer: Summarizer | None = None
    recall: EmbeddingRecall | None = None
    journal: TurnJournal | None = None  # None: the channels de-duplicate in memory
    metrics: Metrics = NO_METRICS  # served on METRICS_PORT by run_channels

    async def close(self) -> None:
        if self.journal is not None:
            with contextlib.suppress(Exception):
                await self.journal.close()
        if self.recall is not None:
            with contextlib.suppress(Exception):
                await self.recall.close()
        if self.summarizer is not None:
            with contextlib.suppress(Exception):
                await self.summarizer.cancel()  # the next turn after a restart tries again
        with contextlib.suppress(Exception):
            await self.notices.drain()
        if self.manager.accounting is not None:
            with contextlib.suppress(Exception):
                await self.manager.accounting.drain()  # the last turns' tokens
        suggestions = self.extras.get("suggestions")
        if suggestions is not None:
            with contextlib.suppress(Exception):
                await suggestions.close()  # the last turns' interests, the engine's client
        forms = self.extras.get("forms")
        if forms is not None:
            with contextlib.suppress(Exception):
                await forms.close()
        with contextlib.suppress(Exception):
            await self.client.close()
        with contextlib.suppress(Exception):
            await self.store.close()
        if self.offline_model is not None:
            with contextlib.suppress(Exception):
                await self.offline_model.stop()


async def build_store(settings: Settings) -> SessionStore:
    if settings.redis_url:
        from bot.sessions.redis import RedisSessionStore

        store = RedisSessionStore.from_url(
            settings.redis_url,
            cluster=settings.redis_cluster,
            ttl_seconds=settings.session_ttl_seconds,
        )
        # Connect before serving: a Redis Cluster client that learns the cluster's layout
        # under many concurrent first commands can trip over its own reconnects (redis-py).
        try:
            await store.ping()
        except SessionStoreError as exc:
            log.warning("Redis not reachable at start (turns will say so until it is): %s", exc)
        return store
    return MemorySessionStore(
        max_sessions=settings.memory_max_sessions, ttl_seconds=settings.session_ttl_seconds
    )


def build_filter(settings: Settings) -> ContentFilter | None:
    try:
        moderation = importlib.import_module("bot.moderation")
    except ImportError:
        return None
    factory = getattr(moderation, "load_content_filter", None)
    if factory is None:
        return None
    result: ContentFilter = factory(
        settings.banned_words_path,
        settings.allowed_words_path,
        mask_char=settings.filter_mask_char,
        fixed_mask=settings.filter_fixed_mask,
    )
    return result


async def build_app(
    settings: Settings,
    *,
    admin_checks: dict[str, Any] | None = None,
    admin_ids: dict[str, frozenset[str]] | None = None,
    metrics: Metrics | None = None,
) -> App:
    """``admin_ids``: the bot's admins on channels beyond the configured ones (the terminal);
    ``admin_checks``: per platform, whether a user administers the group a turn came from;
    ``metrics``: by default recorded only when ``METRICS_PORT`` will serve them."""
    if metrics is None:
        metrics = Metrics() if settings.metrics_port is not None else NO_METRICS
    offline: OfflineModel | None = None
    base_url = settings.glm_base_url
    api_key = settings.glm_api_key.get_secret_value() if settings.glm_api_key else ""
    if settings.offline:
        offline = OfflineModel()
        base_url = await offline.start()
        api_key = "offline"
    client = GlmClient(
        base_url=base_url,
        api_key=api_key,
        max_retries=settings.glm_max_retries,
        max_connections=settings.glm_max_concurrency,
    )
    store = await build_store(settings)
    # With Redis, the breakers and GLM_MAX_CONCURRENCY are shared by every replica.
    guards = build_guards(settings, store)
    glm = GuardedGlm(
        client,
        model=settings.glm_model,
        first_token_timeout=settings.glm_first_token_timeout,
        stall_timeout=settings.glm_stall_timeout,
        fallback_model=settings.glm_fallback_model,
        thinking=settings.glm_thinking,
        breaker=guards.breaker,
        bulkhead=guards.bulkhead,
        max_answer_tokens=settings.glm_max_answer_tokens,
        metrics=metrics,
    )
    metrics.watch_breaker(lambda: glm.breaker.state == "open")
    # Summaries have their own breaker and a small bulkhead: their timeouts must not open the
    # breaker that answers depend on, nor take the answers' connections.
    recall: EmbeddingRecall | None = None
    if not settings.offline or settings.embedding_api_key is not None:
        # Offline without an embedding endpoint, the window's lexical score does the recall.
        key = settings.embedding_api_key or settings.glm_api_key
        recall = EmbeddingRecall(
            EmbeddingClient(
                settings.embedding_base_url or settings.glm_base_url,
                key.get_secret_value() if key is not None else "",
                model=settings.embedding_model,
                dimensions=settings.embedding_dimensions,
            )
        )
    summary_glm = GuardedGlm(
        client,
        model=settings.summary_model,
        breaker=guards.summary_breaker,
        bulkhead=guards.summary_bulkhead,
        metrics=metrics,
    )
    summarizer = Summarizer(
        store,
        guarded_complete(summary_glm),
        model=settings.summary_model,
        offline=settings.offline,
    )
    config = ManagerConfig(
        max_message_chars=settings.max_message_chars,
        scope=settings.group_session_scope,
        max_history=settings.session_max_history,
        max_session_bytes=settings.session_max_bytes,
        context_tokens=settings.glm_context_tokens,
        offline=settings.offline,
    )
    content_filter = build_filter(settings)
    index = StoredIndex(store, session_ttl_seconds=settings.session_ttl_seconds)
    notices = AdminNotices()
    forms: FormsRuntime | None = None
    if settings.forms_enabled:
        from bot.forms.runtime import build_forms

        forms = await build_forms(
            store=store,
            glm=glm,
            model=settings.glm_model,
            geocoding_url=settings.weather_geocoding_url,
            forecast_url=settings.weather_forecast_url,
            offline=settings.offline,
            idle_minutes=settings.form_idle_minutes,
            timezone=settings.forms_timezone,
            index=index,
            notices=notices,
        )
    # Tokens counted per user, group and tenant, and the budgets (bot/usage.py).
    # Users are named in the counters by a hash keyed with the API key (a secret every
    # replica has; a new key starts the counts afresh).
    pepper = settings.glm_api_key.get_secret_value().encode() if settings.glm_api_key else b""
    accounting = Accounting(
        build_usage_ledger(store, pepper), Budgets.from_settings(settings), metrics=metrics
    )
    suggestions = None
    if settings.suggestions_enabled:
        from bot.suggest.runtime import build_suggestions

        suggestions = build_suggestions(
            settings,
            store,
            analyzer=forms.analyzer if forms is not None else None,
            pepper=pepper,
        )
    commands = CommandRouter(
        store,
        scope=config.scope,
        admin_ids={
            "telegram": settings.telegram_admin_ids,
            "slack": settings.slack_admin_user_ids,
            **(admin_ids or {}),
        },
        admin_checks=admin_checks,
        extra=[
            UsageCommand(accounting),
            *([forms.submissions_command] if forms is not None else []),
            *(suggestions.commands() if suggestions is not None else []),
        ],
        index=index,
        offline=settings.offline,
    )
    manager = ConversationManager(
        store=store,
        glm=glm,
        config=config,
        commands=commands,
        content_filter=content_filter,
        forms=forms.stage if forms is not None else None,
        context=ContextWindow(
            config.context_tokens, scorer=lexical_scores, min_relevance=LEXICAL_MIN
        ),
        rate_limiter=build_rate_limiter(settings, store),
        summarizer=summarizer,
        recall=recall,
        metrics=metrics,
        accounting=accounting,
        suggestions=suggestions,
    )
    if suggestions is not None:
        commands.forgetters.append(suggestions.forget)
    return App(
        settings,
        store,
        client,
        glm,
        manager,
        offline,
        content_filter,
        extras={"forms": forms, "suggestions": suggestions},
        notices=notices,
        index=index,
        summarizer=summarizer,
        recall=recall,
        journal=build_journal(store, dedupe_ttl_seconds=config.dedupe_ttl_seconds),
        metrics=metrics,
    )


# Young collections every 50,000 net allocations rather than Python's 700 (and the older
# generations every 10 of the younger ones'): see settle_heap.
GC_THRESHOLDS = (50_000, 10, 10)


def settle_heap() -> None:
    """The bot is built: what exists now (modules, the filter, Kiwi, settings, the app) lives as
    long as the process. Frozen, the collector no longer walks it at every full collection;
    and serving allocates fast (a burst of 1,000 turns, bench/bench_capacity.py), so young
    collections with Python's thresholds ran hundreds of times a second, each walking every
    turn in flight, and full ones stalled the event loop for 0.1-0.2 s each: about 2 s of the
    bot's CPU over that run, 0.2 s with these."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def configured_channels(settings: Settings) -> list[str]:
    channels = []
    if settings.telegram_enabled:
        channels.append("telegram")
    if settings.slack_enabled:
        channels.append("slack")
    if settings.web_enabled:
        channels.append("web")
    return channels


async def run_channels(settings: Settings, channels: list[str]) -> int:
    """Start each configured platform adapter (imported lazily) and run until stopped."""
    app = await build_app(settings)  # the filter and Kiwi are loaded by now
    settle_heap()
    try:
        ops = await start_ops(app)  # /readyz says "starting" until the channels run
    except OSError as exc:
        log.error("METRICS_PORT %s cannot be used: %s", settings.metrics_port, exc)
        await app.close()
        return 2
    backfill: asyncio.Task[None] | None = None
    try:
        await until_store_answers(app.store)
        backfill = asyncio.create_task(_backfill(app), name="index-backfill")
        if app.journal is not None:
            await app.journal.start()  # channels register for the turns a dead process left
        modules = []
        for name in channels:
            try:
                modules.append(importlib.import_module(f"adapters.{name}"))
            except ImportError as exc:
                log.error("channel %s is configured but cannot be loaded: %s", name, exc)
                return 2
        runners = [asyncio.create_task(m.run(app), name=m.__name__) for m in modules]
        if ops is not None:
            ops.mark_ready()
        try:
            # wait(), not gather(): a cancel (SIGTERM) reaches this task at once and turns
            # /readyz to 503, while the channels finish their answers within the grace.
            done, running = await asyncio.wait(runners, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            if ops is not None:
                ops.mark_stopping()
            if app.journal is not None:
                app.journal.stop_taking_over()  # a turn taken now would only be cut
            await _stop_channels(runners)
            raise
        failed = [r.exception() for r in done if not r.cancelled() and r.exception()]
        if failed:
            # Adapters raise for what the operator must fix (a rejected token, a busy port).
            log.error("channel stopped: %s: %s", type(failed[0]).__name__, failed[0])
            if ops is not None:
                ops.mark_stopping()
            await _stop_channels(running)
            return 2
        return 0
    finally:
        if backfill is not None:
            backfill.cancel()
        if ops is not None:
            await ops.stop()
        await app.close()


async def _stop_channels(runners: Collection[asyncio.Task[None]]) -> None:
    """Cancel the channels and wait while each finishes its answers (within its grace)."""
    for runner in runners:
        runner.cancel()
    await asyncio.gather(*runners, return_exceptions=True)


async def start_ops(app: App) -> OpsServer | None:
    """``/livez``, ``/readyz`` and ``/metrics`` on ``METRICS_PORT``, on every interface (the
    probes and the scraper come from outside); None when it is unset."""
    port = app.settings.metrics_port
    if port is None:
        return None
    ops = OpsServer(app.metrics, ready_check=app.store.ping, host="0.0.0.0", port=port)
    await ops.start()
    return ops


STORE_WAIT_SECONDS = 60.0  # at start, how long channels wait for an unreachable store


async def until_store_answers(store: SessionStore, within: float = STORE_WAIT_SECONDS) -> None:
    """Before any channel takes a message: wait (bounded) for the store to answer.

    Meanwhile messages wait at the platform (Telegram keeps them, Slack retries); past the
    bound the channels start anyway, and with Redis a message that cannot be recorded is
    still not confirmed to the platform.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay = 0.25
    while True:
        try:
            await store.ping()
            return
        except SessionStoreError as exc:
            if loop.time() + delay > deadline:
                log.error("the session store is unreachable; starting anyway: %s", exc)
                return
            log.warning("waiting for the session store before taking messages: %s", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def _backfill(app: App) -> None:
    """Index the sessions an earlier version stored (once per store), in the background."""
    if app.index is None:
        return
    try:
        await app.index.backfill()
    except Exception as exc:  # retried at the next start; commands still work meanwhile
        log.warning("indexing stored sessions failed: %s", exc)
