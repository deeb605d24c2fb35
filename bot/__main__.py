"""Command line: ``python -m bot run | chat | check | filter TEXT``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from bot.settings import Settings

# What ``_chat`` built, left to the process's exit: freeing it object by object, Kiwi's tables
# first, takes 0.05-0.1 s that ``_exit_now`` does not spend.
_left_for_exit: list[object] = []


def _load_settings() -> Settings | None:
    # Imported here, like everything the commands need: the collector is off by then (``main``).
    from pydantic import ValidationError

    from bot.settings import Settings

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
    from bot.i18n import t

    settings = _load_settings()
    if settings is None:
        return 2
    setup_logging(settings, terminal=_log_shares_the_terminal())
    app = await build_app(settings, admin_ids=terminal_admins())
    _left_for_exit.append(app)
    gc.enable()  # built: from here on garbage is what turns leave
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
    if settings.web_problem:  # before anything starts: nothing half-runs, /readyz never says ready
        print(f"error: {settings.web_problem}", file=sys.stderr)
        return 2
    if not channels:
        return await _chat()
    setup_logging(settings)
    gc.enable()  # run_channels builds the bot and serves: a long life, collected as usual
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
    # Starting up creates a great many objects that live as long as the process (modules,
    # classes, settings, compiled patterns, the gazetteer), and the garbage collector would go
    # over them again and again meanwhile: some 180 collections, 0.05-0.1 s of a 2 s start
    # on a 2-core machine (bench/bench_startup.py). So it is off until the bot is built.
    gc.disable()
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
    finally:
        gc.enable()


def _exit_now(code: int) -> NoReturn:
    """Leave without the interpreter's teardown (``python -m bot``).

    Whatever a command owns is closed by the time it returns (sessions, sockets, the store,
    the event loop and its threads). What is left is freeing every module and object one at a
    time: 0.2-0.4 s on a 2-core machine once the answer is printed (bench/bench_startup.py).
    So, as a forked child does: flush what is buffered, then ``os._exit``. (The
    ``glm-chatbot`` script calls ``main`` and exits the usual way.)"""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``) or a closed stream
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
