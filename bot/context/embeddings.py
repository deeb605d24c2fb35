"""Embeddings over an OpenAI-compatible ``POST {base}/embeddings`` (Z.AI's embedding-3), compact.

:class:`EmbeddingClient` embeds texts in batches (at most 64 inputs a request, as Z.AI allows)
behind a circuit breaker and a short timeout; every failure is an :class:`EmbeddingError`, so
the caller can fall back to the lexical scorer (:mod:`bot.context.lexical`). :func:`pack` stores
a vector compactly with the session (int8 with one float32 scale, base64: 348 characters for
256 dimensions) and :func:`unpack` reads it back; :class:`VectorSpace` tags stored vectors with
the model and dimensions that made them, so vectors from another model are ignored, not mixed.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import struct
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul
from typing import Any

import aiohttp

from bot.glm.breaker import CircuitBreaker
from bot.glm.errors import describe_api_error
from bot.glm.types import Usage
from bot.usage import count_usage, model_allowed

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DEFAULT_MODEL",
    "MAX_BATCH",
    "EmbeddingClient",
    "EmbeddingError",
    "EmbeddingUnavailable",
    "VectorSpace",
    "cosine",
    "pack",
    "unpack",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "embedding-3"
DEFAULT_DIMENSIONS = 256
MAX_BATCH = 64  # inputs per request; Z.AI refuses more
# A message is embedded by its first MAX_INPUT_CHARS characters: well within embedding-3's
# input limit for any script, and what a message is about shows early.
MAX_INPUT_CHARS = 4000


class EmbeddingError(Exception):
    """The embeddings could not be had. ``counts_as_failure``: a failure of the service (the
    circuit breaker counts it), not of the request."""

    def __init__(
        self, message: str, *, code: str = "", status: int = 0, counts_as_failure: bool = True
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.counts_as_failure = counts_as_failure

    def __str__(self) -> str:
        return describe_api_error(self, self.status, self.code, self.message)


class EmbeddingUnavailable(EmbeddingError):
    """The circuit breaker is open: no request was made."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("embeddings circuit open", counts_as_failure=False)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class VectorSpace:
    """Which model and dimensions made a vector; vectors of different spaces don't compare."""

    model: str
    dimensions: int

    def matches(self, other: VectorSpace | None) -> bool:
        return other is not None and self == other

    @property
    def tag(self) -> str:
        """A compact form to store with the vectors, e.g. ``embedding-3/256``."""
        return f"{self.model}/{self.dimensions}"

    @classmethod
    def from_tag(cls, tag: object) -> VectorSpace | None:
        """The space of a stored :attr:`tag`; ``None`` if it is not one."""
        if not isinstance(tag, str):
            return None
        model, sep, dims = tag.rpartition("/")
        if not sep or not model or not dims.isdigit() or int(dims) < 1:
            return None
        return cls(model, int(dims))


