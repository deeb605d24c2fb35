"""StreamMasker: what the platform sees equals whole-text masking, and nothing leaks early."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.moderation import WordFilter
from tests.bot.moderation.conftest import ALLOWED, BANNED, TEST_DATA
from tests.bot.moderation.strategies import splits, texts

SPACED = WordFilter.from_words(["son of a bitch", "시발", "fuck"], ["시발점"], fixed_mask="#")


def stream(flt: WordFilter, chunks: list[str]) -> list[str]:
    """What each feed returned, then what flush returned."""
    masker = flt.masker()
    return [masker.feed(chunk) for chunk in chunks] + [masker.flush()]


@pytest.fixture(scope="module", params=["same-length", "fixed", "spaced entries"])
def any_filter(request: pytest.FixtureRequest) -> WordFilter:
    if request.param == "spaced entries":
        return SPACED
    fixed = "[...]" if request.param == "fixed" else None
    return WordFilter.from_files(BANNED, ALLOWED, fixed_mask=fixed)


@settings(max_examples=1000, deadline=None)
@given(data=st.data(), text=texts)
def test_stream_equals_whole_text_for_every_split(
    any_filter: WordFilter, data: st.DataObject, text: str
) -> None:
    chunks = data.draw(splits(text))
    assert "".join(stream(any_filter, chunks)) == any_filter.mask(text)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_stream_equals_whole_text_on_a_long_answer(
    sample_filter: WordFilter, data: st.DataObject
) -> None:
    text = (TEST_DATA / "bench_text.txt").read_text(encoding="utf-8")[:600]
    text = text.replace("Redis", "시 발 Redis").replace("Streaming", "f.u.c.k Streaming")
    chunks = data.draw(splits(text))
    assert "".join(stream(sample_filter, chunks)) == sample_filter.mask(text)


def test_every_single_character_split(sample_filter: WordFilter) -> None:
    text = "이 시발 뭐야, ㅆ ㅣ ㅂ ㅏ ㄹ 그리고 f.u.c.k 시발점에서 Scunthorpe 다시 발표할게요"
    assert "".join(stream(sample_filter, list(text))) == sample_filter.mask(text)


def test_a_space_after_a_word_settles_it(sample_filter: WordFilter) -> None:
    assert stream(sample_filter, ["fuck", " ", "you"]) == ["", "**** ", "you", ""]
    # After a one-letter word the space settles nothing: "시 발" is still coming.
    assert stream(sample_filter, ["시", " ", "발"]) == ["", "", "", "***"]


def test_ordinary_text_is_released_at_once(sample_filter: WordFilter) -> None:
    assert stream(sample_filter, ["서울 날씨는 ", "맑고 ", "기온은 12도예요."]) == [
        "서울 날씨는 ",
        "맑고 ",
        "기온은 12도예요.",
        "",
    ]


def test_a_banned_word_never_reaches_the_platform_even_split(sample_filter: WordFilter) -> None:
    out = stream(sample_filter, ["이 시", "발", " 뭐야"])
    assert out == ["이 ", "", "** 뭐야", ""]
    out = stream(sample_filter, ["What the f", "u", "c", "k", "!", " ok"])
    # "fuck!" may still become "fuck!ing"; the space settles it.
    assert out == ["What the ", "", "", "", "", "****! ok", ""]
    assert "fuck" not in "".join(out)


def test_only_what_a_match_could_still_need_is_held(sample_filter: WordFilter) -> None:
    masker = sample_filter.masker()
    assert masker.feed("fu") == ""  # could become "fuck"
    assert masker.feed("n and ") == "fun and "
    assert masker.feed("시") == ""  # a lone letter may be spelled-out; also a prefix of 시발
    assert masker.feed("간이") == "시간이"
    assert masker.flush() == ""


def test_an_allowed_word_still_growing_keeps_the_banned_part_back(
    sample_filter: WordFilter,
) -> None:
    assert stream(sample_filter, ["시발", "점", "에서"]) == ["", "", "시발점에서", ""]
    assert stream(sample_filter, ["시발", "아"]) == ["", "**아", ""]  # 시발아 is no entry


def test_spelled_out_jamo_are_held_until_composed(sample_filter: WordFilter) -> None:
    out = stream(sample_filter, ["ㅆ ", "ㅣ ", "ㅂ ", "ㅏ ", "ㄹ", " 진짜"])
    assert "".join(out) == "********* 진짜"
    assert out[:5] == ["", "", "", "", ""]


def test_fixed_mask_appears_once_across_chunks(fixed_filter: WordFilter) -> None:
    out = stream(fixed_filter, ["mother", "fuck", "er", "s"])
    assert "".join(out) == "[...]s"


def test_spaced_entries_match_across_chunks() -> None:
    assert "".join(stream(SPACED, ["son ", "of a ", "bitch!"])) == "#!"


def test_a_banned_word_inside_an_allowed_one_waits_others_settle_at_once() -> None:
    from bot.moderation.automaton import ALLOWED, EXCUSABLE

    flt = WordFilter.from_words(["시발", "개새끼"], ["시발점"])
    flags = {
        key.encode("latin-1").decode("utf-8"): flt.lists.info[slot] & (ALLOWED | EXCUSABLE)
        for key, slot in flt.lists.automaton.items()
    }
    assert flags == {"시발": EXCUSABLE, "개새끼": 0, "시발점": ALLOWED}
    masker = flt.masker()
    assert masker.feed("개새끼") == ""  # settled, but the word may go on
    assert masker.feed(" 시발") == "*** "  # masked and shown once the word is over
    assert masker.feed("점") == ""  # 시발 waits: as 시발점 it is excused
    assert masker.feed(" 끝") == "시발점 "
    assert masker.flush() == "끝"


def test_the_empty_string_is_a_prefix_of_every_automaton(sample_filter: WordFilter) -> None:
    # StreamMasker stops stepping through the live window on match(""), which is True.
    assert sample_filter.lists.automaton.match("")


@pytest.mark.parametrize(
    "banned", [["시발", "fuck"], ["a"], ["ab", "가나다라마바사아자차카타파하"]]
)
def test_a_long_run_without_spaces_is_masked_like_the_whole_text(banned: list[str]) -> None:
    flt = WordFilter.from_words(banned, ["시발점"])
    blob = ("가나다시발점라마fuckab" * 2000)[:20_000]
    chunks = [blob[:7], blob[7:15_000], blob[15_000:]]
    masker = flt.masker()
    shown = []
    for chunk in chunks:
        shown.append(masker.feed(chunk))
        assert len(masker._live) <= flt.lists.longest  # the held window stays short
    assert "".join(shown) + masker.flush() == flt.mask(blob)
