"""Reading list files: comments, blank lines, line numbers, and files that are not lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.moderation import WordFilter, WordListError, read_word_list
from bot.moderation.lists import file_signature


def test_entries_carry_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "banned.txt"
    path.write_text(
        "\ufeff# a comment\n\n시발\n  fuck  \r\nshit # the note after a space-hash\n#tag\n",
        encoding="utf-8",
    )
    assert read_word_list(path) == [(3, "시발"), (4, "fuck"), (5, "shit")]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"\xff\xfe\x00b\x00a\x00d", "NUL"), (b"caf\xe9\n", "not UTF-8")],
)
def test_a_file_that_is_not_a_utf8_list_is_refused(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "banned.txt"
    path.write_bytes(content)
    with pytest.raises(WordListError, match=reason):
        read_word_list(path)


def test_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        WordFilter.from_files(tmp_path / "nope.txt", tmp_path / "nope2.txt")


def test_signature_changes_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "banned.txt"
    path.write_text("a\n", encoding="utf-8")
    before = file_signature(path, tmp_path / "missing.txt")
    assert before[1] == (-1, -1, -1)
    path.write_text("ab\n", encoding="utf-8")
    assert file_signature(path, tmp_path / "missing.txt") != before
