"""Slack text: the model's Markdown as mrkdwn, escaping that keeps user text inert, and where
to split a long answer (used by the reply stream and the channel)."""

from __future__ import annotations

import re

ZWSP = "\u200b"  # zero-width space: breaks a mention or a formatting pair apart


def escape(text: str) -> str:
    """Slack's three control characters, so that model text can never ping or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def neutralize(markdown: str, previous: str = "") -> str:
    """Markdown for ``markdown_text`` that cannot mention anyone.

    ``<!channel>``, ``<!here>``, ``<@U123>`` in a model's answer must not notify people. A zero
    width space after ``<`` breaks them while reading the same; it only depends on the previous
    character, so pieces neutralized one by one join to the neutralized whole.
    """
    out: list[str] = []
    last = previous[-1:] if previous else ""
    for ch in markdown:
        if last == "<" and ch in "!@#":
            out.append(ZWSP)
        out.append(ch)
        last = ch
    return "".join(out)


_FENCE = re.compile(r"^ {0,3}```")


def in_code(text: str) -> bool:
    """Whether ``text`` ends inside a fenced code block."""
    return sum(1 for line in text.split("\n") if _FENCE.match(line)) % 2 == 1


_INLINE = re.compile(
    r"(?P<code>(?P<ticks>`+)(?P<code_body>.+?)(?P=ticks))"
    r"|(?P<link>\[(?P<label>[^\]\n]+)\]\((?P<url>[^)\s]+)\))"
    r"|(?P<bolditalic>\*\*\*(?=\S)(?P<bi_body>.+?)(?<=\S)\*\*\*)"
    r"|(?P<bold>\*\*(?=\S)(?P<bold_body>.+?)(?<=\S)\*\*|__(?=\S)(?P<ubold_body>.+?)(?<=\S)__)"
    r"|(?P<strike>~~(?=\S)(?P<strike_body>.+?)(?<=\S)~~)"
    r"|(?P<italic>(?<!\*)\*(?=[^\s*])(?P<italic_body>.+?)(?<=[^\s*])\*(?!\*)"
    r"|(?<!\w)_(?=[^\s_])(?P<uitalic_body>.+?)(?<=[^\s_])_(?!\w))"
)


def _inline(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(escape(text[pos : m.start()]))
        pos = m.end()
        if m.group("code"):
            ticks = "`" if len(m.group("ticks")) == 1 else "```"
            piece = f"{ticks}{escape(m.group('code_body'))}{ticks}"
        elif m.group("link"):
            label = escape(m.group("label")).replace("|", "¦")
            url = m.group("url").replace(">", "%3E").replace("|", "%7C")
            if not url.startswith(("http://", "https://", "mailto:")):
                out.append(escape(m.group(0)))
                continue
            out.append(f"<{escape(url)}|{label}>")
            continue
        elif m.group("bolditalic"):
            piece = f"*_{_inline(m.group('bi_body'))}_*"
        elif m.group("bold"):
            piece = f"*{_inline(m.group('bold_body') or m.group('ubold_body'))}*"
        elif m.group("strike"):
            piece = f"~{_inline(m.group('strike_body'))}~"
        else:
            piece = f"_{_inline(m.group('italic_body') or m.group('uitalic_body'))}_"
        # Slack only sees a marker next to a space or punctuation; Korean particles follow
        # words directly ("**서울**은"), so a zero-width space separates them.
        if m.start() > 0 and text[m.start() - 1].isalnum():
            piece = ZWSP + piece
        if m.end() < len(text) and text[m.end()].isalnum():
            piece += ZWSP
        out.append(piece)
    out.append(escape(text[pos:]))
    return "".join(out)


_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_QUOTE = re.compile(r"^ {0,3}>\s?(.*)$")
_RULE = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")


def render_mrkdwn(markdown: str) -> str:
    """The model's Markdown as Slack mrkdwn, for the ``text`` of a message."""
    lines: list[str] = []
    code = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            code = not code
            lines.append("```")  # mrkdwn has no language tag
            continue
        if code:
            lines.append(escape(line))
            continue
        if m := _HEADING.match(line):
            title = re.sub(r"\*\*(.+?)\*\*", r"\1", m.group(1))
            lines.append(f"*{_inline(title)}*" if title else "")
        elif _RULE.match(line):
            lines.append("――――――――")
        elif m := _BULLET.match(line):
            lines.append(f"{m.group(1)}• {_inline(m.group(2))}")
        elif m := _QUOTE.match(line):
            lines.append(f"> {_inline(m.group(1))}")
        else:
            lines.append(_inline(line))
    return "\n".join(lines)


_BREAKS = ("\n\n", "\n", ". ", "다. ", "요. ", "? ", "! ", "。", " ")


def choose_cut(text: str, limit: int, min_cut: int = 0) -> int:
    """Where the part of ``text`` that fits in ``limit`` characters ends.

    Between paragraphs if possible, else lines, sentences, words. Never before ``min_cut``
    (text already streamed cannot be taken back) and never in the first half of the part.
    """
    if len(text) <= limit:
        return len(text)
    low = max(min_cut, limit // 2)
    window = text[:limit]
    for sep in _BREAKS:
        at = window.rfind(sep, low)
        if at >= low:
            return at + len(sep)
    return max(limit, min_cut)


def next_start(text: str, position: int) -> int:
    """A follow-up part starts at its first visible character."""
    while position < len(text) and text[position] in " \t\n":
        position += 1
    return position
