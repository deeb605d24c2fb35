"""Typed errors for Z.AI's ``{"error": {"code", "message"}}`` bodies and transport failures."""

from __future__ import annotations

import json
from typing import Any


class GlmError(Exception):
    """Base of every GLM failure. ``retryable`` says whether trying again may help."""

    retryable = False
    counts_as_failure = True  # for the circuit breaker: a failure of the service, not the user

    def __init__(self, message: str, *, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after: float | None = None  # seconds, from a Retry-After header

    def __str__(self) -> str:
        return describe_api_error(self, self.status, self.code, self.message)


class GlmAuthError(GlmError):
    """The API key was rejected (1000-1004, HTTP 401)."""


class GlmAccountError(GlmError):
    """Account problem: balance, arrears, suspension (1110-1121)."""


class GlmBadRequest(GlmError):
    """The request itself is wrong (1210-1261, HTTP 400); our bug or the user's input."""

    counts_as_failure = False


class GlmContextTooLong(GlmBadRequest):
    """The prompt does not fit the model's context window."""


class GlmUnsafeInput(GlmError):
    """The provider judged the input unsafe (1301)."""

    counts_as_failure = False


class GlmRateLimited(GlmError):
    """Too many requests or too much concurrency right now (1302, 1303, 1305, 1312)."""

    retryable = True


class GlmDailyLimit(GlmError):
    """The daily quota is used up (1304); retrying today will not help."""


class GlmServerError(GlmError):
    """HTTP 5xx or the provider's own network error (1234)."""

    retryable = True


class GlmConnectionError(GlmError):
    """Could not connect, or the connection dropped before anything was shown."""

    retryable = True


class GlmTimeout(GlmError):
    """The API did not answer in time."""

    retryable = True


class GlmProtocolError(GlmError):
    """The API answered something we cannot parse (malformed JSON or SSE)."""

    retryable = True


class GlmStreamInterrupted(GlmError):
    """The stream broke after text was already shown; never retried (text would repeat)."""


class GlmUnavailable(GlmError):
    """The circuit breaker is open or the bulkhead is full: the call was not attempted."""

    counts_as_failure = False


class GlmEmptyAnswer(GlmError):
    """The answer ended without a visible word (only reasoning, empty or blank deltas).

    The service did answer, so the circuit breaker does not count it as an outage.
    """

    counts_as_failure = False


RETRYABLE_CODES = frozenset({"1302", "1303", "1305", "1312", "1234"})


def error_class_for(code: str, status: int) -> type[GlmError]:
    """The error type for a Z.AI business code and HTTP status."""
    num = int(code) if code.isdigit() else -1
    if code == "1234":  # inside the 1210-1261 range, but the provider's own network error
        return GlmServerError
    if 1000 <= num <= 1004:
        return GlmAuthError
    if 1110 <= num <= 1121:
        return GlmAccountError
    if num == 1261:
        return GlmContextTooLong
    if 1210 <= num <= 1260:
        return GlmBadRequest
    if num == 1301:
        return GlmUnsafeInput
    if num == 1304:
        return GlmDailyLimit
    if code in RETRYABLE_CODES:
        return GlmRateLimited
    if status == 401:
        return GlmAuthError
    if status == 429:
        return GlmRateLimited
    if status >= 500:
        return GlmServerError
    if status == 400:
        return GlmBadRequest
    return GlmError


def error_from_body(status: int, body: bytes | str) -> GlmError:
    """Parse an error response; a body that is not Z.AI's shape still yields a typed error."""
    code, message = "", ""
    try:
        data: Any = json.loads(body)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code") or "")
            message = str(err.get("message") or "")
    except (ValueError, UnicodeDecodeError):
        pass
    if not message:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        message = text.strip()[:200] or f"HTTP {status}"
    return error_class_for(code, status)(message, code=code, status=status)


def describe_api_error(error: Exception, status: int, code: str, message: str) -> str:
    """``GlmRateLimited http=429 code=1302: ...``: an API error as logs show it."""
    parts = [type(error).__name__]
    if status:
        parts.append(f"http={status}")
    if code:
        parts.append(f"code={code}")
    return f"{' '.join(parts)}: {message}"
