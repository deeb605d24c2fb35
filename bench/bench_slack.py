"""Slack streaming figures: first text latency, Web API calls per 1,000 characters, 429s under load.

The whole adapter runs in-process (Bolt AsyncApp behind its aiohttp server, receiving signed
events over loopback HTTP; the manager; the GLM client against the fake GLM); FakeSlack and
FakeGlm answer on loopback with zero added latency.

Run from the repository root:
    .venv/bin/python -m bench.bench_slack [--turns 150] [--rate 150] [--answers 200] [--over 45]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from adapters.slack import SlackChannel
from adapters.slack_markdown import ZWSP
from adapters.slack_pacing import POST, START, SlackPolicy
from adapters.slack_stream import Mode, SlackReplyStream, SlackTarget
from bench.common import banner, free_port, summary
from bot.app import App, build_app
from bot.pacing import Window
from bot.settings import Settings
from bot.turn import Turn
from tests.fakes.glm import FakeGlm, Reply
from tests.fakes.slack import BOT_USER, SIGNING_SECRET, TOKEN, Call, FakeSlack, Limits, SlackSender

SHOWING = (START, POST)
NOT_PLATFORM = ("auth.test",)


class StampedStream(SlackReplyStream):
    """Notes when the first token reached the adapter (``append`` is called per token)."""

    first_token_at: float | None = None

    def append(self, text: str) -> None:
        if self.first_token_at is None and text:
            self.first_token_at = time.perf_counter()
        super().append(text)


@dataclass
class Rig:
    slack: FakeSlack
    glm: FakeGlm
    app: App
    channel: SlackChannel
    send: SlackSender
    streams: dict[str, StampedStream] = field(default_factory=dict)  # thread ts → stream


@asynccontextmanager
async def rig(limits: Limits, policy: SlackPolicy | None = None) -> AsyncIterator[Rig]:
    async with FakeSlack(limits=limits, clock=time.perf_counter) as slack, FakeGlm() as glm:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            slack_bot_token=TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.base_url,
            slack_port=free_port(),
            glm_api_key=glm.api_key,
            glm_base_url=glm.base_url,
            redis_url=None,
            log_level="WARNING",
        )
        app = await build_app(settings)
        channel = SlackChannel(app, policy=policy)
        streams: dict[str, StampedStream] = {}

        def stream_for(turn: Turn) -> SlackReplyStream:
            stream = StampedStream(channel.client, channel.budget, SlackTarget.of(turn))
            streams[turn.thread_id] = stream
            return stream

        channel.stream_for = stream_for  # type: ignore[method-assign]
        task = asyncio.create_task(channel.run())
        try:
            while channel.port is None:
                if task.done():
                    await task
                await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{channel.port}/slack/events"
            async with SlackSender(url) as sender:
                yield Rig(slack, glm, app, channel, sender, streams)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.close()


def paced(body: str, rate: float, size: int = 3) -> Reply:
    """``body`` streamed in ``size``-character chunks at ``rate`` characters a second."""
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return Reply(body, chunks=chunks, delay=size / rate if rate else 0.0)


def answer_body(tag: str, length: int) -> str:
    sentence = "서울은 오늘 맑고 **최고 21도**예요. 내일은 비 소식이 있어요. "
    return (tag + " " + sentence * (length // len(sentence) + 1))[:length].rstrip() + "."


def plain(text: str) -> str:
    return text.replace("*", "").replace(ZWSP, "").strip()


def workspace(slack: FakeSlack, channels: int, prefix: str) -> list[tuple[str, str]]:
    """``channels`` channels and as many DMs, each with its own person: (channel, user)."""
    places = []
    for i in range(channels):
        user = slack.user(f"U{prefix}{i:05d}", f"user{i}")
        places.append((slack.channel(f"C{prefix}{i:05d}"), user))
        places.append((slack.channel(f"D{prefix}{i:05d}", "im"), user))
    return places


async def ask(r: Rig, channel: str, user: str, tag: str) -> str:
    """Deliver the question as Slack does; returns the thread the answer goes to."""
    text = tag if channel.startswith("D") else f"<@{BOT_USER}> {tag}"
    envelopes = r.slack.say(channel, user, text)
    for envelope in envelopes:
        await r.send.event(envelope)
    event = envelopes[0]["event"]
    return str(event.get("thread_ts") or event["ts"])


def first_showing(slack: FakeSlack, thread: str) -> Call | None:
    for call in slack.calls:
        if call.method in SHOWING and call.ok and call.params.get("thread_ts") == thread:
            return call
    return None


def complete(slack: FakeSlack, channel: str, thread: str, body: str) -> bool:
    messages = slack.bot_messages(channel, thread)
    if not messages or any(m.streaming for m in messages):
        return False
    return plain("".join(m.shown for m in messages)) == plain(body)


# ---- 1. first token → first visible text ------------------------------------------------------


LIFTED = SlackPolicy(
    methods={name: Window(60.0, 100_000) for name in SlackPolicy().methods}, per_channel={}
)


async def first_text_latency(turns: int, rate: float) -> None:
    results: dict[str, list[float]] = {}
    for label, refused in (
        ("streaming (chat.startStream)", False),
        ("fallback (chat.postMessage)", True),
    ):
        async with rig(Limits.unlimited(), LIFTED) as r:
            if refused:
                r.slack.refuse_streaming = "unknown_method"
            r.glm.default = lambda req: paced(answer_body(req.last_user_text(), 120), rate)
            places = workspace(r.slack, turns // 2 + 1, "L")
            lat: list[float] = []
            pending = []
            for i in range(turns):
                channel, user = places[i]
                asked = time.perf_counter()
                thread = await ask(r, channel, user, f"q{i}")
                await r.slack.wait_for(lambda f, t=thread: first_showing(f, t) is not None)
                call = first_showing(r.slack, thread)
                stream = r.streams[thread]
                assert call is not None and stream.first_token_at is not None
                if i >= 20:  # warm-up: connections, code paths
                    lat.append(call.at - stream.first_token_at)
                pending.append((channel, thread, answer_body(f"q{i}", 120)))
                await asyncio.sleep(max(0.0, asked + 0.1 - time.perf_counter()))
            await r.slack.wait_for(lambda f, w=pending: all(complete(f, *p) for p in w), 30)
            results[label] = lat
    print(
        "== 1. model's first token -> first Web API call showing text (target <= 30 ms); "
        f"{turns} questions per path, 10 a second, each in its own channel or DM "
        "(tiers lifted: this is the code path)"
    )
    for label, lat in results.items():
        print(f"   {label:29}: {summary(lat)}")


# ---- 2. Web API calls per 1,000 streamed characters --------------------------------------------


async def calls_per_thousand(rate: float, answers: int, length: int) -> None:
    print(
        f"== 2. Web API calls per 1,000 streamed characters ({answers} answers side by side, "
        f"{length} characters each at {rate:g} characters/s, documented tiers)"
    )
    for label, refused in (("streaming", False), ("fallback ", True)):
        async with rig(Limits()) as r:
            if refused:
                r.slack.refuse_streaming = "unknown_method"
            r.glm.default = lambda req: paced(answer_body(req.last_user_text(), length), rate)
            places = workspace(r.slack, answers, "K")[::2]  # channels only
            asked = await asyncio.gather(
                *(ask(r, c, u, f"k{i}") for i, (c, u) in enumerate(places[:answers]))
            )
            expected = [
                (c, thread, answer_body(f"k{i}", length))
                for i, ((c, _), thread) in enumerate(zip(places, asked, strict=False))
            ]
            await r.slack.wait_for(lambda f, w=expected: all(complete(f, *e) for e in w), 120)
            per_k = []
            kinds: Counter[str] = Counter()
            for _, thread, body in expected:
                calls = r.streams[thread].calls
                kinds.update(calls)
                per_k.append(len(calls) * 1000 / len(body))
            mix = ", ".join(f"{m} {n / len(expected):.1f}" for m, n in sorted(kinds.items()))
            print(
                f"   {label}: median {statistics.median(per_k):.1f}, max {max(per_k):.1f} calls "
                f"per 1,000 characters; per answer: {mix}; 429s {len(r.slack.rate_limited())}"
            )


# ---- 3. 429s in a 200-answer run at the documented tiers ---------------------------------------


async def flood_run(answers: int, over: float, rate: float, length: int, refused: bool) -> None:
    async with rig(Limits()) as r:
        if refused:
            r.slack.refuse_streaming = "unknown_method"
        r.glm.default = lambda req: paced(answer_body(req.last_user_text(), length), rate)
        places = workspace(r.slack, 20, "F")
        done: list[float] = []
        first: dict[str, list[float]] = {}
        started = time.perf_counter()

        async def one(i: int) -> None:
            channel, user = places[i % len(places)]
            await asyncio.sleep(i * over / answers)
            asked = time.perf_counter()
            thread = await ask(r, channel, user, f"f{i}")
            body = answer_body(f"f{i}", length)
            await r.slack.wait_for(lambda f: complete(f, channel, thread, body), 170)
            done.append(time.perf_counter() - asked)
            stream = r.streams[thread]
            call = first_showing(r.slack, thread)
            if call is not None and stream.first_token_at is not None:
                mode = stream.modes[0].value if stream.modes else Mode.QUIET.value
                first.setdefault(mode, []).append(max(0.0, call.at - stream.first_token_at))

        await asyncio.gather(*(one(i) for i in range(answers)))
        elapsed = time.perf_counter() - started
        what = "streaming refused" if refused else "streaming allowed"
        print(
            f"== 3{'b' if refused else 'a'}. {len(done)} answers in one workspace at the "
            f"documented tiers, {what} ({answers / over:.1f} questions/s over {over:g} s, "
            f"20 channels + 20 DMs, {length} characters at {rate:g} characters/s)"
        )
        print(
            f"   429s received: {len(r.slack.rate_limited())} (target 0); refused calls: "
            f"{len(r.slack.refused()) - (len(r.slack.calls_to(START)) if refused else 0)}; "
            f"run took {elapsed:.0f} s"
        )
        modes = Counter(m.value for s in r.streams.values() for m in s.modes[:1])
        print("   answers by mode: " + ", ".join(f"{m} {n}" for m, n in sorted(modes.items())))
        for mode, values in sorted(first.items()):
            print(f"   first token -> first visible, {mode:6}: {summary(values)}")
        print(f"   question -> complete answer: {summary(done)}")
        total = Counter(c.method for c in r.slack.calls if c.method not in NOT_PLATFORM)
        print("   Web API calls: " + ", ".join(f"{m} {n}" for m, n in sorted(total.items())))


async def main(turns: int, rate: float, answers: int, over: float) -> None:
    logging.basicConfig(level=logging.ERROR)
    banner("Slack adapter (bench/bench_slack.py)")
    print(
        "   in-process: Bolt AsyncApp (aiohttp, signed HTTP events) -> ConversationManager "
        "(memory store) -> GLM client;\n   FakeSlack and FakeGlm on loopback, zero added "
        "latency; FakeSlack enforces chat.startStream/stopStream 20/min,\n   appendStream "
        "100/min, chat.update 50/min, setStatus 50/min per workspace, chat.postMessage 1/s "
        "per channel"
    )
    t0 = time.perf_counter()
    await first_text_latency(turns, rate)
    await calls_per_thousand(rate, answers=5, length=1000)
    await flood_run(answers, over, rate, length=300, refused=False)
    await flood_run(answers, over, rate, length=300, refused=True)
    print(f"   (all figures in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=150, help="answers per path for figure 1")
    parser.add_argument("--rate", type=float, default=150, help="model output, characters/s")
    parser.add_argument("--answers", type=int, default=200, help="answers for figure 3")
    parser.add_argument("--over", type=float, default=45, help="seconds the questions arrive over")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rate, args.answers, args.over))
