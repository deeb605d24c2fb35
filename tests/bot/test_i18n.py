"""Which language the bot answers in."""

from __future__ import annotations

import pytest

from bot.i18n import MESSAGES, detect_language, t


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("서울 날씨 알려줘", "en", "ko"),
        ("What about Busan?", "ko", "en"),
        ("/reset 123", "", "ko"),
        ("/reset 123", "en-US", "en"),
        ("/help@MyBot", "ko", "ko"),
        ("/start 시작", "en", "ko"),
        ("123 456", "en", "en"),
        ("👍", "", "ko"),
    ],
)
def test_detect_language(text: str, hint: str, expected: str) -> None:
    assert detect_language(text, hint) == expected


def test_every_message_exists_in_korean_and_english() -> None:
    for key, table in MESSAGES.items():
        assert table.get("ko") and table.get("en"), key


def test_formatting() -> None:
    assert "5,000" in t("too_long", "en", length=5000, limit=4000)
