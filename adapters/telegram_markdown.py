"""The model's Markdown as Telegram HTML, and long answers split at sensible breaks."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import partial

MAX_MESSAGE = 4096  # Bot API: 1-4096 characters of text after entities parsing

# Telegram counts text in UTF-16 code units (entity offsets are UTF-16 too); counting that way
# is never shorter than counting code points, so a part that fits here fits there.


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: characters outside the BMP (most emoji) count twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _utf16_index(text: str, units: int) -> int:
    """The largest index ``i`` with ``utf16_len(text[:i]) <= units``."""
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            return i
    return len(text)


# ---- splitting -------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})(.*)$")
_SENTENCE_END = re.compile(r"[.!?。！？…][)\]\"'”’」』]*\s+")
_CLOSE_FENCE = "\n```"


def _open_fence(text: str) -> str | None:
    """The opening line of a code fence still open at the end of ``text``, else None."""
    opening: str | None = None
    marker = ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        if opening is None:
            opening, marker = line.strip(), match.group(1)
        elif match.group(1).startswith(marker[0]) and len(match.group(1)) >= len(marker):
            if not match.group(2).strip():
                opening, marker = None, ""
    return opening


def _cut(text: str, end: int) -> int:
    """Where to end a part of at most ``text[:end]``: paragraph, line, sentence, word."""
    low = end // 2  # never leave a part less than half full just to find a nicer break
    window = text[:end]
    for sep in ("\n\n", "\n"):
        at = window.rfind(sep, low)
        if at >= 0:
            return at + len(sep)
    last = -1
    for match in _SENTENCE_END.finditer(window, low):
        last = match.end()
    if last > 0:
        return last
    if end < len(text) and text[end].isspace():
        return end  # the window happens to end between two words
    for i in range(end - 1, low - 1, -1):
        if window[i].isspace():
            return i + 1
    # One "word" longer than half a message (a URL, a hash): it has to be cut somewhere.
    return end


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Parts of at most ``limit`` UTF-16 units each, cut at the best break available.

    Prefix-stable: every part but the last depends only on the text before its end, so parts
    fixed while an answer streams stay the same in the final answer. A code fence open at a cut
    is closed at the end of the part and reopened at the start of the next one.
    """
    parts: list[str] = []
    rest = text
    while utf16_len(rest.strip()) > limit:
        # Room for a closing fence, which may have to be added after the cut.
        end = _utf16_index(rest, limit - len(_CLOSE_FENCE))
        cut = _cut(rest, end)
        head, rest = rest[:cut], rest[cut:]
        fence = _open_fence(head)
        if fence is not None:
            head = head.rstrip("\n") + _CLOSE_FENCE
            rest = fence + "\n" + rest
        parts.append(head)
    parts.append(rest)
    return parts


# ---- rendering -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message ready to send: ``html`` (parse_mode HTML) or, when not formatted, ``text``."""

    html: str
    text: str  # what the reader sees
    formatted: bool  # False: no tags at all, send ``text`` without a parse mode


_TAG = re.compile(r"<(/?)([a-z][a-z0-9-]*)[^>]*>")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_LINK = re.compile(
    r"!?\[([^\]\n]+)\]\(\s*<?((?:https?|tg|mailto):[^\s)<>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^\s<>]+)>")
_SLOT = re.compile(r"\x00(\d+)\x00")
_EMPHASIS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), "b"),
    (re.compile(r"(?<![\w_])__(?=\S)(.+?)(?<=\S)__(?![\w_])"), "b"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), "s"),
    (re.compile(r"\|\|(?=\S)(.+?)(?<=\S)\|\|"), "tg-spoiler"),
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"), "i"),
    (re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"), "i"),
)


def _balanced(fragment: str) -> bool:
    """True when the tags in ``fragment`` open and close in proper nesting."""
    stack: list[str] = []
    for match in _TAG.finditer(fragment):
        closing, name = match.group(1), match.group(2)
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


