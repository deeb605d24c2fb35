"""Telegram streaming figures: first text latency, calls per 1,000 characters, 429s under load.

The whole adapter runs in-process (PTB Application polling the fake Bot API, the manager, the
GLM client against the fake GLM); both fakes answer on loopback with zero added latency.

Run from the repository root:
    .venv/bin/python -m bench.bench_telegram [--turns 200] [--rate 150] [--answers 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from adapters.telegram import TelegramChannel
from adapters.telegram_pacing import FloodPolicy
from adapters.telegram_stream import ChatTarget, TelegramReplyStream
from bench.common import banner, summary
from bot.app import App, build_app
from bot.settings import Settings
from bot.turn import Turn
from tests.fakes.glm import FakeGlm, Reply
from tests.fakes.telegram import TOKEN, Call, FakeTelegram, Limits

SHOWING = ("sendMessageDraft", "sendMessage", "editMessageText")
PLATFORM = ("sendChatAction", *SHOWING, "deleteMessage")


class StampedStream(TelegramReplyStream):
    """Notes when the first token reached the adapter (``append`` is called per token)."""

    first_token_at: float | None = None

    def append(self, text: str) -> None:
        if self.first_token_at is None and text:
            self.first_token_at = time.perf_counter()
        super().append(text)


@dataclass
class Rig:
    tg: FakeTelegram
    glm: FakeGlm
    app: App
    channel: TelegramChannel
    streams: dict[str, StampedStream]  # chat id → its latest stream


@asynccontextmanager
async def rig(limits: Limits) -> AsyncIterator[Rig]:
    async with FakeTelegram(limits=limits, clock=time.perf_counter) as tg, FakeGlm() as glm:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            telegram_bot_token=TOKEN,
            telegram_base_url=tg.base_url,
            glm_api_key=glm.api_key,
            glm_base_url=glm.base_url,
            redis_url=None,
            log_level="WARNING",
        )
        app = await build_app(settings)
        channel = TelegramChannel(app, policy=FloodPolicy())
        streams: dict[str, StampedStream] = {}

        def stream_for(turn: Turn) -> TelegramReplyStream:
            stream = StampedStream(channel.outbox, ChatTarget.of(turn))
            streams[turn.chat_id] = stream
            return stream

        channel.stream_for = stream_for  # type: ignore[method-assign]
        task = asyncio.create_task(channel.run())
        try:
            await tg.wait_for(lambda f: bool(f.calls_to("getUpdates")), within=20)
            yield Rig(tg, glm, app, channel, streams)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.close()


def paced(body: str, rate: float, size: int = 3) -> Reply:
    """``body`` streamed in ``size``-character chunks at ``rate`` characters a second."""
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return Reply(body, chunks=chunks, delay=size / rate if rate else 0.0)


def people(tg: FakeTelegram, count: int, first_id: int) -> list[dict[str, object]]:
    users = []
    for i in range(count):
        user = tg.user(first_id + i, f"user{i}")
        tg.private_chat(user)
        users.append(user)
    return users


def answer_body(tag: str, length: int) -> str:
    sentence = "서울은 오늘 맑고 **최고 21도**예요. 내일은 비 소식이 있어요. "
    return (tag + " " + sentence * (length // len(sentence) + 1))[:length].rstrip() + "."


def first_showing(tg: FakeTelegram, chat: int, after: float) -> Call | None:
    for call in tg.calls_to(chat_id=chat):
        if call.method in SHOWING and call.ok and call.time >= after:
            return call
    return None


# ---- 1. first token → first platform call showing text ---------------------------------------


async def first_text_latency(turns: int, rate: float) -> None:
    async with rig(Limits()) as r:
        r.glm.default = lambda req: paced(answer_body(req.last_user_text(), 120), rate)
        users = people(r.tg, turns // 2, 10_000)
        groups = []
        for i in range(turns - len(users)):
            groups.append(r.tg.group(-10_000 - i, f"g{i}", members=[users[i % len(users)]]))
        lat: dict[str, list[float]] = {"private": [], "group": []}
        for i in range(turns):
            private = i % 2 == 0
            user = users[i // 2 % len(users)]
            chat = r.tg.chats[int(str(user["id"]))] if private else groups[i // 2]
            text = f"q{i}" if private else f"@glm_test_bot q{i}"
            asked = time.perf_counter()
            r.tg.say(chat, user, text)
            chat_id = int(str(chat["id"]))
            await r.tg.wait_for(lambda f, c=chat_id, a=asked: first_showing(f, c, a) is not None)
            call = first_showing(r.tg, chat_id, asked)
            stream = r.streams[str(chat_id)]
            assert call is not None and stream.first_token_at is not None
            if i >= 20:  # warm-up: connections, code paths
                lat["private" if private else "group"].append(call.time - stream.first_token_at)
            # 10 questions a second, about 15 messages a second: well under the bot-wide 30,
            # which would otherwise make first messages queue behind earlier answers' finals.
            await asyncio.sleep(max(0.0, asked + 0.1 - time.perf_counter()))
        # Let the last answers end before the rig stops (group finals wait for their slot).
        await r.tg.wait_for(lambda f: f.pending_updates == 0, within=30)
        await asyncio.sleep(1.5)
        print(
            "== 1. model's first token -> first platform call showing text (target <= 30 ms); "
            f"{turns} questions, 10 a second, each in its own chat"
        )
        print(f"   private chat (sendMessageDraft): {summary(lat['private'])}")
        print(f"   group (sendMessage):             {summary(lat['group'])}")


# ---- 2. platform calls per 1,000 streamed characters ------------------------------------------


async def calls_per_thousand(rate: float, chats: int, length: int) -> None:
    async with rig(Limits()) as r:
        r.glm.default = lambda req: paced(answer_body(req.last_user_text(), length), rate)
        users = people(r.tg, chats, 20_000)
        groups = [r.tg.group(-20_000 - i, f"g{i}", members=[users[i]]) for i in range(chats)]
        expected: dict[int, str] = {}
        for i, user in enumerate(users):
            r.tg.say(r.tg.chats[int(str(user["id"]))], user, f"p{i}")
            r.tg.say(groups[i], user, f"@glm_test_bot g{i}")
            expected[int(str(user["id"]))] = answer_body(f"p{i}", length)
            expected[-20_000 - i] = answer_body(f"g{i}", length)
        await wait_answers(r.tg, expected, within=120)
        print(
            f"== 2. platform calls per 1,000 streamed characters ({chats} answers each of "
            f"{length} characters at {rate:g} characters/s, side by side)"
        )
        for label, chat_ids in (
            ("private", [c for c in expected if c > 0]),
            ("group", [c for c in expected if c < 0]),
        ):
            per_k = []
            kinds: Counter[str] = Counter()
            for chat in chat_ids:
                calls = [c for c in r.tg.calls_to(chat_id=chat) if c.method in PLATFORM and c.ok]
                kinds.update(c.method for c in calls)
                per_k.append(len(calls) * 1000 / len(expected[chat]))
            mix = ", ".join(f"{m} {n / len(chat_ids):.1f}" for m, n in sorted(kinds.items()))
            print(
                f"   {label:7}: median {statistics.median(per_k):.1f}, "
                f"p99 {p99(per_k):.1f} calls per 1,000 characters; per answer: {mix}"
            )


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def wait_answers(tg: FakeTelegram, expected: dict[int, str], within: float) -> None:
    def rendered(text: str) -> str:
        return text.replace("**", "")

    await tg.wait_for(
        lambda f: all(rendered(t) in f.bot_texts(c) for c, t in expected.items()), within
    )


# ---- 3. 429s in a 200-answer run at the documented limits -----------------------------------


async def flood_run(answers: int, rate: float, length: int) -> None:
    groups_n, per_group = 10, 8
    group_answers = min(answers // 2, groups_n * per_group)
    private_answers = answers - group_answers
    per_user = 4
    async with rig(Limits()) as r:
        r.glm.default = lambda req: paced(answer_body(req.last_user_text(), length), rate)
        users = people(r.tg, max(private_answers // per_user, per_group), 30_000)
        groups = [
            r.tg.group(-30_000 - g, f"g{g}", members=users[:per_group]) for g in range(groups_n)
        ]
        done: list[tuple[str, float]] = []
        started = time.perf_counter()

        async def ask(
            chat: dict[str, object], user: dict[str, object], tag: str, kind: str
        ) -> None:
            chat_id = int(str(chat["id"]))
            text = tag if kind == "private" else f"@glm_test_bot {tag}"
            asked = time.perf_counter()
            r.tg.say(chat, user, text)
            final = answer_body(tag, length).replace("**", "")
            await r.tg.wait_for(lambda f: final in f.bot_texts(chat_id), within=170)
            done.append((kind, time.perf_counter() - asked))

        async def private_user(i: int, user: dict[str, object]) -> None:
            for n in range(per_user):
                await ask(r.tg.chats[int(str(user["id"]))], user, f"u{i}q{n}", "private")

        async def group_chat(g: int, chat: dict[str, object]) -> None:
            waiting = []
            for n in range(group_answers // groups_n):
                waiting.append(asyncio.create_task(ask(chat, users[n], f"g{g}q{n}", "group")))
                await asyncio.sleep(1.0)  # a busy group: a new question every second
            await asyncio.gather(*waiting)

        private_users = users[: private_answers // per_user]
        await asyncio.gather(
            *(private_user(i, u) for i, u in enumerate(private_users)),
            *(group_chat(g, chat) for g, chat in enumerate(groups)),
        )
        elapsed = time.perf_counter() - started
        rejected = r.tg.rejected(429)
        busiest = max(window_peak(r.tg, int(str(chat["id"])), 60.0) for chat in groups)
        print(
            f"== 3. {len(done)} answers at the documented limits ({len(private_users)} private "
            f"chats x {per_user} questions; {groups_n} groups x {group_answers // groups_n} "
            f"questions, one every second; {length} characters at {rate:g} characters/s)"
        )
        print(
            f"   429s received: {len(rejected)} (target 0); flood waits honoured by the "
            f"bot: {r.channel.outbox.flood_waits}"
        )
        print(f"   busiest group minute: {busiest} messages (limit 20); run took {elapsed:.0f} s")
        for kind in ("private", "group"):
            times = [t for k, t in done if k == kind]
            print(f"   question -> complete answer, {kind:7}: {summary(times, 'ms')}")
        total = Counter(c.method for c in r.tg.calls if c.method in PLATFORM)
        print("   platform calls: " + ", ".join(f"{m} {n}" for m, n in sorted(total.items())))


def window_peak(tg: FakeTelegram, chat: int, span: float) -> int:
    times = [c.time for c in tg.calls_to(chat_id=chat) if c.method in SHOWING[1:] and c.ok]
    return max((sum(1 for t in times if s <= t < s + span) for s in times), default=0)


async def main(turns: int, rate: float, answers: int) -> None:
    banner("Telegram adapter (bench/bench_telegram.py)")
    print(
        "   in-process: PTB 22 Application (long polling) -> ConversationManager (memory store)"
        " -> GLM client;\n   fake Bot API and fake GLM on loopback, zero added latency; the "
        "fake Bot API enforces 1 msg/s per chat,\n   20/min per group, 30/s per bot, drafts "
        "20 per 5 s and 40 per 30 s per chat"
    )
    t0 = time.perf_counter()
    await first_text_latency(turns, rate)
    await calls_per_thousand(rate, chats=20, length=1000)
    await flood_run(answers, rate, length=300)
    print(f"   (all figures in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200, help="answers for figure 1")
    parser.add_argument("--rate", type=float, default=150, help="model output, characters/s")
    parser.add_argument("--answers", type=int, default=200, help="answers for figure 3")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rate, args.answers))
