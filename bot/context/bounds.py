"""A session document within a byte cap: the oldest exchanges go first, the newest one stays.

A session is stored as one JSON document (:meth:`Session.to_json`); one that grows without
bound makes every load and save slower and can outgrow what the store accepts. Before the
manager saves a session, :func:`bound_history` works out the history that fits
``SESSION_MAX_BYTES``: whole exchanges (a user message with the answers after it) are dropped
oldest first, and the newest exchange is always kept; if it alone does not fit, its longest
messages are clipped, keeping their head and tail around a marker.

The sizes are exact (the document's serialised UTF-8 bytes), computed per message without
serialising the whole document again for every candidate.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from bot.sessions.base import Message, Session

__all__ = ["Bounded", "bound_history", "clip_text"]

# JSON escapes a character into at most 6 bytes (\u001f); UTF-8 needs at most 4.
_MAX_BYTES_PER_CHAR = 6
# A message's own keys and punctuation, plus a generous allowance for its timestamp and role.
_MESSAGE_OVERHEAD = 80


@dataclass(frozen=True, slots=True)
class Bounded:
    """The history that fits, and what it cost."""

    history: list[Message]
    dropped: int = 0  # old messages left out
    clipped: int = 0  # messages of the newest exchange shortened

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.clipped)


def bound_history(session: Session, max_bytes: int) -> Bounded:
    """The history of ``session`` with which its document fits ``max_bytes`` (UTF-8).

    Pure: ``session`` is not changed; the caller stores the result. When even the newest
    exchange clipped to its markers cannot fit (the rest of the document alone is about the
    cap), the result is as small as it gets.
    """
    history = session.history
    frame = _frame_bytes(session)
    if not history or frame + _upper_bound(history) <= max_bytes:
        return Bounded(list(history))
    sizes = [_message_bytes(m) for m in history]
    room = max_bytes - frame  # for the messages and the commas between them

    # Exchanges start at user messages (and at 0); the newest one is never dropped.
    starts = [0, *(i for i, m in enumerate(history) if m.role == "user" and i > 0)]
    newest = starts[-1]
    suffix = [0] * (len(history) + 1)
    for i in range(len(history) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + sizes[i]
    for start in starts:
        if _fits(suffix[start], len(history) - start, room):
            return Bounded(list(history[start:]), dropped=start)

    kept = history[newest:]
    allowances = _share(room - (len(kept) - 1), sizes[newest:])
    result: list[Message] = []
    clipped = 0
    for message, size, allowance in zip(kept, sizes[newest:], allowances, strict=True):
        if size <= allowance:
            result.append(message)
            continue
        budget = allowance - _message_bytes(dataclasses.replace(message, content=""))
        result.append(dataclasses.replace(message, content=clip_text(message.content, budget)))
        clipped += 1
    return Bounded(result, dropped=newest, clipped=clipped)


def clip_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` as a JSON string body, keeping head and tail.

    The middle is replaced by a marker saying how much was left out; if not even the marker
    fits, the result is empty.
    """
    total = _json_bytes(text)
    if total <= max_bytes:
        return text
    marker = _json_bytes(_marker(len(text)))  # the longest the marker gets
    room = max_bytes - marker
    keep = len(text) * room // total if room > 0 else 0
    for _ in range(32):  # proportional steps: two or three in practice
        if keep <= 0:
            break
        clipped = _join(text, keep)
        size = _json_bytes(clipped)
        if size <= max_bytes:
            return clipped
        keep = min(keep - 1, keep * room // max(size - marker, 1))
    return _marker(len(text)) if marker <= max_bytes else ""


def _join(text: str, keep: int) -> str:
    head = keep - keep // 2
    tail = keep // 2
    marker = _marker(len(text) - keep)
    return text[:head] + marker + (text[-tail:] if tail else "")


def _marker(omitted: int) -> str:
    return f"\n\n[… {omitted:,} characters omitted …]\n\n"


def _share(room: int, sizes: Sequence[int]) -> list[int]:
    """Each message's byte allowance: small ones whole, the rest share what is left evenly."""
    allowances = [0] * len(sizes)
    left = max(room, 0)
    pending = len(sizes)
    for i in sorted(range(len(sizes)), key=sizes.__getitem__):
        fair = left // pending
        allowances[i] = min(sizes[i], fair)
        left -= allowances[i]
        pending -= 1
    return allowances


def _fits(message_bytes: int, count: int, room: int) -> bool:
    return message_bytes + max(count - 1, 0) <= room


def _frame_bytes(session: Session) -> int:
    """The document's bytes without any message (``"history":[]``)."""
    return _utf8(dataclasses.replace(session, history=[]).to_json())


def _message_bytes(message: Message) -> int:
    return _utf8(json.dumps(message.to_dict(), ensure_ascii=False, separators=(",", ":")))


def _json_bytes(text: str) -> int:
    return _utf8(json.dumps(text, ensure_ascii=False)) - 2  # without the quotes


def _upper_bound(history: Sequence[Message]) -> int:
    return sum(
        _MAX_BYTES_PER_CHAR * (len(m.content) + len(m.role)) + _MESSAGE_OVERHEAD for m in history
    )


def _utf8(text: str) -> int:
    # surrogatepass: a lone surrogate from a platform payload must not break the measure.
    return len(text.encode("utf-8", "surrogatepass"))
