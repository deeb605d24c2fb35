"""Quick-reply buttons on Slack: Block Kit under the final answer, and their presses.

A real SlackChannel (Bolt behind our aiohttp server) answers through a real manager on a
memory store and the fake GLM; FakeSlack is the Web API on loopback HTTP with Slack's tiers,
and SlackSender delivers presses signed as Slack signs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import SlackChannel
from adapters.slack_blocks import (
    MAX_SECTION,
    actions_block,
    buttons_blocks,
    decode_value,
    encode_value,
    text_sections,
)
from adapters.slack_convert import (
    BotIdentity,
    ButtonPress,
    ConvertOptions,
    Ignore,
    Inbound,
    button_press,
    decide,
)
from adapters.slack_markdown import render_mrkdwn
from adapters.slack_pacing import SlackPolicy
from bench.common import free_port
from bot.i18n import t
from bot.journal import JournalEntry
from bot.observability import NO_METRICS
from bot.reply import Button, ReplyStream
from bot.sessions.memory import MemorySessionStore
from bot.settings import Settings
from bot.turn import SessionKey, SessionScope, Turn
from tests.bot.helpers import make_manager
from tests.fakes.glm import FakeGlm
from tests.fakes.slack import (
    APP_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    TEAM,
    TOKEN,
    FakeMessage,
    FakeSlack,
    Limits,
    SlackSender,
    block_problems,
)

STUDY, DM_MINSU = "C0STUDY001", "D0MINSU001"
MINSU, ANN = "U0MINSU001", "U0ANN00001"
AT_BOT = f"<@{BOT_USER}>"
FAST = SlackPolicy(append_interval=0.05, update_interval=0.05)


@dataclass
class Rig:
    slack: FakeSlack
    glm: FakeGlm
    channel: SlackChannel
    send: SlackSender
    store: MemorySessionStore
    turns: list[tuple[Turn, SessionKey]]  # every turn the manager was handed

    async def offer(
        self,
        buttons: Sequence[Button],
        *,
        channel: str = STUDY,
        user: str = MINSU,
        question: str = "파이썬 공부 방법 추천해줘",
        answer: str = "**파이썬**부터 시작해 보세요. 아래에서 골라 주세요.",
    ) -> tuple[Turn, FakeMessage]:
        """``user`` asks, and the answer in the thread ends with ``buttons`` (the way the core
        will offer them: through the channel's reply stream for that turn)."""
        text = question if channel.startswith("D") else f"{AT_BOT} {question}"
        decision = decide(
            self.slack.say(channel, user, text)[0], self.channel.me, self.channel.convert
        )
        assert isinstance(decision, Inbound)
        turn = decision.turn
        stream = self.channel.stream_for(turn)
        await stream.start()
        stream.append(answer)
        await asyncio.sleep(0.05)
        await stream.finish(answer, buttons)
        (message,) = self.slack.bot_messages(channel, turn.thread_id)[-1:]
        return turn, message

    async def press(self, message: FakeMessage, user: str, **kw: Any) -> dict[str, Any]:
        payload = self.slack.block_actions(message.channel, message.ts, user, **kw)
        delivery = await self.send.action(payload)
        assert delivery.status == 200, delivery
        assert delivery.elapsed < 3  # acked at once
        return payload

    async def turn_count(self, n: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while len(self.turns) < n:  # noqa: ASYNC110 - polling plain state
                await asyncio.sleep(0.01)


def settings(slack: FakeSlack, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token=TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.base_url,
        slack_port=free_port(),
        **extra,
    )


@asynccontextmanager
async def running(**extra: Any) -> AsyncIterator[Rig]:
    async with FakeSlack() as slack, FakeGlm() as glm:  # Slack's documented tiers
        slack.channel(STUDY)
        slack.channel(DM_MINSU, "im")
        slack.user(MINSU, "민수")
        slack.user(ANN, "Ann")
        store = MemorySessionStore()
        manager = make_manager(glm.base_url, glm.api_key, store)
        turns: list[tuple[Turn, SessionKey]] = []
        handle = manager.handle

        async def recording(turn: Turn, reply: ReplyStream, *, deduplicated: bool = False) -> Any:
            turns.append((turn, turn.session_key(manager.config.scope)))
            return await handle(turn, reply, deduplicated=deduplicated)

        manager.handle = recording  # type: ignore[method-assign]
        app = SimpleNamespace(
            settings=settings(slack, **extra),
            manager=manager,
            store=store,
            journal=None,
            metrics=NO_METRICS,
            notices=SimpleNamespace(register=lambda *args: None),
        )
        channel = SlackChannel(app, policy=FAST)  # type: ignore[arg-type]
        task = asyncio.create_task(channel.run())
        try:
            async with asyncio.timeout(10):
                while channel.bolt is None or (
                    channel.port is None and "slack_app_token" not in extra
                ):
                    assert not task.done(), task
                    await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{channel.port}/slack/events"
            async with SlackSender(url) as sender:
                yield Rig(slack, glm, channel, sender, store, turns)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await manager.glm.client.close()


def in_thread(slack: FakeSlack, channel: str, thread: str, text: str) -> bool:
    return any(
        m.shown.strip() == text and not m.streaming for m in slack.bot_messages(channel, thread)
    )


# ---- the blocks ------------------------------------------------------------------------------


def test_a_button_carries_its_payload_and_owner_in_its_value() -> None:
    (block,) = buttons_blocks(
        [
            Button("파이썬", "/suggestions accept python", owner=MINSU),
            Button("다음에", "/suggestions later"),
        ],
        TEAM,
    )
    assert block["type"] == "actions" and block["block_id"] == f"bot_buttons:{TEAM}"
    first, second = block["elements"]
    assert [first["action_id"], second["action_id"]] == ["bot_button_0", "bot_button_1"]
    assert first["text"] == {"type": "plain_text", "text": "파이썬", "emoji": True}
    assert json.loads(first["value"]) == {"p": "/suggestions accept python", "o": MINSU}
    assert decode_value(first["value"]) == ("/suggestions accept python", MINSU)
    assert decode_value(second["value"]) == ("/suggestions later", None)
    assert decode_value("not ours") == ("not ours", None)
    assert block_problems([block]) == []


def test_buttons_are_kept_within_slacks_limits() -> None:
    long_label = Button("가" * 80, "/x")
    too_long = Button("too long", "/y " + "z" * 2000)
    many = [Button(f"b{n}", f"/b {n}") for n in range(30)]
    block = actions_block([long_label, too_long, *many], TEAM)
    assert len(block["elements"]) == 25  # one actions block holds 25
    assert block["elements"][0]["text"]["text"] == "가" * 74 + "…"
    assert all(len(e["value"]) <= 2000 for e in block["elements"])
    assert "too long" not in [e["text"]["text"] for e in block["elements"]]
    assert block_problems([block]) == []
    assert buttons_blocks([too_long], TEAM) == []  # nothing to show: no block at all
    assert encode_value(Button("a", "b")) == '{"p":"b"}'


def test_a_long_text_is_cut_into_sections_and_code_blocks_stay_closed() -> None:
    text = render_mrkdwn("첫 문단입니다.\n\n" + "```\n" + "print('x')\n" * 400 + "```\n\n끝.")
    sections = text_sections(text)
    assert len(sections) >= 2
    pieces = [s["text"]["text"] for s in sections]
    assert all(0 < len(p) <= MAX_SECTION for p in pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)  # each piece opens and closes its code
    assert "".join(pieces).replace("```", "").split() == text.replace("```", "").split()
    assert block_problems(sections) == []
    assert text_sections("짧은 답") == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "짧은 답"}}
    ]