class _Inline:
    """Inline Markdown → HTML; finished fragments are parked in slots so later rules skip them."""

    def __init__(self) -> None:
        self.slots: list[str] = []

    def park(self, fragment: str) -> str:
        self.slots.append(fragment)
        return f"\x00{len(self.slots) - 1}\x00"

    def render(self, text: str, links: bool = True) -> str:
        text = _CODE_SPAN.sub(lambda m: self.park(f"<code>{_esc(m.group(2))}</code>"), text)
        if links:
            text = _LINK.sub(self._link, text)
            text = _AUTOLINK.sub(lambda m: self.park(_esc(m.group(1))), text)
        text = _esc(text)
        for pattern, tag in _EMPHASIS:
            text = pattern.sub(partial(self._wrap, tag=tag), text)
        return self.unpark(text)

    def unpark(self, text: str) -> str:
        while _SLOT.search(text):
            text = _SLOT.sub(lambda m: self.slots[int(m.group(1))], text)
        return text

    def _link(self, match: re.Match[str]) -> str:
        label = self.render(match.group(1), links=False)
        url = html.escape(match.group(2), quote=True)
        return self.park(f'<a href="{url}">{label}</a>')

    def _wrap(self, match: re.Match[str], *, tag: str) -> str:
        inner = match.group(1)
        if not _balanced(self.unpark(inner)):
            return match.group(0)  # would cross another entity's boundary: leave the markers
        return self.park(f"<{tag}>{inner}</{tag}>")


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _code_block(lines: list[str], info: str) -> str:
    body = _esc("\n".join(lines))
    lang = re.sub(r"[^\w+#.-]", "", info.split()[0]) if info.strip() else ""
    if lang:
        return f'<pre><code class="language-{lang}">{body}</code></pre>'
    return f"<pre>{body}</pre>"


def markdown_to_html(markdown: str) -> str:
    """Telegram HTML for the model's Markdown: emphasis, code, links, lists, quotes, tables."""
    markdown = markdown.replace("\x00", "")
    lines = markdown.split("\n")
    out: list[str] = []
    inline = _Inline()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence is not None:
            marker, info = fence.group(1), fence.group(2)
            body: list[str] = []
            i += 1
            while i < len(lines):
                close = _FENCE.match(lines[i])
                if (
                    close is not None
                    and close.group(1)[0] == marker[0]
                    and len(close.group(1)) >= len(marker)
                    and not close.group(2).strip()
                ):
                    break
                body.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end of an unclosed block)
            out.append(_code_block(body, info))
            continue
        if _TABLE_ROW.match(line) and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            # Telegram has no tables; monospace keeps the columns readable.
            rows = [line]
            i += 2
            while i < len(lines) and _TABLE_ROW.match(lines[i]):
                rows.append(lines[i])
                i += 1
            out.append(f"<pre>{_esc(chr(10).join(r.strip() for r in rows))}</pre>")
            continue
        if _QUOTE.match(line):
            quoted: list[str] = []
            while i < len(lines):
                q = _QUOTE.match(lines[i])
                if q is None:
                    break
                quoted.append(inline.render(q.group(1)))
                i += 1
            out.append("<blockquote>" + "\n".join(quoted) + "</blockquote>")
            continue
        heading = _HEADING.match(line)
        if heading is not None:
            title = heading.group(1)
            bold = re.fullmatch(r"\*\*(.+)\*\*|__(.+)__", title)
            if bold is not None:  # "## **Title**": one bold is enough
                title = bold.group(1) or bold.group(2)
            out.append(f"<b>{inline.render(title)}</b>")
        elif _RULE.match(line):
            out.append("———")  # never longer than the rule it replaces
        else:
            bullet = _BULLET.match(line)
            if bullet is not None:
                out.append(f"{bullet.group(1)}• {inline.render(bullet.group(2))}")
            else:
                out.append(inline.render(line))
        i += 1
    return "\n".join(out)


def html_to_text(fragment: str) -> str:
    """What a reader sees of our own HTML: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", fragment))


def render(markdown: str) -> Rendered:
    """The final form of one message part."""
    converted = markdown_to_html(markdown)
    if not _balanced(converted):  # a rule went wrong: plain text beats a parse error
        return Rendered(_esc(markdown), markdown, formatted=False)
    text = html_to_text(converted)
    return Rendered(converted, text, formatted=_TAG.search(converted) is not None)
