"""FakeEmbeddings: an OpenAI/Z.AI-compatible ``POST /embeddings`` on real loopback HTTP, for tests.

Serves ``http://127.0.0.1:PORT/api/paas/v4/embeddings`` with the real response shape
(``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
"usage"}``), floats or, when asked (``encoding_format: "base64"``, what the ``openai``
package asks for by default), base64 float32. Errors have Z.AI's body
``{"error": {"code", "message"}}``: 401/1001 without a key, 401/1000 with a wrong one, 400/1214
for a bad parameter (more than 64 inputs, an empty input, unsupported dimensions), 400/1211 for
an unknown model.

Vectors are deterministic (:func:`fake_vector`): features of the text (Hangul syllable
bigrams, a lone syllable as itself, lowercased words of other scripts, numbers) hashed into
``dimensions`` signed buckets and L2-normalised, so texts that share words are similar and
unrelated texts are nearly orthogonal.

Tests can script the next answers (:class:`Answer` with a delay, reversed order or wrong
dimensions; :class:`Error`; :class:`Malformed`; :class:`Drop`) and read what was asked
(:attr:`FakeEmbeddings.requests`). Imports nothing from the bot.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.zai import API_PREFIX, LoopbackServer

__all__ = [
    "API_PREFIX",
    "MAX_INPUTS",
    "Answer",
    "Behaviour",
    "Drop",
    "Error",
    "FakeEmbeddings",
    "Malformed",
    "RecordedEmbeddingRequest",
    "cosine",
    "fake_vector",
]

MAX_INPUTS = 64
# Z.AI: embedding-3 gives 256, 512, 1024 or 2048 dimensions (2048 unless asked); embedding-2
# always 1024.
MODELS: dict[str, tuple[int, ...]] = {
    "embedding-3": (256, 512, 1024, 2048),
    "embedding-2": (1024,),
}
AUTH_MISSING = ("1001", "Authentication parameter not received in Header")
AUTH_FAILED = ("1000", "Authentication Failed")


# --- vectors --------------------------------------------------------------------------------

_FEATURES = re.compile(r"[\uac00-\ud7a3]+|[\u3040-\u30ff\u4e00-\u9fff]+|\d+|[^\W\d_]+")
_SYLLABLES = re.compile(r"[\uac00-\ud7a3\u3040-\u30ff\u4e00-\u9fff]")


def _features(text: str) -> list[str]:
    out: list[str] = []
    for token in _FEATURES.findall(text.lower()):
        if _SYLLABLES.match(token):
            if len(token) == 1:
                out.append(token)
            else:
                out.extend(token[i : i + 2] for i in range(len(token) - 1))
        else:
            out.append(token)
    return out or [text]


def fake_vector(text: str, dimensions: int) -> list[float]:
    """The fake's embedding of ``text``: hashed features in signed buckets, unit length."""
    vector = [0.0] * dimensions
    for feature in _features(text):
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        number = int.from_bytes(digest, "little")
        vector[number % dimensions] += 1.0 if number >> 63 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # features cancelled out: any fixed unit vector will do
        vector[0], norm = 1.0, 1.0
    return [x / norm for x in vector]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


# --- behaviours -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A normal answer, after ``delay`` seconds; ``reverse`` lists the data last index first
    (the API may order them as it likes); ``dimensions`` overrides the vectors' length."""

    delay: float = 0.0
    reverse: bool = False
    dimensions: int | None = None


@dataclass(frozen=True)
class Error:
    """An HTTP error with Z.AI's body."""

    status: int = 500
    code: str = "500"
    message: str = "Internal Server Error"


@dataclass(frozen=True)
class Malformed:
    """HTTP 200 with a truncated JSON body."""


@dataclass(frozen=True)
class Drop:
    """The connection is cut before any response."""


Behaviour = Answer | Error | Malformed | Drop


@dataclass(frozen=True)
class RecordedEmbeddingRequest:
    path: str
    headers: dict[str, str]  # lowercased names
    json: dict[str, Any]
    time: float  # time.monotonic() when the request arrived

    @property
    def inputs(self) -> list[str]:
        value = self.json.get("input")
        if isinstance(value, str):
            return [value]
        return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []

    @property
    def model(self) -> str:
        return str(self.json.get("model") or "")

    @property
    def dimensions(self) -> int | None:
        value = self.json.get("dimensions")
        return value if isinstance(value, int) else None


