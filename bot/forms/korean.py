"""Korean morphology for the forms: one Kiwi instance, built at start-up, tokens as plain values."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Tags of tokens that carry a noun-like meaning (Sejong tag set as used by Kiwi).
NOMINAL_TAGS = ("NNG", "NNP", "NNB", "NR", "NP", "SL", "SN", "SH", "XR")


@dataclass(frozen=True, slots=True)
class Token:
    """One morpheme: its form, its tag and where it sits in the analysed text."""

    form: str
    tag: str
    start: int
    end: int

    @property
    def nominal(self) -> bool:
        return self.tag.startswith(NOMINAL_TAGS)

    @property
    def particle(self) -> bool:
        return self.tag.startswith("J")


def _topic_particle(word: str) -> str:
    last = ord(word[-1]) - 0xAC00
    return "은" if 0 <= last < 11172 and last % 28 else "는"


class KoreanAnalyzer:
    """Kiwi behind a small typed surface.

    Loading Kiwi's model takes seconds, so build this once at start-up (the composition root)
    and share it; ``tokens`` then costs about 0.1 ms for a chat message. Raises when Kiwi
    cannot load (see ``load_analyzer``).
    """

    def __init__(self, *, proper_nouns: Iterable[str] = ()) -> None:
        # Imported here: a missing or broken kiwipiepy is a load failure like any other (the
        # forms then run without morphology) rather than an import error of the whole bot.
        import kiwipiepy  # type: ignore[import-untyped]

        started = time.perf_counter()
        self._kiwi = kiwipiepy.Kiwi()
        self._kiwi.tokenize("준비")  # the first call builds lazily-initialised tables
        added = self._teach(proper_nouns)
        self.load_seconds = time.perf_counter() - started
        log.info("kiwi ready in %.2fs (%d proper nouns taught)", self.load_seconds, added)

    def _teach(self, names: Iterable[str]) -> int:
        # Only names Kiwi gets wrong are added: teaching every city name would also split
        # ordinary words ("고양이" = cat would become the city 고양 + particle 이). Probe all
        # first, then add: each addition makes the next analysis rebuild Kiwi's tables.
        wrong = [
            name
            for name in dict.fromkeys(names)
            if name
            and " " not in name
            and not all(
                self._whole(name, probe)
                for probe in (f"{name}{_topic_particle(name)}?", f"{name}날씨")
            )
        ]
        for name in wrong:
            self._kiwi.add_user_word(name, "NNP", 0.0)
        if wrong:
            self._kiwi.tokenize("준비")
        return len(wrong)

    def _whole(self, name: str, probe: str) -> bool:
        return any(t.start == 0 and t.len == len(name) for t in self._kiwi.tokenize(probe))

    def tokens(self, text: str) -> tuple[Token, ...]:
        return tuple(
            Token(str(t.form), str(t.tag), int(t.start), int(t.start) + int(t.len))
            for t in self._kiwi.tokenize(text)
        )


def load_analyzer(proper_nouns: Iterable[str] = ()) -> KoreanAnalyzer | None:
    """A ``KoreanAnalyzer``, or ``None`` (logged once, as a warning) when Kiwi cannot load:
    the forms then work from the gazetteer and patterns alone and the bot keeps answering."""
    try:
        return KoreanAnalyzer(proper_nouns=proper_nouns)
    except Exception as exc:
        log.warning(
            "kiwi (Korean morphology) failed to load, forms use the gazetteer and patterns "
            "only: %s: %s",
            type(exc).__name__,
            exc,
        )
        return None
