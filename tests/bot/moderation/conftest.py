"""Fixtures for the content filter: the shipped lists and filters built from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.moderation import WordFilter
from bot.settings import DATA_DIR

BANNED = DATA_DIR / "banned_words.txt"
ALLOWED = DATA_DIR / "allowed_words.txt"
TEST_DATA = Path(__file__).resolve().parents[2] / "data"


def load_cases() -> list[dict[str, Any]]:
    lines = (TEST_DATA / "filter_cases.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def line_of(path: Path, entry: str) -> int:
    """1-based line number of ``entry`` in a list file."""
    return path.read_text(encoding="utf-8").split("\n").index(entry) + 1


@pytest.fixture(scope="session")
def sample_filter() -> WordFilter:
    return WordFilter.from_files(BANNED, ALLOWED)


@pytest.fixture(scope="session")
def fixed_filter() -> WordFilter:
    return WordFilter.from_files(BANNED, ALLOWED, fixed_mask="[...]")
