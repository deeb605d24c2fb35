"""Forms over the real Redis store and Cluster: a restart mid-form continues it; submissions
keep the TTL."""

from __future__ import annotations

import pytest

from bot.forms.builtin.intake import GRACE_DAYS, RecordSubmissionStore
from bot.manager import TurnResult
from bot.sessions.redis import RedisSessionStore
from tests.bot.forms.support import running

TTL = 3600


@pytest.fixture(params=["standalone", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """A Redis server and whether it is a Cluster: the forms run unchanged on both."""
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster_url"), True
    return request.getfixturevalue("redis_url"), False


async def test_restart_in_the_middle_of_a_form_continues_it(redis_target: tuple[str, bool]) -> None:
    redis_url, cluster = redis_target
    first = RedisSessionStore.from_url(redis_url, cluster=cluster, ttl_seconds=TTL)
    async with running(store=first) as rig:
        await rig.say("상담 예약하고 싶어요")
        await rig.say("홍길동이요")
        await first.close()
        # A new process: a new connection, a new manager and stage; only Redis remains.
        rig.store = RedisSessionStore.from_url(redis_url, cluster=cluster, ttl_seconds=TTL)
        rig.restart()
        try:
            assert await rig.say("010-1234-5678") == (
                TurnResult.FORM,
                "상담 받고 싶은 날짜를 알려 주세요. (예: 내일, 다음 주 화요일, 6월 20일)",
            )
            for answer in ("내일", "오후 2시", "이사 상담"):
                await rig.say(answer)
            _result, text = await rig.say("네")
            assert text.startswith("상담 예약을 접수했어요.")
            records = await RecordSubmissionStore(rig.store).recent("intake", "test:", 5)
            assert [(r["name"], r["phone"], r["date"]) for r in records] == [
                ("홍길동", "010-1234-5678", "2025-06-14")
            ]
            ttl = await rig.store.client.ttl(
                rig.store.record_key("intake", "test:", records[0]["id"])
            )
            # Kept until the appointment (tomorrow 14:00, 28 h after NOW) plus the grace
            # period, whatever the session TTL.
            assert abs(ttl - (28 * 3600 + GRACE_DAYS * 86_400)) < 120
        finally:
            await rig.store.close()
