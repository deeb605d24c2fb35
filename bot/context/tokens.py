"""Token estimates without the model's tokenizer, calibrated by the usage the API reports."""

from __future__ import annotations

import re

# Rough costs per character class for GLM-4's tokenizer (about 150k entries): common Hangul
# syllables and CJK characters are usually one token or a bit less, Latin text about four
# characters a token, whitespace mostly merges into the following word.
_HANGUL_CJK = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3\u3040-\u30ff\u4e00-\u9fff]")
_SPACE = re.compile(r"\s")
MESSAGE_OVERHEAD = 4  # role markers and separators per message


class TokenEstimator:
    """Estimates tokens; ``calibrate`` nudges a correction factor towards the API's counts."""

    def __init__(self, factor: float = 1.0, *, smoothing: float = 0.2) -> None:
        self.factor = factor
        self._smoothing = smoothing

    @staticmethod
    def raw(text: str) -> float:
        wide = len(_HANGUL_CJK.findall(text))
        spaces = len(_SPACE.findall(text))
        other = len(text) - wide - spaces
        return wide * 0.9 + other * 0.28 + spaces * 0.1

    def count(self, text: str) -> int:
        return int(self.raw(text) * self.factor) + 1

    def count_messages(self, messages: list[dict[str, object]]) -> int:
        return sum(self.count(str(m.get("content") or "")) + MESSAGE_OVERHEAD for m in messages)

    def calibrate(self, messages: list[dict[str, object]], prompt_tokens: int) -> None:
        """Move the factor towards what the API counted for ``messages`` (bounded, smoothed)."""
        raw = sum(self.raw(str(m.get("content") or "")) + MESSAGE_OVERHEAD for m in messages)
        if raw <= 0 or prompt_tokens <= 0:
            return
        observed = min(3.0, max(0.3, prompt_tokens / raw))
        self.factor += (observed - self.factor) * self._smoothing
