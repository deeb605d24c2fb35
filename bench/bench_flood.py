"""One user cannot cost everyone: others' first visible text while one user floods the bot.

One user sends ``--flood`` messages at once; meanwhile other people ask one question each (each
in their own private chat or DM, one every ``--gap`` seconds). The figure is each of their
questions' time from the update being available (queued for getUpdates on Telegram, posted to
the events endpoint on Slack) to the first platform call showing text in their chat
(``sendMessageDraft`` / ``sendMessage``; ``chat.startStream`` / ``chat.postMessage``), without
the flood and with it. Target: with the flood within 2x the time without.

The whole adapter runs in-process against the fake Bot API / FakeSlack and the fake GLM on
loopback, zero added latency (see bench_telegram.py and bench_slack.py).

Run from the repository root:
    .venv/bin/python -m bench.bench_flood [--flood 500] [--probes 200] [--gap 0.15] [--rounds 2]
        [--platform both|telegram|slack]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from adapters.slack import SlackChannel
from adapters.telegram import TelegramChannel
from adapters.telegram_pacing import FloodPolicy
from adapters.work_queue import MAX_WAITING
from bench.bench_slack import LIFTED
from bench.bench_slack import first_showing as slack_first_showing
from bench.bench_telegram import answer_body, paced
from bench.bench_telegram import first_showing as telegram_first_showing
from bench.common import banner, free_port
from bot.app import App, build_app
from bot.i18n import t
from bot.settings import Settings
from tests.fakes.glm import FakeGlm, RecordedRequest, Reply
from tests.fakes.slack import SIGNING_SECRET, FakeSlack, SlackSender
from tests.fakes.slack import TOKEN as SLACK_TOKEN
from tests.fakes.slack import Limits as SlackLimits
from tests.fakes.telegram import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram import Limits as TelegramLimits

WARM_UP = 5
NOTICE = t("queue_full", "en")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1e3:7.2f} ms, p99 {p99(values) * 1e3:7.2f} ms "
        f"(n={len(values)})"
    )


def answers(length: int, flood_length: int, rate: float) -> Callable[[RecordedRequest], Reply]:
    def reply(req: RecordedRequest) -> Reply:
        asked = req.last_user_text()
        size = flood_length if asked.startswith("flood message") else length
        return paced(answer_body(asked, size), rate)

    return reply


def settings_for(**kw: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=None,
        forms_enabled=False,  # Kiwi loading in the background would disturb the timings
        log_level="WARNING",
        **kw,
    )


@dataclass
class Outcome:
    latencies: list[float]
    flood_answered: int = 0
    flood_notices: int = 0
    model_calls_for_flood: int = 0


# ---- Telegram ---------------------------------------------------------------------------------


@dataclass
class TelegramRig:
    tg: FakeTelegram
    glm: FakeGlm
    app: App
    channel: TelegramChannel


@asynccontextmanager
async def telegram_rig() -> AsyncIterator[TelegramRig]:
    limits = TelegramLimits()
    async with FakeTelegram(limits=limits, clock=time.perf_counter) as tg, FakeGlm() as glm:
        settings = settings_for(
            telegram_bot_token=TELEGRAM_TOKEN,
            telegram_base_url=tg.base_url,
            glm_api_key=glm.api_key,
            glm_base_url=glm.base_url,
        )
        app = await build_app(settings)
        channel = TelegramChannel(app, policy=FloodPolicy())
        task = asyncio.create_task(channel.run())
        try:
            await tg.wait_for(lambda f: bool(f.calls_to("getUpdates")), within=20)
            yield TelegramRig(tg, glm, app, channel)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.close()


async def telegram_run(
    flood: int,
    probes: int,
    gap: float,
    length: int,
    flood_length: int,
    rate: float,
    settle: float,
) -> Outcome:
    async with telegram_rig() as r:
        r.glm.default = answers(length, flood_length, rate)
        tg = r.tg

        async def ask(user_id: int) -> float:
            user = tg.user(user_id, f"user{user_id}")
            chat = tg.private_chat(user)
            asked = time.perf_counter()
            tg.say(chat, user, f"question from {user_id}")
            await tg.wait_for(
                lambda f: telegram_first_showing(f, user_id, asked) is not None, within=60
            )
            call = telegram_first_showing(tg, user_id, asked)
            assert call is not None
            return call.time - asked

        for i in range(WARM_UP):
            await ask(90_000 + i)
        flooder = tg.user(1, "flooder")
        flood_chat = tg.private_chat(flooder)
        for n in range(flood):
            tg.say(flood_chat, flooder, f"flood message {n}")
        await asyncio.sleep(settle)
        lat = []
        for i in range(probes):
            started = time.perf_counter()
            lat.append(await ask(10_000 + i))
            await asyncio.sleep(max(0.0, started + gap - time.perf_counter()))
        outcome = Outcome(lat)
        if flood:
            admitted = min(flood, MAX_WAITING + 1)
            final = [answer_body(f"flood message {n}", flood_length) for n in range(admitted)]

            def flood_done(f: FakeTelegram) -> bool:
                texts = f.bot_texts(1)
                return all(x.replace("**", "") in texts for x in final)

            await tg.wait_for(flood_done, within=admitted * (flood_length / rate + 2) + 30)
            texts = tg.bot_texts(1)
            outcome.flood_notices = sum(1 for x in texts if x == NOTICE)
            outcome.flood_answered = sum(1 for x in texts if x.startswith("flood message"))
            outcome.model_calls_for_flood = sum(
                1 for q in r.glm.requests if q.last_user_text().startswith("flood message")
            )
        return outcome


# ---- Slack ------------------------------------------------------------------------------------


@dataclass
class SlackRig:
    slack: FakeSlack
    glm: FakeGlm
    app: App
    channel: SlackChannel
    send: SlackSender


@asynccontextmanager
async def slack_rig() -> AsyncIterator[SlackRig]:
    async with (
        FakeSlack(limits=SlackLimits.unlimited(), clock=time.perf_counter) as slack,
        FakeGlm() as glm,
    ):
        settings = settings_for(
            slack_bot_token=SLACK_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.base_url,
            slack_port=free_port(),
            glm_api_key=glm.api_key,
            glm_base_url=glm.base_url,
        )
        app = await build_app(settings)
        channel = SlackChannel(app, policy=LIFTED)
        task = asyncio.create_task(channel.run())
        try:
            while channel.port is None:
                if task.done():
                    await task
                await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{channel.port}/slack/events"
            async with SlackSender(url) as sender:
                yield SlackRig(slack, glm, app, channel, sender)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.close()


async def slack_run(
    flood: int,
    probes: int,
    gap: float,
    length: int,
    flood_length: int,
    rate: float,
    settle: float,
) -> Outcome:
    async with slack_rig() as r:
        r.glm.default = answers(length, flood_length, rate)
        slack = r.slack

        async def ask(user_id: str) -> float:
            user = slack.user(user_id, user_id)
            channel = slack.channel("D" + user_id[1:], "im")
            (envelope,) = slack.say(channel, user, f"question from {user_id}")
            thread = str(envelope["event"]["ts"])
            asked = time.perf_counter()
            await r.send.event(envelope)
            await slack.wait_for(lambda f: slack_first_showing(f, thread) is not None, 60)
            call = slack_first_showing(slack, thread)
            assert call is not None
            return call.at - asked

        for i in range(WARM_UP):
            await ask(f"UW{i:05d}")
        flooder = slack.user("UFLOOD", "flooder")
        dm = slack.channel("DFLOOD", "im")
        envelopes = [slack.say(dm, flooder, f"flood message {n}")[0] for n in range(flood)]
        # Delivered as fast as Slack could: 16 requests in flight at a time.
        pending = list(envelopes)

        async def deliver() -> None:
            while pending:
                await r.send.event(pending.pop(0))

        await asyncio.gather(*(deliver() for _ in range(16)))
        await asyncio.sleep(settle)
        lat = []
        for i in range(probes):
            started = time.perf_counter()
            lat.append(await ask(f"UP{i:05d}"))
            await asyncio.sleep(max(0.0, started + gap - time.perf_counter()))
        outcome = Outcome(lat)
        if flood:
            admitted = min(flood, MAX_WAITING + 1)

            def flood_done(f: FakeSlack) -> bool:
                done = [m for m in f.bot_messages(dm) if not m.streaming]
                return len(done) >= admitted + 1

            await slack.wait_for(flood_done, admitted * (flood_length / rate + 2) + 30)
            texts = [m.shown for m in slack.bot_messages(dm)]
            outcome.flood_notices = sum(1 for x in texts if "Too many of your messages" in x)
            outcome.flood_answered = sum(1 for x in texts if x.startswith("flood message"))
            outcome.model_calls_for_flood = sum(
                1 for q in r.glm.requests if q.last_user_text().startswith("flood message")
            )
        return outcome


# ---- main -------------------------------------------------------------------------------------


def report(name: str, quiet: Outcome, flooded: Outcome, flood: int) -> bool:
    ratio = statistics.median(flooded.latencies) / statistics.median(quiet.latencies)
    ratio99 = p99(flooded.latencies) / p99(quiet.latencies)
    ok = ratio <= 2.0 and ratio99 <= 2.0
    print(f"   {name} unloaded: {ms(quiet.latencies)}")
    print(f"   {name} flooded:  {ms(flooded.latencies)}")
    print(
        f"   {name} flooded / unloaded: median x{ratio:.2f}, p99 x{ratio99:.2f} "
        f"(target <= x2: {'met' if ok else 'NOT met'})"
    )
    print(
        f"   {name} the flooder's {flood} messages: {flooded.model_calls_for_flood} reached the "
        f"model and were answered ({flooded.flood_answered} answers shown), "
        f"{flood - flooded.model_calls_for_flood} refused, covered by "
        f"{flooded.flood_notices} notice(s) saying they were not processed"
    )
    return ok


async def main(
    platforms: list[str],
    flood: int,
    probes: int,
    gap: float,
    length: int,
    flood_length: int,
    rate: float,
    rounds: int,
) -> None:
    logging.basicConfig(level=logging.ERROR)
    banner("One user flooding (bench/bench_flood.py)")
    print(
        f"   one user sends {flood} messages at once (answers of {flood_length} characters, "
        f"{flood_length / rate:.1f} s each);\n   then {probes} other people ask one question "
        f"each, one every {gap:g} s, each in their own private chat / DM\n   (answers of "
        f"{length} characters, {length / rate:.1f} s); the model streams {rate:g} characters/s; "
        f"per-session queue: {MAX_WAITING} waiting\n   behind the one being answered; "
        f"{rounds} rounds of each, alternated. Figure: update available -> first platform\n"
        "   call showing text. Telegram: PTB long polling "
        "against the fake Bot API at the documented limits; Slack: signed HTTP\n   events to "
        "Bolt's aiohttp server, tiers lifted (the code path, as figure 1 of bench_slack)"
    )
    t0 = time.perf_counter()
    results = []
    runs: dict[str, Callable[..., Any]] = {"telegram": telegram_run, "slack": slack_run}
    for name in platforms:
        run = runs[name]
        quiet, flooded = Outcome([]), Outcome([])
        for _ in range(rounds):  # alternated, so that a busy moment of the machine hits both
            quiet.latencies += (
                await run(0, probes, gap, length, flood_length, rate, settle=0.5)
            ).latencies
            last = await run(flood, probes, gap, length, flood_length, rate, settle=0.5)
            flooded.latencies += last.latencies
        flooded.flood_answered = last.flood_answered
        flooded.flood_notices = last.flood_notices
        flooded.model_calls_for_flood = last.model_calls_for_flood
        results.append(report(f"{name:8}", quiet, flooded, flood))
    print(f"   (all figures in {time.perf_counter() - t0:.0f} s)")
    if not all(results):
        raise SystemExit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood", type=int, default=500, help="messages the flooder sends")
    parser.add_argument("--probes", type=int, default=200, help="questions from other people")
    parser.add_argument("--gap", type=float, default=0.15, help="seconds between them")
    parser.add_argument("--length", type=int, default=120, help="characters per answer")
    parser.add_argument(
        "--flood-length", type=int, default=600, help="characters per answer to the flooder"
    )
    parser.add_argument("--rounds", type=int, default=2, help="unloaded/flooded pairs per channel")
    parser.add_argument("--rate", type=float, default=150, help="model output, characters/s")
    parser.add_argument(
        "--platform", choices=("both", "telegram", "slack"), default="both", help="which channel"
    )
    args = parser.parse_args()
    chosen = ["telegram", "slack"] if args.platform == "both" else [args.platform]
    asyncio.run(
        main(
            chosen,
            args.flood,
            args.probes,
            args.gap,
            args.length,
            args.flood_length,
            args.rate,
            args.rounds,
        )
    )
