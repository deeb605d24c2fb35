"""FormMachine on a small form of its own: pure calls, no I/O, no Kiwi."""

from __future__ import annotations

from typing import Any

import pytest

from bot.forms.extractors import find_number
from bot.forms.machine import (
    CHOOSE,
    CONFIRM,
    Answer,
    Ask,
    Complete,
    Confirm,
    FormMachine,
    FormState,
    GiveUp,
    NoProgress,
)
from bot.forms.spec import (
    Filled,
    Form,
    HandlerResult,
    InvalidValue,
    Slot,
    SlotContext,
    Triggers,
)
from tests.bot.forms.support import NOW


async def _never(filled: Filled) -> HandlerResult:
    raise AssertionError("the machine never runs handlers")


def _party(value: Any, ctx: SlotContext) -> int:
    if not 1 <= int(value) <= 8:
        raise InvalidValue({"ko": "1~8명만 예약돼요.", "en": "Parties of 1 to 8 only."})
    return int(value)


def _when(value: Any, ctx: SlotContext) -> str:
    # Depends on an earlier slot, like the intake's time depends on its date.
    if ctx.values.get("party") == 8 and value == "late":
        raise InvalidValue({"ko": "8명은 늦은 시간에 안 돼요.", "en": "No late table for 8."})
    return str(value)


def table_form(*, confirm: bool = False) -> Form:
    return Form(
        name="table",
        title={"ko": "테이블 예약", "en": "table booking"},
        description="Book a table.",
        slots=(
            Slot(
                name="party",
                label={"ko": "인원", "en": "party"},
                question={"ko": "몇 분이세요?", "en": "How many people?"},
                extract=lambda utt: find_number(utt.text),
                validate=_party,
                display=lambda v, lang: f"{v}명" if lang == "ko" else f"{v} people",
            ),
            Slot(
                name="when",
                label={"ko": "시간", "en": "time"},
                question={"ko": "언제 오세요?", "en": "When?"},
                validate=_when,
                keywords=("언제",),
            ),
            Slot(
                name="note",
                label={"ko": "메모", "en": "note"},
                question={"ko": "메모가 있나요?", "en": "Any note?"},
                required=False,
                default=lambda ctx: f"booked {ctx.today.isoformat()}",
            ),
        ),
        handler=_never,
        triggers=Triggers(keywords=("table",)),
        confirm=confirm,
    )


TS = NOW.timestamp()
machine = FormMachine(max_retries=3)


def start(values: dict[str, Any], *, confirm: bool = False, lang: str = "ko") -> tuple[Any, ...]:
    form = table_form(confirm=confirm)
    state, step = machine.start(form, Answer(values), now=NOW, lang=lang, ts=TS)
    return form, state, step


def test_asks_the_first_missing_required_slot() -> None:
    _, state, step = start({})
    assert step == Ask("party", "몇 분이세요?")
    assert state.asking == "party"
    _, state, step = start({"party": 2}, lang="en")
    assert step == Ask("when", "When?")


def test_complete_fills_defaults_for_optional_slots() -> None:
    form, state, step = start({"party": 2})
    step = machine.advance(form, state, Answer({"when": "7pm"}), now=NOW, ts=TS + 5)
    assert step == Complete({"party": 2, "when": "7pm", "note": "booked 2025-06-13"})
    assert state.updated_at == TS + 5


def test_invalid_answer_is_asked_again_with_the_reason() -> None:
    form, state, _ = start({})
    step = machine.advance(form, state, Answer({"party": 20}), now=NOW, ts=TS)
    assert step == Ask("party", "1~8명만 예약돼요.\n몇 분이세요?")
    assert "party" not in state.values and state.retries == 1


def test_too_many_invalid_answers_give_up() -> None:
    form, state, _ = start({})
    steps = [machine.advance(form, state, Answer({"party": 0}), now=NOW, ts=TS) for _ in range(3)]
    assert isinstance(steps[-1], GiveUp)
    assert "테이블 예약을 멈췄어요" in steps[-1].text


def test_nothing_for_the_form_is_no_progress_with_the_pending_question() -> None:
    form, state, _ = start({"party": 2})
    step = machine.advance(form, state, Answer({}, "배고파"), now=NOW, ts=TS)
    assert step == NoProgress("언제 오세요?")
    assert state.retries == 0