async def test_the_fake_refuses_malformed_blocks_as_slack_does() -> None:
    button = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "ok"}}
    bad = {
        "missing type": [{"elements": [button]}],
        "button without text": [
            {"type": "actions", "elements": [{"type": "button", "action_id": "a"}]}
        ],
        "26 elements": [
            {"type": "actions", "elements": [dict(button, action_id=f"a{n}") for n in range(26)]}
        ],
        "value over 2000": [{"type": "actions", "elements": [dict(button, value="v" * 2001)]}],
        "label over 75": [
            {
                "type": "actions",
                "elements": [dict(button, text={"type": "plain_text", "text": "x" * 76})],
            }
        ],
        "mrkdwn label": [
            {"type": "actions", "elements": [dict(button, text={"type": "mrkdwn", "text": "x"})]}
        ],
        "section over 3000": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        "51 blocks": [{"type": "divider"}] * 51,
        "duplicate action_id": [{"type": "actions", "elements": [button, button]}],
        "unknown type": [{"type": "buttons"}],
    }
    # Without limits: Slack counts refused calls against the channel's one post a second too.
    async with FakeSlack(limits=Limits.unlimited()) as slack, aiohttp.ClientSession() as session:
        slack.channel(STUDY)
        client = AsyncWebClient(token=TOKEN, base_url=slack.base_url, session=session)
        for name, blocks in bad.items():
            with pytest.raises(SlackApiError) as caught:
                await client.chat_postMessage(channel=STUDY, text="t", blocks=blocks)
            assert caught.value.response["error"] == "invalid_blocks", name
            assert caught.value.response["response_metadata"]["messages"], name
        # Slack makes up the action_id of a button without one (so it is no button of ours).
        sent = await client.chat_postMessage(
            channel=STUDY,
            text="t",
            blocks=[{"type": "actions", "elements": [{"type": "button", "text": button["text"]}]}],
        )
        (message,) = slack.bot_messages(STUDY)
        assert message.buttons[0]["action_id"] and message.buttons[0]["action_id"] != "a"
        assert sent["ts"] == message.ts
        assert message.shown == ""  # a message of buttons only shows no text
        # chat.update: blocks left out are kept, [] removes them.
        await client.chat_update(channel=STUDY, ts=message.ts, text="새 글")
        assert message.buttons and message.text == "새 글"
        await client.chat_update(channel=STUDY, ts=message.ts, text="새 글", blocks=[])
        assert not message.blocks and message.shown == "새 글"