class EmbeddingClient:
    """Embeds texts with ``{base_url}/embeddings``, one batch of at most 64 inputs a request.

    Every request asks the breaker first (:class:`EmbeddingUnavailable` at once when it is
    open) and reports its outcome. HTTP errors, Z.AI's ``{"error": {"code", "message"}}``
    bodies, timeouts, connection failures and answers of the wrong shape or dimensions raise
    :class:`EmbeddingError`; its message never contains the API key. A bad request (HTTP 400,
    413, 422, Z.AI codes 1210-1299) is our mistake, not an outage, and does not count towards
    opening the breaker; a 404 (no such endpoint) does.

    ``session``: an aiohttp session to share (not closed by :meth:`close`); by default the
    client makes its own, lazily, in the running loop.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str = DEFAULT_MODEL,
        dimensions: int = DEFAULT_DIMENSIONS,
        timeout: float = 3.0,
        session: aiohttp.ClientSession | None = None,
        breaker: CircuitBreaker | None = None,
        *,
        batch_size: int = MAX_BATCH,
    ) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be >= 1")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be in 1..{MAX_BATCH}")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._url = base_url.rstrip("/") + "/embeddings"
        self._api_key = api_key
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
        }
        self.space = VectorSpace(model, dimensions)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._warned_at = -math.inf
        self._session = session
        self._owns_session = session is None
        self.breaker = breaker or CircuitBreaker(
            window_seconds=60.0, min_calls=3, failure_rate=0.5, open_seconds=30.0
        )
        self._batch_size = batch_size

    @property
    def url(self) -> str:
        return self._url

    @property
    def model(self) -> str:
        return self.space.model

    @property
    def dimensions(self) -> int:
        return self.space.dimensions

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(
                json_serialize=lambda obj: json.dumps(obj, ensure_ascii=False)
            )
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if self._owns_session and session is not None and not session.closed:
            await session.close()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector of :attr:`dimensions` floats per text, in order.

        Blank texts are not sent (the API refuses empty input): their vector is all zeros,
        which is similar to nothing (:func:`cosine` 0). Batches are sent one after another;
        the first failure ends the call.
        """
        vectors: list[list[float]] = [[0.0] * self.dimensions for _ in texts]
        todo = [i for i, text in enumerate(texts) if text.strip()]
        for start in range(0, len(todo), self._batch_size):
            chunk = todo[start : start + self._batch_size]
            batch = [texts[i][:MAX_INPUT_CHARS] for i in chunk]
            for i, vector in zip(chunk, await self._request(batch), strict=True):
                vectors[i] = vector
        return vectors

    async def _request(self, batch: list[str]) -> list[list[float]]:
        if not model_allowed():
            raise EmbeddingError("not called: the token budget is spent", counts_as_failure=False)
        breaker = self.breaker
        if not breaker.allow():
            raise EmbeddingUnavailable(breaker.retry_after())
        payload = {"model": self.model, "input": batch, "dimensions": self.dimensions}
        try:
            try:
                async with self._http().post(
                    self._url, json=payload, headers=self._headers, timeout=self._timeout
                ) as resp:
                    body = await resp.read()
                    status = resp.status
            except TimeoutError as exc:
                raise EmbeddingError("request timed out") from exc
            except aiohttp.ClientError as exc:
                raise EmbeddingError(self._redact(_client_error_text(exc))) from exc
            if status != 200:
                raise self._http_error(status, body)
            vectors = self._parse(body, len(batch))
        except EmbeddingError as err:
            if err.counts_as_failure:
                breaker.record_failure()
            else:
                breaker.record_ignored()
            # Once a minute at most: a missing or failing endpoint must not flood the log.
            now = time.monotonic()
            if now - self._warned_at >= 60.0:
                self._warned_at = now
                log.warning("embeddings failed (lexical recall meanwhile): %s", err)
            else:
                log.debug("embeddings failed: %s", err)
            raise
        except BaseException:  # cancelled: says nothing about the service
            breaker.record_ignored()
            raise
        breaker.record_success()
        return vectors

    def _redact(self, text: str) -> str:
        text = text.strip()[:300]
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text

    def _http_error(self, status: int, body: bytes) -> EmbeddingError:
        code, message = "", ""
        try:
            data: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code") or "")
            message = str(err.get("message") or "")
        if not message:
            message = body.decode("utf-8", "replace") or f"HTTP {status}"
        num = int(code) if code.isdigit() else -1
        # 404: the endpoint is not there (a base URL without /embeddings): that is an outage
        # for us, so the breaker opens and later calls are refused without a request.
        bad_request = status in (400, 413, 422) or 1210 <= num <= 1299
        return EmbeddingError(
            self._redact(message),
            code=code,
            status=status,
            counts_as_failure=not bad_request or code == "1234",  # 1234: their network error
        )

    def _parse(self, body: bytes, count: int) -> list[list[float]]:
        try:
            data: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise EmbeddingError("answer is not JSON") from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != count:
            got = len(items) if isinstance(items, list) else "no"
            raise EmbeddingError(f"expected {count} embeddings, got {got}")
        count_usage(self.model, Usage.from_dict(data.get("usage")))
        vectors: list[list[float] | None] = [None] * count
        for item in items:
            index = item.get("index") if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
                raise EmbeddingError(f"bad or repeated embedding index {index!r}")
            if not isinstance(vector, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in vector
            ):
                raise EmbeddingError("embedding is not a list of numbers")
            if len(vector) != self.dimensions:
                raise EmbeddingError(
                    f"embedding has {len(vector)} dimensions, expected {self.dimensions}"
                )
            vectors[index] = [float(x) for x in vector]
        return [v for v in vectors if v is not None]


def _client_error_text(exc: aiohttp.ClientError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --- compact storage ------------------------------------------------------------------------

_SCALE = struct.Struct("<f")


def pack(vector: Sequence[float]) -> str:
    """``vector`` as base64 of its int8 quantisation: a float32 scale (max |x| / 127), then
    one signed byte per component. The error per component is at most scale / 2."""
    top = max((abs(x) for x in vector), default=0.0)
    if not math.isfinite(top):
        raise ValueError("vector has a non-finite component")
    scale = top / 127.0
    if scale > 0.0:
        scale = _SCALE.unpack(_SCALE.pack(scale))[0]  # the scale as stored (float32)
        inv = 1.0 / scale
        values = [round(x * inv) for x in vector]
        try:
            quantised = array("b", values)
        except OverflowError:  # a rounding hair past 127
            quantised = array("b", [max(-127, min(127, v)) for v in values])
    else:
        quantised = array("b", bytes(len(vector)))
    return base64.b64encode(_SCALE.pack(scale) + quantised.tobytes()).decode("ascii")


def unpack(text: str) -> list[float]:
    """The vector :func:`pack` stored; ``ValueError`` if ``text`` is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a packed vector") from None
    if len(raw) < _SCALE.size:
        raise ValueError("not a packed vector")
    (scale,) = _SCALE.unpack_from(raw)
    if not math.isfinite(scale) or scale < 0.0:
        raise ValueError("not a packed vector")
    quantised = array("b", raw[_SCALE.size :])
    return [q * scale for q in quantised]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity in -1..1; 0 when either vector is all zeros or their lengths differ."""
    if len(a) != len(b):
        return 0.0
    norm = math.hypot(*a) * math.hypot(*b)
    if norm == 0.0:
        return 0.0
    dot: float = sum(map(mul, a, b))
    if not math.isfinite(dot):
        return 0.0
    return max(-1.0, min(1.0, dot / norm))
