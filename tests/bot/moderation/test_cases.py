"""The sample cases, innocent words, and masking of the original characters."""

from __future__ import annotations

from typing import Any

import pytest

from bot.moderation import WordFilter
from tests.bot.moderation.conftest import BANNED, line_of, load_cases

CASES = load_cases()


def test_the_case_file_has_both_verdicts() -> None:
    assert len(CASES) >= 20
    assert {case["blocked"] for case in CASES} == {True, False}


@pytest.mark.parametrize("case", CASES, ids=[case["note"] for case in CASES])
def test_sample_case(sample_filter: WordFilter, case: dict[str, Any]) -> None:
    verdict = sample_filter.check(case["text"])
    assert verdict.blocked is case["blocked"]
    assert bool(verdict.matches) is case["blocked"]
    if case["blocked"]:
        assert verdict.masked != case["text"]
        assert len(verdict.masked) == len(case["text"])  # same-length mask by default
    else:
        assert verdict.masked == case["text"]


@pytest.mark.parametrize(
    "text",
    ["시발점", "시바견", "임시방편", "피시방", "Scunthorpe", "다시 발표할게요", "시발역에서 만나"],
)
def test_innocent_words_pass(sample_filter: WordFilter, text: str) -> None:
    verdict = sample_filter.check(text)
    assert not verdict.blocked
    assert verdict.masked == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("이 시발 뭐야", "이 ** 뭐야"),
        ("f.u.c.k you", "******* you"),
        ("ｆｕｃｋ", "****"),
        ("What the FUCK", "What the ****"),
        ("시1발", "***"),
        ("시 발", "***"),
        ("ㅆ ㅣ ㅂ ㅏ ㄹ", "*********"),
        ("지랄하네", "**하네"),
        ("f\u200bu\u200bc\u200bk!", "*******!"),
        ("시발점에서 시발", "시발점에서 **"),
    ],
)
def test_masking_hits_the_original_characters(
    sample_filter: WordFilter, text: str, masked: str
) -> None:
    assert sample_filter.mask(text) == masked


def test_matches_name_entries_by_line_and_span_the_original(sample_filter: WordFilter) -> None:
    text = "아 씨.발 진짜 fucking 싫다"
    verdict = sample_filter.check(text)
    found = {(text[m.start : m.end], m.entry_id) for m in verdict.matches}
    assert found == {
        ("씨.발", line_of(BANNED, "씨발")),
        ("fuck", line_of(BANNED, "fuck")),
        ("fucking", line_of(BANNED, "fucking")),
    }
    assert [m.start for m in verdict.matches] == sorted(m.start for m in verdict.matches)


def test_every_listed_word_is_blocked_on_its_own(sample_filter: WordFilter) -> None:
    entries = [
        line.strip()
        for line in BANNED.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for entry in entries:
        verdict = sample_filter.check(f"오늘 {entry} 진짜")
        assert verdict.blocked, entry
        assert line_of(BANNED, entry) in {m.entry_id for m in verdict.matches}


def test_fixed_mask_replaces_each_merged_span_once(fixed_filter: WordFilter) -> None:
    assert fixed_filter.mask("fucking 병신아") == "[...] [...]아"
    assert fixed_filter.mask("시발시발") == "[...]"  # touching spans merge
    assert fixed_filter.mask("시발.시발") == "[...].[...]"  # the dot between stays


def test_mask_char_must_be_one_character() -> None:
    with pytest.raises(ValueError, match="mask_char"):
        WordFilter.from_words(["x"], mask_char="**")
    assert WordFilter.from_words(["bad"], mask_char="#").mask("so bad") == "so ###"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("\ud800시발\udfff", "\ud800**\udfff"),  # lone surrogates pass through untouched
        ("a\x00b\x01시\x00발", "a\x00b\x01***"),  # control characters are skipped
        ("𝐟𝐮𝐜𝐤", "****"),  # mathematical bold (NFKC)
        ("ｆ\u0301ｕｃｋ", "*****"),  # a combining accent in between
    ],
)
def test_odd_input(sample_filter: WordFilter, text: str, masked: str) -> None:
    assert sample_filter.mask(text) == masked
    masker = sample_filter.masker()
    assert "".join(masker.feed(ch) for ch in text) + masker.flush() == masked
