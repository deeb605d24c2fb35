"""TelegramReplyStream against the fake Bot API with a real PTB Bot: what each chat was sent."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import Bot

from adapters.telegram_markdown import render, split_message, utf16_len
from adapters.telegram_pacing import FloodPolicy, TelegramOutbox
from adapters.telegram_stream import (
    ChatTarget,
    TelegramReplyStream,
)
from bot.pacing import Stamp, Window
from bot.reply import Button
from tests.fakes.telegram import TOKEN, Call, FakeTelegram, Limits, parse_html

# PTB itself warns, while building RetryAfter, that retry_after will become a timedelta; the
# stream reads either form.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

USER = 42
GROUP = -100500

# Telegram's limits scaled down ten- to sixty-fold so that tests take milliseconds; the fake
# enforces the same scaled limits, so a 429 in a test means the pacing is wrong.
FAST = FloodPolicy(
    chat=Window(0.1, 1),
    group=Window(1.0, 8),
    bot=Window(0.1, 30),
    drafts=(Window(0.02, 1), Window(0.5, 20), Window(3.0, 40)),
    group_reserve=2,
    typing_interval=0.05,
    typing_delay=0.0,
)
FAST_LIMITS = Limits(per_chat=(0.1, 1), per_group=(1.0, 8), per_bot=(0.1, 30), drafts=((0.5, 20),))


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(limits=FAST_LIMITS) as server:
        user = server.user(USER, "민수")
        server.private_chat(user)
        server.group(GROUP, "스터디", members=[user])
        yield server


@pytest.fixture
async def outbox(fake: FakeTelegram) -> AsyncIterator[TelegramOutbox]:
    async with Bot(TOKEN, base_url=fake.base_url) as bot:
        yield TelegramOutbox(bot, FAST)


def private(fake: FakeTelegram, outbox: TelegramOutbox) -> TelegramReplyStream:
    return TelegramReplyStream(outbox, ChatTarget(USER, private=True))


def group(
    fake: FakeTelegram, outbox: TelegramOutbox, *, thread: int | None = None, limit: int = 4096
) -> TelegramReplyStream:
    question = fake.say(fake.chats[GROUP], fake.users[USER], "@glm_test_bot 질문", thread_id=thread)
    mid = question["message"]["message_id"]
    target = ChatTarget(GROUP, private=False, thread_id=thread, reply_to=mid)
    return TelegramReplyStream(outbox, target, limit=limit)


async def feed(stream: TelegramReplyStream, chunks: Sequence[str], delay: float = 0.01) -> str:
    await stream.start()
    for chunk in chunks:
        stream.append(chunk)
        await asyncio.sleep(delay)
    return "".join(chunks)


def shown_calls(fake: FakeTelegram, chat: int) -> list[Call]:
    """Successful calls that put text on the user's screen, in order."""
    methods = ("sendMessage", "sendMessageDraft", "editMessageText")
    return [c for c in fake.calls_to(chat_id=chat) if c.method in methods and c.ok]


def words(n: int) -> list[str]:
    return [f"단어{i} " for i in range(n)]


# ---- private chats -----------------------------------------------------------------------------


