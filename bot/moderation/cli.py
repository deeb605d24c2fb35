"""``python -m bot filter TEXT``: the filter's verdict on one text, for operators."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from bot.moderation.lists import WordListError
from bot.moderation.matcher import WordFilter

EXIT_PASS = 0
EXIT_BLOCKED = 1
EXIT_LISTS_UNREADABLE = 2


def _line(path: Path, number: int) -> str:
    """The entry as written on line ``number`` of ``path`` (operators see their own list)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except (OSError, UnicodeDecodeError):
        return "?"
    return lines[number - 1].strip() if 0 < number <= len(lines) else "?"


def run_filter_cli(
    text: str,
    banned_path: Path,
    allowed_path: Path,
    out: TextIO,
    *,
    mask_char: str = "*",
    fixed_mask: str | None = None,
) -> int:
    """Print the verdict, the matched entries and the masked text.

    Returns 0 when the input policy lets ``text`` through, 1 when it would block it, and
    2 when the lists cannot be read.
    """
    try:
        flt = WordFilter.from_files(
            banned_path, allowed_path, mask_char=mask_char, fixed_mask=fixed_mask
        )
    except (OSError, WordListError) as exc:
        print(f"cannot load the word lists: {exc}", file=out)
        return EXIT_LISTS_UNREADABLE
    verdict = flt.check(text)
    print(f"verdict: {'blocked' if verdict.blocked else 'allowed'}", file=out)
    if verdict.matches:
        print(f"matched entries ({banned_path}):", file=out)
        for match in verdict.matches:
            print(
                f"  line {match.entry_id}: {_line(banned_path, match.entry_id)!r}"
                f" <- {text[match.start : match.end]!r} at {match.start}-{match.end}",
                file=out,
            )
    print(f"masked: {verdict.masked}", file=out)
    return EXIT_BLOCKED if verdict.blocked else EXIT_PASS
