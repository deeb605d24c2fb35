"""Kiwi as the forms build it: the table of names it splits, taught before its tables are
built, and the compound nouns that keep a city out of "진주 목걸이"."""

from __future__ import annotations

import logging

import pytest

import bot.forms.korean as korean_module
from bot.forms.korean import TAUGHT, KoreanAnalyzer, TaughtNames, fingerprint, new_kiwi
from tests.bot.forms.support import gazetteer, korean

SENTENCES = [
    "서울 날씨 알려줘",
    "안동은?",
    "그럼 계룡은 어때?",
    "서울특별시 기온",
    "경기광주 날씨",
    "진주 목걸이 날씨",
    "고양이는?",
    "내일 문경시 날씨 괜찬아?",
]


def test_the_taught_names_table_is_current() -> None:
    names = gazetteer().korean_names()
    regenerate = "kiwipiepy or the gazetteer changed: run .venv/bin/python -m bot.forms.korean"
    assert fingerprint(names) == TAUGHT.fingerprint, regenerate
    assert korean_module.split_names(new_kiwi(), names) == list(TAUGHT.names), regenerate


def test_with_the_table_current_nothing_is_probed_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def probe(*args: object) -> list[str]:
        raise AssertionError("probed: Kiwi's tables would be built twice")

    monkeypatch.setattr(korean_module, "split_names", probe)
    analyzer = KoreanAnalyzer(proper_nouns=gazetteer().korean_names())
    assert analyzer.tokens("안동은?")[0].form == "안동"


def test_a_stale_table_is_probed_and_gives_the_same_analyzer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="bot.forms.korean"):
        probed = KoreanAnalyzer(
            proper_nouns=gazetteer().korean_names(), taught=TaughtNames("stale", ())
        )
    assert "probed at start-up" in caplog.text
    for text in SENTENCES:
        assert probed.tokens(text) == korean().tokens(text), text


@pytest.mark.parametrize(
    ("text", "compound"),
    [
        ("진주 목걸이 날씨", "진주 목걸이"),  # a pearl necklace
        ("진주목걸이 날씨", "진주 목걸이"),
        ("구리 냄비는?", "구리 냄비"),  # a copper pot
        ("화성 탐사 날씨", "화성 탐사"),  # exploring Mars
    ],
)
def test_compounds_are_one_common_noun(text: str, compound: str) -> None:
    first = korean().tokens(text)[0]
    assert (first.form, first.tag) == (compound, "NNG")
