"""Token estimates without the model's tokenizer, calibrated by the usage the API reports."""

from __future__ import annotations

import functools
import re

# Rough costs per character class for GLM-4's tokenizer (about 150k entries): common Hangul
# syllables and CJK characters are usually one token or a bit less, Latin text about four
# characters a token, whitespace mostly merges into the following word.
_HANGUL_CJK = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3\u3040-\u30ff\u4e00-\u9fff]")
_SPACE = re.compile(r"\s")
MESSAGE_OVERHEAD = 4  # role markers and separators per message


class TokenEstimator:
    """Estimates tokens. The correction factor belongs to a session (its texts, its script):
    ``calibrated`` moves it towards what the API counted; callers keep it with the session."""

    def __init__(self, factor: float = 1.0, *, smoothing: float = 0.3) -> None:
        self.factor = factor  # the default for a session not yet calibrated
        self._smoothing = smoothing

    @staticmethod
    @functools.lru_cache(maxsize=8192)
    def raw(text: str) -> float:
        wide = len(_HANGUL_CJK.findall(text))
        spaces = len(_SPACE.findall(text))
        other = len(text) - wide - spaces
        return wide * 0.9 + other * 0.28 + spaces * 0.1

    def count(self, text: str, factor: float | None = None) -> int:
        return int(self.raw(text) * (self.factor if factor is None else factor)) + 1

    def count_messages(self, messages: list[dict[str, object]], factor: float | None = None) -> int:
        return sum(
            self.count(str(m.get("content") or ""), factor) + MESSAGE_OVERHEAD for m in messages
        )

    def calibrated(
        self, factor: float, messages: list[dict[str, object]], prompt_tokens: int
    ) -> float:
        """``factor`` moved towards what the API counted for ``messages`` (bounded, smoothed)."""
        raw = sum(self.raw(str(m.get("content") or "")) + MESSAGE_OVERHEAD for m in messages)
        if raw <= 0 or prompt_tokens <= 0:
            return factor
        observed = min(3.0, max(0.3, prompt_tokens / raw))
        return factor + (observed - factor) * self._smoothing
