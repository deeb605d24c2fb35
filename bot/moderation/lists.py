"""Reading word-list files: one entry a line, ``#`` comments, line numbers as entry ids."""

from __future__ import annotations

import os
from pathlib import Path


class WordListError(ValueError):
    """A list file that cannot be used as it is (the previous lists stay in force)."""


def read_word_list(path: Path) -> list[tuple[int, str]]:
    """(line number, entry) for every entry of ``path``. Raises ``OSError``/``WordListError``.

    A line is an entry unless it is blank or starts with ``#``; text after `` #`` (a space,
    then a hash) is a comment too, so entries can carry a note.
    """
    data = path.read_bytes()
    if b"\x00" in data:
        raise WordListError(f"{path}: contains NUL bytes; is it a text file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WordListError(f"{path}: not UTF-8 (bad byte at offset {exc.start})") from None
    entries: list[tuple[int, str]] = []
    # Only "\n" ends a line: str.splitlines would also split on characters such as U+2028
    # and give line numbers that no editor shows.
    for number, line in enumerate(text.split("\n"), 1):
        entry = line.split(" #", 1)[0].strip()
        if entry and not entry.startswith("#"):
            entries.append((number, entry))
    return entries


def file_signature(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    """(mtime_ns, size, inode) of each path; (-1, -1, -1) for one that cannot be stat'ed."""
    result: list[tuple[int, int, int]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            result.append((-1, -1, -1))
        else:
            result.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(result)
