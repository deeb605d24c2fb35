"""Terminal chat: one line in, the answer printed as it streams."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Sequence
from typing import TextIO

from bot.manager import ConversationManager
from bot.reply import Button, ReplyStream
from bot.turn import Turn


class TerminalReplyStream(ReplyStream):
    """Prints chunks as they arrive; the final text only adds what was not printed yet."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.printed = ""

    async def start(self) -> None:
        return None

    def append(self, text: str) -> None:
        self.printed += text
        self.out.write(text)
        self.out.flush()

    async def finish(self, text: str, buttons: Sequence[Button] | None = None) -> None:
        if text.startswith(self.printed):
            self.out.write(text[len(self.printed) :])
        else:  # the final text differs from the streamed one: show it whole
            self.out.write(("\n" if self.printed else "") + text)
        if buttons:
            self.out.write("\n" + "  ".join(f"[{b.label}]" for b in buttons))
        self.out.write("\n")
        self.out.flush()

    async def fail(self, notice: str) -> None:
        self.out.write(("\n" if self.printed else "") + notice + "\n")
        self.out.flush()

    async def retract(self, notice: str) -> None:
        # A terminal cannot unprint; say clearly that the text above is withdrawn.
        self.out.write(("\n" if self.printed else "") + notice + "\n")
        self.out.flush()


async def _read_line(stream: TextIO) -> str | None:
    line = await asyncio.to_thread(stream.readline)
    return line if line else None


async def run_terminal_chat(
    manager: ConversationManager,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    banner: str = "",
) -> int:
    """Chat until end of input. Interactive: a prompt per line; piped: one message a line."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty()
    user = _local_user()
    if banner:
        print(banner, file=sys.stderr if not interactive else stdout, flush=True)
    count = 0
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = await _read_line(stdin)
        if line is None:
            break
        text = line.rstrip("\r\n")
        if interactive and not text.strip():
            continue
        count += 1
        turn = Turn(
            platform="terminal",
            chat_id="local",
            user_id=user,
            user_name=user,
            text=text,
            message_id=str(count),
            is_private=True,
        )
        await manager.handle(turn, TerminalReplyStream(stdout))
    if interactive:
        stdout.write("\n")
    return 0


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "local"


async def terminal_admin(turn: Turn) -> bool:
    """Whoever sits at the terminal runs the bot: they are its admin."""
    return turn.platform == "terminal"
