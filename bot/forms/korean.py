"""Korean morphology for the forms: one Kiwi instance, built at start-up, tokens as plain values."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Tags of tokens that carry a noun-like meaning (Sejong tag set as used by Kiwi).
NOMINAL_TAGS = ("NNG", "NNP", "NNB", "NR", "NP", "SL", "SN", "SH", "XR")

# How Kiwi is built. kiwipiepy's defaults load everything: 3.5-4 s and 520 MB on a 2-core
# machine (kiwipiepy 0.24), where the forms tokenise one short message at a time. So:
# - ``num_workers=0``: one thread, no pool of workers (kiwipiepy uses them for batches of
#   texts only): about 0.3 s less.
# - ``load_multi_dict=False``: no WikiData multi-word proper nouns (250,000 entries): 1.5-1.7 s
#   and 333 MB in all.
# - ``load_default_dict=False``: no extra proper nouns from Wikipedia (113,000): 1.1-1.2 s and
#   266 MB in all.
# Kiwi's own model still tags most place names it has never seen as proper nouns ("울진 날씨").
# Over 12,382 messages (every gazetteer name and 130 other places and names in 18-35 patterns,
# the tests' and the sample dialogues' messages), what the forms find differs from Kiwi with
# every dictionary in 31: 5 compound nouns now right (``COMPOUNDS``: WikiData knew "진주
# 목걸이" as a painting, which is all that kept the city Jinju out of "진주 목걸이 날씨"), 8
# better ("홍성은?" asks the geocoder for 홍성, not 홍성은), 9 worse: follow-ups and bare
# answers naming foreign places that only the Wikipedia dictionary knew ("그럼 푸껫은?", which
# then goes to the model), and 9 where it does not matter (mostly messages naming "날씨": they
# start the form before any follow-up is looked for). The small typo dictionary stays: without it
# "괜찬아" (괜찮아) reads as a name.
KIWI_OPTIONS: dict[str, Any] = {
    "num_workers": 0,
    "load_multi_dict": False,
    "load_default_dict": False,
}

# Common nouns written as two words whose first is a city name used as an ordinary word (진주
# = pearl, 구리 = copper, 화성 = Mars, 공주 = princess, 세부 = detail): taught as one noun,
# so the gazetteer does not take the city out of "진주 목걸이 날씨" (a pearl necklace).
COMPOUNDS = (
    *("진주 목걸이", "진주 귀걸이", "진주 반지", "진주 팔찌", "진주 브로치", "진주 조개"),
    *("구리 냄비", "구리 반지", "구리 전선", "구리 동전", "구리 합금"),
    *("화성 탐사", "화성 탐사선", "화성 표면", "공주 드레스", "공주 옷"),
    *("세부 사항", "세부 내용", "세부 정보"),
)


# Particles, endings, suffixes and the copula: what follows a word without being one.
_FUNCTIONAL = ("J", "E", "XS", "VCP", "S")


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


@dataclass(frozen=True, slots=True)
class TaughtNames:
    """The names one Kiwi (version, model, options) splits wrongly, out of one list of names."""

    fingerprint: str
    names: tuple[str, ...]


# The gazetteer's names that Kiwi, as built here, splits wrongly ("안동은?" read as one word),
# probed beforehand: teaching them before Kiwi's first analysis builds its tables once, where
# probing at start-up needs them built twice (about 0.6 s and 30 MB more). When the fingerprint
# does not match (another kiwipiepy, a changed cities.json) the names are probed at start-up as
# before; tests/bot/forms/test_korean.py fails until the table is regenerated with
# ``.venv/bin/python -m bot.forms.korean``.
TAUGHT = TaughtNames(
    fingerprint="87441cc352eb0907",
    names=(
        "서울특별시",
        "대전광역시",
        "안양",
        "평택",
        "파주",
        "광명",
        "군포",
        "하남",
        "양주",
        "구리시",
        "여주시",
        "경기광주",
        "태백",
        "삼척",
        "계룡",
        "계룡시",
        "당진시",
        "남원시",
        "여수시",
        "나주시",
        "상주시",
        "문경",
        "문경시",
        "통영시",
        "사천시",
        "울릉",
        "나하",
    ),
)


def _topic_particle(word: str) -> str:
    last = ord(word[-1]) - 0xAC00
    return "은" if 0 <= last < 11172 and last % 28 else "는"


def teachable(names: Iterable[str]) -> list[str]:
    """The names worth probing: one word each, no repeats, in the order given."""
    return [name for name in dict.fromkeys(names) if name and " " not in name]


def fingerprint(names: Iterable[str]) -> str:
    """What decides which names Kiwi splits: its version, its model, its options, the names."""
    import kiwipiepy  # type: ignore[import-untyped]

    try:
        import kiwipiepy_model  # type: ignore[import-untyped]

        model = str(kiwipiepy_model.__version__)
    except Exception:  # a model installed elsewhere: probed at every start
        model = "?"
    material = [
        str(kiwipiepy.__version__),
        model,
        sorted(KIWI_OPTIONS.items()),
        sorted(teachable(names)),
    ]
    return hashlib.sha256(json.dumps(material, ensure_ascii=False).encode()).hexdigest()[:16]


def new_kiwi() -> Any:
    """A Kiwi with ``KIWI_OPTIONS``; its tables are built by the first analysis."""
    # Imported here: a missing or broken kiwipiepy is a load failure like any other (the forms
    # then run without morphology) rather than an import error of the whole bot.
    import kiwipiepy

    with warnings.catch_warnings():
        # kiwipiepy warns that num_workers=0 meant "every core" before 0.21; it means one
        # thread since, which is what is asked for.
        warnings.filterwarnings("ignore", message=".*num_workers", category=DeprecationWarning)
        return kiwipiepy.Kiwi(**KIWI_OPTIONS)


def split_names(kiwi: Any, names: Iterable[str]) -> list[str]:
    """The names ``kiwi`` does not read as one word before a particle or "날씨".

    Only those are taught: teaching every city name would also split ordinary words ("고양이"
    = cat would become the city 고양 + particle 이).
    """

    def whole(name: str, probe: str) -> bool:
        return any(t.start == 0 and t.len == len(name) for t in kiwi.tokenize(probe))

    return [
        name
        for name in teachable(names)
        if not all(
            whole(name, probe) for probe in (f"{name}{_topic_particle(name)}?", f"{name}날씨")
        )
    ]


class KoreanAnalyzer:
    """Kiwi behind a small typed surface.

    Loading Kiwi's model takes about a second and holds the GIL all along, so build this once
    at start-up (the composition root), before anything is served, and share it; ``tokens``
    then costs about 0.1 ms for a chat message. Raises when Kiwi cannot load (see
    ``load_analyzer``).
    """

    def __init__(self, *, proper_nouns: Iterable[str] = (), taught: TaughtNames = TAUGHT) -> None:
        started = time.perf_counter()
        names = teachable(proper_nouns)
        self._kiwi = new_kiwi()
        probed = taught.fingerprint != fingerprint(names)
        # Probing needs Kiwi's tables built, and the words added afterwards build them again:
        # with ``taught`` up to date they are built once, below.
        wrong = split_names(self._kiwi, names) if probed else list(taught.names)
        for name in wrong:
            self._kiwi.add_user_word(name, "NNP", 0.0)
        for word in COMPOUNDS:
            self._kiwi.add_user_word(word, "NNG", 0.0)
        self._kiwi.tokenize("준비")  # the first call (after the words) builds the tables
        self.load_seconds = time.perf_counter() - started
        log.info(
            "kiwi ready in %.2fs (%d proper nouns taught%s)",
            self.load_seconds,
            len(wrong),
            ", probed at start-up: regenerate TAUGHT with python -m bot.forms.korean"
            if probed
            else "",
        )

    def tokens(self, text: str) -> tuple[Token, ...]:
        return tuple(
            Token(str(t.form), str(t.tag), int(t.start), int(t.start) + int(t.len))
            for t in self._kiwi.tokenize(text)
        )

    def known_word(self, word: str) -> bool:
        """Kiwi reads ``word`` as one word of its dictionary, maybe with a particle or an
        ending ("부상", "전부", "통역이", "구려" = 구리 + 어), not as a guess at a word it does
        not know ("부싼", "대졘": its placeholder morphemes have no form) nor as pieces that
        make no word ("서을" = 서 + 을)."""
        tokens = self._kiwi.tokenize(word)
        if not tokens or int(tokens[0].start) != 0:
            return False
        head, rest = tokens[0], tokens[1:]
        if not self._kiwi.morpheme(int(head.id)).form or str(head.tag).startswith(_FUNCTIONAL):
            return False
        return all(
            str(t.tag).startswith(_FUNCTIONAL) and self._kiwi.morpheme(int(t.id)).form for t in rest
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


def _print_taught() -> None:
    """Print ``TAUGHT`` for this kiwipiepy and the shipped gazetteer (paste it above)."""
    from bot.forms.extractors import CityGazetteer

    names = CityGazetteer.load().korean_names()
    wrong = split_names(new_kiwi(), names)
    lines = [f'    fingerprint="{fingerprint(names)}",', "    names=("]
    lines += [f'        "{name}",' for name in wrong]
    print("TAUGHT = TaughtNames(\n" + "\n".join(lines) + "\n    ),\n)")


if __name__ == "__main__":
    _print_taught()
