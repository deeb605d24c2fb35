"""Content filter: banned words blocked on input and masked in the streamed answer."""

from __future__ import annotations

from bot.moderation.lists import WordListError, read_word_list
from bot.moderation.masker import StreamMasker
from bot.moderation.matcher import Match, Verdict, WordFilter
from bot.moderation.normalize import Normalized, normalize
from bot.moderation.reloading import ReloadingWordFilter, load_content_filter

__all__ = [
    "Match",
    "Normalized",
    "ReloadingWordFilter",
    "StreamMasker",
    "Verdict",
    "WordFilter",
    "WordListError",
    "load_content_filter",
    "normalize",
    "read_word_list",
]
