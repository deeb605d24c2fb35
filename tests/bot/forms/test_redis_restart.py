"""Forms over the real Redis store: a restart mid-form continues it; submissions keep the TTL."""

from __future__ import annotations

import redis.asyncio as redis

from bot.forms.builtin.intake import SessionSubmissionStore
from bot.manager import TurnResult
from bot.sessions.redis import RedisSessionStore
from tests.bot.forms.support import running

TTL = 3600


async def test_restart_in_the_middle_of_a_form_continues_it(redis_url: str) -> None:
    first = RedisSessionStore.from_url(redis_url, ttl_seconds=TTL)
    async with running(store=first) as rig:
        await rig.say("상담 예약하고 싶어요")
        await rig.say("홍길동이요")
        await first.close()
        # A new process: a new connection, a new manager and stage; only Redis remains.
        rig.store = RedisSessionStore.from_url(redis_url, ttl_seconds=TTL)
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
            records = await SessionSubmissionStore(rig.store).recent("intake", 5)
            assert [(r["name"], r["phone"], r["date"]) for r in records] == [
                ("홍길동", "010-1234-5678", "2025-06-14")
            ]
            raw = redis.from_url(redis_url)
            try:
                ttl = await raw.ttl(f"bot:session:{{form:intake:{records[0]['id']}:-:-}}")
            finally:
                await raw.aclose()
            assert 0 < ttl <= TTL
        finally:
            await rig.store.close()
