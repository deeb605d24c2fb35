"""Command line: ``python -m bot run | chat | check | filter TEXT``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from pydantic import ValidationError

from bot.i18n import t
from bot.settings import Settings


def _load_settings() -> Settings | None:
    try:
        return Settings()
    except ValidationError as exc:
        print("Invalid settings:", file=sys.stderr)
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper()
            # Never echo the value: it may be a token pasted into the wrong variable.
            print(f"  {name}: {err['msg']}", file=sys.stderr)
        return None


def _log_shares_the_terminal() -> bool:
    """The chat's input or output is a terminal and so is stderr: log lines would cut into
    the conversation (``2>bot.log`` keeps the full log; without a terminal, ``LOG_LEVEL``)."""
    try:
        return (sys.stdin.isatty() or sys.stdout.isatty()) and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


async def _chat() -> int:
    from adapters.terminal import run_terminal_chat, terminal_admins
    from bot.app import build_app, setup_logging

    settings = _load_settings()
    if settings is None:
        return 2
    setup_logging(settings, terminal=_log_shares_the_terminal())
    app = await build_app(settings, admin_ids=terminal_admins())
    try:
        banner = ""
        if settings.offline:
            banner = t("offline_banner", "ko") + "\n" + t("offline_banner", "en")
        return await run_terminal_chat(app.manager, banner=banner)
    finally:
        await app.close()


async def _run() -> int:
    from bot.app import configured_channels, run_channels, setup_logging

    settings = _load_settings()
    if settings is None:
        return 2
    channels = configured_channels(settings)
    if not channels:
        return await _chat()
    setup_logging(settings)
    return await run_channels(settings, channels)


def _check() -> int:
    from bot.checks import describe

    settings = _load_settings()
    if settings is None:
        return 2
    lines, ok = describe(settings)
    print("\n".join(lines))
    return 0 if ok else 2


def _filter(text: str) -> int:
    settings = _load_settings()
    if settings is None:
        return 2
    try:
        from bot.moderation.cli import run_filter_cli
    except ImportError:
        print("the content filter is not part of this build", file=sys.stderr)
        return 2
    return run_filter_cli(
        text,
        settings.banned_words_path,
        settings.allowed_words_path,
        sys.stdout,
        mask_char=settings.filter_mask_char,
        fixed_mask=settings.filter_fixed_mask,
    )


async def _until_terminated(work: Coroutine[Any, Any, int]) -> int:
    """Run ``work``; SIGTERM cancels it so adapters and connections close cleanly."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start every configured channel (terminal chat when none)")
    sub.add_parser("chat", help="terminal chat through the same manager")
    sub.add_parser("check", help="validate the settings and print what would run")
    filt = sub.add_parser("filter", help="print the content filter's verdict on TEXT")
    filt.add_argument("text", metavar="TEXT")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return asyncio.run(_until_terminated(_run()))
        if args.command == "chat":
            return asyncio.run(_until_terminated(_chat()))
        if args.command == "check":
            return _check()
        return _filter(args.text)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
