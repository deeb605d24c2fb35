"""ReloadingWordFilter: picks up edits, keeps old lists on broken files, pins running maskers."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.moderation import ReloadingWordFilter, load_content_filter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, mtime_ns: int) -> None:
    """Write and stamp an explicit mtime, so tests do not depend on the clock's resolution."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    banned, allowed = tmp_path / "banned.txt", tmp_path / "allowed.txt"
    write(banned, "시발\nfuck\n", 1_000_000_000)
    write(allowed, "시발점\n", 1_000_000_000)
    return banned, allowed


def make(files: tuple[Path, Path], clock: Clock) -> ReloadingWordFilter:
    return ReloadingWordFilter(
        *files, check_interval=5.0, settle=0.0, background=False, clock=clock
    )


def test_edits_are_picked_up_at_most_every_interval(files: tuple[Path, Path]) -> None:
    clock = Clock()
    flt = make(files, clock)
    assert flt.check("fuck").blocked
    write(files[0], "shit\n", 2_000_000_000)
    assert flt.check("fuck").blocked  # not yet: the interval has not passed
    clock.now += 5.0
    assert not flt.check("fuck").blocked
    assert flt.check("shit").blocked
    assert flt.reloads == 1
    clock.now += 5.0
    assert flt.maybe_reload() is False  # unchanged files are not rebuilt
    assert flt.reloads == 1


def test_a_broken_file_keeps_the_old_lists_and_logs_why(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    flt = make(files, clock)
    files[0].write_bytes(b"\xff\xfe broken")
    os.utime(files[0], ns=(3_000_000_000, 3_000_000_000))
    clock.now += 5.0
    with caplog.at_level(logging.ERROR, logger="bot.moderation.reloading"):
        assert flt.maybe_reload() is False
    assert "keeping the previous ones" in caplog.text
    assert "not UTF-8" in caplog.text
    assert flt.check("시발").blocked  # old lists still in force
    assert flt.failures == 1
    clock.now += 5.0
    assert flt.maybe_reload() is False  # the same broken state is not retried
    assert flt.failures == 1
    write(files[0], "shit\n", 4_000_000_000)
    clock.now += 5.0
    assert flt.maybe_reload() is True
    assert flt.check("shit").blocked and not flt.check("시발").blocked


def test_a_deleted_file_keeps_the_old_lists(files: tuple[Path, Path]) -> None:
    clock = Clock()
    flt = make(files, clock)
    files[1].unlink()
    clock.now += 5.0
    assert flt.maybe_reload() is False
    assert not flt.check("시발점").blocked  # the allowed list still applies


def test_a_file_still_being_written_waits_for_the_next_check(files: tuple[Path, Path]) -> None:
    clock = Clock()
    wall = Clock()
    wall.now = 5.0
    flt = ReloadingWordFilter(
        *files, check_interval=1.0, settle=2.0, background=False, clock=clock, wall_clock=wall
    )
    write(files[0], "shit\n", 4_500_000_000)  # modified half a second "ago"
    clock.now += 1.0
    assert flt.maybe_reload() is False
    wall.now = 7.0
    clock.now += 1.0
    assert flt.maybe_reload() is True
    assert flt.check("shit").blocked


def test_a_masker_finishes_with_the_automaton_it_started_with(files: tuple[Path, Path]) -> None:
    clock = Clock()
    flt = make(files, clock)
    masker = flt.masker()
    shown = masker.feed("이 시")
    write(files[0], "shit\n", 2_000_000_000)  # 시발 is no longer banned
    assert flt.reload() is True
    fresh = flt.masker()
    shown += masker.feed("발 shit") + masker.flush()
    assert shown == "이 ** shit"  # the old lists to the end
    assert fresh.feed("이 시발 shit") + fresh.flush() == "이 시발 ****"


def test_background_rebuild_swaps_when_ready(files: tuple[Path, Path]) -> None:
    clock = Clock()
    flt = ReloadingWordFilter(*files, check_interval=0.0, settle=0.0, clock=clock)
    before = flt.current
    write(files[0], "shit\n", 2_000_000_000)
    assert flt.maybe_reload() is True
    flt.wait(10)
    assert flt.current is not before
    assert flt.check("shit").blocked


def test_a_broken_file_at_start_up_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_content_filter(tmp_path / "missing.txt", tmp_path / "missing.txt")


def test_load_content_filter_follows_the_files(files: tuple[Path, Path]) -> None:
    flt = load_content_filter(*files)
    assert isinstance(flt, ReloadingWordFilter)
    verdict = flt.check("시발")
    assert verdict.blocked and [m.entry_id for m in verdict.matches] == [1]
    assert flt.mask("fuck") == "****"


def test_load_content_filter_takes_the_mask_settings(files: tuple[Path, Path]) -> None:
    fixed = load_content_filter(*files, fixed_mask="[삭제됨]")
    masker = fixed.masker()
    shown = masker.feed("이건 fuck 이야") + masker.flush()
    assert shown == "이건 [삭제됨] 이야"
    same = load_content_filter(*files, mask_char="#")
    assert same.mask("f.u.c.k!") == "#######!"
