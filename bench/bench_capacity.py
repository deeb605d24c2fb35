"""Capacity of one process: 1,000 private chats each send a message within one second.

The bot is one process, built as ``python -m bot run`` builds it (``build_app``, then
``settle_heap``): PTB polling the fake Bot API, the manager, the GLM client. The fakes (the Bot
API with Telegram's documented limits; GLM streaming 3 characters every 10 ms) run in
processes of their own and speak HTTP on loopback, so CPU, memory and event-loop lag are the
bot process's own. ``--fakes process`` puts both fakes in one process, ``--fakes inline`` in
the bot's process and loop (the set-up before; its CPU figure then includes the fakes').

GLM_MAX_CONCURRENCY is 1000 here (``--glm-concurrency``), as an operator expecting 1,000
simultaneous chats would set it: with the default 100 the model's bulkhead, not the bot,
decides how long the other 900 wait for their first words (a turn waits for a model slot
until its first-token deadline, then gets the fallback).

Prints: answers delivered, 429s, time from a message to the first text shown in its chat
(median, p95, p99) and where it went (getUpdates, the turn's start, the model's first token,
the draft), time to the complete answer, event-loop lag (p99), memory per conversation and
CPU time per turn.

Run from the repository root:
    .venv/bin/python -m bench.bench_capacity [--chats 1000] [--within 1.0] [--length 120]
        [--glm-concurrency 1000] [--fakes processes|process|inline] [--telegram webhook]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import resource
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update

from adapters.telegram import JournalingQueue, TelegramChannel
from adapters.telegram_pacing import FloodPolicy
from adapters.telegram_stream import ChatTarget, TelegramReplyStream
from bench.bench_telegram import SHOWING, StampedStream, answer_body, paced, people
from bench.common import banner, free_port
from bot.app import build_app, settle_heap
from bot.settings import Settings
from bot.turn import Turn
from tests.fakes.glm import FakeGlm
from tests.fakes.telegram import TOKEN, FakeTelegram, Limits

FIRST_ID = 50_000
MODEL_RATE = 300.0  # characters a second: 3 characters every 10 ms


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):.2f} s, p95 {pct(values, 0.95):.2f} s, "
        f"p99 {pct(values, 0.99):.2f} s"
    )


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- the control channel between the bot's side and the fakes' side --------------------------


class Control:
    """Messages between the two sides: a pipe between processes, or queues in one loop."""

    def __init__(
        self, send: Callable[[object], Awaitable[None]], recv: Callable[[], Awaitable[Any]]
    ) -> None:
        self.send = send
        self.recv = recv

    @classmethod
    def pipe(cls, conn: multiprocessing.connection.Connection) -> Control:
        async def send(obj: object) -> None:
            conn.send(obj)

        async def recv() -> Any:
            return await asyncio.get_running_loop().run_in_executor(None, conn.recv)

        return cls(send, recv)

    @classmethod
    def pair(cls) -> tuple[Control, Control]:
        a: asyncio.Queue[object] = asyncio.Queue()
        b: asyncio.Queue[object] = asyncio.Queue()

        def side(out: asyncio.Queue[object], into: asyncio.Queue[object]) -> Control:
            async def send(obj: object) -> None:
                out.put_nowait(obj)

            return cls(send, into.get)

        return side(a, b), side(b, a)


# ---- the fakes' side: the users, the Bot API, the model ----------------------------------------


async def glm_side(control: Control, length: int) -> None:
    """Serve the fake GLM until told to stop."""
    async with FakeGlm() as glm:
        glm.default = lambda req: paced(answer_body(req.last_user_text(), length), MODEL_RATE)
        await control.send({"glm": glm.base_url, "key": glm.api_key})
        await control.recv()  # "stop"


def glm_process(conn: multiprocessing.connection.Connection, length: int) -> None:
    asyncio.run(glm_side(Control.pipe(conn), length))


async def fakes_side(
    control: Control,
    chats: int,
    within: float,
    length: int,
    glm_at: dict[str, str] | None = None,
) -> None:
    """Serve the fake Bot API (and the fake GLM unless it runs elsewhere: ``glm_at``); on
    "go" the chats each send one message, paced over ``within`` seconds; once every answer
    is complete, send what each chat saw back."""
    async with contextlib.AsyncExitStack() as stack:
        tg = await stack.enter_async_context(FakeTelegram(limits=Limits(), clock=time.perf_counter))
        serves = "fake Bot API"
        if glm_at is None:
            serves = "fake Bot API and GLM"
            glm = await stack.enter_async_context(FakeGlm())
            glm.default = lambda req: paced(answer_body(req.last_user_text(), length), MODEL_RATE)
            glm_at = {"glm": glm.base_url, "key": glm.api_key}
        users = people(tg, chats, FIRST_ID)
        await control.send({"telegram": tg.base_url, **glm_at})
        # The bot polls, or has set its webhook.
        await tg.wait_for(lambda f: bool(f.calls_to("getUpdates") or f.webhook), within=60)
        await control.send("ready")
        await control.recv()  # "go"
        cpu_before = time.process_time()
        asked: dict[int, float] = {}
        finals: dict[int, str] = {}
        started = time.perf_counter()
        for i, user in enumerate(users):
            chat_id = int(str(user["id"]))
            await asyncio.sleep(max(0.0, started + within * i / chats - time.perf_counter()))
            asked[chat_id] = time.perf_counter()
            tg.say(tg.chats[chat_id], user, f"c{i}")
            finals[chat_id] = answer_body(f"c{i}", length).replace("**", "")
        remaining = set(finals)
        give_up = started + 300
        while remaining and time.perf_counter() < give_up:
            await asyncio.sleep(0.05)  # a scan of the chats not done yet, not one per call
            remaining = {c for c in remaining if finals[c] not in tg.bot_texts(c)}
        done = time.perf_counter()
        cpu = time.process_time() - cpu_before
        calls: dict[int, list[tuple[str, float]]] = defaultdict(list)
        for call in tg.calls:
            chat = call.chat_id
            if call.ok and chat is not None and chat in asked:
                calls[chat].append((call.method, call.time))
        first: dict[int, tuple[str, float]] = {}
        complete: dict[int, float] = {}
        for chat, at in asked.items():
            showing = [(m, t) for m, t in calls[chat] if m in SHOWING and t >= at]
            if showing:
                first[chat] = showing[0]
            sends = [t for m, t in calls[chat] if m == "sendMessage" and t >= at]
            if sends:
                complete[chat] = max(sends)
        await control.send(
            {
                "asked": asked,
                "first": first,
                "complete": complete,
                "answered": len(finals) - len(remaining),
                "rejected_429": len(tg.rejected(429)),
                "errors": [f"{c.method} {c.status} {c.description}" for c in tg.rejected()][:5],
                "error_count": len(tg.rejected()),
                "started": started,
                "done": done,
                "fakes_cpu": cpu,
                "fakes_serve": serves,
                "methods": dict(_count(c.method for c in tg.calls if c.ok)),
                "polls": [
                    (c.time, len(c.result or ())) for c in tg.calls if c.method == "getUpdates"
                ],
            }
        )
        await control.recv()  # "stop": the bot has stopped polling


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return counts


def fakes_process(conn: multiprocessing.connection.Connection, *args: Any) -> None:
    asyncio.run(fakes_side(Control.pipe(conn), *args))


# ---- the bot's side ----------------------------------------------------------------------------


@dataclass
class Stamps:
    """When, per chat, the bot took the update, began the turn and got the first token."""

    received: dict[str, float]
    turn_started: dict[str, float]
    streams: dict[str, StampedStream]


@dataclass
class Sampler:
    """Event-loop lag (how late a 10 ms sleep wakes up), RSS and turns in flight, until stopped."""

    channel: TelegramChannel
    lag: list[float] = field(default_factory=list)
    peak_rss: int = 0
    in_flight_at_peak: int = 0
    peak_in_flight: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        ticks = 0
        while not self.stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lag.append(time.perf_counter() - before - 0.01)
            ticks += 1
            running = self.channel.processor.running
            self.peak_in_flight = max(self.peak_in_flight, running)
            if ticks % 10 == 0:
                rss = rss_kib()
                if rss > self.peak_rss:
                    self.peak_rss, self.in_flight_at_peak = rss, running


RECEIVE = {"mode": "polling"}  # how the bot takes updates (--telegram)


def receiving() -> dict[str, Any]:
    """The settings for ``--telegram webhook``: PTB's webhook server on a loopback port, which
    the fake Bot API posts each update to (up to max_connections, 40, at once)."""
    if RECEIVE["mode"] != "webhook":
        return {}
    port = free_port()
    return {
        "telegram_webhook_url": f"http://127.0.0.1:{port}/telegram",
        "telegram_webhook_listen": "127.0.0.1",
        "telegram_webhook_port": port,
        "telegram_webhook_secret": "bench-webhook-secret",
    }


async def bot_side(control: Control, chats: int, glm_concurrency: int, inline: bool) -> None:
    urls = await control.recv()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        telegram_base_url=urls["telegram"],
        glm_api_key=urls["key"],
        glm_base_url=urls["glm"],
        glm_max_concurrency=glm_concurrency,
        redis_url=None,
        **receiving(),
        log_level="WARNING",
    )
    app = await build_app(settings)
    settle_heap()  # as run_channels does once the app is built
    channel = TelegramChannel(app, policy=FloodPolicy())
    streams: dict[str, StampedStream] = {}
    turn_started: dict[str, float] = {}

    def stream_for(turn: Turn) -> TelegramReplyStream:
        turn_started.setdefault(turn.chat_id, time.perf_counter())
        stream = StampedStream(channel.outbox, ChatTarget.of(turn))
        streams[turn.chat_id] = stream
        return stream

    channel.stream_for = stream_for  # type: ignore[method-assign]
    received: dict[str, float] = {}
    queue = channel.application.update_queue
    assert isinstance(queue, JournalingQueue)
    record = queue.record

    async def stamped_record(update: object) -> bool:
        if isinstance(update, Update) and update.effective_chat is not None:
            received.setdefault(str(update.effective_chat.id), time.perf_counter())
        return await record(update)

    queue.record = stamped_record
    task = asyncio.create_task(channel.run())
    try:
        await control.recv()  # "ready": the bot polls
        sampler = Sampler(channel)
        sampling = asyncio.create_task(sampler.run())
        rss_before = rss_kib()
        cpu_before = time.process_time()
        await control.send("go")
        result = await control.recv()
        cpu = time.process_time() - cpu_before
        sampler.stop.set()
        await sampling
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app.close()
        await control.send("stop")
    stamps = Stamps(received, turn_started, streams)
    report(result, sampler, stamps, chats, rss_before, cpu, glm_concurrency, inline)


def report(
    result: dict[str, Any],
    sampler: Sampler,
    stamps: Stamps,
    chats: int,
    rss_before: int,
    cpu: float,
    glm_concurrency: int,
    inline: bool,
) -> None:
    asked: dict[int, float] = result["asked"]
    first: dict[int, tuple[str, float]] = result["first"]
    complete: dict[int, float] = result["complete"]
    visible = [first[c][1] - at for c, at in asked.items() if c in first]
    drafts = sum(1 for method, _ in first.values() if method == "sendMessageDraft")
    # Where the time to the first text went (perf_counter is one clock for both processes).
    to_bot, to_start, to_token, to_text = [], [], [], []
    for chat, at in asked.items():
        got = stamps.received.get(str(chat))
        begun = stamps.turn_started.get(str(chat))
        stream = stamps.streams.get(str(chat))
        token = stream.first_token_at if stream is not None else None
        if got is None or begun is None or token is None or chat not in first:
            continue
        to_bot.append(got - at)
        to_start.append(begun - got)
        to_token.append(token - begun)
        to_text.append(first[chat][1] - token)
    lag = sampler.lag
    where = "bot and fakes in one process" if inline else "the bot's process alone"
    print(
        f"== {chats} private chats, one message each within "
        f"{max(asked.values()) - result['started']:.2f} s; "
        f"answers streamed 3 characters every 10 ms; fakes "
        f"{'in the bot process' if inline else 'out of the bot process'}; "
        f"GLM_MAX_CONCURRENCY={glm_concurrency}; updates by {RECEIVE['mode']}"
    )
    print(
        f"   answered: {result['answered']}/{chats}; 429s received: {result['rejected_429']}; "
        f"other refusals: {result['error_count'] - result['rejected_429']}; "
        f"all done in {result['done'] - result['started']:.1f} s"
    )
    for line in result["errors"]:
        print(f"     e.g. {line}")
    print(
        f"   message -> first visible text: {spread(visible)} (target p95 <= 2.0 s; "
        f"{drafts}/{len(first)} were drafts)"
    )
    print(f"     message -> bot has it:       {spread(to_bot)} ({RECEIVE['mode']})")
    print(f"     bot has it -> turn starts:   {spread(to_start)}")
    print(f"     turn start -> first token:   {spread(to_token)}")
    print(f"     first token -> shown:        {spread(to_text)}")
    whole = [complete[c] - at for c, at in asked.items() if c in complete]
    print(
        f"   message -> complete answer:    {spread(whole)} "
        f"(finals paced at the bot-wide 30 messages/s)"
    )
    print(
        f"   event-loop lag: p99 {pct(lag, 0.99) * 1e3:.1f} ms, "
        f"max {max(lag) * 1e3:.1f} ms (n={len(lag)})"
    )
    grown = sampler.peak_rss - rss_before
    print(
        f"   memory: {grown / chats:.1f} KiB per conversation "
        f"(RSS {rss_before / 1024:.0f} -> {sampler.peak_rss / 1024:.0f} MiB, "
        f"{sampler.in_flight_at_peak} turns in flight then, at most {sampler.peak_in_flight}; "
        f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)"
    )
    fakes = "" if inline else f"; the {result['fakes_serve']} used {result['fakes_cpu']:.1f} s"
    print(f"   CPU: {cpu / chats * 1e3:.1f} ms per turn ({cpu:.1f} s, {where}{fakes})")
    methods = ", ".join(f"{m} {n}" for m, n in sorted(result["methods"].items()))
    print(f"   platform calls: {methods}")


async def run_inline(chats: int, within: float, length: int, glm_concurrency: int) -> None:
    bot, fakes = Control.pair()
    await asyncio.gather(
        bot_side(bot, chats, glm_concurrency, inline=True),
        fakes_side(fakes, chats, within, length),
    )


def run_separate(
    chats: int, within: float, length: int, glm_concurrency: int, *, split: bool
) -> None:
    """The fakes in a process of their own (``split``: one process each)."""
    context = multiprocessing.get_context("spawn")
    children = []
    glm_at = None
    glm_conn = None
    if split:
        glm_conn, theirs = context.Pipe()
        child = context.Process(target=glm_process, args=(theirs, length), daemon=True)
        child.start()
        children.append(child)
        glm_at = glm_conn.recv()
    ours, theirs = context.Pipe()
    child = context.Process(
        target=fakes_process, args=(theirs, chats, within, length, glm_at), daemon=True
    )
    child.start()
    children.append(child)
    try:
        asyncio.run(bot_side(Control.pipe(ours), chats, glm_concurrency, inline=False))
    finally:
        if glm_conn is not None:
            glm_conn.send("stop")
        for child in children:
            child.join(10)
            if child.is_alive():
                child.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--within", type=float, default=1.0)
    parser.add_argument("--length", type=int, default=120)
    parser.add_argument("--glm-concurrency", type=int, default=1000, help="GLM_MAX_CONCURRENCY")
    parser.add_argument(
        "--fakes",
        choices=("processes", "process", "inline"),
        default="processes",
        help="fake Bot API and fake GLM: a process each, one process, or in the bot's loop",
    )
    parser.add_argument(
        "--telegram",
        choices=("polling", "webhook"),
        default="polling",
        help="how the bot takes updates: long polling (the default) or its webhook",
    )
    args = parser.parse_args()
    RECEIVE["mode"] = args.telegram
    banner("capacity: one bot process, fake Telegram and GLM on loopback")
    if args.fakes == "inline":
        asyncio.run(run_inline(args.chats, args.within, args.length, args.glm_concurrency))
    else:
        split = args.fakes == "processes"
        run_separate(args.chats, args.within, args.length, args.glm_concurrency, split=split)


if __name__ == "__main__":
    main()
