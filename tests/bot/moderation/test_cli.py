"""``run_filter_cli`` and the ``python -m bot filter`` contract: 0 passes, 1 blocked."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from bot.moderation.cli import run_filter_cli
from tests.bot.moderation.conftest import ALLOWED, BANNED, line_of

ROOT = Path(__file__).resolve().parents[3]


def test_a_blocked_text_prints_entries_and_masked_text() -> None:
    out = io.StringIO()
    assert run_filter_cli("야 시.발 그리고 fuck", BANNED, ALLOWED, out) == 1
    printed = out.getvalue()
    assert "verdict: blocked" in printed
    assert f"line {line_of(BANNED, '시발')}: '시발' <- '시.발'" in printed
    assert f"line {line_of(BANNED, 'fuck')}: 'fuck' <- 'fuck'" in printed
    assert "masked: 야 *** 그리고 ****" in printed


def test_an_innocent_text_passes() -> None:
    out = io.StringIO()
    assert run_filter_cli("시발점에서 출발합니다", BANNED, ALLOWED, out) == 0
    assert out.getvalue() == "verdict: allowed\nmasked: 시발점에서 출발합니다\n"


def test_unreadable_lists_are_reported(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_filter_cli("x", tmp_path / "missing.txt", ALLOWED, out) == 2
    assert "cannot load the word lists" in out.getvalue()


def test_python_m_bot_filter_exit_status(tmp_path: Path) -> None:
    banned = tmp_path / "banned.txt"
    banned.write_text("# operator list\nbadword\n", encoding="utf-8")
    env = {
        **os.environ,
        "BANNED_WORDS_PATH": str(banned),
        "ALLOWED_WORDS_PATH": str(ALLOWED),
        "PYTHONPATH": str(ROOT),
    }

    def run(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "filter", text],
            cwd=tmp_path,  # no stray .env from the project directory
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    blocked = run("a b.a.d.w.o.r.d here")
    assert blocked.returncode == 1, blocked.stderr
    assert "line 2: 'badword'" in blocked.stdout
    passed = run("a good word")
    assert passed.returncode == 0, passed.stderr
    assert "verdict: allowed" in passed.stdout
    env["FILTER_FIXED_MASK"] = "[삭제됨]"
    fixed = run("a b.a.d.w.o.r.d here")
    assert "masked: a [삭제됨] here" in fixed.stdout
    env.pop("FILTER_FIXED_MASK")
    env["FILTER_MASK_CHAR"] = "#"
    assert "masked: a ############# here" in run("a b.a.d.w.o.r.d here").stdout
