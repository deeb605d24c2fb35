"""Start-up figures: a new user's first command, whole process (start, answer, exit).

The exact command of the issue, run N times as a fresh process each:

    printf '서울 날씨 알려줘\\n' | .venv/bin/python -m bot chat

with none of the bot's variables set (offline model, memory store, forms on). Wall time is
taken around the whole pipeline; peak RSS is the largest ``ru_maxrss`` among the pipeline's
processes (the bot's), from ``wait4``, the figure ``/usr/bin/time -v`` prints.
"""

# Run from the project root: .venv/bin/python bench/bench_startup.py [--runs N]
# The environment is the caller's (PATH, locale) less the bot's variables, and less
# PYTHONDONTWRITEBYTECODE: as on a user's machine, Python keeps the bot's compiled bytecode in
# __pycache__ (ignored by git), so the first run after a change compiles it and is reported
# apart from the N measured ones.

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import banner  # noqa: E402
from tests.scenarios.process import BOT_PREFIXES  # noqa: E402

MESSAGE = "서울 날씨 알려줘"
TARGET_WALL_S = 2.0
TARGET_RSS_MIB = 350.0


@dataclass(frozen=True)
class Run:
    wall_s: float
    rss_mib: float
    code: int
    stdout: str
    stderr: str


def user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(BOT_PREFIXES)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(command: str, env: dict[str, str]) -> Run:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(["sh", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=err)
        # wait4 on the shell: ru_maxrss is the largest of the shell and the children it
        # waited for (printf and python), i.e. the bot's own peak. (Linux also counts this
        # process's own peak when it spawns the shell: some 20 MiB, far below the bot's.)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            wall,
            usage.ru_maxrss / 1024,  # KiB on Linux
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def _kiwi_version() -> str:
    try:
        from importlib.metadata import version

        return version("kiwipiepy")
    except Exception:
        return "(not installed)"


def spread(values: list[float], unit: str, digits: int) -> str:
    ordered = sorted(values)
    return (
        f"median {statistics.median(ordered):.{digits}f} {unit}, "
        f"max {ordered[-1]:.{digits}f} {unit}, min {ordered[0]:.{digits}f} {unit} "
        f"(n={len(ordered)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="measured runs after the first")
    parser.add_argument("--message", default=MESSAGE, help="the line piped into the chat")
    args = parser.parse_args()

    python = ".venv/bin/python" if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
    command = f"printf '%s\\n' {shlex.quote(args.message)} | {shlex.quote(python)} -m bot chat"
    banner("start-up: a new user's first command, whole process")
    print(f"   command: {command}  (cwd {ROOT})")
    env = user_env()
    python_env = " ".join(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("PYTHON"))
    print(f"   environment: {python_env or 'no PYTHON* variables'}, kiwipiepy {_kiwi_version()}")
    if (ROOT / ".env").exists():
        print("   note: .env exists in the checkout and is read by the bot")
    first = run_once(command, env)
    runs = [run_once(command, env) for _ in range(args.runs)]

    answer = first.stdout.strip().splitlines()
    print(f"   answer: {answer[0] if answer else '(none)'}")
    failed = [r for r in [first, *runs] if r.code != 0]
    if failed:
        print(f"   {len(failed)} run(s) exited with {failed[0].code}:\n{failed[0].stderr}")
    print(f"   first run (may compile bytecode): {first.wall_s:.2f} s, {first.rss_mib:.0f} MiB")
    print(f"   wall time: {spread([r.wall_s for r in runs], 's', 2)}")
    print(f"   peak RSS:  {spread([r.rss_mib for r in runs], 'MiB', 0)}")
    worst_wall = max(r.wall_s for r in runs)
    worst_rss = max(r.rss_mib for r in runs)
    wall_ok = statistics.median(r.wall_s for r in runs) <= TARGET_WALL_S
    rss_ok = worst_rss <= TARGET_RSS_MIB
    print(
        f"   target: median wall <= {TARGET_WALL_S} s (max {worst_wall:.2f} s), "
        f"peak RSS <= {TARGET_RSS_MIB:.0f} MiB: "
        f"{'met' if wall_ok and rss_ok and not failed else 'MISSED'}"
    )
    return 0 if wall_ok and rss_ok and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