def test_a_later_change_makes_an_earlier_answer_stale() -> None:
    form, state, _ = start({"party": 2, "when": "late"}, confirm=True)
    step = machine.advance(form, state, Answer({"party": 8}, "8명으로"), now=NOW, ts=TS)
    assert step == Ask("when", "8명은 늦은 시간에 안 돼요.\n언제 오세요?")


def test_confirmation_yes_completes_and_no_lets_the_user_choose() -> None:
    form, state, step = start({"party": 2, "when": "7pm"}, confirm=True)
    assert step == Confirm(
        "• 인원: 2명\n• 시간: 7pm\n• 메모: booked 2025-06-13\n이대로 진행할까요? (네/아니요)"
    )
    assert state.asking == CONFIRM
    step = machine.advance(form, state, Answer({}, "아니요"), now=NOW, ts=TS)
    assert isinstance(step, Ask) and step.slot == CHOOSE
    assert step.text.startswith("어떤 항목을 바꿀까요? (인원, 시간, 메모)")
    step = machine.advance(form, state, Answer({}, "언제 갈지 바꿀래요"), now=NOW, ts=TS)
    assert step == Ask("when", "언제 오세요?")
    step = machine.advance(form, state, Answer({"when": "8pm"}, "8pm"), now=NOW, ts=TS)
    assert isinstance(step, Confirm) and "• 시간: 8pm" in step.text
    step = machine.advance(form, state, Answer({}, "네 좋아요"), now=NOW, ts=TS)
    assert isinstance(step, Complete) and step.values["when"] == "8pm"


def test_a_new_value_at_the_confirmation_is_shown_again() -> None:
    form, state, _ = start({"party": 2, "when": "7pm"}, confirm=True)
    step = machine.advance(form, state, Answer({"party": 4}, "4명으로 해 주세요"), now=NOW, ts=TS)
    assert isinstance(step, Confirm) and step.text.startswith("• 인원: 4명\n")
    step = machine.advance(form, state, Answer({"party": 40}, "40명"), now=NOW, ts=TS)
    assert isinstance(step, Confirm) and step.text.startswith("1~8명만 예약돼요.\n• 인원: 4명")


def test_unclear_reply_at_the_confirmation_is_no_progress() -> None:
    form, state, _ = start({"party": 2, "when": "7pm"}, confirm=True)
    step = machine.advance(form, state, Answer({}, "음 글쎄"), now=NOW, ts=TS)
    assert isinstance(step, NoProgress) and step.question.endswith("(네/아니요)")


def test_optional_slot_given_unusably_is_asked() -> None:
    form = Form(
        name="t",
        title={"en": "t"},
        description="",
        slots=(
            Slot("a", {"en": "a"}, {"en": "A?"}),
            Slot(
                "b",
                {"en": "b"},
                {"en": "B?"},
                required=False,
                validate=lambda v, ctx: (_ for _ in ()).throw(InvalidValue({"en": "bad b"})),
            ),
        ),
        handler=_never,
        triggers=Triggers(keywords=("t",)),
    )
    _, step = machine.start(form, Answer({"a": 1, "b": 2}), now=NOW, lang="en", ts=TS)
    assert step == Ask("b", "bad b\nB?")


def test_state_round_trips_through_json_types() -> None:
    _form, state, _ = start({"party": 3})
    restored = FormState.from_dict(state.to_dict())
    assert restored == state
    assert FormState.from_dict({"v": 1, "form": "x"}) is None
    assert FormState.from_dict("garbage") is None
    assert FormState.from_dict({**state.to_dict(), "values": []}) is None


def test_form_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="must match"):
        Form("Bad Name", {}, "", table_form().slots, _never, Triggers(keywords=()))
    with pytest.raises(ValueError, match="duplicate"):
        slot = table_form().slots[0]
        Form("dup", {}, "", (slot, slot), _never, Triggers(keywords=()))


def test_tool_schema_lists_every_slot() -> None:
    tool = table_form().tool()
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "table"
    assert set(tool["function"]["parameters"]["properties"]) == {"party", "when", "note"}
