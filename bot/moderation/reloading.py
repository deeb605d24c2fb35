"""ReloadingWordFilter: follows the list files, rebuilding aside and swapping atomically."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bot.moderation.lists import file_signature
from bot.moderation.masker import StreamMasker
from bot.moderation.matcher import Verdict, WordFilter

log = logging.getLogger(__name__)


class ReloadingWordFilter:
    """A ``WordFilter`` that picks up edits to its list files without a restart.

    ``check``/``mask``/``masker`` first call ``maybe_reload``, which stats the files at most
    every ``check_interval`` seconds. On a change the new automaton is built aside (in a
    background thread unless ``background=False``) and swapped in with one reference
    assignment; callers holding the old filter, or a masker made from it, keep using it.
    A file that cannot be read keeps the previous lists and logs why. A file modified
    less than ``settle`` seconds ago is left for the next check: an editor may still be
    writing it, and a half-written list would briefly let words through.
    """

    def __init__(
        self,
        banned_path: Path,
        allowed_path: Path,
        *,
        check_interval: float = 5.0,
        settle: float = 1.0,
        background: bool = True,
        mask_char: str = "*",
        fixed_mask: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._paths = (banned_path, allowed_path)
        self._interval = check_interval
        self._settle = settle
        self._background = background
        self._mask_char = mask_char
        self._fixed = fixed_mask
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()  # one rebuild at a time
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.failures = 0
        # At start-up there are no previous lists to fall back on: errors propagate.
        self._signature = file_signature(*self._paths)
        self._filter = self._build()
        self._next_check = clock() + check_interval

    @property
    def current(self) -> WordFilter:
        """The filter in force now."""
        return self._filter

    def check(self, text: str) -> Verdict:
        self.maybe_reload()
        return self._filter.check(text)

    def mask(self, text: str) -> str:
        self.maybe_reload()
        return self._filter.mask(text)

    def masker(self) -> StreamMasker:
        self.maybe_reload()
        return self._filter.masker()

    def maybe_reload(self) -> bool:
        """Stat the files if ``check_interval`` has passed; rebuild when they changed.

        Returns True when a rebuild was started (background) or done (foreground).
        """
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self._interval
        signature = file_signature(*self._paths)
        if signature == self._signature:
            return False
        newest = max(mtime_ns for mtime_ns, _, _ in signature) / 1e9
        if self._wall() - newest < self._settle:
            return False
        if not self._background:
            return self._rebuild(signature)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(
                target=self._rebuild, args=(signature,), name="word-list-reload", daemon=True
            )
            self._thread.start()
        return True

    def reload(self) -> bool:
        """Rebuild now, in this thread; False (old lists kept) when a file is broken."""
        return self._rebuild(file_signature(*self._paths))

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background rebuild to finish (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _build(self) -> WordFilter:
        banned, allowed = self._paths
        return WordFilter.from_files(
            banned, allowed, mask_char=self._mask_char, fixed_mask=self._fixed
        )

    def _rebuild(self, signature: tuple[tuple[int, int, int], ...]) -> bool:
        started = time.perf_counter()
        try:
            new = self._build()
        except Exception as exc:  # any failure must leave the old lists in force
            # Remember the broken state so it is not rebuilt every interval; the next
            # edit changes the signature and is tried again.
            self._signature = signature
            self.failures += 1
            log.error("word lists not reloaded, keeping the previous ones: %s", exc)
            return False
        self._filter = new
        self._signature = signature
        self.reloads += 1
        skipped = len(new.lists.skipped)
        log.info(
            "word lists reloaded in %.2fs: %d banned, %d allowed, %d lines skipped",
            time.perf_counter() - started,
            new.lists.banned_count,
            new.lists.allowed_count,
            skipped,
        )
        return True


def load_content_filter(
    banned_path: Path, allowed_path: Path, *, mask_char: str = "*", fixed_mask: str | None = None
) -> ReloadingWordFilter:
    """The content filter ``bot.app`` installs: the list files, followed for changes.

    Masks are ``mask_char`` once per character, or ``fixed_mask`` once per span when given.
    """
    return ReloadingWordFilter(
        banned_path, allowed_path, mask_char=mask_char, fixed_mask=fixed_mask
    )
