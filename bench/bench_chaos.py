"""Chaos soak: many users talking to the real bot process while everything goes wrong.

Setup, all on loopback: the fake Telegram Bot API (its documented limits, plus injected 429s),
the fake GLM answering every request after a short stream, with a share of faults (429, 500,
dropped streams, stalls), a private redis-server with AOF ``everysec``, and the real bot
(``python -m bot run``, long polling, Redis journal). Users write in private chats; each sends
its next message once the previous one was answered (or after a timeout). Meanwhile the bot is
SIGKILLed and started again (twice) and redis-server is restarted (once).

Invariants checked at the end (the exit status is 1 when one fails):
* every message got exactly one complete answer, or an honest fallback or notice;
* no complete answer is visible twice;
* no history lost (every completely answered message is in its user's stored session) or
  crossed between users;
* the bot's memory is stable (RSS of the last process at the end vs. after its warm-up).

Run from the repository root:
    .venv/bin/python -m bench.bench_chaos [--users 50] [--turns 20] [--faults 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import banner
from bot.i18n import t
from bot.sessions.redis import RedisSessionStore
from bot.turn import SessionKey
from tests.fakes.glm import Drop, Error, FakeGlm, RecordedRequest, Reply, Stall
from tests.fakes.telegram import FakeTelegram
from tests.redis_servers import RedisServer, start_server
from tests.scenarios.process import BotProcess, start_bot
from tests.scenarios.test_shutdown import telegram_env

FIRST_USER = 700_000
HONEST = [
    t(key, "ko")
    for key in (
        "fallback_timeout",
        "fallback_unavailable",
        "fallback_busy",
        "fallback_empty",
        "notice_stalled",
        "notice_interrupted",
        "notice_truncated",
        "store_down",
        "busy_session",
        "notice_shutdown_resumed",
    )
]


@dataclass
class Soak:
    tg: FakeTelegram
    glm: FakeGlm
    redis: RedisServer
    env: dict[str, str]
    bot: BotProcess | None = None
    logs: list[str] = field(default_factory=list)  # the output of each bot process
    kills: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # message sent → its answer shown
    unanswered: list[str] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (time, KiB) of the live bot

    async def start_bot(self) -> None:
        polls = len(self.tg.calls_to("getUpdates"))
        self.bot = await start_bot(env=self.env)
        await self.tg.wait_for(lambda f: len(f.calls_to("getUpdates")) > polls, within=30)


def chaos(rng: random.Random, share: float) -> Any:
    """The fake model's behaviour per request: an echo streamed in pieces, or a fault."""

    def behave(request: RecordedRequest) -> Any:
        text = f"echo: {request.last_user_text()}"
        if rng.random() >= share:
            return Reply(text, chunks=[text[i : i + 6] for i in range(0, len(text), 6)], delay=0.05)
        return rng.choice(
            [
                Error(429, "1302", "High concurrency usage of this API, please reduce concurrency"),
                Error(500, "500", "Internal Error"),
                Drop(text[:5]),
                Drop(""),
                Stall(text[:5], seconds=30),
            ]
        )

    return behave


async def user(soak: Soak, uid: int, turns: int, stop: asyncio.Event) -> list[str]:
    tg = soak.tg
    chat, me = tg.chats[uid], tg.users[uid]
    sent: list[str] = []
    for n in range(turns):
        if stop.is_set():
            break
        text = f"u{uid} m{n} 안녕하세요 질문 {n}"
        before = len(tg.bot_texts(uid))
        started = time.monotonic()
        tg.say(chat, me, text)
        sent.append(text)
        try:
            await tg.wait_for(lambda f, b=before: len(f.bot_texts(uid)) > b, within=60)
            soak.waits.append(time.monotonic() - started)
        except TimeoutError:
            soak.unanswered.append(text)
        await asyncio.sleep(random.uniform(0.5, 2.0))  # reading, typing
    return sent