async def test_private_answer_shows_as_drafts_then_one_formatted_message(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = private(fake, outbox)
    text = await feed(stream, ["**서울**은 ", "맑고 ", "21도예요. ", "내일은 ", "비가 와요."], 0.03)
    await stream.finish(text)

    calls = fake.calls_to(chat_id=USER)
    assert calls[0].method == "sendChatAction" and calls[0].params["action"] == "typing"
    drafts = [c for c in calls if c.method == "sendMessageDraft"]
    assert len(drafts) >= 2
    assert len({c.params["draft_id"] for c in drafts}) == 1  # one draft id for the answer
    assert all("parse_mode" not in c.params for c in drafts)  # interim text is plain
    assert drafts[0].text.startswith("**서울**은")
    assert [len(c.text) for c in drafts] == sorted(len(c.text) for c in drafts)
    sends = fake.calls_to("sendMessage", USER)
    assert len(sends) == 1 and sends[-1] is calls[-1]
    assert sends[0].params["parse_mode"] == "HTML"
    assert fake.bot_texts(USER) == ["서울은 맑고 21도예요. 내일은 비가 와요."]
    assert fake.bot_messages(USER)[0].entities[0]["type"] == "bold"
    assert fake.calls_to("editMessageText") == []
    assert fake.rejected() == []


async def test_typing_shows_only_when_the_first_words_are_slow(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    outbox = TelegramOutbox(outbox.bot, replace(FAST, typing_delay=0.3))
    quick = private(fake, outbox)
    await quick.finish(await feed(quick, ["바로 ", "답해요."], 0.02))
    assert fake.calls_to("sendChatAction", USER) == []
    assert fake.bot_texts(USER) == ["바로 답해요."]

    slow = private(fake, outbox)
    await slow.start()
    await fake.wait_for(lambda f: bool(f.calls_to("sendChatAction", USER)), within=2)
    slow.append("늦게 ")
    await slow.finish("늦게 답해요.")
    assert fake.bot_texts(USER)[-1] == "늦게 답해요."
    assert fake.rejected() == []


async def test_a_draft_is_sent_again_while_the_model_pauses(fake: FakeTelegram) -> None:
    policy = dataclasses.replace(FAST, draft_refresh=0.2)  # Telegram keeps a draft 30 s
    async with Bot(TOKEN, base_url=fake.base_url) as bot:
        stream = TelegramReplyStream(TelegramOutbox(bot, policy), ChatTarget(USER, private=True))
        await stream.start()
        stream.append("생각해 보면 ")
        await asyncio.sleep(0.7)  # no new token for 0.7 s
        drafts = fake.calls_to("sendMessageDraft", USER)
        assert len(drafts) >= 3
        assert {c.text for c in drafts} == {"생각해 보면"}
        assert len({c.params["draft_id"] for c in drafts}) == 1  # the same draft, kept alive
        await stream.finish("생각해 보면 맞아요.")
        after = len(fake.calls_to("sendMessageDraft", USER))
        await asyncio.sleep(0.3)
        assert len(fake.calls_to("sendMessageDraft", USER)) == after  # none once finished
    assert fake.bot_texts(USER) == ["생각해 보면 맞아요."]
    assert fake.rejected() == []


async def test_the_draft_stays_alive_while_the_final_message_waits_its_turn(
    fake: FakeTelegram,
) -> None:
    """Under load a final message can wait longer than a draft lives (30 s): the draft is
    kept alive until the message replaces it, so the answer never vanishes meanwhile."""
    policy = dataclasses.replace(FAST, draft_refresh=0.2, bot=Window(1.2, 1))
    async with Bot(TOKEN, base_url=fake.base_url) as bot:
        outbox = TelegramOutbox(bot, policy)
        stream = TelegramReplyStream(outbox, ChatTarget(USER, private=True))
        await stream.start()
        stream.append("거의 다 썼어요")
        await asyncio.sleep(0.05)
        # Another chat's final takes the bot's only place: this final waits ~1.2 s.
        await outbox.sent(await outbox.slot(USER + 1, "message", group=False))
        before = len(fake.calls_to("sendMessageDraft", USER))
        await stream.finish("거의 다 썼어요. 끝!")
        drafts = fake.calls_to("sendMessageDraft", USER)[before:]
        final = fake.calls_to("sendMessage", USER)[-1]
        assert len(drafts) >= 4  # every 0.2 s of the wait, the same draft again
        assert {c.text for c in drafts} == {"거의 다 썼어요"}
        assert all(c.time <= final.time for c in drafts)
        await asyncio.sleep(0.3)
        assert len(fake.calls_to("sendMessageDraft", USER)) == before + len(drafts)  # then none
    assert fake.bot_texts(USER) == ["거의 다 썼어요. 끝!"]
    assert fake.rejected() == []


async def test_whitespace_does_not_put_off_the_draft_refresh_which_stops_after_three(
    fake: FakeTelegram,
) -> None:
    policy = dataclasses.replace(FAST, draft_refresh=0.2)
    async with Bot(TOKEN, base_url=fake.base_url) as bot:
        stream = TelegramReplyStream(TelegramOutbox(bot, policy), ChatTarget(USER, private=True))
        await stream.start()
        stream.append("생각해 보면")
        for _ in range(24):  # 1.2 s of newlines: they change no draft
            await asyncio.sleep(0.05)
            stream.append("\n")
        drafts = fake.calls_to("sendMessageDraft", USER)
        assert len(drafts) == 1 + 3  # the first, then three refreshes at most
        await stream.finish("생각해 보면 맞아요.")
    assert fake.rejected() == []


async def test_first_text_goes_out_as_soon_as_it_exists(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = private(fake, outbox)
    await stream.start()
    await asyncio.sleep(0.02)
    appended = outbox.clock()
    stream.append("안녕")
    await fake.wait_for(lambda f: bool(f.calls_to("sendMessageDraft")), within=2)
    assert fake.calls_to("sendMessageDraft")[0].time - appended < 0.1
    await stream.finish("안녕하세요")
    assert fake.bot_texts(USER) == ["안녕하세요"]


async def test_typing_repeats_until_the_first_text_shows(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = private(fake, outbox)
    await stream.start()
    await asyncio.sleep(0.18)  # the model thinks: typing every 0.05 s meanwhile
    typing_before = len(fake.calls_to("sendChatAction"))
    stream.append("답")
    await asyncio.sleep(0.15)
    await stream.finish("답입니다")
    assert typing_before >= 3
    assert len(fake.calls_to("sendChatAction")) == typing_before  # none after the text
    assert fake.bot_texts(USER) == ["답입니다"]


async def test_a_429_on_a_draft_is_waited_out_and_the_message_is_whole(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = private(fake, outbox)
    await stream.start()
    stream.append("하나 ")
    await fake.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", USER)), within=2)
    fake.flood("sendMessageDraft", USER, seconds=1)
    rest = words(20)
    for chunk in rest:
        stream.append(chunk)
        await asyncio.sleep(0.02)
    await stream.finish("하나 " + "".join(rest))
    flooded = fake.rejected(429)
    assert len(flooded) == 1
    after = [c for c in fake.calls_to(chat_id=USER) if c.time > flooded[0].time]
    assert after[0].time - flooded[0].time >= 0.95
    assert fake.bot_texts(USER) == [("하나 " + "".join(rest)).strip()]


async def test_private_long_answer_becomes_two_messages_nothing_lost(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    paragraphs = [f"{i}번째 문단입니다. " + ("가나다라마바사 " * 40).strip() for i in range(20)]
    text = "\n\n".join(paragraphs)  # about 6,500 characters
    stream = private(fake, outbox)
    chunks = [text[i : i + 200] for i in range(0, len(text), 200)]
    await feed(stream, chunks, 0.005)
    await stream.finish(text)

    shown = fake.bot_texts(USER)
    assert len(shown) == 2
    assert all(utf16_len(t) <= 4096 for t in shown)
    assert shown[0].endswith("가나다라마바사")  # cut at a paragraph, not inside a word
    assert shown[1].startswith("1")  # the next paragraph starts the second message
    assert "\n\n".join(shown) == text.strip()
    assert fake.rejected() == []


async def test_private_retract_replaces_the_draft_and_removes_finished_parts(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = private(fake, outbox)
    await feed(stream, ["위험한 ", "내용이 ", "나오는 중"], 0.03)
    await stream.retract("(이 답변은 안전 정책에 따라 삭제되었어요.)")
    assert fake.bot_texts(USER) == ["(이 답변은 안전 정책에 따라 삭제되었어요.)"]
    assert fake.drafts == {}  # the message ended the draft that showed the answer


# ---- groups -------------------------------------------------------------------------------------


async def test_group_answer_is_one_message_edited_within_the_limits(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = group(fake, outbox)
    text = await feed(stream, ["`print`", " 함수는 ", *words(40), "끝."], 0.02)
    await stream.finish(text)

    calls = shown_calls(fake, GROUP)
    assert calls[0].method == "sendMessage"
    assert calls[0].params["reply_parameters"]["message_id"] == stream.target.reply_to
    assert all(c.method == "editMessageText" for c in calls[1:])
    assert len(calls) >= 3
    gaps = [b.time - a.time for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= FAST.chat.span  # never faster than one a second (scaled)
    assert all("parse_mode" not in c.params for c in calls[:-1])
    assert calls[-1].params["parse_mode"] == "HTML"
    texts = [c.visible for c in calls]
    assert len(set(texts)) == len(texts)  # no edit repeats what is shown
    assert fake.bot_texts(GROUP) == [text.replace("`", "").strip()]
    assert fake.rejected() == []


async def test_group_edits_share_the_groups_budget_with_other_answers(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    # Two answers at once in one group, streaming for longer than the window: the fake
    # enforces 8 messages per second in the group; both answers must end complete, no 429.
    one, two = group(fake, outbox), group(fake, outbox)
    texts = await asyncio.gather(feed(one, words(60), 0.03), feed(two, words(50), 0.036))
    await asyncio.gather(one.finish(texts[0]), two.finish(texts[1]))
    assert fake.rejected() == []
    assert sorted(fake.bot_texts(GROUP)) == sorted(t.strip() for t in texts)
    calls = shown_calls(fake, GROUP)
    for i, call in enumerate(calls):
        within = [c for c in calls[i:] if c.time - call.time < FAST.group.span]
        assert len(within) <= FAST.group.limit


async def test_a_429_mid_answer_is_waited_out_and_the_text_coalesced(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = group(fake, outbox)
    await stream.start()
    stream.append("첫 ")
    await fake.wait_for(lambda f: bool(f.calls_to("sendMessage", GROUP)), within=2)
    fake.flood("editMessageText", GROUP, seconds=1)
    rest = words(30)
    for chunk in rest:
        stream.append(chunk)
        await asyncio.sleep(0.02)
    text = "첫 " + "".join(rest)
    await stream.finish(text)

    flooded = fake.rejected(429)
    assert len(flooded) == 1
    assert flooded[0].retry_after == 1
    after = [c for c in shown_calls(fake, GROUP) if c.time > flooded[0].time]
    assert after and after[0].time - flooded[0].time >= 0.95  # waited, did not hammer
    assert len(after) <= 2  # the wait coalesced everything into one or two edits
    assert fake.bot_texts(GROUP) == [text.strip()]


async def test_group_long_answer_continues_in_a_second_message(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    sentence = "이 문장은 긴 답변의 일부입니다. "
    text = sentence * 400  # 7,200 characters, no paragraph breaks
    stream = group(fake, outbox)
    await feed(stream, [text[i : i + 500] for i in range(0, len(text), 500)], 0.01)
    await stream.finish(text)
    shown = fake.bot_texts(GROUP)
    assert len(shown) == 2
    assert shown[0].endswith("일부입니다.")  # cut after a sentence
    assert " ".join(shown) == text.strip()
    assert fake.rejected() == []


async def test_unchanged_final_text_sends_no_edit(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = group(fake, outbox)
    await feed(stream, ["그냥 평범한 문장"], 0)
    await fake.wait_for(lambda f: bool(f.calls_to("sendMessage", GROUP)), within=2)
    await asyncio.sleep(0.05)
    await stream.finish("그냥 평범한 문장")
    assert [c.method for c in shown_calls(fake, GROUP)] == ["sendMessage"]


async def test_formatting_refused_falls_back_to_plain(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = private(fake, outbox)
    fake.refuse_formatting()
    await stream.finish("**굵게** 쓴 답")
    sends = fake.calls_to("sendMessage", USER)
    assert [c.status for c in sends] == [400, 200]
    assert "parse_mode" not in sends[1].params
    assert fake.bot_texts(USER) == ["**굵게** 쓴 답"]


async def test_group_retract_replaces_the_shown_answer(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = group(fake, outbox, limit=100)
    await feed(stream, ["나쁜 말 " * 30], 0)
    await fake.wait_for(lambda f: len(f.bot_texts(GROUP)) >= 2, within=3)
    await stream.retract("(삭제된 답변)")
    assert fake.bot_texts(GROUP) == ["(삭제된 답변)"]
    assert all("나쁜" not in m.text for m in fake.bot_messages(GROUP))


async def test_fail_keeps_what_was_shown_and_adds_the_notice(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = group(fake, outbox)
    await feed(stream, ["반쯤 ", "쓴 답"], 0.02)
    await stream.fail("(연결이 끊겼어요)")
    assert fake.bot_texts(GROUP) == ["반쯤 쓴 답\n\n(연결이 끊겼어요)"]


async def test_buttons_come_with_the_final_message(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    stream = private(fake, outbox)
    await stream.finish("어느 도시요?", [Button("서울", "서울 날씨"), Button("부산", "부산 날씨")])
    markup = fake.bot_messages(USER)[0].reply_markup
    assert markup is not None
    rows = markup["inline_keyboard"]
    assert [(r[0]["text"], r[0]["callback_data"]) for r in rows] == [
        ("서울", "서울 날씨"),
        ("부산", "부산 날씨"),
    ]


async def test_forum_topic_answers_stay_in_the_topic(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    forum = fake.group(-100777, "포럼", forum=True, members=[fake.users[USER]])
    topic = fake.create_topic(forum, "날씨", fake.users[USER])
    question = fake.say(forum, fake.users[USER], "@glm_test_bot 비 와?", thread_id=topic)
    target = ChatTarget(-100777, False, thread_id=topic, reply_to=question["message"]["message_id"])
    stream = TelegramReplyStream(outbox, target)
    text = await feed(stream, ["네, ", "비가 와요."], 0.02)
    await stream.finish(text)
    for call in fake.calls_to(chat_id=-100777):
        if call.method in ("sendMessage", "sendChatAction"):
            assert int(call.params["message_thread_id"]) == topic
    assert fake.bot_messages(-100777)[0].thread_id == topic


# ---- the pacing itself ---------------------------------------------------------------------------


async def take(outbox: TelegramOutbox, chat: int, *, group: bool) -> Stamp:
    stamp = await outbox.try_take(chat, "message", group=group, interim=False)
    assert isinstance(stamp, Stamp), f"no room: wait {stamp:.2f}s"
    return stamp


async def wait(outbox: TelegramOutbox, chat: int, *, group: bool, interim: bool) -> float:
    return await outbox.ledger.wait_time(outbox.call(chat, "message", group=group, interim=interim))


async def test_interim_edits_leave_the_end_of_the_group_minute_to_final_messages() -> None:
    now = [0.0]
    outbox = TelegramOutbox(Bot(TOKEN), FloodPolicy(), clock=lambda: now[0])
    for i in range(17):  # 17 sends in the group, 1.1 s apart
        now[0] = i * 1.1
        await outbox.sent(await take(outbox, GROUP, group=True))
    now[0] += 1.1
    assert await wait(outbox, GROUP, group=True, interim=True) > 40  # reserve of 3
    assert await wait(outbox, GROUP, group=True, interim=False) == 0
    for _ in range(3):
        await outbox.sent(await take(outbox, GROUP, group=True))
        now[0] += 1.1
    assert await wait(outbox, GROUP, group=True, interim=False) > 30  # 20 a minute


async def test_a_send_in_flight_holds_the_next_one_back() -> None:
    now = [100.0]
    outbox = TelegramOutbox(Bot(TOKEN), FloodPolicy(), clock=lambda: now[0])
    stamp = await take(outbox, USER, group=False)
    now[0] += 5.0  # a slow answer: Telegram may count the send only now
    assert await wait(outbox, USER, group=False, interim=False) > 1.0
    await outbox.sent(stamp)
    now[0] += 1.1
    assert await wait(outbox, USER, group=False, interim=False) == 0


# ---- the renderer and the splitter --------------------------------------------------------------


def test_markdown_becomes_telegram_html_with_escaping() -> None:
    rendered = render(
        "## 요약\n**굵게**, *기울임*, `a<b>&c`, [링크](https://x.io/a_b?q=1&r=2)\n- 항목"
    )
    assert rendered.html == (
        "<b>요약</b>\n<b>굵게</b>, <i>기울임</i>, <code>a&lt;b&gt;&amp;c</code>, "
        '<a href="https://x.io/a_b?q=1&amp;r=2">링크</a>\n• 항목'
    )
    text, entities = parse_html(rendered.html)
    assert text == rendered.text
    assert {e["type"] for e in entities} == {"bold", "italic", "code", "text_link"}


def test_code_blocks_keep_their_language_and_are_not_formatted_inside() -> None:
    rendered = render("```python\nx = a_b * c_d  # **no**\n```")
    assert rendered.html == (
        '<pre><code class="language-python">x = a_b * c_d  # **no**</code></pre>'
    )
    assert parse_html(rendered.html)[1] == [
        {"type": "pre", "offset": 0, "length": 23, "language": "python"}
    ]


def test_unbalanced_markers_stay_literal() -> None:
    rendered = render("2 * 3 * 4 = 24, snake_case_name, **열린 굵게")
    assert rendered.formatted is False
    assert rendered.text == "2 * 3 * 4 = 24, snake_case_name, **열린 굵게"


def test_split_closes_and_reopens_a_code_fence() -> None:
    code = "\n".join(f"print({i})" for i in range(800))
    parts = split_message(f"코드:\n```python\n{code}\n```\n끝", 4096)
    assert len(parts) >= 2
    assert parts[0].rstrip().endswith("```")
    assert parts[1].startswith("```python\n")
    for part in parts:
        rendered = render(part)
        assert utf16_len(parse_html(rendered.html)[0]) <= 4096


def test_split_is_prefix_stable_while_the_answer_grows() -> None:
    text = ("한 문장입니다. " * 50 + "\n\n") * 12
    final = split_message(text)
    for end in range(4200, len(text), 333):
        interim = split_message(text[:end])
        assert interim[:-1] == final[: len(interim) - 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "**",
                "*",
                "_",
                "__",
                "`",
                "```",
                "~~",
                "||",
                "<",
                ">",
                "&",
                "[",
                "](",
                ")",
                "\n",
                "# ",
                "- ",
                "> ",
                "| a |",
                "|---|",
                "https://x.io/a_b",
                " ",
                "한글",
                "word",
                "😀",
            ]
        ),
        max_size=60,
    )
)
def test_any_markdown_renders_to_html_telegram_accepts(pieces: list[str]) -> None:
    source = "".join(pieces)
    rendered = render(source)
    text, _ = parse_html(rendered.html)  # raises on anything Telegram would refuse
    assert text == rendered.text
    assert utf16_len(text) <= utf16_len(source)  # so a part that fits as source fits shown


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("가나 다.\n😀a`"), min_size=0, max_size=3000))
def test_split_parts_fit_and_lose_nothing(text: str) -> None:
    parts = split_message(text, 300)
    assert all(utf16_len(p.strip()) <= 300 for p in parts)
    if "```" not in text:
        assert "".join(parts) == text


async def test_calls_that_send_no_message_honour_a_429_too(
    fake: FakeTelegram, outbox: TelegramOutbox
) -> None:
    fake.throttle("getChatMember", seconds=1)
    started = asyncio.get_running_loop().time()
    member = await outbox.other("getChatMember", lambda: outbox.bot.get_chat_member(GROUP, USER))
    assert member.user.id == USER
    assert asyncio.get_running_loop().time() - started >= 1.0  # Telegram's retry_after
    assert [c.status for c in fake.calls if c.method == "getChatMember"] == [429, 200]
    assert outbox.flood_waits == 1
