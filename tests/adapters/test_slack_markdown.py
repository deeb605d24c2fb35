"""Markdown → mrkdwn, mentions made inert, and where a long answer is cut."""

from __future__ import annotations

import pytest

from adapters.slack_markdown import ZWSP, choose_cut, neutralize, render_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and *italic* and ~~gone~~", "*bold* and _italic_ and ~gone~"),
        ("__bold__ _it_ ***both***", "*bold* _it_ *_both_*"),
        ("## 오늘의 날씨", "*오늘의 날씨*"),
        ("- one\n* two\n  + nested", "• one\n• two\n  • nested"),
        ("[문서](https://example.com/a?b=1&c=2)", "<https://example.com/a?b=1&amp;c=2|문서>"),
        ("x < y && y > z", "x &lt; y &amp;&amp; y &gt; z"),
        ("<!channel> <@U123> hi", "&lt;!channel&gt; &lt;@U123&gt; hi"),
        ("`a < b` and `**not bold**`", "`a &lt; b` and `**not bold**`"),
        ("```python\nif a < b:\n    **x**\n```", "```\nif a &lt; b:\n    **x**\n```"),
        ("> 인용문 **강조**", "> 인용문 *강조*"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("---", "――――――――"),
        ("[not a link](javascript:alert)", "[not a link](javascript:alert)"),
    ],
)
def test_render_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert render_mrkdwn(markdown) == mrkdwn


def test_korean_particles_next_to_formatting_still_render() -> None:
    # Slack ignores "*서울*은": a marker needs a non-letter beside it.
    assert render_mrkdwn("**서울**은 맑아요") == f"*서울*{ZWSP}은 맑아요"
    assert render_mrkdwn("오늘*비*가") == f"오늘{ZWSP}_비_{ZWSP}가"


def test_neutralized_pieces_join_to_the_neutralized_whole() -> None:
    text = "알림: <!channel> 그리고 <@U1> 와 <#C1>, 하지만 a<b 는 그대로"
    whole = neutralize(text)
    assert "<!channel>" not in whole and "<@U1>" not in whole and "a<b" in whole
    assert whole.replace(ZWSP, "") == text
    for cut in range(len(text) + 1):
        assert neutralize(text[:cut]) + neutralize(text[cut:], text[:cut]) == whole


def test_cuts_fall_between_paragraphs_and_never_before_streamed_text() -> None:
    text = "첫 문단은 조금 깁니다. 정말로요.\n\n둘째 문단. 아주 길어요. 정말 길어요.\n\n셋째"
    assert choose_cut(text, 30) == text.index("둘째")
    # 25 characters were streamed already: the cut moves past them, to a sentence end.
    assert text[: choose_cut(text, 30, min_cut=25)].endswith("둘째 문단. ")
    assert choose_cut("a" * 50, 20) == 20  # no break at all: cut at the limit
