"""Block Kit for quick-reply buttons: the blocks an answer carries, and reading a press back.

A ``Button`` becomes one ``button`` element of an ``actions`` block:

- ``action_id`` is ``bot_button_<n>`` (unique in the message; the channel's listener matches
  the prefix);
- ``value`` is ``{"p": payload, "o": owner}`` as compact JSON (``o`` left out without an
  owner). Slack sends the value back verbatim with the press, in a request it signs, and only
  this app can write its messages, so a presser can neither read nor forge another owner;
  each button keeps its own owner, and nothing is remembered between the offer and the press
  (any replica, or the bot after a restart, can answer it);
- the actions block's ``block_id`` is ``bot_buttons:<team>`` (``bot_buttons_alone:<team>``
  when the buttons were posted as a message of their own): the workspace whose session the
  offer was made in. A press's own ``team`` can name the presser's workspace instead (Slack
  Connect, org-wide installs), and the press must reach the conversation it was offered in.

Posted answers are mrkdwn ``text``; a message with ``blocks`` shows the blocks instead of its
text, so such an answer carries its text again as ``section`` blocks (at most 3,000
characters each) above the buttons. A streamed answer keeps its text: ``chat.stopStream``
renders the blocks below it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.slack_markdown import choose_cut, in_code, next_start
from bot.reply import Button

log = logging.getLogger(__name__)

ACTION_PREFIX = "bot_button_"
ACTION_PATTERN = re.compile(re.escape(ACTION_PREFIX) + r"\d+")
BLOCK_PREFIX = "bot_buttons"
ALONE_PREFIX = "bot_buttons_alone"

# https://docs.slack.dev/reference/block-kit/blocks/actions-block and .../button-element
MAX_ELEMENTS = 25  # elements of one actions block
MAX_LABEL = 75  # a button's plain_text
MAX_VALUE = 2000  # a button's value
MAX_BLOCK_ID = 255
# https://docs.slack.dev/reference/block-kit/blocks/section-block
MAX_SECTION = 3000  # a section's text

_FENCE_CLOSE = "\n```"
_FENCE_OPEN = "```\n"


def encode_value(button: Button) -> str:
    data: dict[str, str] = {"p": button.payload}
    if button.owner:
        data["o"] = button.owner
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_value(value: str) -> tuple[str, str | None]:
    """``(payload, owner)`` of a pressed button's value (a value that is not ours is taken as
    the payload itself, without an owner)."""
    try:
        data = json.loads(value)
    except ValueError:
        return value, None
    if not isinstance(data, dict) or not isinstance(data.get("p"), str):
        return value, None
    owner = data.get("o")
    return data["p"], str(owner) if owner else None


def _label(button: Button) -> str:
    label = " ".join(button.label.split()) or " ".join(button.payload.split()) or "…"
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def actions_block(buttons: Sequence[Button], team: str, *, alone: bool = False) -> dict[str, Any]:
    """The ``actions`` block for ``buttons`` offered in ``team`` (empty ``elements`` when none
    could be shown: see ``buttons_blocks``)."""
    elements: list[dict[str, Any]] = []
    for button in buttons:
        value = encode_value(button)
        if len(value) > MAX_VALUE:
            log.warning("button %r left out: its payload is too long for Slack", button.label)
            continue
        if len(elements) == MAX_ELEMENTS:
            log.warning("only %d buttons fit under one Slack message", MAX_ELEMENTS)
            break
        elements.append(
            {
                "type": "button",
                "action_id": f"{ACTION_PREFIX}{len(elements)}",
                "text": {"type": "plain_text", "text": _label(button), "emoji": True},
                "value": value,
            }
        )
    prefix = ALONE_PREFIX if alone else BLOCK_PREFIX
    return {"type": "actions", "block_id": f"{prefix}:{team}"[:MAX_BLOCK_ID], "elements": elements}


def buttons_blocks(
    buttons: Sequence[Button] | None, team: str, *, alone: bool = False
) -> list[dict[str, Any]]:
    """``[actions block]`` for ``buttons``, or ``[]`` when there is nothing to show."""
    if not buttons:
        return []
    block = actions_block(buttons, team, alone=alone)
    return [block] if block["elements"] else []


def labels(blocks: Sequence[Mapping[str, Any]]) -> str:
    """The buttons' labels, for a message's notification ``text``."""
    found = [
        str(element.get("text", {}).get("text") or "")
        for block in blocks
        for element in block.get("elements") or []
        if isinstance(element, Mapping)
    ]
    return " · ".join(label for label in found if label) or "…"


def text_sections(mrkdwn: str, limit: int = MAX_SECTION) -> list[dict[str, Any]]:
    """``section`` blocks showing ``mrkdwn`` as the message's ``text`` would: cut between
    paragraphs (else lines, sentences, words) into pieces of at most ``limit`` characters, a
    code block cut in two closed and opened again."""
    sections: list[dict[str, Any]] = []
    rest = mrkdwn.strip()
    room = limit - len(_FENCE_CLOSE)
    while rest:
        if len(rest) <= limit:
            piece, rest = rest, ""
        else:
            cut = choose_cut(rest, room)
            piece = rest[:cut].rstrip()
            tail = rest[next_start(rest, cut) :]
            if in_code(piece):
                piece += _FENCE_CLOSE
                tail = _FENCE_OPEN + tail if tail.strip() else ""
            rest = tail
        if piece.strip():
            sections.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    return sections


@dataclass(frozen=True, slots=True)
class Offer:
    """What a pressed button's block says about its offer."""

    team: str  # the workspace of the session it was offered in
    alone: bool  # the buttons are a message of their own (deleted once pressed)


def read_block_id(block_id: str) -> Offer | None:
    """The offer of one of our actions blocks, or None for any other block."""
    prefix, sep, team = block_id.partition(":")
    if not sep or prefix not in (BLOCK_PREFIX, ALONE_PREFIX):
        return None
    return Offer(team=team, alone=prefix == ALONE_PREFIX)


def is_ours(block: Mapping[str, Any]) -> bool:
    return (
        block.get("type") == "actions"
        and read_block_id(str(block.get("block_id") or "")) is not None
    )


def without_buttons(blocks: Sequence[Any]) -> list[dict[str, Any]]:
    """A message's blocks with our actions blocks taken out (the others as Slack sent them)."""
    return [dict(b) for b in blocks if isinstance(b, Mapping) and not is_ours(b)]


def has_buttons(blocks: Sequence[Any]) -> bool:
    return any(isinstance(b, Mapping) and is_ours(b) for b in blocks)
