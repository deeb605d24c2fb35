"""Manager overhead against the fake GLM at zero latency: per turn, per token, fallbacks.

Run: .venv/bin/python bench/bench_manager.py [--turns 500]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Sequence

from bench.common import banner, redis_server, summary
from bot.forms.extractors import CityGazetteer
from bot.forms.korean import KoreanAnalyzer
from bot.glm.breaker import CircuitBreaker
from bot.glm.client import GlmClient
from bot.glm.guarded import GuardedGlm
from bot.glm.types import ChatRequest, Chunk
from bot.manager import ConversationManager, ManagerConfig, TurnResult
from bot.ratelimit import MemoryRateLimiter, RedisRateLimiter
from bot.reply import Button, ReplyStream
from bot.sessions.base import SessionStore
from bot.sessions.memory import MemorySessionStore
from bot.sessions.redis import RedisSessionStore
from bot.suggest.catalog import DEFAULT_CATALOG, Catalog
from bot.suggest.engine import BuiltinRecommender
from bot.suggest.profile import build_profile_store
from bot.suggest.service import Suggestions
from bot.suggest.topics import TopicGazetteer
from bot.turn import Turn
from tests.fakes.glm import Error, FakeGlm, Reply


class TimedClient(GlmClient):
    """Stamps each chunk when the client has parsed it, before the bot's pipeline sees it."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.stamps: list[float] = []

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        async for chunk in super().stream(request):
            if chunk.content:
                self.stamps.append(time.perf_counter())
            yield chunk


class TimedReply(ReplyStream):
    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.done = 0.0

    async def start(self) -> None:
        return None

    def append(self, text: str) -> None:
        self.stamps.append(time.perf_counter())

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        self.done = time.perf_counter()

    async def fail(self, notice: str) -> None:
        self.done = time.perf_counter()

    async def retract(self, notice: str) -> None:
        self.done = time.perf_counter()


def build(
    fake: FakeGlm, store: SessionStore, suggestions: Suggestions | None = None, **guards: object
) -> tuple[ConversationManager, TimedClient]:
    client = TimedClient(base_url=fake.base_url, api_key=fake.api_key)
    glm = GuardedGlm(client, model="glm-4.5", **guards)  # type: ignore[arg-type]
    # As the app builds it: the per-user rate limit on the store's backend (default 20/min).
    limiter = (
        RedisRateLimiter(store.client, 20)
        if isinstance(store, RedisSessionStore)
        else MemoryRateLimiter(20)
    )
    manager = ConversationManager(
        store=store,
        glm=glm,
        config=ManagerConfig(),
        clock=time.monotonic,
        rate_limiter=limiter,
        suggestions=suggestions,
    )
    return manager, client


def suggestions_on(store: SessionStore) -> Suggestions:
    """As the app builds them (profiles where the sessions are), Kiwi loaded."""
    return Suggestions(
        TopicGazetteer.load(),
        build_profile_store(store),
        BuiltinRecommender(Catalog.load(DEFAULT_CATALOG)),
        analyzer=KoreanAnalyzer(proper_nouns=CityGazetteer.load().korean_names()),
    )


async def overhead(
    fake: FakeGlm,
    store: SessionStore,
    label: str,
    turns: int,
    suggestions: Suggestions | None = None,
    text: str = "서울 날씨 알려줘",
) -> None:
    manager, client = build(fake, store, suggestions)
    tokens = [f"토큰{i} " for i in range(50)]
    fake.default = Reply("".join(tokens), chunks=tokens)
    per_turn: list[float] = []
    on_wire: list[float] = []
    per_token: list[float] = []
    visible: list[float] = []
    for i in range(turns):
        client.stamps.clear()
        reply = TimedReply()
        turn = Turn(
            platform="bench",
            chat_id=str(i % 50),
            user_id=str(i % 50),
            text=text,
            delivery_id=f"{label}-{i}",
        )
        result = await manager.handle(turn, reply)
        assert result is TurnResult.ANSWERED, result
        t = manager.last_timings
        if i >= 20:  # warm-up: connection pool, code paths
            per_turn.append(t.request_sent - t.received)
            on_wire.append(fake.last_request.time - t.received)
            per_token.extend(a - b for a, b in zip(reply.stamps, client.stamps, strict=True))
            visible.append(reply.stamps[0] - t.received)
    if suggestions is not None:
        await suggestions.drain()
    await client.close()
    print(f"   [{label}] turn received -> request handed to the client: {summary(per_turn)}")
    print(f"   [{label}] turn received -> request read by the fake GLM: {summary(on_wire)}")
    print(f"   [{label}] token parsed -> ReplyStream.append: {summary(per_token, 'us')}")
    print(f"   [{label}] turn received -> first text appended: {summary(visible)}")


async def breaker_fallback(fake: FakeGlm, runs: int) -> None:
    breaker = CircuitBreaker(min_calls=1, failure_rate=0.5, open_seconds=3600)
    manager, client = build(fake, MemorySessionStore(), breaker=breaker)
    fake.enqueue(*[Error(401, "1000", "Authentication Failed")] * 2)
    await manager.handle(
        Turn(platform="bench", chat_id="x", user_id="x", text="열기"), TimedReply()
    )
    assert breaker.state == "open"
    times = []
    for i in range(runs):
        reply = TimedReply()
        start = time.perf_counter()
        result = await manager.handle(
            Turn(platform="bench", chat_id=str(i), user_id=str(i), text="안녕"), reply
        )
        assert result is TurnResult.FALLBACK
        times.append(reply.done - start)
    await client.close()
    print(f"   breaker open -> fallback shown: {summary(times)}")


async def deadline_fallback(fake: FakeGlm, runs: int, deadline: float) -> None:
    manager, client = build(
        fake,
        MemorySessionStore(),
        first_token_timeout=deadline,
        breaker=CircuitBreaker(min_calls=10_000),
    )
    fake.default = Reply("늦은 답", first_delay=deadline + 5)
    lateness = []
    for i in range(runs):
        reply = TimedReply()
        start = time.perf_counter()
        await manager.handle(
            Turn(platform="bench", chat_id=str(i), user_id=str(i), text="안녕"), reply
        )
        lateness.append(reply.done - start - deadline)
    await client.close()
    print(f"   deadline {deadline:g}s -> fallback shown, past the deadline: {summary(lateness)}")


async def main(turns: int) -> None:
    banner("ConversationManager overhead (bench/bench_manager.py)")
    print(
        f"   fake GLM on loopback at zero latency, 50 chunks per answer, {turns} turns "
        "per store (first 20 are warm-up), 50 sessions"
    )
    async with FakeGlm() as fake:
        await overhead(fake, MemorySessionStore(), "memory", turns)
        # The same turns with suggestions on, about Python: interests are read, profiles
        # updated and offers made while the answer streams (the first text must not wait).
        python = "파이썬 코드 최적화하는 방법 알려줘"
        await overhead(fake, MemorySessionStore(), "memory, no suggestions", turns, None, python)
        store = MemorySessionStore()
        await overhead(fake, store, "memory, suggestions", turns, suggestions_on(store), python)
        with redis_server() as url:
            store = RedisSessionStore.from_url(url, cluster=False, ttl_seconds=30 * 86400)
            try:
                await overhead(fake, store, "redis", turns)
            finally:
                await store.close()
        await breaker_fallback(fake, 200)
        await deadline_fallback(fake, 10, 0.5)


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)  # the fallback runs log each miss; the figures are the point
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=500)
    asyncio.run(main(parser.parse_args().turns))
