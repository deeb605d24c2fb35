"""Run the real bot process (``python -m bot ...``) with a clean environment."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every variable the bot reads starts with one of these (bot/settings.py, .env.example).
BOT_PREFIXES = (
    "GLM_",
    "REDIS_",
    "TELEGRAM_",
    "SLACK_",
    "SESSION_",
    "WEATHER_",
    "LOG_",
    "BANNED_",
    "ALLOWED_",
    "MAX_MESSAGE",
    "GROUP_SESSION",
    "FORM",
    "MEMORY_MAX",
    "EMBEDDING_",
    "SUMMARY_",
    "SHUTDOWN_",
    "FILTER_",
    "METRICS_",
    "USER_",
    "WEB_",
)


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


def clean_env(**overrides: str) -> dict[str, str]:
    """The process environment without any bot variable, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(BOT_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    env.update(overrides)
    return env


async def run_bot(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, within: float = 60
) -> Finished:
    # A scratch working directory: a developer's own .env must not leak into the test.
    with tempfile.TemporaryDirectory() as cwd:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env if env is not None else clean_env(),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), within)
        except TimeoutError:
            proc.kill()  # a bot that does not finish must not outlive the test
            await proc.wait()
            raise
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(), err.decode())


class BotProcess:
    """A long-running ``python -m bot run``; ``stop()`` sends SIGTERM and collects the output."""

    def __init__(self, proc: asyncio.subprocess.Process, cwd: tempfile.TemporaryDirectory[str]):
        self.proc = proc
        self._cwd = cwd
        self.stdout = ""
        self.stderr = ""

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a crash (nothing is cleaned up)."""
        if self.proc.returncode is None:
            self.proc.kill()
        out, err = await asyncio.wait_for(self.proc.communicate(), 10)
        self.stdout += out.decode()
        self.stderr += err.decode()
        self._cwd.cleanup()

    async def stop(self, within: float = 10) -> int:
        if self.proc.returncode is None:
            self.proc.terminate()
        out, err = await asyncio.wait_for(self.proc.communicate(), within)
        self.stdout += out.decode()
        self.stderr += err.decode()
        self._cwd.cleanup()
        assert self.proc.returncode is not None
        return self.proc.returncode


async def start_bot(*args: str, env: dict[str, str]) -> BotProcess:
    """Start ``python -m bot <args>`` (default ``run``) in a scratch directory."""
    cwd = tempfile.TemporaryDirectory()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *(args or ("run",)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd.name,
        env=env,
    )
    return BotProcess(proc, cwd)
