"""Settings from the environment and `.env`: the contract (README.md#configuration), plus
tuning knobs."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.turn import SessionScope

DATA_DIR = Path(__file__).parent / "data"

IdList = Annotated[frozenset[str], NoDecode]


def _split_ids(value: object) -> frozenset[str]:
    if value is None or value == "":
        return frozenset()
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(str(v).strip() for v in value if str(v).strip())
    raise ValueError("expected a comma-separated list of ids")


class Settings(BaseSettings):
    """Every variable the bot reads. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `VAR=` in .env means "use the default", as .env.example shows
        extra="ignore",
        case_sensitive=False,
    )

    # --- contract (README.md#configuration) ---
    glm_api_key: SecretStr | None = None
    glm_base_url: str = "https://api.z.ai/api/paas/v4"
    glm_model: str = "glm-4.5"
    glm_first_token_timeout: float = Field(8.0, gt=0, le=120)
    redis_url: str | None = None
    redis_cluster: bool = False
    session_ttl_days: float = Field(30, gt=0, le=3650)
    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_admin_ids: IdList = frozenset()
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_port: int = Field(3000, ge=1, le=65535)
    slack_admin_user_ids: IdList = frozenset()
    banned_words_path: Path = DATA_DIR / "banned_words.txt"
    allowed_words_path: Path = DATA_DIR / "allowed_words.txt"
    weather_geocoding_url: str = "https://geocoding-api.open-meteo.com/v1"
    weather_forecast_url: str = "https://api.open-meteo.com/v1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object a line
    glm_max_answer_tokens: int = Field(4096, ge=1, le=131_072)  # GLM-4.5 allows up to 96K
    summary_model: str = "glm-4.5-flash"  # the free model: rolling summaries
    embedding_model: str = "embedding-3"
    embedding_dimensions: int = Field(256, ge=8, le=4096)
    embedding_base_url: str | None = None  # None: GLM_BASE_URL
    embedding_api_key: SecretStr | None = None  # None: GLM_API_KEY
    shutdown_grace_seconds: float = Field(25.0, ge=0, le=600)  # in-flight answers on SIGTERM
    metrics_port: int | None = Field(None, ge=1, le=65535)  # /livez, /readyz, /metrics; None: off
    # Token budgets (bot/usage.py): None = unlimited. Days and months are UTC.
    recommendations_path: Path = DATA_DIR / "recommendations.sample.json"  # JSON or YAML
    recommender_url: str | None = None  # an external engine (bot/suggest/engine.py); None: off
    web_port: int | None = Field(None, ge=1, le=65535)  # the web channel; None: off
    web_host: str = "127.0.0.1"
    web_api_keys: SecretStr | None = None  # comma-separated; each key is a tenant
    user_daily_token_budget: int | None = Field(None, ge=0)
    user_monthly_token_budget: int | None = Field(None, ge=0)
    group_daily_token_budget: int | None = Field(None, ge=0)

    # --- tuning (documented in README and .env.example; defaults are what a user expects) ---
    glm_thinking: bool = False
    glm_fallback_model: str | None = None
    glm_stall_timeout: float = Field(30.0, gt=0, le=600)
    glm_max_concurrency: int = Field(100, ge=1, le=10_000)
    glm_max_retries: int = Field(3, ge=0, le=10)
    glm_context_tokens: int = Field(12_000, ge=500, le=120_000)
    max_message_chars: int = Field(4000, ge=1, le=100_000)
    group_session_scope: SessionScope = SessionScope.USER
    session_max_history: int = Field(200, ge=2, le=10_000)
    session_max_bytes: int = Field(256 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    memory_max_sessions: int = Field(10_000, ge=1, le=10_000_000)
    telegram_webhook_listen: str = "0.0.0.0"
    telegram_webhook_port: int = Field(8443, ge=1, le=65535)
    slack_session_scope: SessionScope = SessionScope.THREAD
    slack_thread_replies: bool = True
    forms_enabled: bool = True
    suggestions_enabled: bool = True  # interests and suggestions (bot/suggest); users opt out
    interest_half_life_days: float = Field(14.0, gt=0, le=3650)  # how fast interests fade
    form_idle_minutes: float = Field(30.0, gt=0, le=1440)
    forms_timezone: str = "Asia/Seoul"
    filter_mask_char: str = Field("*", min_length=1, max_length=1)
    filter_fixed_mask: str | None = Field(None, max_length=40)
    user_rate_limit_per_minute: int = Field(20, ge=0, le=10_000)  # per user; 0 = off
    web_key_rate_per_minute: int = Field(600, ge=0, le=1_000_000)  # turns per web key; 0 = off
    web_key_max_concurrent: int = Field(100, ge=1, le=100_000)  # answers at once per web key

    @field_validator("telegram_admin_ids", "slack_admin_user_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> frozenset[str]:
        return _split_ids(value)

    @field_validator("filter_fixed_mask", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "glm_base_url",
        "telegram_base_url",
        "slack_api_url",
        "weather_geocoding_url",
        "weather_forecast_url",
        "recommender_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @property
    def offline(self) -> bool:
        """No API key: answers come from the built-in offline model."""
        return self.glm_api_key is None or not self.glm_api_key.get_secret_value().strip()

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def web_enabled(self) -> bool:
        return self.web_port is not None

    @property
    def web_keys(self) -> frozenset[str]:
        """The web channel's API keys (``WEB_API_KEYS``), each a tenant of its own."""
        if self.web_api_keys is None:
            return frozenset()
        return _split_ids(self.web_api_keys.get_secret_value())

    @property
    def web_host_is_loopback(self) -> bool:
        host = self.web_host.strip().strip("[]").lower()
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def web_problem(self) -> str | None:
        """Why the web channel must not start as configured (None: it may)."""
        if self.web_port is None or self.web_keys or self.web_host_is_loopback:
            return None
        return (
            f"WEB_API_KEYS is empty: without keys the web channel only listens on a loopback "
            f"address, not WEB_HOST={self.web_host}"
        )

    @property
    def session_ttl_seconds(self) -> int:
        return int(self.session_ttl_days * 86_400)


def mask_secret(secret: SecretStr | None) -> str:
    """Show that a secret is set without revealing it (last 2 chars at most)."""
    if secret is None:
        return "unset"
    value = secret.get_secret_value()
    if len(value) < 12:
        return "set (****)"
    return f"set (****{value[-2:]})"