# ---- buttons under the final answer -----------------------------------------------------------


async def test_a_streamed_answer_gets_its_buttons_from_stop_stream() -> None:
    async with running() as rig:
        answer = "**파이썬**부터 시작해 보세요. 아래에서 골라 주세요."
        _turn, message = await rig.offer(
            [
                Button("파이썬 배우기", "/suggestions accept python", owner=MINSU),
                Button("다음에", "/suggestions later"),
            ],
            answer=answer,
        )
        (stop,) = rig.slack.calls_to("chat.stopStream")
        assert stop.ok and stop.params["blocks"][0]["type"] == "actions"
        assert message.streamed and message.shown == answer  # the text, as streamed
        assert [b["text"]["text"] for b in message.buttons] == ["파이썬 배우기", "다음에"]
        assert [b["action_id"] for b in message.buttons] == ["bot_button_0", "bot_button_1"]
        assert rig.slack.calls_to("chat.postMessage") == []  # no message of buttons alone
        # An answer without buttons is what it always was.
        _, plain = await rig.offer([], question="고마워", answer="천만에요!")
        assert "blocks" not in rig.slack.calls_to("chat.stopStream")[-1].params
        assert plain.blocks == [] and plain.shown == "천만에요!"
        assert rig.slack.refused() == [] and rig.slack.rate_limited() == []


@pytest.mark.parametrize("length", [200, 3500])
async def test_a_posted_answer_shows_its_text_above_its_buttons(length: int) -> None:
    async with running() as rig:
        rig.slack.refuse_streaming = "not_allowed"  # the postMessage + update path
        answer = ("서울은 오늘 맑아요. " * 400)[:length].strip()
        _turn, message = await rig.offer(
            [Button("내일 날씨", "내일 서울 날씨", owner=MINSU)], answer=answer
        )
        assert not message.streamed
        shown_today = render_mrkdwn(answer).strip()  # what a posted answer shows without buttons
        assert message.text == shown_today  # the notification text is unchanged
        sections = [b for b in message.blocks if b["type"] == "section"]
        assert all(len(s["text"]["text"]) <= 3000 for s in sections)
        assert len(sections) == (1 if length < 3000 else 2)
        assert message.shown.split() == shown_today.split()  # the blocks show the same words
        assert message.blocks[-1]["type"] == "actions" and len(message.buttons) == 1
        final = rig.slack.calls_to(None, STUDY)[-1]
        assert final.method in ("chat.update", "chat.postMessage") and final.params["blocks"]
        assert {c.method for c in rig.slack.refused()} == {"chat.startStream"}
        # Pressed: the buttons go, the sections (the text) stay.
        before = message.shown
        await rig.press(message, MINSU)
        await rig.slack.wait_for(lambda f: not message.buttons)
        assert message.shown == before and message.text == shown_today
        assert [b["type"] for b in message.blocks] == ["section"] * len(sections)