def rss_kib(bot: BotProcess | None) -> int | None:
    if bot is None or not bot.running:
        return None
    try:
        status = Path(f"/proc/{bot.proc.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


async def trouble(soak: Soak, rng: random.Random, users: list[int], stop: asyncio.Event) -> None:
    """The schedule: kills at 12 s and 30 s, a Redis restart at 21 s, 429s every 4 s."""
    started = time.monotonic()
    plan = [(12.0, "kill"), (21.0, "redis"), (30.0, "kill")]
    while not stop.is_set():
        await asyncio.sleep(1.0)
        now = time.monotonic() - started
        kib = rss_kib(soak.bot)
        if kib is not None:
            soak.rss.append((now, kib))
        if int(now) % 4 == 0:
            soak.tg.flood("sendMessage", rng.choice(users), seconds=2)
        if plan and now >= plan[0][0]:
            _, what = plan.pop(0)
            if what == "kill" and soak.bot is not None:
                print(f"   {now:5.1f}s SIGKILL the bot, start it again")
                await soak.bot.kill()
                soak.logs.append(soak.bot.stderr)
                soak.kills.append(now)
                soak.rss.clear()  # a new process: its own warm-up
                await soak.start_bot()
            elif what == "redis":
                print(f"   {now:5.1f}s restart redis-server")
                soak.redis.stop()
                await asyncio.sleep(1.0)
                soak.redis.start()


RESUMED = t("notice_resumed", "ko")


def check(soak: Soak, sent: dict[int, list[str]], histories: dict[int, list[str]]) -> list[str]:
    problems: list[str] = []
    complete = honest = repeated = 0
    for uid, texts in sent.items():
        shown = soak.tg.bot_texts(uid)
        for text in texts:
            whole = [s for s in shown if f"echo: {text}" in s]
            if len(whole) == 2 and soak.kills and RESUMED in whole[1] and RESUMED not in whole[0]:
                # The kill fell after the answer reached Telegram and before the session
                # recorded it: the next process cannot know, and answers again with the note.
                repeated += 1
            elif len(whole) > 1:
                problems.append(f"answer to {text!r} visible {len(whole)} times: {whole}")
            if whole:
                complete += 1
                if text not in histories.get(uid, []):
                    problems.append(f"{text!r} was answered but is not in its session")
        answered = sum(1 for text in texts if any(f"echo: {text}" in s for s in shown))
        notices = sum(1 for s in shown if any(h in s for h in HONEST) and "echo: " not in s)
        honest += notices
        if answered + notices < len(texts):
            problems.append(
                f"user {uid}: {len(texts)} messages, {answered} answers and {notices} notices"
            )
        for stored in histories.get(uid, []):
            if not stored.startswith(f"u{uid} "):
                problems.append(f"user {uid}'s session holds another user's {stored!r}")
    print(
        f"   complete answers: {complete}, honest fallbacks and notices: {honest}; "
        f"answered again after a kill that fell between the final send and the save: {repeated}"
    )
    return problems


async def soak(users: int, turns: int, share: float, seed: int, logs: str = "") -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as workdir:
        redis = start_server(Path(workdir), ["--appendonly", "yes", "--appendfsync", "everysec"])
        try:
            async with FakeTelegram() as tg, FakeGlm() as glm:
                glm.default = chaos(rng, share)
                ids = [FIRST_USER + n for n in range(users)]
                for uid in ids:
                    tg.private_chat(tg.user(uid, f"사용자{uid}"))
                env = telegram_env(
                    tg,
                    glm,
                    GLM_STALL_TIMEOUT="3",
                    REDIS_URL=redis.url,
                    USER_RATE_LIMIT_PER_MINUTE="0",
                    LOG_LEVEL="INFO" if logs else "WARNING",
                )
                state = Soak(tg, glm, redis, env)
                await state.start_bot()
                stop = asyncio.Event()
                chaos_task = asyncio.create_task(trouble(state, rng, ids, stop))
                started = time.monotonic()
                results = await asyncio.gather(*(user(state, uid, turns, stop) for uid in ids))
                elapsed = time.monotonic() - started
                # Late answers (a turn taken over after the last kill): up to a minute more.
                with contextlib.suppress(TimeoutError):
                    await tg.wait_for(
                        lambda f: all(
                            len(f.bot_texts(uid)) >= len(texts)
                            for uid, texts in zip(ids, results, strict=True)
                        ),
                        within=60,
                    )
                await asyncio.sleep(2.0)  # and nothing more
                stop.set()
                await chaos_task
                sent = dict(zip(ids, results, strict=True))
                histories = await stored_histories(redis.url, ids)
                problems = check(state, sent, histories)
                print_figures(state, users, turns, elapsed)
                assert state.bot is not None
                code = await state.bot.stop(within=40)
                state.logs.append(state.bot.stderr)
                if logs:
                    await asyncio.to_thread(write_logs, logs, state.logs)
                if code != 0:
                    problems.append(f"the bot exited with {code}")
        finally:
            redis.stop()
    for problem in problems[:20]:
        print("   PROBLEM:", problem)
    print("   invariants:", "all hold" if not problems else f"{len(problems)} violated")
    return 1 if problems else 0


def write_logs(directory: str, outputs: list[str]) -> None:
    for n, output in enumerate(outputs):
        Path(directory, f"bot-{n}.log").write_text(output)


async def stored_histories(url: str, ids: list[int]) -> dict[int, list[str]]:
    store = RedisSessionStore.from_url(url, ttl_seconds=86_400)
    try:
        found = {}
        for uid in ids:
            session = await store.load(SessionKey("telegram", "", str(uid), "", str(uid)))
            found[uid] = [m.content for m in session.history if m.role == "user"]
        return found
    finally:
        await store.close()


def print_figures(state: Soak, users: int, turns: int, elapsed: float) -> None:
    waits = sorted(state.waits)
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else 0.0
    print(
        f"   {users} users x {turns} turns in {elapsed:.0f}s; kills at "
        f"{', '.join(f'{k:.0f}s' for k in state.kills)}; "
        f"{len(state.glm.requests)} model requests"
    )
    if waits:
        print(
            f"   message → answer shown: median {statistics.median(waits):.2f}s, "
            f"p99 {p99:.2f}s, max {waits[-1]:.2f}s (n={len(waits)}); "
            f"unanswered within 60 s: {len(state.unanswered)}"
        )
    rejected = state.tg.rejected(429)
    print(f"   Telegram 429s: {len(rejected)} (the injected ones and any the bot caused)")
    if len(state.rss) >= 4:
        warm = state.rss[len(state.rss) // 4][1]
        last = state.rss[-1][1]
        print(f"   RSS of the last process: {warm / 1024:.0f} MiB warm, {last / 1024:.0f} MiB end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--faults", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logs", default="", help="directory for each bot process's log")
    args = parser.parse_args()
    banner("chaos soak: real bot process, fake Telegram and GLM, Redis journal")
    raise SystemExit(asyncio.run(soak(args.users, args.turns, args.faults, args.seed, args.logs)))


if __name__ == "__main__":
    main()
