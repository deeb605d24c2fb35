"""Token accounting and budgets (bot/usage.py): the counters in memory, on a real redis-server
and on Redis Cluster, and what the manager does with them, against the fake GLM whose answers
carry ``usage`` as the real API's do."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.glm.types import Usage
from bot.i18n import t
from bot.manager import ConversationManager, TurnResult
from bot.observability import Metrics
from bot.sessions.memory import MemorySessionStore
from bot.sessions.redis import RedisSessionStore, make_client
from bot.usage import (
    Accounting,
    Budgets,
    MemoryUsageLedger,
    Meter,
    Period,
    RedisUsageLedger,
    Spender,
    Tokens,
    UsageCommand,
    UsageLedger,
    Verdict,
    budget_notice,
    build_usage_ledger,
    metering,
)
from tests.bot.forms.support import running
from tests.bot.helpers import RecordingReply, turn
from tests.fakes.glm import DETAILED_USAGE, FakeGlm, Reply

NOW = datetime(2026, 12, 3, 22, 30, tzinfo=UTC)
ALICE = Spender("telegram:7000001", "111")
BOB_IN_GROUP = Spender("telegram:7000001", "222", "-100500")
ALICE_IN_GROUP = Spender("telegram:7000001", "111", "-100500")
OTHER_BOT = Spender("telegram:7000002", "111")
# What one answer costs in these tests: the fake's usage, as the API reports it.
USAGE = DETAILED_USAGE
ANSWER = Reply("네, 알겠어요.", usage=USAGE)


# ---- the pieces ------------------------------------------------------------------------------


def test_the_apis_usage_gives_input_output_thinking_and_cached_tokens() -> None:
    usage = Usage.from_dict(USAGE)
    assert usage is not None
    tokens = Tokens.of(usage)
    assert tokens == Tokens(input=100, output=20, thinking=5, cached=40)
    assert tokens.total == 120  # what is billed: thinking is output, cached is input
    plain = Usage.from_dict({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
    assert plain is not None and Tokens.of(plain) == Tokens(3, 4)


def test_days_and_months_are_utc_and_end_where_they_should() -> None:
    p = Period.of(datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    assert (p.day, p.month) == ("2026-12-31", "2026-12")
    assert p.day_ends == datetime(2027, 1, 1, tzinfo=UTC) == p.month_ends
    seoul = datetime(2026, 12, 4, 8, 0, tzinfo=UTC) + timedelta(hours=9)  # 17:00 KST
    assert Period.of(seoul.astimezone(UTC)).day == "2026-12-04"


def test_the_notice_says_which_budget_and_when_it_resets() -> None:
    p = Period.of(NOW)
    day = Verdict(False, "user_day", p.day_ends)
    assert budget_notice(day, "ko", NOW) == t(
        "budget_user_day", "ko", reset="1시간 30분", at="2026-12-04 00:00 UTC"
    )
    month = Verdict(False, "user_month", p.month_ends)
    assert "2027-01-01 00:00 UTC" in budget_notice(month, "en", NOW)
    assert "28 d 1 h" in budget_notice(month, "en", NOW)


# ---- the ledgers: in memory, on Redis, on Redis Cluster -----------------------------------------


@pytest.fixture(params=["memory", "redis", "cluster"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[UsageLedger]:
    if request.param == "memory":
        yield MemoryUsageLedger()
        return
    cluster = request.param == "cluster"
    url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_url")
    client = make_client(url, cluster=cluster)
    yield RedisUsageLedger(client)
    await client.aclose()


async def test_a_ledger_counts_users_groups_tenants_and_models(ledger: UsageLedger) -> None:
    await ledger.add(ALICE, {"glm-4.5": Tokens(100, 20, 5, 40)}, NOW)
    await ledger.add(ALICE_IN_GROUP, {"glm-4.5": Tokens(10, 2), "embedding-3": Tokens(7)}, NOW)
    await ledger.add(BOB_IN_GROUP, {"glm-4.5-flash": Tokens(50, 10)}, NOW)
    await ledger.add(OTHER_BOT, {"glm-4.5": Tokens(1000, 1000)}, NOW)  # another tenant
    await ledger.add(ALICE, {"glm-4.5": Tokens(1, 1)}, NOW - timedelta(days=1))  # yesterday

    spent = await ledger.spent(ALICE, NOW)
    assert (spent.user_day, spent.user_month, spent.group_day) == (139, 141, 0)
    in_group = await ledger.spent(BOB_IN_GROUP, NOW)
    assert (in_group.user_day, in_group.group_day) == (60, 79)  # the group: both users
    day, month = await ledger.user(ALICE, NOW)
    assert day == Tokens(117, 22, 5, 40) and month.total == 141
    report = await ledger.tenant(ALICE.tenant, NOW)
    assert report.day.total == 199 and report.month.total == 201
    assert report.top == [("111", 141), ("222", 60)]
    assert report.models == {
        "embedding-3": Tokens(7),
        "glm-4.5": Tokens(111, 23, 5, 40),
        "glm-4.5-flash": Tokens(50, 10),
    }
    await ledger.forget(ALICE, NOW)
    assert (await ledger.tenant(ALICE.tenant, NOW)).top == [("-", 141), ("222", 60)]
    assert (await ledger.spent(ALICE, NOW)).user_day == 139  # /forget is no budget reset


async def test_on_redis_the_counters_expire_and_survive_a_restart(redis_url: str) -> None:
    client = make_client(redis_url, cluster=False)
    await RedisUsageLedger(client).add(ALICE_IN_GROUP, {"glm-4.5": Tokens(5, 5)}, NOW)
    keys = sorted(str(k) for k in await client.keys("*"))
    assert keys and all("{telegram:7000001}" in k for k in keys)  # one slot per tenant
    assert not any("111" in k for k in keys)  # users are named by a keyed hash
    for key in keys:
        ttl = await client.ttl(key)
        if ":day:" in key:
            assert 2 * 86_400 < ttl <= 3 * 86_400
        else:
            assert 30 * 86_400 < ttl <= 400 * 86_400
    await RedisUsageLedger(client).forget(ALICE_IN_GROUP, NOW)  # and their ids leave on /forget
    for key in keys:
        kind = await client.type(key)
        values = await (client.hgetall(key) if kind == "hash" else client.zrange(key, 0, -1))
        assert "111" not in str(values)
    await client.aclose()
    again = make_client(redis_url, cluster=False)  # a new process
    assert (await RedisUsageLedger(again).spent(ALICE_IN_GROUP, NOW)).group_day == 10
    await again.aclose()


async def test_build_usage_ledger_follows_the_store(redis_url: str) -> None:
    assert isinstance(build_usage_ledger(MemorySessionStore()), MemoryUsageLedger)
    store = RedisSessionStore.from_url(redis_url, ttl_seconds=60)
    try:
        assert isinstance(build_usage_ledger(store), RedisUsageLedger)
    finally:
        await store.close()


# ---- through the manager ------------------------------------------------------------------------


def account(
    manager: ConversationManager, budgets: Budgets, ledger: UsageLedger | None = None
) -> Accounting:
    """Accounting as build_app wires it, with the clock at NOW."""
    accounting = Accounting(ledger or MemoryUsageLedger(), budgets, now=lambda: NOW)
    manager.accounting = accounting
    manager.commands.forgetters.append(accounting.forget)
    manager.commands.extra["usage"] = UsageCommand(accounting)
    return accounting


async def say(manager: ConversationManager, text: str, **where: str) -> tuple[TurnResult, str]:
    reply = RecordingReply()
    result = await manager.handle(turn(text, **where), reply)
    if manager.accounting is not None:
        await manager.accounting.drain()
    return result, reply.final[1]


ME = Spender("test:", "7")


async def test_every_answer_is_counted_for_its_user(
    manager: ConversationManager, fake: FakeGlm
) -> None:
    fake.default = ANSWER
    accounting = account(manager, Budgets())
    for _ in range(3):
        assert (await say(manager, "안녕하세요"))[0] is TurnResult.ANSWERED
    day, month = await accounting.ledger.user(ME, NOW)
    assert day == month == Tokens(300, 60, 15, 120)
    result, text = await say(manager, "/usage")
    assert result is TurnResult.COMMAND
    assert "360" in text and "300" in text and "60" in text and t("usage_unlimited", "ko") in text


async def test_a_user_over_the_daily_budget_gets_one_notice_and_no_model_call(
    manager: ConversationManager, fake: FakeGlm
) -> None:
    fake.default = ANSWER
    account(manager, Budgets(user_day=250))
    for _ in range(3):  # 0, 120, 240 spent before each: all under 250
        assert (await say(manager, "질문이 있어요"))[0] is TurnResult.ANSWERED
    calls = len(fake.requests)
    result, text = await say(manager, "하나 더요")
    assert result is TurnResult.OVER_BUDGET
    assert text == t("budget_user_day", "ko", reset="1시간 30분", at="2026-12-04 00:00 UTC")
    assert len(fake.requests) == calls  # the model was not asked
    result, text = await say(manager, "/usage")  # commands still work
    assert result is TurnResult.COMMAND and t("usage_left_day", "ko", n="0") in text
    # Another user is not held by it.
    assert (await say(manager, "hello", user="8", chat="8"))[0] is TurnResult.ANSWERED


async def test_the_monthly_budget_holds_until_the_month_ends(
    manager: ConversationManager, fake: FakeGlm
) -> None:
    fake.default = ANSWER
    accounting = account(manager, Budgets(user_day=10_000, user_month=100))
    await accounting.ledger.add(ME, {"glm-4.5": Tokens(90, 10)}, NOW - timedelta(days=2))
    result, text = await say(manager, "what is the weather like on Mars?")
    assert result is TurnResult.OVER_BUDGET
    assert "2027-01-01 00:00 UTC" in text and not fake.requests


async def test_a_groups_daily_budget_counts_everyone_in_it(
    manager: ConversationManager, fake: FakeGlm
) -> None:
    fake.default = ANSWER
    account(manager, Budgets(group_day=200))
    group = {"chat": "-100500", "is_private": False}  # type: ignore[dict-item]
    assert (await say(manager, "첫 질문", user="7", **group))[0] is TurnResult.ANSWERED
    assert (await say(manager, "두 번째", user="8", **group))[0] is TurnResult.ANSWERED
    result, text = await say(manager, "세 번째", user="9", **group)  # 240 spent: over 200
    assert result is TurnResult.OVER_BUDGET and text.startswith("이 대화방이")
    # The same users in their own chats are not held by the group's budget.
    assert (await say(manager, "개인 질문", user="9", chat="9"))[0] is TurnResult.ANSWERED


async def test_the_bots_admins_are_exempt_and_see_the_tenant(
    manager: ConversationManager, fake: FakeGlm
) -> None:
    fake.default = ANSWER
    accounting = account(manager, Budgets(user_day=100))
    manager.commands.admin_ids = {"test": frozenset({"7"})}
    for _ in range(2):
        assert (await say(manager, "관리자 질문"))[0] is TurnResult.ANSWERED
    assert (await say(manager, "user question", user="8", chat="8"))[0] is TurnResult.ANSWERED
    assert (await say(manager, "again", user="8", chat="8"))[0] is TurnResult.OVER_BUDGET
    result, text = await say(manager, "/usage")
    assert result is TurnResult.COMMAND
    assert t("usage_admin_exempt", "ko") in text
    assert "1. 7 — 240" in text and "2. 8 — 120" in text and "glm-4.5" in text
    # Not in a group: there an admin sees only their own figures.
    result, text = await say(manager, "/usage", chat="-100500", is_private=False)
    assert "1. 7" not in text and text.endswith(t("usage_admin_private", "ko"))
    # /forget takes the user's id off the top list (their count stays, naming no one).
    await say(manager, "/forget", user="8", chat="8")
    report = await accounting.ledger.tenant("test:", NOW)
    assert report.top == [("7", 240), ("-", 120)]


async def test_over_budget_a_form_that_needs_no_model_still_works() -> None:
    async with running(phrase_with_model=True) as rig:
        rig.glm.default = ANSWER
        accounting = account(rig.manager, Budgets(user_day=1))
        await accounting.ledger.add(ME, {"glm-4.5": Tokens(1)}, NOW)
        result, text = await rig.say("서울 날씨 알려줘")
        assert result is TurnResult.FORM and text.startswith("서울 오늘 날씨")  # the template
        assert not rig.glm.requests  # no extraction, no phrasing: the model was not asked
        result, _ = await rig.say("오늘 기분이 어때?")
        assert result is TurnResult.OVER_BUDGET


async def test_a_model_call_after_the_answer_is_counted_too() -> None:
    accounting = Accounting(MemoryUsageLedger(), Budgets(), now=lambda: NOW)
    meter = Meter(ALICE)
    with metering(meter):
        meter.add("glm-4.5", Tokens(10, 5))
    accounting.settle(meter)
    meter.add("glm-4.5-flash", Tokens(30, 3))  # e.g. the summary written afterwards
    await accounting.drain()
    day, _ = await accounting.ledger.user(ALICE, NOW)
    assert day == Tokens(40, 8)


async def test_with_redis_down_turns_are_answered_and_it_is_said(
    manager: ConversationManager,
    fake: FakeGlm,
    redis_url: str,
    redis_server: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.default = ANSWER
    client = make_client(redis_url, cluster=False)
    account(manager, Budgets(user_day=1_000), RedisUsageLedger(client))
    redis_server.stop()  # type: ignore[attr-defined]
    try:
        with caplog.at_level(logging.WARNING, logger="bot.usage"):
            assert (await say(manager, "Redis가 없어도 답해 주세요"))[0] is TurnResult.ANSWERED
        assert "usage counters unavailable" in caplog.text
    finally:
        redis_server.start()  # type: ignore[attr-defined]
        await client.aclose()


async def test_the_tokens_reach_the_metrics_by_model_and_type(
    manager: ConversationManager, fake: FakeGlm
) -> None:
    fake.default = ANSWER
    metrics = Metrics()
    accounting = account(manager, Budgets())
    accounting.metrics = metrics
    assert (await say(manager, "안녕하세요"))[0] is TurnResult.ANSWERED
    exposition = metrics.exposition().decode()
    for kind, count in (("input", 100), ("output", 20), ("thinking", 5), ("cached", 40)):
        assert f'bot_tokens_total{{model="glm-4.5",type="{kind}"}} {count}.0' in exposition