async def test_without_a_message_to_carry_them_the_buttons_come_alone_and_go_once_pressed() -> None:
    async with running() as rig:
        decision = decide(
            rig.slack.say(DM_MINSU, MINSU, "추천해줘")[0], rig.channel.me, rig.channel.convert
        )
        assert isinstance(decision, Inbound)
        stream = rig.channel.stream_for(decision.turn)
        await stream.start()
        await stream.finish("", [Button("좋아요", "/suggestions accept python", owner=MINSU)])
        (message,) = rig.slack.bot_messages(DM_MINSU, decision.turn.thread_id)
        assert message.shown == "" and len(message.buttons) == 1
        assert message.text == "좋아요"  # the notification names the choices
        await rig.press(message, MINSU)
        await rig.slack.wait_for(lambda f: message.deleted)
        await rig.turn_count(1)
        assert rig.turns[0][0].text == "/suggestions accept python"


# ---- presses ----------------------------------------------------------------------------------


async def test_the_owners_press_is_a_turn_in_the_offers_session_and_takes_the_buttons_away() -> (
    None
):
    async with running() as rig:
        offered, message = await rig.offer(
            [
                Button("파이썬 배우기", "/suggestions accept python", owner=MINSU),
                Button("다음에", "/suggestions later"),
            ]
        )
        before = message.shown
        await rig.press(message, MINSU)
        await rig.turn_count(1)
        turn, key = rig.turns[0]
        assert turn.text == "/suggestions accept python"
        assert key == offered.session_key(rig.channel.app.manager.config.scope)
        assert (turn.user_id, turn.chat_id, turn.thread_id, turn.team_id) == (
            MINSU,
            STUDY,
            offered.thread_id,
            TEAM,
        )
        await rig.slack.wait_for(lambda f: not message.buttons)
        assert message.shown == before  # the answer keeps its text
        (update,) = rig.slack.calls_to("chat.update")
        assert update.params["ts"] == message.ts and update.params["blocks"] == []
        # The turn is answered in the thread like a message (this core knows no /suggestions).
        notice = t("unknown_command", "en", command="/suggestions")
        await rig.slack.wait_for(lambda f: in_thread(f, STUDY, offered.thread_id, notice))
        await asyncio.sleep(0.2)
        assert len(rig.turns) == 1


async def test_a_press_without_an_owner_is_anyones_and_reaches_the_model_in_the_same_session() -> (
    None
):
    async with running() as rig:
        offered, message = await rig.offer(
            [Button("더 알려줘", "서울 날씨 더 알려줘")], channel=DM_MINSU
        )
        await rig.press(message, MINSU)
        await rig.slack.wait_for(
            lambda f: in_thread(f, DM_MINSU, offered.thread_id, "echo: 서울 날씨 더 알려줘")
        )
        key = offered.session_key(rig.channel.app.manager.config.scope)
        assert rig.turns[0][1] == key
        async with asyncio.timeout(5):  # saved just after the answer is shown
            while not (await rig.store.load(key)).history:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        session = await rig.store.load(key)
        assert [m.content for m in session.history if m.role == "user"] == ["서울 날씨 더 알려줘"]


# ---- the assistant thread's suggested prompts -------------------------------------------------


async def test_in_a_direct_conversation_the_buttons_are_also_the_threads_suggested_prompts() -> (
    None
):
    async with running() as rig:
        offered, message = await rig.offer(
            [
                Button("추천 받기", "서울 날씨 더 알려줘", owner=MINSU),
                Button("괜찮아요", "/suggestions decline weather", owner=MINSU),
                Button("누군가의 것", "/x", owner=ANN),  # never offered to someone else
            ],
            channel=DM_MINSU,
        )
        await rig.slack.wait_for(lambda f: (DM_MINSU, offered.thread_id) in f.prompts)
        title, prompts = rig.slack.prompts[(DM_MINSU, offered.thread_id)]
        assert title == "추천"
        assert prompts == [
            ("추천 받기", "서울 날씨 더 알려줘"),
            ("괜찮아요", "/suggestions decline weather"),
        ]
        assert len(message.buttons) == 3  # the message keeps its buttons as well
        # A click posts the prompt's message as the user's: the same turn as the press.
        delivery = await rig.send.event(
            rig.slack.choose_prompt(DM_MINSU, offered.thread_id, MINSU)[0]
        )
        assert delivery.status == 200
        await rig.slack.wait_for(
            lambda f: in_thread(f, DM_MINSU, offered.thread_id, "echo: 서울 날씨 더 알려줘")
        )
        turn, key = rig.turns[0]
        assert turn.text == "서울 날씨 더 알려줘" and turn.user_id == MINSU
        assert key == offered.session_key(rig.channel.app.manager.config.scope)


