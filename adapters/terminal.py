"""Terminal chat: one line in, the answer printed as it streams."""

from __future__ import annotations

import asyncio
import codecs
import getpass
import os
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


class TerminalLines:
    """Lines typed at a terminal, read by the event loop itself (no thread).

    A thread blocked in ``readline`` would hold the process after Ctrl-C until Enter is
    pressed (``asyncio.run`` waits for its worker threads); here Ctrl-C cancels the wait at
    once. A terminal in canonical mode hands over one whole line per read.
    """

    def __init__(self, fd: int, encoding: str) -> None:
        self.fd = fd
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._buffer = ""
        self._eof = False

    @classmethod
    def of(cls, stream: TextIO) -> TerminalLines | None:
        """A reader for ``stream`` when it is a terminal this event loop can watch."""
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        loop = asyncio.get_running_loop()
        try:  # Windows' proactor loop cannot watch a file descriptor
            loop.add_reader(fd, lambda: None)
        except (NotImplementedError, OSError, ValueError):
            return None
        loop.remove_reader(fd)
        return cls(fd, getattr(stream, "encoding", None) or "utf-8")

    async def readline(self) -> str | None:
        """The next line (with its newline), the last unfinished one at end of input, or
        ``None`` at end of input (Ctrl-D)."""
        while "\n" not in self._buffer and not self._eof:
            await self._readable()
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the terminal went away
                data = b""
            if data:
                self._buffer += self._decoder.decode(data)
            else:
                self._buffer += self._decoder.decode(b"", final=True)
                self._eof = True
        line, newline, rest = self._buffer.partition("\n")
        self._buffer = rest
        return line + newline if line or newline else None

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self.fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)


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
    # At a terminal the event loop reads the lines itself, so Ctrl-C exits at once.
    typed = TerminalLines.of(stdin) if interactive else None
    count = 0
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        try:
            line = await (typed.readline() if typed is not None else _read_line(stdin))
        except asyncio.CancelledError:  # Ctrl-C at the prompt: end the prompt's line
            if interactive:
                stdout.write("\n")
                stdout.flush()
            raise
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
            language=locale_language(),
        )
        await manager.handle(turn, TerminalReplyStream(stdout))
    if interactive:
        stdout.write("\n")
    return 0


def locale_language() -> str:
    """The terminal's language from the locale (``ko_KR.UTF-8`` → ``ko``); '' when unset."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            code = value.split(".", 1)[0].split("_", 1)[0].lower()
            return "" if code in ("c", "posix") else code
    return ""


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "local"


def terminal_admins() -> dict[str, frozenset[str]]:
    """Whoever sits at the terminal runs the bot: they are its admin (for ``build_app``)."""
    return {"terminal": frozenset({_local_user()})}
