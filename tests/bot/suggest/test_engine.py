"""The recommendation engines: the built-in ranking, the service client against the fake
(real loopback HTTP), and the fallback between them."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import aiohttp
import pytest

from bot.glm.breaker import CircuitBreaker
from bot.suggest.catalog import DEFAULT_CATALOG, TOPIC_IDS, Catalog, CatalogItem, ItemLanguage
from bot.suggest.engine import (
    BuiltinRecommender,
    FallbackRecommender,
    HttpRecommender,
    RecommenderError,
    RecommendRequest,
    build_recommender,
)
from tests.bot.helpers import FakeClock, state
from tests.fakes.recommender import FakeRecommender

TODAY = date(2026, 6, 1)


def entry(
    item_id: str,
    *topics: str,
    language: ItemLanguage = "en",
    published: date | None = TODAY,
) -> CatalogItem:
    return CatalogItem(
        id=item_id,
        title={"en": item_id.title()},
        url=f"https://example.com/{item_id}",
        topics=topics,
        language=language,
        published=published,
    )


def ranking(
    items: list[CatalogItem],
    profile: dict[str, float] | None = None,
    *,
    focus: str = "python",
    lang: str = "en",
    seen: frozenset[str] = frozenset(),
    limit: int = 10,
) -> list[str]:
    engine = BuiltinRecommender(Catalog(items), clock=lambda: TODAY)
    request = RecommendRequest(
        user="u1",
        lang=lang,
        profile=profile if profile is not None else {focus: 1.0},
        focus=focus,
        seen=seen,
        limit=limit,
    )
    return [item.id for item in engine.rank(request)]


def request(**fields: Any) -> RecommendRequest:
    base: dict[str, Any] = {
        "user": "tg:9f2c",
        "lang": "ko",
        "profile": {"python": 1.0, "performance": 0.5},
        "focus": "python",
    }
    base.update(fields)
    return RecommendRequest(**base)


# ---- the built-in ranking ------------------------------------------------------------------


def test_only_items_about_the_focus_are_recommended() -> None:
    items = [entry("a", "python"), entry("b", "rust", "performance"), entry("c", "performance")]
    profile = {"performance": 1.0, "rust": 1.0, "python": 0.1}
    assert ranking(items, profile) == ["a"]
    assert ranking(items, profile, focus="rust") == ["b"]
    assert ranking(items, profile, focus="cooking") == []


def test_topics_the_user_cares_about_rank_higher() -> None:
    items = [
        entry("only-python", "python"),
        entry("python-perf", "python", "performance"),
        entry("python-web", "python", "web_development"),
    ]
    assert ranking(items, {"python": 1.0, "performance": 0.8})[0] == "python-perf"
    assert ranking(items, {"python": 1.0, "web_development": 0.8})[0] == "python-web"
    # A topic the user has no interest in makes an item broader, not better.
    assert ranking(items, {"python": 1.0}) == ["only-python", "python-perf", "python-web"]
    # A faint second interest does not outweigh a focused item...
    assert ranking(items, {"python": 1.0, "performance": 0.2})[0] == "only-python"
    # ...and scores are relative: the same profile at another scale ranks the same.
    profile = {"python": 3.0, "performance": 2.4, "web_development": 0.3}
    scaled = {topic: score * 100 for topic, score in profile.items()}
    assert ranking(items, profile) == ranking(items, scaled)
    assert ranking(items, profile)[0] == "python-perf"


def test_the_focus_counts_even_when_the_profile_lacks_it() -> None:
    items = [entry("a", "python", "performance"), entry("b", "python", "java")]
    assert ranking(items, {"performance": 5.0}) == ["a", "b"]
    assert ranking(items, {}) == ["a", "b"]  # equal scores: by id


def test_an_item_tagged_with_everything_loses_to_a_focused_one() -> None:
    items = [
        entry("broad", "python", "performance", "java", "cpp", "golang", "rust"),
        entry("focused", "python", "performance"),
    ]
    assert ranking(items, {"python": 1.0, "performance": 1.0}) == ["focused", "broad"]


def test_unusable_profile_scores_are_ignored() -> None:
    items = [entry("a", "python", "performance"), entry("b", "python", "rust")]
    profile = {"python": 1.0, "performance": float("nan"), "rust": -3.0, "sql": float("inf")}
    assert ranking(items, profile) == ["a", "b"]
    assert ranking(items, {"python": 1.0, "rust": 0.9, "performance": float("nan")}) == ["b", "a"]


def test_newer_items_rank_higher_and_undated_ones_in_between() -> None:
    items = [
        entry("old", "python", published=TODAY - timedelta(days=3 * 365)),
        entry("new", "python", published=TODAY - timedelta(days=30)),
        entry("undated", "python", published=None),
        entry("future", "python", published=TODAY + timedelta(days=400)),
    ]
    assert ranking(items) == ["future", "new", "undated", "old"]
    # Undated means one half-life old.
    year = [entry("a-year-old", "python", published=TODAY - timedelta(days=365)), items[2]]
    assert ranking(year) == ["a-year-old", "undated"]  # equal scores: by id


def test_relevance_outweighs_age() -> None:
    items = [
        entry("new-python", "python", published=TODAY),
        entry("old-python-perf", "python", "performance", published=TODAY - timedelta(3 * 365)),
    ]
    assert ranking(items, {"python": 1.0, "performance": 1.0}) == ["old-python-perf", "new-python"]
    # A weak second interest does not make up for the age.
    assert ranking(items, {"python": 1.0, "performance": 0.5}) == ["new-python", "old-python-perf"]


def test_language_order_for_korean_users() -> None:
    items = [
        entry("english", "python", language="en"),
        entry("korean", "python", language="ko"),
        entry("neutral", "python", language="any"),
    ]
    assert ranking(items, lang="ko") == ["korean", "neutral", "english"]
    # A somewhat more relevant English item does not beat a Korean one...
    items.append(entry("english-perf", "python", "performance", language="en"))
    profile = {"python": 1.0, "performance": 1.0, "data_analysis": 1.0}
    assert ranking(items, profile, lang="ko")[:2] == ["korean", "english-perf"]
    # ...a much more relevant one does.
    items.append(entry("english-data-perf", "python", "performance", "data_analysis"))
    assert ranking(items, profile, lang="ko")[:2] == ["english-data-perf", "korean"]


def test_korean_items_are_left_out_for_everyone_else() -> None:
    items = [
        entry("english", "python", language="en"),
        entry("korean", "python", language="ko"),
        entry("neutral", "python", language="any"),
    ]
    assert ranking(items, lang="en") == ["english", "neutral"]
    assert ranking(items, lang="ja") == ["english", "neutral"]  # as the bot's strings: English


def test_seen_items_are_never_recommended() -> None:
    items = [entry(f"i{n}", "python") for n in range(5)]
    assert ranking(items, seen=frozenset({"i0", "i2", "other"})) == ["i1", "i3", "i4"]
    assert ranking(items, seen=frozenset(f"i{n}" for n in range(5))) == []


def test_limit() -> None:
    items = [entry(f"i{n}", "python", published=TODAY - timedelta(n)) for n in range(6)]
    assert ranking(items, limit=3) == ["i0", "i1", "i2"]
    assert ranking(items, limit=1) == ["i0"]
    assert ranking(items, limit=0) == []
    assert ranking(items, limit=-1) == []
    assert len(ranking(items, limit=50)) == 6


def random_items(
    rng: random.Random,
    ids: list[str],
    *,
    most_topics: int,
    published: Callable[[], date | None],
) -> list[CatalogItem]:
    """Python items with up to ``most_topics`` other topics, a random language and date."""
    return [
        entry(
            item_id,
            "python",
            *rng.sample(TOPIC_IDS[1:], rng.randint(0, most_topics)),
            language=rng.choice(["ko", "en", "any"]),
            published=published(),
        )
        for item_id in ids
    ]


def test_the_ranking_is_deterministic() -> None:
    rng = random.Random(7)
    items = random_items(
        rng,
        [f"item-{n:03}" for n in range(200)],
        most_topics=3,
        published=lambda: rng.choice([None, TODAY - timedelta(rng.randint(0, 900)), TODAY]),
    )
    profile = {"python": 1.0, "performance": 0.7, "rust": 0.4}
    expected = ranking(items, profile, lang="ko")
    assert len(expected) == 10
    for _ in range(5):
        rng.shuffle(items)
        assert ranking(items, profile, lang="ko") == expected
    # Ties go by id: identical items in any catalog order.
    twins = [entry(name, "python") for name in ("b", "c", "a")]
    assert ranking(twins) == ["a", "b", "c"]


async def test_the_sample_catalog_answers_python_performance_in_korean() -> None:
    engine = BuiltinRecommender(Catalog.load(DEFAULT_CATALOG), clock=lambda: TODAY)
    items = await engine.recommend(request(profile={"python": 1.0, "performance": 0.9}))
    assert len(items) == 3
    assert all("python" in item.topics for item in items)
    assert any("performance" in item.topics for item in items)
    assert any(item.language == "ko" for item in items)
    english = await engine.recommend(request(lang="en"))
    assert [item.language for item in english] == ["en", "en", "en"]


def test_ranking_a_thousand_items_is_fast() -> None:
    rng = random.Random(1)
    items = random_items(
        rng,
        [f"i{n}" for n in range(1000)],
        most_topics=4,
        published=lambda: None if rng.random() < 0.2 else TODAY - timedelta(rng.randint(0, 2000)),
    )
    engine = BuiltinRecommender(Catalog(items), clock=lambda: TODAY)
    profile = {topic: rng.random() for topic in rng.sample(TOPIC_IDS, 10)}
    req = request(profile=profile, seen=frozenset(f"i{n}" for n in range(50)))
    engine.rank(req)
    runs = 50
    started = time.perf_counter()
    for _ in range(runs):
        assert len(engine.rank(req)) == 3
    per_call = (time.perf_counter() - started) / runs
    assert per_call < 0.025, f"{per_call * 1000:.2f} ms per call"  # about 1 ms measured


# ---- the recommender service ---------------------------------------------------------------

CATALOG = Catalog(
    [
        entry("py-docs", "python", language="any"),
        entry("py-perf", "python", "performance"),
        entry("py-ko", "python", language="ko"),
    ]
)

FULL_ITEM: dict[str, Any] = {
    "id": "ext-1",
    "title": {"ko": "외부 자료", "en": "External"},
    "url": "https://recs.example.com/1",
    "topics": ["python", "performance"],
    "language": "ko",
    "published": "2025-01-02",
    "summary": {"ko": "요약"},
    "score": 0.93,  # the service's own fields are ignored
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeRecommender]:
    async with FakeRecommender(slow_seconds=5.0) as server:
        yield server


@pytest.fixture
async def clients() -> AsyncIterator[list[HttpRecommender]]:
    made: list[HttpRecommender] = []
    yield made
    for client in made:
        await client.close()


@pytest.fixture
def make(fake: FakeRecommender, clients: list[HttpRecommender]) -> Callable[..., HttpRecommender]:
    def factory(**options: Any) -> HttpRecommender:
        options.setdefault("timeout", 0.3)
        client = HttpRecommender(options.pop("url", fake.url), CATALOG, **options)
        clients.append(client)
        return client

    return factory


async def test_the_request_follows_the_contract(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    fake.answer = [FULL_ITEM]
    client = make()
    items = await client.recommend(
        request(
            profile={"python": 1.0, "performance": 0.25, "rust": float("nan"), "sql": 0.0},
            seen=frozenset({"b", "a"}),
            limit=2,
        )
    )
    assert len(fake.requests) == 1
    sent = fake.requests[0]
    assert sent.json == {
        "user": "tg:9f2c",
        "lang": "ko",
        "profile": {"python": 1.0, "performance": 0.25},  # only usable scores
        "focus": "python",
        "seen": ["a", "b"],
        "limit": 2,
    }
    assert sent.headers["Content-Type"] == "application/json"
    assert items == [
        CatalogItem(
            id="ext-1",
            title={"ko": "외부 자료", "en": "External"},
            url="https://recs.example.com/1",
            topics=("python", "performance"),
            language="ko",
            published=date(2025, 1, 2),
            summary={"ko": "요약"},
        )
    ]


async def test_items_by_id_come_from_the_catalog(
    fake: FakeRecommender, make: Callable[..., HttpRecommender], caplog: pytest.LogCaptureFixture
) -> None:
    fake.answer = ["py-perf", "no-such-item", {"id": "py-docs", "score": 1}, FULL_ITEM]
    with caplog.at_level(logging.INFO, logger="bot.suggest.engine"):
        items = await make().recommend(request())
    assert [item.id for item in items] == ["py-perf", "py-docs", "ext-1"]
    assert items[0] is CATALOG.get("py-perf")
    assert "1 item id(s) not in the catalog" in caplog.text


async def test_a_minimal_full_item(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    fake.answer = [{"id": "x", "title": "Plain", "url": "http://a.example/", "topics": ["sql"]}]
    [item] = await make().recommend(request())
    assert item.title == {"en": "Plain"} and item.language == "any" and item.published is None


async def test_limit_seen_and_duplicates_are_enforced_by_the_client(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    fake.answer = ["py-docs", "py-perf", "py-docs", "py-ko", FULL_ITEM]
    items = await make().recommend(request(seen=frozenset({"py-perf"}), limit=2))
    assert [item.id for item in items] == ["py-docs", "py-ko"]


async def test_an_empty_answer_is_an_answer(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    fake.answer = ["unknown-1", "unknown-2"]
    assert await make().recommend(request()) == []
    fake.answer = []
    assert await make().recommend(request()) == []


async def test_limit_zero_asks_nothing(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    assert await make().recommend(request(limit=0)) == []
    assert fake.requests == []


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("slow", "no answer within 0.3 s"),
        ("error", "HTTP 500"),
        ("malformed", "the body is not JSON (21 bytes)"),
        ("down", "ServerDisconnectedError"),
    ],
)
async def test_each_failure_mode_is_an_error(
    fake: FakeRecommender, make: Callable[..., HttpRecommender], mode: Any, expected: str
) -> None:
    fake.mode = mode
    fake.answer = ["py-docs"]
    client = make()
    started = time.perf_counter()
    with pytest.raises(RecommenderError, match="^" + re.escape(expected)):
        await client.recommend(request())
    assert time.perf_counter() - started < 1.0  # the timeout, not the fake's 5 s
    assert len(fake.requests) == 1


async def test_a_service_that_is_not_there(make: Callable[..., HttpRecommender]) -> None:
    async with FakeRecommender() as gone:
        url = gone.url
    # Refused at once; on a loaded machine the refusal may come after the timeout instead.
    with pytest.raises(RecommenderError, match=r"ClientConnectorError|no answer within"):
        await make(url=url).recommend(request())


BAD_BODIES: list[tuple[Any, str]] = [
    (["py-docs"], 'the body is not {"items": [...]}'),
    ({"recommendations": []}, 'the body is not {"items": [...]}'),
    ({"items": {"id": "py-docs"}}, 'the body is not {"items": [...]}'),
    ({"items": ["py-docs"]}, "items[0]: expected an object"),
    ({"items": [{"id": "py-docs"}, {"id": 7}]}, "items[1]: id: expected a non-empty string"),
    ({"items": [{"score": 1}]}, "items[0]: id: expected a non-empty string"),
    ({"items": [{**FULL_ITEM, "url": "ftp://x.example/"}]}, "items[0]: url: 'ftp://x.example/'"),
    ({"items": [{**FULL_ITEM, "url": None}]}, "items[0]: url: required"),
    ({"items": [{**FULL_ITEM, "topics": []}]}, "items[0]: topics: required"),
    ({"items": [{"id": "x", "title": "only a title"}]}, "items[0]: url: required"),
    ({"items": [{**FULL_ITEM, "language": "fr"}]}, "items[0]: language: 'fr'"),
    ({"items": [{**FULL_ITEM, "published": "soon"}]}, "items[0]: published: 'soon'"),
    ({"items": [{**FULL_ITEM, "title": {}}]}, "items[0]: title: needs at least one"),
    ({"items": [FULL_ITEM, {**FULL_ITEM, "id": "a b"}]}, "items[1]: id: 'a b'"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_BODIES)
async def test_a_malformed_answer_is_rejected_whole(
    fake: FakeRecommender, make: Callable[..., HttpRecommender], body: Any, expected: str
) -> None:
    fake.body = body
    with pytest.raises(RecommenderError) as caught:
        await make().recommend(request())
    assert str(caught.value).startswith(expected), str(caught.value)


async def test_errors_do_not_carry_the_body(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    secret = "internal-note-" + "s" * 40
    fake.body = {"items": [{**FULL_ITEM, "url": "gopher://x/", "summary": {"en": secret}}]}
    with pytest.raises(RecommenderError) as caught:
        await make().recommend(request())
    assert secret not in str(caught.value)
    fake.body = {"items": [], "padding": "x" * (300 * 1024)}
    with pytest.raises(RecommenderError, match="larger than 262144 bytes"):
        await make().recommend(request())


async def test_a_large_body_without_a_length_is_cut(
    make: Callable[..., HttpRecommender],
) -> None:
    from aiohttp import web

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length
        await response.prepare(request)
        for _ in range(40):
            await response.write(b" " * 8192)
        await response.write(b'{"items": []}')
        return response

    app = web.Application()
    app.router.add_post("/", chunked)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        with pytest.raises(RecommenderError, match="larger than"):
            await make(url=f"http://{host}:{port}/").recommend(request())
    finally:
        await runner.cleanup()


async def test_the_breaker_opens_and_then_fails_fast(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(window_seconds=60, min_calls=3, open_seconds=30, clock=clock)
    client = make(breaker=breaker)
    fake.mode = "error"
    for n in range(3):
        with pytest.raises(RecommenderError, match="HTTP 500"):
            await client.recommend(request(focus=f"topic{n}"))  # not cached: errors never are
    assert state(breaker) == "open" and len(fake.requests) == 3
    fake.mode = "up"
    fake.answer = ["py-docs"]
    started = time.perf_counter()
    with pytest.raises(RecommenderError, match="circuit breaker is open"):
        await client.recommend(request())
    assert time.perf_counter() - started < 0.05
    assert len(fake.requests) == 3  # not called
    clock.advance(30)  # half-open: one probe; it succeeds and closes the breaker
    assert [i.id for i in await client.recommend(request())] == ["py-docs"]
    assert state(breaker) == "closed" and len(fake.requests) == 4


@pytest.mark.parametrize("mode", ["slow", "malformed", "down"])
async def test_every_failure_mode_counts_for_the_breaker(
    fake: FakeRecommender, make: Callable[..., HttpRecommender], mode: Any
) -> None:
    breaker = CircuitBreaker(min_calls=2, open_seconds=30)
    client = make(breaker=breaker, timeout=0.1)
    fake.mode = mode
    for _ in range(2):
        with pytest.raises(RecommenderError):
            await client.recommend(request())
    assert state(breaker) == "open"


async def test_a_cancelled_call_says_nothing_about_the_service(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    breaker = CircuitBreaker(min_calls=1, open_seconds=30)
    client = make(breaker=breaker, timeout=5.0)
    fake.mode = "slow"
    task = asyncio.create_task(client.recommend(request()))
    await asyncio.wait_for(fake.arrived.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state(breaker) == "closed" and breaker.calls_in_window == 0


async def test_answers_are_cached(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    clock = FakeClock()
    client = make(clock=clock, cache_ttl=300)
    fake.answer = ["py-docs", "py-perf"]
    first = await client.recommend(request())
    fake.answer = ["py-ko"]
    assert await client.recommend(request()) == first  # no second request
    assert len(fake.requests) == 1
    # The profile is not part of the key: it changes slowly, and an answer lasts 5 minutes.
    assert await client.recommend(request(profile={"python": 0.1})) == first
    assert len(fake.requests) == 1
    # Another user, language, focus, seen set or limit is another question.
    for other in (
        request(user="tg:other"),
        request(lang="en"),
        request(focus="performance"),
        request(seen=frozenset({"py-docs"})),
        request(limit=1),
    ):
        assert [i.id for i in await client.recommend(other)] == ["py-ko"]
    assert len(fake.requests) == 6
    clock.advance(300)
    assert [i.id for i in await client.recommend(request())] == ["py-ko"]
    assert len(fake.requests) == 7


async def test_errors_are_not_cached_and_the_cache_is_bounded(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    client = make(cache_size=2)
    fake.mode = "error"
    with pytest.raises(RecommenderError):
        await client.recommend(request())
    fake.mode = "up"
    fake.answer = ["py-docs"]
    await client.recommend(request())
    assert len(fake.requests) == 2
    await client.recommend(request(user="b"))
    await client.recommend(request(user="c"))  # the first answer is dropped
    await client.recommend(request(user="c"))
    assert len(fake.requests) == 4
    await client.recommend(request())
    assert len(fake.requests) == 5


async def test_the_session_comes_from_the_factory_and_is_closed(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    sessions: list[aiohttp.ClientSession] = []

    def factory() -> aiohttp.ClientSession:
        sessions.append(aiohttp.ClientSession())
        return sessions[-1]

    client = make(session_factory=factory, cache_ttl=0)
    await client.recommend(request())
    await client.recommend(request())
    assert len(sessions) == 1 and len(fake.requests) == 2  # one pool; cache_ttl 0: no cache
    await client.close()
    assert sessions[0].closed


# ---- the fallback --------------------------------------------------------------------------


@pytest.fixture
def fallback_parts(
    make: Callable[..., HttpRecommender],
) -> tuple[HttpRecommender, BuiltinRecommender, FakeClock]:
    return make(cache_ttl=0), BuiltinRecommender(CATALOG, clock=lambda: TODAY), FakeClock()


def builtin_ids(req: RecommendRequest) -> list[str]:
    return [i.id for i in BuiltinRecommender(CATALOG, clock=lambda: TODAY).rank(req)]


@pytest.mark.parametrize("mode", ["slow", "error", "malformed", "down"])
async def test_the_fallback_answers_in_each_failure_mode(
    fake: FakeRecommender,
    fallback_parts: tuple[HttpRecommender, BuiltinRecommender, FakeClock],
    caplog: pytest.LogCaptureFixture,
    mode: Any,
) -> None:
    http, builtin, clock = fallback_parts
    engine = FallbackRecommender(http, builtin, clock=clock)
    fake.mode = mode
    fake.answer = [FULL_ITEM]
    req = request()
    with caplog.at_level(logging.DEBUG, logger="bot.suggest.engine"):
        assert [i.id for i in await engine.recommend(req)] == builtin_ids(req)
        assert [i.id for i in await engine.recommend(req)] == builtin_ids(req)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # at most once a minute
    assert warnings[0].getMessage().startswith("recommender service failed, using the built-in")
    assert len(fake.requests) == 2
    assert engine.failing


async def test_the_fallback_answers_for_a_bad_answer_and_an_open_breaker(
    fake: FakeRecommender, make: Callable[..., HttpRecommender]
) -> None:
    http = make(breaker=CircuitBreaker(min_calls=1, open_seconds=60))
    engine = FallbackRecommender(http, BuiltinRecommender(CATALOG, clock=lambda: TODAY))
    fake.body = {"items": [{"id": 1}]}
    req = request()
    assert [i.id for i in await engine.recommend(req)] == builtin_ids(req)
    fake.body = None
    fake.answer = [FULL_ITEM]
    assert [i.id for i in await engine.recommend(req)] == builtin_ids(req)  # breaker open
    assert len(fake.requests) == 1


async def test_the_fallback_answers_when_the_service_has_nothing(
    fake: FakeRecommender,
    fallback_parts: tuple[HttpRecommender, BuiltinRecommender, FakeClock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    http, builtin, clock = fallback_parts
    engine = FallbackRecommender(http, builtin, clock=clock)
    fake.answer = ["not-in-the-catalog"]
    req = request(lang="en")
    with caplog.at_level(logging.WARNING, logger="bot.suggest.engine"):
        assert (
            [i.id for i in await engine.recommend(req)]
            == builtin_ids(req)
            == ["py-perf", "py-docs"]
        )
    assert caplog.records == []  # not a failure
    assert not engine.failing


async def test_the_service_answer_is_used_when_there_is_one(
    fake: FakeRecommender,
    fallback_parts: tuple[HttpRecommender, BuiltinRecommender, FakeClock],
) -> None:
    http, builtin, clock = fallback_parts
    fake.answer = [FULL_ITEM, "py-ko"]
    items = await FallbackRecommender(http, builtin, clock=clock).recommend(request())
    assert [i.id for i in items] == ["ext-1", "py-ko"]


async def test_the_warning_repeats_after_a_minute_and_recovery_is_logged(
    fake: FakeRecommender,
    fallback_parts: tuple[HttpRecommender, BuiltinRecommender, FakeClock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    http, builtin, clock = fallback_parts
    engine = FallbackRecommender(http, builtin, clock=clock)
    fake.mode = "error"
    with caplog.at_level(logging.INFO, logger="bot.suggest.engine"):
        for _ in range(3):
            await engine.recommend(request())
            clock.advance(20)
        assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1
        clock.advance(1)  # 61 s after the first warning
        await engine.recommend(request())
        assert sum(r.levelno == logging.WARNING for r in caplog.records) == 2
        fake.mode = "up"
        fake.answer = ["py-perf"]
        assert [i.id for i in await engine.recommend(request())] == ["py-perf"]
    assert caplog.records[-1].getMessage() == "the recommender service answers again"
    assert not engine.failing


async def test_the_fallback_survives_an_unexpected_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        async def recommend(self, request: RecommendRequest) -> list[CatalogItem]:
            raise KeyError("bug")

    builtin = BuiltinRecommender(CATALOG, clock=lambda: TODAY)
    engine = FallbackRecommender(Broken(), builtin)
    with caplog.at_level(logging.WARNING, logger="bot.suggest.engine"):
        assert [i.id for i in await engine.recommend(request())] == builtin_ids(request())
    assert "KeyError: 'bug'" in caplog.text
    await engine.close()  # Broken has no close(): nothing to do


async def test_build_recommender(fake: FakeRecommender) -> None:
    catalog = Catalog.load(DEFAULT_CATALOG)
    for url in (None, ""):
        plain = build_recommender(catalog, url)
        assert isinstance(plain, BuiltinRecommender) and plain.catalog is catalog
        await plain.close()
    engine = build_recommender(catalog, fake.url)
    assert isinstance(engine, FallbackRecommender)
    assert isinstance(engine.primary, HttpRecommender) and engine.primary.timeout == 0.5
    assert isinstance(engine.fallback, BuiltinRecommender)
    fake.answer = ["jump-to-python"]
    [item] = await engine.recommend(request())
    assert item.title_in("ko") == "점프 투 파이썬"
    assert fake.requests[0].json["focus"] == "python"
    await engine.close()
    assert engine.primary._session is None
