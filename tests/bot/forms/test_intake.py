"""The consultation intake form end to end: questions, validation, confirmation, storage, admin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from bot.commands import Caller
from bot.forms.builtin.intake import RecordSubmissionStore, SubmissionsCommand
from bot.manager import TurnResult
from bot.sessions.base import SessionStoreError
from bot.sessions.memory import MemorySessionStore
from bot.turn import SessionKey
from tests.bot.forms.support import Rig, running
from tests.bot.helpers import turn

NAME_Q = (
    "상담 예약을 도와드릴게요. 성함이 어떻게 되세요?\n(그만하려면 언제든 '취소'라고 보내 주세요.)"
)
PHONE_Q = "연락받으실 전화번호를 알려 주세요. (예: 010-1234-5678)"
DATE_Q = "상담 받고 싶은 날짜를 알려 주세요. (예: 내일, 다음 주 화요일, 6월 20일)"
TIME_Q = "몇 시가 좋으세요? (상담 시간 9시~18시)"
TOPIC_Q = "어떤 내용으로 상담 받고 싶으세요?"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running() as rig:
        yield rig


async def book(rig: Rig, *answers: str) -> list[str]:
    return [(await rig.say(text))[1] for text in answers]


async def test_booking_step_by_step_is_confirmed_and_stored(rig: Rig) -> None:
    texts = await book(
        rig,
        "상담 예약하고 싶어요",
        "홍길동이요",
        "010 1234 5678",
        "다음 주 화요일",
        "오후 3시",
        "대출 상담이요",
    )
    assert texts[:5] == [NAME_Q, PHONE_Q, DATE_Q, TIME_Q, TOPIC_Q]
    assert texts[5] == (
        "• 이름: 홍길동\n"
        "• 전화번호: 010-1234-5678\n"
        "• 희망 날짜: 6월 17일 (화)\n"
        "• 희망 시간: 오후 3:00\n"
        "• 상담 주제: 대출 상담\n"
        "이대로 예약할까요? (네/아니요)"
    )
    result, text = await rig.say("네")
    assert result is TurnResult.FORM
    assert text.startswith("상담 예약을 접수했어요. (접수번호 0613-")
    assert text.endswith("\n6월 17일 (화) 오후 3:00에 010-1234-5678로 연락드릴게요.")
    records = await RecordSubmissionStore(rig.store).recent("intake", "test:", 10)
    assert len(records) == 1
    record = records[0]
    assert {k: record[k] for k in ("name", "phone", "date", "time", "topic")} == {
        "name": "홍길동",
        "phone": "010-1234-5678",
        "date": "2025-06-17",
        "time": "15:00",
        "topic": "대출 상담",
    }
    assert record["platform"] == "test" and record["user_id"] == "7"
    # The user's own session no longer holds the form.
    assert (await rig.store.load(turn("x").session_key())).form is None


async def test_everything_in_one_message_goes_straight_to_the_confirmation(rig: Rig) -> None:
    result, text = await rig.say(
        "제 이름은 김철수입니다. 내일 오전 10시 반에 세금 관련 상담 예약하고 싶어요. "
        "번호는 010-9876-5432예요"
    )
    assert result is TurnResult.FORM
    assert text.startswith(
        "• 이름: 김철수\n• 전화번호: 010-9876-5432\n• 희망 날짜: 6월 14일 (토)\n"
        "• 희망 시간: 오전 10:30\n• 상담 주제: 세금\n"
    )
    assert rig.tool_requests() == []


async def test_invalid_answers_are_asked_again_with_the_reason(rig: Rig) -> None:
    await book(rig, "상담 예약하고 싶어요", "홍길동")
    assert await rig.say("010-1234-567") == (
        TurnResult.FORM,
        "'010-1234-567'은 올바른 전화번호가 아니에요. 010-1234-5678 같은 한국 전화번호로 "
        f"알려 주세요.\n{PHONE_Q}",
    )
    assert await rig.say("+1 415 555 0100") == (
        TurnResult.FORM,
        "'+1 415 555 0100'은 올바른 전화번호가 아니에요. 010-1234-5678 같은 한국 전화번호로 "
        f"알려 주세요.\n{PHONE_Q}",
    )
    await rig.say("+82 10-2222-3333")
    assert await rig.say("어제") == (
        TurnResult.FORM,
        f"이미 지난 날짜예요. 오늘 이후 날짜로 알려 주세요.\n{DATE_Q}",
    )
    await rig.say("오늘")
    # It is 10:00 on the day: 9시 has passed, 21시 is after hours.
    assert await rig.say("오전 9시") == (
        TurnResult.FORM,
        f"이미 지난 시간이에요. 지금 이후 시간으로 알려 주세요.\n{TIME_Q}",
    )
    assert await rig.say("밤 9시") == (
        TurnResult.FORM,
        f"상담은 9시부터 18시 사이에만 가능해요.\n{TIME_Q}",
    )
    assert await rig.say("오후 2시") == (TurnResult.FORM, TOPIC_Q)


async def test_three_unusable_answers_end_the_form(rig: Rig) -> None:
    await book(rig, "상담 예약하고 싶어요", "홍길동")
    await book(rig, "010-123-45", "0101234", "010-1234-56789")
    session = await rig.store.load(turn("x").session_key())
    assert session.form is None


async def test_no_at_the_confirmation_lets_the_user_change_one_answer(rig: Rig) -> None:
    await book(
        rig, "상담 예약하고 싶어요", "홍길동", "010-1234-5678", "내일", "오후 4시", "이사 문제"
    )
    _result, text = await rig.say("아니요")
    assert text.startswith(
        "어떤 항목을 바꿀까요? (이름, 전화번호, 희망 날짜, 희망 시간, 상담 주제)"
    )
    assert await rig.say("전화번호") == (TurnResult.FORM, PHONE_Q)
    _, text = await rig.say("010-5555-6666")
    assert "• 전화번호: 010-5555-6666\n" in text and text.endswith("이대로 예약할까요? (네/아니요)")
    _, text = await rig.say("시간은 오후 5시로 바꿔 주세요")
    assert "• 희망 시간: 오후 5:00\n" in text
    _, text = await rig.say("응")
    assert text.startswith("상담 예약을 접수했어요.")


async def test_english_booking(rig: Rig) -> None:
    texts = await book(
        rig,
        "I'd like to book a consultation",
        "My name is Jane Doe",
        "010-2222-3333",
        "next Monday",
        "2pm",
        "moving to Seoul",
    )
    assert texts[0].startswith("Let's book your consultation. What is your name?")
    assert texts[5].startswith("• name: Jane Doe\n• phone number: 010-2222-3333\n")
    assert "• date: Mon, June 16\n• time: 2:00 PM\n• topic: moving to Seoul\n" in texts[5]
    _, text = await rig.say("yes")
    assert text.endswith("We'll call you on 010-2222-3333 on Mon, June 16 2:00 PM.")


async def test_asking_again_for_the_running_form_repeats_its_question(rig: Rig) -> None:
    await book(rig, "상담 예약하고 싶어요", "홍길동")
    assert await rig.say("상담 예약하고 싶다니까요") == (TurnResult.FORM, PHONE_Q)
    assert rig.tool_requests() == []


async def test_question_in_the_middle_is_an_interruption(rig: Rig) -> None:
    await book(rig, "상담 예약하고 싶어요", "홍길동", "010-1234-5678", "내일", "오후 4시")
    from tests.fakes.glm import Reply

    rig.glm.enqueue(Reply("NONE"), Reply("보통 30분 정도 걸려요."))
    assert await rig.say("상담은 얼마나 걸려요?") == (
        TurnResult.ANSWERED,
        f"보통 30분 정도 걸려요.\n\n{TOPIC_Q}",
    )


class BrokenStore(MemorySessionStore):
    """Sessions work, but the submission write fails once (a Redis blip)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next_submission = True

    async def put_record(self, *args: Any) -> None:
        if self.fail_next_submission:
            self.fail_next_submission = False
            raise SessionStoreError("connection reset")
        await super().put_record(*args)


