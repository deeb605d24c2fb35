"""Which older exchanges of a session relate to the new message: embeddings, else lexical.

Each exchange's vector (its question and the start of its answer) is computed after the turn,
off the answer's path, and kept with the session in ``meta["vectors"]``: the vector space tag
(model and dimensions, so a model change is noticed) and one int8-packed vector per exchange,
keyed by the time of its first message, for at most ``MAX_VECTORS`` of the newest exchanges.
Only the new message's vector is fetched on the answer's path, within ``QUERY_BUDGET``
seconds; when it does not come (no endpoint, slow, failing: the client's breaker), or an
exchange has no vector yet, the Korean-aware lexical score stands in.

A score in 0..1 per exchange: ``max(lexical, (cosine - COSINE_FLOOR) / (1 - COSINE_FLOOR))``,
so both scales meet at the window's one minimum (``LEXICAL_MIN``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import logging
from typing import TYPE_CHECKING, Any

from bot.context.embeddings import EmbeddingClient, EmbeddingError, VectorSpace, pack
from bot.context.window import Exchange, exchanges, lexical_scores
from bot.sessions.base import Session, SessionStore, SessionStoreError
from bot.turn import SessionKey

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

QUERY_BUDGET = 0.3  # seconds the new message's vector may take on the answer's path
MAX_VECTORS = 300  # newest exchanges that keep a vector in the session document
COSINE_FLOOR = 0.3  # a cosine at or below this counts as unrelated
EMBED_CHARS = 1_000  # what of an exchange is embedded: its question and the answer's start
_SCALE_BYTES = 4  # pack(): a float32 scale before the int8 components


def exchange_id(unit: Exchange) -> str:
    return repr(unit.messages[0].ts)


def exchange_text(unit: Exchange) -> str:
    return unit.text[:EMBED_CHARS]


def _vector(packed: str) -> np.ndarray[Any, np.dtype[np.float32]] | None:
    """The direction of a packed vector (its scale does not matter for a cosine)."""
    import numpy as np

    try:
        raw = base64.b64decode(packed)
    except ValueError:
        return None
    values = np.frombuffer(raw, dtype=np.int8, offset=_SCALE_BYTES).astype(np.float32)
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 0 else None


class EmbeddingRecall:
    """Scores a session's older exchanges for a new message; fills their vectors later."""

    def __init__(self, client: EmbeddingClient, *, query_budget: float = QUERY_BUDGET) -> None:
        self.client = client
        self.query_budget = query_budget
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def space(self) -> VectorSpace:
        return VectorSpace(self.client.model, self.client.dimensions)

    def stored(self, session: Session) -> dict[str, str]:
        """The session's vectors of this space (none when the model or dimensions changed)."""
        kept = session.meta.get("vectors")
        if not isinstance(kept, dict) or VectorSpace.from_tag(kept.get("space")) != self.space:
            return {}
        items = kept.get("items")
        return dict(items) if isinstance(items, dict) else {}

    async def scores(self, session: Session, query: str) -> list[float] | None:
        """A score per exchange of the history but the last (which always goes in)."""
        older = exchanges(session.history)[:-1]
        if not older:
            return None
        lexical = lexical_scores(query, [u.question for u in older])
        vectors = self.stored(session)
        if not vectors:
            return lexical
        try:
            async with asyncio.timeout(self.query_budget):
                (wanted,) = await self.client.embed([query])
        except (EmbeddingError, TimeoutError) as exc:
            log.info("query embedding unavailable, lexical recall: %s", exc)
            return lexical
        # Imported on first use: 0.1 s and 11 MB at start-up that runs without an embedding
        # endpoint (offline) never need.
        import numpy as np

        target = np.asarray(wanted, dtype=np.float32)
        norm = float(np.linalg.norm(target))
        if norm == 0:
            return lexical
        target /= norm
        scored = []
        for unit, lex in zip(older, lexical, strict=True):
            packed = vectors.get(exchange_id(unit))
            vector = _vector(packed) if packed else None
            if vector is None or vector.shape != target.shape:
                scored.append(lex)
                continue
            cos = float(vector @ target)
            scored.append(max(lex, (cos - COSINE_FLOOR) / (1 - COSINE_FLOOR)))
        return scored

    # --- after the turn ---------------------------------------------------------------------

    def schedule(self, store: SessionStore, key: SessionKey) -> None:
        """Compute the vectors the session lacks, in the background (one task a session)."""
        name = str(key)
        if name in self._tasks:
            return
        # A fresh context: not the turn's deadline, nor its record of held locks.
        task = asyncio.get_running_loop().create_task(
            self._fill(store, key), name=f"vectors:{name}", context=contextvars.Context()
        )
        self._tasks[name] = task
        task.add_done_callback(lambda _: self._tasks.pop(name, None))

    async def _fill(self, store: SessionStore, key: SessionKey) -> None:
        try:
            session = await store.load(key)
            have = self.stored(session)
            missing = [
                u for u in exchanges(session.history)[-MAX_VECTORS:] if exchange_id(u) not in have
            ]
            if not missing:
                return
            # The model call runs without the lock, so no turn of the session waits for it.
            found = await self.client.embed([exchange_text(u) for u in missing])
            fresh = {exchange_id(u): pack(v) for u, v in zip(missing, found, strict=True)}
            async with store.lock(key):
                session = await store.load(key)
                self.merge(session, fresh)
                await store.save(session)
        except (EmbeddingError, SessionStoreError) as exc:
            log.info("exchange vectors not computed session=%s: %s", key, exc)
        except Exception:  # a background task must never die unseen
            log.exception("exchange vectors failed session=%s", key)

    def merge(self, session: Session, fresh: dict[str, str]) -> None:
        """Add ``fresh`` vectors for exchanges still in the history; keep the newest only."""
        present = [exchange_id(u) for u in exchanges(session.history)][-MAX_VECTORS:]
        items = {**self.stored(session), **fresh}
        session.meta["vectors"] = {
            "space": self.space.tag,
            "items": {i: items[i] for i in present if i in items},
        }

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks.values()))

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(BaseException):
                await task
        await self.client.close()
