"""``python -m bot check``: validate settings beyond their types and say what would run."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

from bot.app import configured_channels, redact_url, secrets_of
from bot.settings import Settings, mask_secret

_TELEGRAM_TOKEN = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{20,}$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
REDIS_TIMEOUT = 2.0  # seconds to connect, and to answer PING


def probe_redis(settings: Settings, timeout: float = REDIS_TIMEOUT) -> tuple[str | None, float]:
    """PING the session store at ``REDIS_URL`` with the bot's own client: ``(None, seconds)``
    when it answered, else ``(why not, seconds)``; never longer than about ``timeout`` * 2."""
    from bot.sessions.base import SessionStoreError
    from bot.sessions.redis import RedisSessionStore

    url = settings.redis_url or ""

    async def ping() -> None:
        store = RedisSessionStore.from_url(
            url,
            cluster=settings.redis_cluster,
            ttl_seconds=settings.session_ttl_seconds,
            connect_timeout=timeout,
            socket_timeout=timeout,
        )
        try:
            await asyncio.wait_for(store.ping(), timeout * 2)
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    started = time.perf_counter()
    try:
        asyncio.run(ping())
        problem = None
    except TimeoutError:
        problem = f"no answer within {timeout * 2:g}s"
    except SessionStoreError as exc:
        problem = str(exc) or type(exc).__name__
    except Exception as exc:  # a diagnosis, not a crash
        problem = f"{type(exc).__name__}: {exc}"
    took = time.perf_counter() - started
    if problem is not None:
        for secret in secrets_of(settings):  # the error must not quote a password
            problem = problem.replace(secret, "****")
    return problem, took


def describe(settings: Settings, *, probe: bool = True) -> tuple[list[str], bool]:
    """Lines to print and whether the settings are usable. ``probe``: also check that
    Redis answers (a network round trip of at most a few seconds)."""
    errors: list[str] = []
    warnings: list[str] = []
    lines: list[str] = []
    if settings.offline:
        lines.append("model: OFFLINE (no GLM_API_KEY) - the built-in offline model answers")
    else:
        lines.append(f"model: {settings.glm_model} at {settings.glm_base_url}")
        lines.append(f"  GLM_API_KEY: {mask_secret(settings.glm_api_key)}")
    lines.append(
        f"  first-token deadline {settings.glm_first_token_timeout:g}s, "
        f"stall timeout {settings.glm_stall_timeout:g}s, "
        f"thinking {'on' if settings.glm_thinking else 'off'}, "
        f"fallback model {settings.glm_fallback_model or 'none'}"
    )
    if settings.redis_url:
        kind = "Redis Cluster" if settings.redis_cluster else "Redis"
        lines.append(
            f"sessions: {kind} at {redact_url(settings.redis_url)}, "
            f"TTL {settings.session_ttl_days:g} days"
        )
        if probe:
            problem, took = probe_redis(settings)
            if problem is None:
                lines.append(f"  {kind} reachable (PING answered in {took * 1000:.1f} ms)")
            else:
                errors.append(f"REDIS_URL: {kind} is unreachable: {problem}")
    else:
        lines.append(
            f"sessions: in memory (lost on restart), TTL {settings.session_ttl_days:g} days"
        )
        if settings.redis_cluster:
            errors.append("REDIS_CLUSTER is true but REDIS_URL is not set")

    channels = configured_channels(settings)
    if settings.telegram_bot_token is not None:
        token = settings.telegram_bot_token.get_secret_value()
        mode = (
            "webhook " + settings.telegram_webhook_url
            if settings.telegram_webhook_url
            else "polling"
        )
        lines.append(
            f"telegram: {mode}, token {mask_secret(settings.telegram_bot_token)}, "
            f"API {settings.telegram_base_url}"
        )
        if not _TELEGRAM_TOKEN.match(token):
            errors.append("TELEGRAM_BOT_TOKEN does not look like a bot token (digits:secret)")
        if settings.telegram_webhook_url:
            if not settings.telegram_webhook_url.startswith("https://"):
                errors.append("TELEGRAM_WEBHOOK_URL must be an https:// URL")
            secret = settings.telegram_webhook_secret
            if secret is None:
                errors.append("TELEGRAM_WEBHOOK_SECRET is required with TELEGRAM_WEBHOOK_URL")
            elif not _WEBHOOK_SECRET.match(secret.get_secret_value()):
                errors.append("TELEGRAM_WEBHOOK_SECRET: 1-256 characters of A-Z a-z 0-9 _ -")
    if settings.slack_bot_token is not None:
        token = settings.slack_bot_token.get_secret_value()
        if settings.slack_app_token is not None:
            mode = "Socket Mode"
            if not settings.slack_app_token.get_secret_value().startswith("xapp-"):
                errors.append("SLACK_APP_TOKEN must start with xapp-")
        else:
            mode = f"HTTP events on port {settings.slack_port} at /slack/events"
            if settings.slack_signing_secret is None:
                errors.append("SLACK_SIGNING_SECRET is required for HTTP events")
        lines.append(
            f"slack: {mode}, token {mask_secret(settings.slack_bot_token)}, "
            f"API {settings.slack_api_url}"
        )
        if not token.startswith("xoxb-"):
            errors.append("SLACK_BOT_TOKEN must be a bot token (xoxb-...)")
    if settings.web_port is not None:
        keys = len(settings.web_keys)
        access = f"{keys} API key{'s' if keys != 1 else ''}" if keys else "no API keys"
        lines.append(
            f"web: WebSocket /v1/chat/ws, REST /v1/chat and the chat page on "
            f"{settings.web_host}:{settings.web_port}, {access}"
        )
        if settings.web_problem:
            errors.append(settings.web_problem)
    if not channels:
        lines.append("channels: none configured - `run` starts the terminal chat")
    else:
        lines.append("channels: " + ", ".join(channels))
        if settings.offline:
            tokens = " and ".join(
                name
                for name, value in (
                    ("TELEGRAM_BOT_TOKEN", settings.telegram_bot_token),
                    ("SLACK_BOT_TOKEN", settings.slack_bot_token),
                )
                if value is not None
            )
            verb = "are" if " and " in tokens else "is"
            warnings.append(
                f"{tokens} {verb} set but GLM_API_KEY is not: users would get the built-in "
                "offline model's answers, not GLM's"
            )

    for name, path in (
        ("BANNED_WORDS_PATH", settings.banned_words_path),
        ("ALLOWED_WORDS_PATH", settings.allowed_words_path),
    ):
        if not Path(path).is_file():
            errors.append(f"{name}: no such file: {path}")
    lines.append(f"filter lists: {settings.banned_words_path}, {settings.allowed_words_path}")
    if settings.suggestions_enabled:
        from bot.suggest.catalog import Catalog, CatalogError

        try:
            catalog = Catalog.load(settings.recommendations_path)
        except (CatalogError, OSError) as exc:
            errors.append(f"RECOMMENDATIONS_PATH: {exc}")
        else:
            engine = (
                f"; engine {settings.recommender_url} first" if settings.recommender_url else ""
            )
            lines.append(
                f"suggestions: {len(catalog)} catalog items from "
                f"{settings.recommendations_path}{engine}"
            )
    else:
        lines.append("suggestions: off")
    lines.append(f"weather: {settings.weather_geocoding_url}, {settings.weather_forecast_url}")
    lines.append(f"log: {settings.log_level}, {settings.log_format}")
    if settings.metrics_port is not None:
        lines.append(f"operations: /livez, /readyz, /metrics on port {settings.metrics_port}")
    for warning in warnings:
        lines.append(f"WARNING: {warning}")
    for err in errors:
        lines.append(f"ERROR: {err}")
    lines.append("settings OK" if not errors else f"{len(errors)} error(s)")
    return lines, not errors