# --- the fake -------------------------------------------------------------------------------


class FakeEmbeddings(LoopbackServer):
    """``/embeddings`` on ``http://127.0.0.1:PORT/api/paas/v4``; every request is recorded.

    Authentication and validation come first (they consume no script entry); then the next
    enqueued behaviour answers, or :attr:`default` (``Answer()``) once the queue is empty.
    """

    def __init__(self, api_key: str = "test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[RecordedEmbeddingRequest] = []
        self.default: Behaviour = Answer()
        self._script: deque[Behaviour] = deque()
        self.in_flight = 0
        self.cancelled = 0  # requests whose client went away before the answer

    def routes(self, app: web.Application) -> None:
        app.router.add_post(f"{API_PREFIX}/embeddings", self._handle)

    # -- scripting --

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Answer the next valid requests with these behaviours, one per request, in order."""
        self._script.extend(behaviours)

    @property
    def pending(self) -> int:
        return len(self._script)

    def batches(self) -> list[list[str]]:
        """The inputs of every request, in arrival order."""
        return [r.inputs for r in self.requests]

    # -- serving --

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            payload = None
        recorded = RecordedEmbeddingRequest(
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            json=payload if isinstance(payload, dict) else {},
            time=time.monotonic(),
        )
        self.requests.append(recorded)

        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        if not token:
            return _error(401, *AUTH_MISSING)
        if token != self.api_key:
            return _error(401, *AUTH_FAILED)
        if not isinstance(payload, dict):
            return _error(400, "1210", "Invalid API parameter: body is not JSON")
        problem = _validate(payload)
        if problem is not None:
            return problem

        behaviour = self._script.popleft() if self._script else self.default
        self.in_flight += 1
        try:
            return await self._answer(request, payload, behaviour)
        except asyncio.CancelledError:
            if not self.closing.is_set() and not isinstance(behaviour, Drop):
                self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    async def _answer(
        self, request: web.Request, payload: dict[str, Any], b: Behaviour
    ) -> web.StreamResponse:
        if isinstance(b, Error):
            return _error(b.status, b.code, b.message)
        if isinstance(b, Malformed):
            return web.Response(status=200, body=b'{"data": [', content_type="application/json")
        if isinstance(b, Drop):
            if request.transport is not None:
                request.transport.abort()
            await asyncio.sleep(3600)  # the lost connection cancels this handler
            raise AssertionError("unreachable")
        if b.delay > 0:
            try:
                async with asyncio.timeout(b.delay):
                    await self.closing.wait()
            except TimeoutError:
                pass
        model = str(payload["model"])
        inputs = payload["input"]
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        dimensions = b.dimensions or payload.get("dimensions") or MODELS[model][-1]
        as_base64 = payload.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            vector = fake_vector(text, dimensions)
            embedding: Any = vector
            if as_base64:
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        if b.reverse:
            data.reverse()
        tokens = sum(max(1, len(text) // 2) for text in texts)
        body = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
        }
        return web.json_response(body, dumps=lambda obj: json.dumps(obj, ensure_ascii=False))


def _validate(payload: dict[str, Any]) -> web.Response | None:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        return _error(400, "1214", "Invalid API parameter: model")
    if model not in MODELS:
        return _error(400, "1211", f"Model does not exist: {model}")
    inputs = payload.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts:
        return _error(400, "1214", "Invalid API parameter: input must be a string or a list")
    if len(texts) > MAX_INPUTS:
        return _error(
            400, "1214", f"Invalid API parameter: input has {len(texts)} items, at most 64"
        )
    if not all(isinstance(t, str) and t for t in texts):
        return _error(400, "1214", "Invalid API parameter: input items must be non-empty text")
    dimensions = payload.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or dimensions not in MODELS[model]
    ):
        allowed = ", ".join(map(str, MODELS[model]))
        return _error(400, "1214", f"Invalid API parameter: dimensions must be one of {allowed}")
    encoding = payload.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        return _error(400, "1214", "Invalid API parameter: encoding_format")
    return None


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    return web.json_response(
        body, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
    )
