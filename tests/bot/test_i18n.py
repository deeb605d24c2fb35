"""Which language the bot answers in."""

from __future__ import annotations

import pytest

from bot.i18n import MESSAGES, detect_language, language_name, t


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


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("東京の天気を教えて", "", "ja"),  # kana and Han: Japanese
        ("カタカナだけ", "", "ja"),
        ("今天天气怎么样？", "", "zh"),  # Han without kana or Hangul: Chinese
        ("Привет, как дела?", "", "ru"),
        ("Привіт, як справи? Їжак", "", "uk"),
        ("مرحبا كيف حالك", "", "ar"),
        ("سلام، چطوری؟", "", "fa"),
        ("สวัสดีครับ", "", "th"),
        ("Γεια σου", "", "el"),
        ("שלום מה שלומך", "", "he"),
        ("नमस्ते आप कैसे हैं", "", "hi"),
        ("გამარჯობა", "", "ka"),
        ("서울 날씨 東京", "ja", "ko"),  # Korean text wins, as it always did
        ("こんにちは hello", "en", "ja"),  # another script outweighs Latin words
        ("What is 東京?", "", "en"),  # ... unless the Latin words outweigh it
        ("/start こんにちは", "en", "ja"),
        ("123", "ja", "ja"),  # no letters: the platform's language, any of them
        ("👍", "pt-BR", "pt"),
        ("👍", "??", "ko"),  # an unusable hint: the default
    ],
)
def test_detect_language_other_scripts(text: str, hint: str, expected: str) -> None:
    assert detect_language(text, hint) == expected


@pytest.mark.parametrize("lang", ["ja", "zh", "ru", "ar", "fr", "xx"])
def test_bot_strings_fall_back_to_english_for_other_languages(lang: str) -> None:
    assert t("store_down", lang) == t("store_down", "en")
    assert t("too_long", lang, length=5000, limit=4000) == t(
        "too_long", "en", length=5000, limit=4000
    )


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        ("ko", "안녕", "Korean"),
        ("en", "hello there", "English"),
        ("ja", "こんにちは", "Japanese"),
        ("zh", "你好", "Chinese"),
        ("ru", "привет", "Russian"),
        ("en", "Où est la gare ?", None),  # accented Latin: maybe not English, so no name
        ("xx", "", None),
    ],
)
def test_language_name(lang: str, text: str, expected: str | None) -> None:
    assert language_name(lang, text) == expected