async def test_suggested_prompts_only_in_direct_conversations_and_where_slack_allows_them() -> None:
    buttons = [Button("추천 받기", "/suggestions accept python", owner=MINSU)]
    async with running() as rig:
        await rig.offer(buttons)  # a channel: the buttons are for whoever sees them there
        rig.slack.refuse_status = "channel_type_not_supported"  # not an assistant thread
        await rig.offer(buttons, channel=DM_MINSU)
        await rig.offer(buttons, channel=DM_MINSU)
        await asyncio.sleep(0.1)
        (refused,) = rig.slack.calls_to("assistant.threads.setSuggestedPrompts")
        assert refused.params["channel_id"] == DM_MINSU  # asked once, then not again
        assert rig.slack.prompts == {}
        assert all(len(m.buttons) == 1 for m in rig.slack.bot_messages(DM_MINSU))


async def test_someone_elses_press_is_told_privately_and_makes_no_turn() -> None:
    async with running() as rig:
        _offered, message = await rig.offer(
            [Button("파이썬 배우기", "/suggestions accept python", owner=MINSU)]
        )
        await rig.press(message, ANN)
        await rig.slack.wait_for(lambda f: bool(f.ephemerals))
        (notice,) = rig.slack.ephemerals
        assert (notice.user, notice.channel, notice.text) == (
            ANN,
            STUDY,
            t("button_not_yours", "ko"),
        )
        assert notice.via == "response_url"
        await asyncio.sleep(0.3)
        assert rig.turns == []
        assert len(message.buttons) == 1 and rig.slack.calls_to("chat.update") == []
        # The owner still can.
        await rig.press(message, MINSU)
        await rig.turn_count(1)
        await rig.slack.wait_for(lambda f: not message.buttons)


async def test_without_a_response_url_the_notice_goes_through_post_ephemeral() -> None:
    async with running() as rig:
        _, message = await rig.offer([Button("파이썬", "/suggestions accept python", owner=MINSU)])
        payload = rig.slack.block_actions(STUDY, message.ts, ANN)
        del payload["response_url"]
        assert (await rig.send.action(payload)).status == 200
        await rig.slack.wait_for(lambda f: bool(f.ephemerals))
        (notice,) = rig.slack.ephemerals
        assert notice.via == "chat.postEphemeral" and notice.user == ANN
        assert notice.thread_ts == message.thread_ts
        assert rig.turns == []


async def test_a_forged_press_is_refused() -> None:
    async with running() as rig:
        _, message = await rig.offer([Button("파이썬", "/suggestions accept python", owner=MINSU)])
        payload = rig.slack.block_actions(STUDY, message.ts, MINSU)
        assert (await rig.send.action(payload, forged=True)).status == 401
        assert (await rig.send.action(payload, age=600)).status == 401  # a replayed old one
        await asyncio.sleep(0.3)
        assert rig.turns == [] and len(message.buttons) == 1


async def test_a_press_slack_sends_twice_is_one_turn() -> None:
    async with running() as rig:
        _, message = await rig.offer([Button("더 알려줘", "서울 날씨 더 알려줘", owner=MINSU)])
        payload = rig.slack.block_actions(STUDY, message.ts, MINSU)
        for _ in range(2):
            assert (await rig.send.action(payload)).status == 200
        await rig.turn_count(1)
        # Another process (no memory of it) still sees it was recorded.
        rig.channel._presses.clear()
        assert (await rig.send.action(payload)).status == 200
        await asyncio.sleep(0.5)
        assert len(rig.turns) == 1


async def test_a_stale_press_is_still_a_turn_for_the_core_to_judge() -> None:
    async with running() as rig:
        _, message = await rig.offer([Button("파이썬", "/suggestions accept python", owner=MINSU)])
        (button,) = message.buttons
        block_id = message.blocks[-1]["block_id"]
        await rig.press(message, MINSU)
        await rig.slack.wait_for(lambda f: not message.buttons)
        # A second client had not seen the removal yet: the same button, pressed again.
        again = await rig.press(
            message, MINSU, action_id=button["action_id"], value=button["value"], block_id=block_id
        )
        assert "blocks" not in again["message"]
        # And a button whose payload the core no longer knows.
        await rig.press(message, MINSU, action_id="bot_button_0", value="/suggestions accept gone")
        await rig.turn_count(3)
        assert [turn.text for turn, _ in rig.turns] == [
            "/suggestions accept python",
            "/suggestions accept python",
            "/suggestions accept gone",
        ]
        assert len({key for _, key in rig.turns}) == 1  # all in the offer's session
        assert len(rig.slack.calls_to("chat.update")) == 1  # nothing more to take away