async def test_storage_failure_keeps_the_booking_for_a_retry() -> None:
    async with running() as rig:
        rig.store = BrokenStore()
        rig.restart()
        await book(
            rig, "상담 예약하고 싶어요", "홍길동", "010-1234-5678", "내일", "오후 4시", "이사"
        )
        assert await rig.say("네") == (
            TurnResult.FORM,
            "예약을 저장하지 못했어요. 잠시 후 '네'라고 다시 보내 주시면 다시 시도할게요.",
        )
        _, text = await rig.say("네")
        assert text.startswith("상담 예약을 접수했어요.")
        assert len(await RecordSubmissionStore(rig.store).recent("intake", "test:", 5)) == 1


# ---- storage and the admin command ----------------------------------------------------------


def record(n: int, **extra: Any) -> Mapping[str, Any]:
    return {
        "id": f"{1749776400000 + n:013d}-0613-000{n}",
        "ref": f"0613-000{n}",
        "name": f"사람{n}",
        "phone": "010-1234-5678",
        "date": "2025-06-20",
        "time": "15:00",
        "topic": "상담",
        "platform": "telegram",
        "user_id": str(n),
        **extra,
    }


def caller(*, admin: bool = True, private: bool = True, lang: str = "ko") -> Caller:
    chat = "1" if private else "-100"
    return Caller(turn("/submissions", user="1", chat=chat, is_private=private), lang, admin)


async def test_submissions_are_records_of_their_tenant_beyond_the_session_lru() -> None:
    store = MemorySessionStore(max_sessions=1)
    submissions = RecordSubmissionStore(store)
    await submissions.add("intake", record(1), turn("네", user="1"), 100)
    for n in range(3):
        await store.save(await store.load(SessionKey("test", "", str(n))))
    assert [r["id"] for r in await submissions.recent("intake", "test:", 10)] == [record(1)["id"]]
    assert await submissions.recent("intake", "slack:T1", 10) == []
    assert [k async for k in store.keys()] == ["test:-:2:-:-"]  # not a session


async def test_admin_lists_the_newest_submissions_first() -> None:
    store = MemorySessionStore()
    submissions = RecordSubmissionStore(store)
    for n in (1, 3, 2):
        await submissions.add("intake", record(n), turn("네", user=str(n)), 100)
    command = SubmissionsCommand(submissions)
    text = await command.run(["2"], caller())
    assert text == (
        "최근 상담 예약 2건:\n"
        "1. [`0613-0003`] 6월 20일 (금) 오후 3:00 · `사람3` · `010-1234-5678` · `상담` "
        "(`telegram:3`)\n"
        "2. [`0613-0002`] 6월 20일 (금) 오후 3:00 · `사람2` · `010-1234-5678` · `상담` "
        "(`telegram:2`)"
    )


async def test_admin_command_is_for_the_bots_admins_in_private_only() -> None:
    command = SubmissionsCommand(RecordSubmissionStore(MemorySessionStore()))
    assert await command.run([], caller(admin=False)) == "이 명령은 이 봇의 관리자만 쓸 수 있어요."
    assert "개인 대화" in await command.run([], caller(private=False))
    assert await command.run([], caller(lang="en")) == "There are no consultation bookings yet."
    for odd in (["²"], ["-1"], ["ten"], ["1", "2"], ["9999"]):
        assert (await command.run(odd, caller())).startswith("사용법: /submissions")