async def test_presses_over_socket_mode() -> None:
    async with running(slack_app_token=APP_TOKEN) as rig:
        await rig.slack.wait_for(lambda f: f.socket_connected)
        _offered, message = await rig.offer(
            [Button("파이썬", "/suggestions accept python", owner=MINSU)]
        )
        envelope = await rig.slack.push(
            rig.slack.block_actions(STUDY, message.ts, MINSU), kind="interactive"
        )
        await rig.slack.wait_for(lambda f: envelope in f.acks)
        await rig.turn_count(1)
        assert rig.turns[0][0].text == "/suggestions accept python"
        await rig.slack.wait_for(lambda f: not message.buttons)


async def test_a_journaled_press_left_by_a_dead_process_is_answered() -> None:
    async with running() as rig:
        offered, message = await rig.offer(
            [Button("더 알려줘", "서울 날씨 더 알려줘", owner=MINSU)]
        )
        payload = rig.slack.block_actions(STUDY, message.ts, MINSU)
        press = button_press(payload, rig.channel.me, rig.channel.convert)
        assert isinstance(press, ButtonPress)
        key = offered.session_key(rig.channel.app.manager.config.scope)
        entry = JournalEntry("slack", str(key), press.turn.delivery_key, payload, recovered=True)
        rig.channel.resume_later(entry)
        await rig.turn_count(1)
        assert rig.turns[0] == (rig.turns[0][0], key)
        notice = t("notice_resumed", "ko").strip("()")
        await rig.slack.wait_for(
            lambda f: any(notice in m.shown for m in f.bot_messages(STUDY, offered.thread_id))
        )


# ---- converting a press -----------------------------------------------------------------------


def press_payload(**over: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": ANN, "username": "ann", "name": "ann", "team_id": "T0OTHER001"},
        "team": {"id": "T0OTHER001", "domain": "other"},
        "container": {
            "type": "message",
            "message_ts": "1700000000.000200",
            "channel_id": STUDY,
            "is_ephemeral": False,
            "thread_ts": "1700000000.000100",
        },
        "channel": {"id": STUDY, "name": "study"},
        "message": {
            "ts": "1700000000.000200",
            "thread_ts": "1700000000.000100",
            "text": "골라 주세요",
        },
        "response_url": "https://hooks.slack.com/actions/T/1/x",
        "actions": [
            {
                "action_id": "bot_button_1",
                "block_id": f"bot_buttons:{TEAM}",
                "value": encode_value(Button("b", "/suggestions accept go", owner=ANN)),
                "type": "button",
                "action_ts": "1700000001.000300",
            }
        ],
    }
    payload.update(over)
    return payload


def test_a_press_is_a_turn_of_the_offers_team_and_thread() -> None:
    me = BotIdentity(user_id=BOT_USER, bot_id="B", team_id=TEAM, name="bot")
    press = button_press(press_payload(), me, ConvertOptions(scope=SessionScope.USER_IN_THREAD))
    assert isinstance(press, ButtonPress)
    turn = press.turn
    # Slack Connect: the presser's team is another one; the offer was made in ours.
    assert turn.team_id == TEAM and turn.recipient_team_id == "T0OTHER001"
    assert turn.thread_id == "1700000000.000100" and not turn.is_private
    assert turn.text == "/suggestions accept go" and press.owner == ANN
    assert turn.delivery_id == f"press-1700000001.000300-{ANN}"
    assert turn.session_key() == SessionKey("slack", TEAM, STUDY, "1700000000.000100", ANN)
    assert press.lang == "ko" and press.message_ts == "1700000000.000200"

    dm = button_press(press_payload(channel={"id": "D0ANN00001", "name": "directmessage"}), me)
    assert isinstance(dm, ButtonPress) and dm.turn.is_private
    assert dm.turn.session_key() == SessionKey("slack", TEAM, "D0ANN00001", "", ANN)

    other = press_payload(actions=[{"action_id": "approve", "value": "x", "type": "button"}])
    assert isinstance(button_press(other, me), Ignore)
    assert isinstance(button_press({"type": "view_submission"}, me), Ignore)
