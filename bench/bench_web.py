"""The web channel: the first frame after the model's first token, and 1,000 WebSockets at once.

The bot is the real process (``python -m bot run`` with ``WEB_PORT``, sessions in memory);
the fake GLM (and a fake embeddings endpoint, so that the recall's background work has
somewhere to go) run in this process, the WebSocket clients too for the sequential turns, and
for the burst in a child process of their own (``--clients inline`` keeps them in the fake
GLM's loop, whose lag then shows in their stamps). Everything speaks on loopback.

The fake GLM (``StampedGlm``: FakeGlm unchanged, its ``write_event`` wrapped) stamps with
``time.monotonic`` (CLOCK_MONOTONIC, one clock for every process on Linux) the moment it has
handed an answer's first content chunk to its socket; a client stamps the moment
``ws.receive()`` gives it a frame. The difference is the bot's share: reading the SSE event,
the guard, the output masker, the manager, the outbox, the WebSocket write, and loopback.

1. Sequential turns on one socket (a new user each turn, so no limit is touched; bot at its
   defaults), the fake at zero latency (the whole answer written at once), then paced (a
   chunk every 25 ms): the model's first token -> the client's first frame, median, p95, p99.
2. A burst: N WebSockets (default 1,000) to one bot process, a user id each; every socket
   sends one message at the same moment, then a second round once every answer is complete.
   The fake streams 40 chunks 25 ms apart, then (a fresh bot process) at zero latency.
   Prints the first frame from the send and from the model's first token, the end frame,
   the answers checked against what the fake sent, and the bot's memory: RSS before the
   sockets, with every socket open and idle, and the peak during each round (VmHWM, reset
   through /proc/PID/clear_refs before it), per connection; the CPU of each process.

The bot's caps are raised only where they would refuse the burst (``--keys``: with one key,
WEB_KEY_MAX_CONCURRENT and WEB_KEY_RATE_PER_MINUTE become N and 2N + 10; with ten keys their
defaults, 100 at once and 600 a minute per key, are enough for 1,000 x 2). GLM_MAX_CONCURRENCY
is N, as bench_capacity sets it. Each bot's settings are printed. ``--profile PATH`` runs the
burst's bots under cProfile (round 1 only; ``python -m pstats PATH.25ms``).

Run from the repository root:
    .venv/bin/python -m bench.bench_web [--quick] [--part all|sequential|burst]
        [--turns 200] [--conversations 1000] [--rounds 2] [--chunks 40] [--chunk-delay 0.025]
        [--keys 1] [--clients process|inline] [--profile PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import math
import multiprocessing
import os
import re
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from aiohttp import web

import tests.fakes.glm as glm_module
from bench.common import banner, free_port
from tests.fakes.embeddings import FakeEmbeddings
from tests.fakes.glm import Behaviour, FakeGlm, RecordedRequest, Reply
from tests.fakes.zai import write_event as zai_write_event
from tests.scenarios.process import clean_env

WS_PATH = "/v1/chat/ws"
TAG = re.compile(r"#([A-Za-z0-9_-]+)")
WORDS = "오늘 회의에서 정한 일정과 담당자를 다시 정리하면 다음과 같습니다".split()
CONTENT = "회의 내용을 정리해 줘 #{tag}"  # no topic, form or filter word in it
ANSWER_TIMEOUT = 120.0  # seconds for one answer before it counts as lost
BACKLOG_BATCH = 50  # sockets opened at once (the server's listen backlog is 128)


# ---- statistics ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def spread(values_s: list[float], unit: str = "ms") -> str:
    """Median, p95 and p99 of durations in seconds."""
    if not values_s:
        return "n/a"
    scale = {"ms": 1e3, "s": 1.0}[unit]
    return (
        f"median {statistics.median(values_s) * scale:.2f} {unit}, "
        f"p95 {pct(values_s, 0.95) * scale:.2f} {unit}, "
        f"p99 {pct(values_s, 0.99) * scale:.2f} {unit} (n={len(values_s)})"
    )


# ---- the fake GLM, stamping its first content chunk ---------------------------------------------

# The answer a handler task is writing: (the fake, its tag). FakeGlm writes every event through
# its module's ``write_event``; the wrapper below stamps the content ones of a StampedGlm.
_WRITING: contextvars.ContextVar[tuple[StampedGlm, str] | None] = contextvars.ContextVar(
    "writing", default=None
)
_write_event = zai_write_event  # what tests.fakes.glm imported


async def _stamped_write_event(resp: Any, obj: dict[str, Any] | str) -> None:
    await _write_event(resp, obj)
    writing = _WRITING.get()
    if writing is None or not isinstance(obj, dict):
        return
    choices = obj.get("choices") or [{}]
    content = choices[0].get("delta", {}).get("content")
    if content:
        glm, tag = writing
        glm.written.setdefault(tag, []).append((time.monotonic(), len(content)))


glm_module.write_event = _stamped_write_event  # type: ignore[attr-defined]


class StampedGlm(FakeGlm):
    """FakeGlm unchanged, except that each content chunk's write time is kept per answer
    (``written[tag]``: (monotonic time after the write, characters), in order); the tag is
    the ``#tag`` of the request's last user message."""

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, list[tuple[float, int]]] = {}

    async def _stream(
        self, request: Any, recorded: RecordedRequest, b: Behaviour
    ) -> web.StreamResponse:
        found = TAG.search(recorded.last_user_text())
        token = _WRITING.set((self, found.group(1)) if found else None)
        try:
            return await super()._stream(request, recorded, b)
        finally:
            _WRITING.reset(token)

    def first_written(self, tag: str) -> float | None:
        chunks = self.written.get(tag)
        return chunks[0][0] if chunks else None


def chunks_for(tag: str, count: int) -> list[str]:
    """The answer to ``tag`` as the fake streams it: count chunks, each a word and a space."""
    return [f"[{tag}] "] + [f"{WORDS[i % len(WORDS)]}{i} " for i in range(1, count)]


def answering(count: int, delay: float) -> Callable[[RecordedRequest], Reply]:
    def behaviour(request: RecordedRequest) -> Reply:
        found = TAG.search(request.last_user_text())
        pieces = chunks_for(found.group(1) if found else "?", count)
        return Reply("".join(pieces), chunks=pieces, delay=delay)

    return behaviour


# ---- the bot process ----------------------------------------------------------------------------


def proc_status(pid: int, name: str) -> int:
    """A field of /proc/PID/status in KiB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (every process, every core)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/PID/clear_refs``)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


@dataclass
class Bot:
    proc: asyncio.subprocess.Process
    port: int
    keys: list[str]
    env: dict[str, str]
    log: Any  # the file the bot's stdout and stderr go to

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return proc_status(self.pid, "VmRSS")

    @contextlib.asynccontextmanager
    async def profiling(self, on: bool) -> AsyncIterator[None]:
        """The bot's main thread under cProfile meanwhile (when started with ``profile``)."""
        if on:
            self.proc.send_signal(signal.SIGUSR1)
        try:
            yield
        finally:
            if on:
                self.proc.send_signal(signal.SIGUSR2)
                await asyncio.sleep(1.0)  # the statistics are written

    def log_tail(self, lines: int = 15) -> str:
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return "".join(f.readlines()[-lines:])


# ``python -m bot run`` as ``bot.__main__`` runs it, with a profiler to switch on and off.
PROFILED = """
import cProfile, signal, sys
from bot.__main__ import main
path, profiler = sys.argv[1], cProfile.Profile()
def stop(*_):
    profiler.disable()
    profiler.dump_stats(path)
signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
signal.signal(signal.SIGUSR2, stop)
sys.exit(main(["run"]))
"""


@contextlib.asynccontextmanager
async def bot_process(
    glm: FakeGlm,
    embeddings: FakeEmbeddings,
    keys: list[str],
    profile: str | None = None,
    **settings: str,
) -> AsyncIterator[Bot]:
    """``python -m bot run`` with the web channel on a free port, ready to answer;
    ``profile``: the same ``main`` under cProfile, switched on and off by SIGUSR1 and SIGUSR2
    (``Bot.profiling``), the statistics written to that path."""
    port = free_port()
    env = {
        "GLM_API_KEY": glm.api_key,
        "GLM_BASE_URL": glm.base_url,
        "EMBEDDING_BASE_URL": embeddings.base_url,
        "WEB_PORT": str(port),
        "WEB_HOST": "127.0.0.1",
        "WEB_API_KEYS": ",".join(keys),
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    with (
        tempfile.TemporaryDirectory() as cwd,
        tempfile.NamedTemporaryFile("w+", prefix="bench-web-", suffix=".log") as log,
    ):
        command = ("-c", PROFILED, profile) if profile else ("-m", "bot", "run")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            cwd=cwd,  # a developer's own .env must not leak in
            env=clean_env(**env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        bot = Bot(proc, port, keys, settings, log)
        try:
            await wait_ready(bot)
            yield bot
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 40)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def wait_ready(bot: Bot, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if bot.proc.returncode is not None:
                raise SystemExit(f"the bot exited ({bot.proc.returncode}):\n{bot.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"http://127.0.0.1:{bot.port}/") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise SystemExit(f"the bot did not serve within {within:.0f} s:\n{bot.log_tail()}")


# ---- the clients --------------------------------------------------------------------------------


@dataclass
class Answer:
    tag: str
    expected: str
    sent: float = 0.0
    first_frame: float | None = None
    first_content: str = ""
    ended: float | None = None
    text: str = ""
    frames: int = 0
    error: str | None = None

    @property
    def correct(self) -> bool:
        return self.error is None and self.text.rstrip() == self.expected.rstrip()


async def open_socket(
    http: aiohttp.ClientSession, port: int, keys: list[str], n: int, deflate: bool = True
) -> aiohttp.ClientWebSocketResponse:
    """A socket with the n-th key; ``deflate``: offer permessage-deflate, as browsers do."""
    return await http.ws_connect(
        f"http://127.0.0.1:{port}{WS_PATH}",
        headers={"Authorization": f"Bearer {keys[n % len(keys)]}"},
        max_msg_size=0,
        compress=15 if deflate else 0,
    )


async def converse(ws: aiohttp.ClientWebSocketResponse, answer: Answer, user: str) -> None:
    """Send one message and read its frames until the end frame."""
    answer.sent = time.monotonic()
    await ws.send_str(json.dumps({"content": CONTENT.format(tag=answer.tag), "user_id": user}))
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while True:
                msg = await ws.receive()
                now = time.monotonic()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    answer.error = f"socket {msg.type.name} {ws.close_code}"
                    return
                frame = json.loads(msg.data)
                answer.frames += 1
                if answer.first_frame is None:
                    answer.first_frame = now
                    answer.first_content = str(frame.get("content", ""))
                if "error" in frame:
                    answer.error = f"{frame['error'].get('code')}: {frame['error'].get('message')}"
                    answer.ended = now
                    return
                if frame.get("replace"):
                    answer.text = str(frame.get("content", ""))
                else:
                    answer.text += str(frame.get("content", ""))
                if frame.get("is_end"):
                    answer.ended = now
                    return
    except TimeoutError:
        answer.error = f"no end frame within {ANSWER_TIMEOUT:.0f} s"


def token_to_frame(glm: StampedGlm, answers: list[Answer]) -> list[float]:
    out = []
    for a in answers:
        first = glm.first_written(a.tag)
        if a.first_frame is not None and first is not None and a.error is None:
            out.append(a.first_frame - first)
    return out


def chunks_in_first(glm: StampedGlm, answers: list[Answer]) -> list[int]:
    """How many of the fake's chunks the first frame carried."""
    out = []
    for a in answers:
        sizes = [size for _, size in glm.written.get(a.tag, [])]
        total, count = 0, 0
        for size in sizes:
            if total >= len(a.first_content):
                break
            total += size
            count += 1
        out.append(count)
    return out


def report_errors(answers: list[Answer]) -> None:
    wrong = [a for a in answers if not a.correct]
    failed = [a for a in wrong if a.error is not None]
    print(
        f"   answers complete and correct: {len(answers) - len(wrong)}/{len(answers)}; "
        f"errors {len(failed)}; wrong text {len(wrong) - len(failed)}"
    )
    for a in wrong[:3]:
        print(f"     e.g. {a.tag}: {a.error or 'got ' + repr(a.text[-80:])}")


# ---- 1. sequential turns ------------------------------------------------------------------------


async def sequential(
    glm: StampedGlm,
    bot: Bot,
    turns: int,
    warmup: int,
    chunks: int,
    delay: float,
    deflate: bool,
) -> list[Answer]:
    glm.default = answering(chunks, delay)
    answers = []
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, bot.port, bot.keys, 0, deflate)
        for i in range(warmup + turns):
            tag = f"q{delay * 1000:.0f}x{i}"
            answer = Answer(tag, "".join(chunks_for(tag, chunks)))
            await converse(ws, answer, user=f"seq-{tag}")
            if i >= warmup:
                answers.append(answer)
        await ws.close()
    return answers


def print_sequential(glm: StampedGlm, answers: list[Answer], label: str) -> None:
    print(
        f"   [{label}] model's first token -> first frame: {spread(token_to_frame(glm, answers))}"
    )
    sent = [a.first_frame - a.sent for a in answers if a.first_frame is not None]
    print(f"   [{label}] message sent -> first frame:       {spread(sent)}")
    carried = chunks_in_first(glm, answers)
    span = [glm.written[a.tag][-1][0] - glm.written[a.tag][0][0] for a in answers]
    print(
        f"   [{label}] chunks in the first frame: median {statistics.median(carried):.0f}, "
        f"max {max(carried)} (the fake wrote its first to its last chunk in median "
        f"{statistics.median(span) * 1e3:.2f} ms)"
    )
    report_errors(answers)


# ---- 2. the burst -------------------------------------------------------------------------------


@dataclass
class Sampler:
    """Every 20 ms: how late this process's loop wakes (its lag), and a process's RSS."""

    pid: int | None = None
    peak_rss: int = 0
    lag: list[float] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.02)
            self.lag.append(time.monotonic() - before - 0.02)
            if self.pid is not None:
                self.peak_rss = max(self.peak_rss, proc_status(self.pid, "VmRSS"))


@dataclass
class RoundResult:
    answers: list[Answer]
    started: float
    done: float
    cpu: float  # CPU seconds of the process the clients run in
    lag: list[float]  # its loop's lag


class Clients:
    """N WebSockets to the bot, opened once, each sending one message a round."""

    def __init__(self, port: int, keys: list[str], deflate: bool) -> None:
        self.port = port
        self.keys = keys
        self.deflate = deflate
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.http: aiohttp.ClientSession | None = None

    async def open(self, conversations: int) -> tuple[float, int]:
        """Seconds to open them all, and the deflate window the first one agreed (0: none)."""
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        started = time.monotonic()
        for start in range(0, conversations, BACKLOG_BATCH):
            batch = range(start, min(conversations, start + BACKLOG_BATCH))
            self.sockets += await asyncio.gather(
                *(open_socket(self.http, self.port, self.keys, n, self.deflate) for n in batch)
            )
        return time.monotonic() - started, int(self.sockets[0].compress)

    async def round(self, tags: list[str], chunks: int) -> RoundResult:
        answers = [Answer(tag, "".join(chunks_for(tag, chunks))) for tag in tags]
        sampler = Sampler()
        sampling = asyncio.create_task(sampler.run())
        go = asyncio.Event()

        async def client(n: int) -> None:
            await go.wait()
            await converse(self.sockets[n], answers[n], user=f"user-{n}")

        tasks = [asyncio.create_task(client(n)) for n in range(len(answers))]
        await asyncio.sleep(0.1)  # every client waits on ``go``
        cpu = time.process_time()
        started = time.monotonic()
        go.set()
        await asyncio.gather(*tasks)
        done = time.monotonic()
        cpu = time.process_time() - cpu
        sampler.stop.set()
        await sampling
        return RoundResult(answers, started, done, cpu, sampler.lag)

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        if self.http is not None:
            await self.http.close()


def clients_main(conn: Connection, port: int, keys: list[str], deflate: bool) -> None:
    """The clients in a process of their own (``--clients process``), run from a pipe."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        clients = Clients(port, keys, deflate)
        conn.send(await clients.open(conn.recv()))
        while (order := await loop.run_in_executor(None, conn.recv)) is not None:
            conn.send(await clients.round(*order))
        await clients.close()
        conn.send("closed")

    asyncio.run(serve())


class ClientsProcess:
    """``Clients`` in a child process: the same calls, through a pipe."""

    def __init__(self, port: int, keys: list[str], deflate: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        self.child = context.Process(
            target=clients_main, args=(theirs, port, keys, deflate), daemon=True
        )
        self.child.start()

    async def _ask(self, order: object) -> Any:
        self.conn.send(order)
        return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)

    async def open(self, conversations: int) -> tuple[float, int]:
        opened: tuple[float, int] = await self._ask(conversations)
        return opened

    async def round(self, tags: list[str], chunks: int) -> RoundResult:
        result: RoundResult = await self._ask((tags, chunks))
        return result

    async def close(self) -> None:
        await self._ask(None)
        self.child.join(10)
        if self.child.is_alive():
            self.child.terminate()


async def burst(
    glm: StampedGlm,
    bot: Bot,
    conversations: int,
    rounds: int,
    chunks: int,
    delay: float,
    separate: bool,
    deflate: bool = True,
    profile: bool = False,
) -> None:
    glm.default = answering(chunks, delay)
    glm.written.clear()
    prefix = f"b{delay * 1000:.0f}x"
    mode = f"{chunks} chunks {delay * 1000:.0f} ms apart" if delay else f"{chunks} chunks at once"
    where = "in a process of their own" if separate else "in the fake GLM's process and loop"
    print(
        f"== burst: {conversations} WebSockets to one bot process; answers of {mode}; "
        f"the clients {where}"
    )
    raised = " ".join(f"{k}={v}" for k, v in sorted(bot.env.items())) or "defaults"
    print(
        f"   bot settings: {raised}; {len(bot.keys)} API key(s), the sockets spread over them; "
        f"USER_RATE_LIMIT_PER_MINUTE as default (a user per socket, {rounds} message(s) each)"
    )
    # Warm up (lazy imports, the first sessions and profiles) before "before".
    async with aiohttp.ClientSession() as http:
        ws = await open_socket(http, bot.port, bot.keys, 0)
        for i in range(5):
            await converse(ws, Answer(f"{prefix}w{i}", ""), user=f"warm-{i}")
        await ws.close()
    await asyncio.sleep(1.0)
    rss_before = bot.rss()
    kind = ClientsProcess if separate else Clients
    clients = kind(bot.port, bot.keys, deflate)
    try:
        opened, window = await clients.open(conversations)
        await asyncio.sleep(2.0)
        rss_idle = bot.rss()
        print(
            f"   memory: RSS {rss_before / 1024:.1f} MiB before the sockets, "
            f"{rss_idle / 1024:.1f} MiB with {conversations} idle sockets "
            f"({(rss_idle - rss_before) / conversations:.1f} KiB per connection; "
            f"opened in {opened:.1f} s; permessage-deflate "
            f"{f'agreed, window bits {window}' if window else 'not offered'})"
        )
        for r in range(1, rounds + 1):
            tags = [f"{prefix}{n}r{r}" for n in range(conversations)]
            peak_reset = reset_peak(bot.pid)
            sampler = Sampler(bot.pid)
            sampling = asyncio.create_task(sampler.run())
            cpu_bot, cpu_here, cpu_all = proc_cpu(bot.pid), time.process_time(), machine_cpu()
            wall = time.monotonic()
            async with bot.profiling(profile and r == 1):
                result = await clients.round(tags, chunks)
            cpu_bot, cpu_here = proc_cpu(bot.pid) - cpu_bot, time.process_time() - cpu_here
            cpu_all, wall = machine_cpu() - cpu_all, time.monotonic() - wall
            cpu_others = cpu_all - cpu_bot - cpu_here - (result.cpu if separate else 0.0)
            sampler.stop.set()
            await sampling
            hwm = proc_status(bot.pid, "VmHWM") if peak_reset else 0
            peak = max(hwm, sampler.peak_rss)
            print_round(glm, r, result)
            print(
                f"     memory: peak RSS during the burst {peak / 1024:.1f} MiB "
                f"({'VmHWM after clear_refs' if peak_reset else 'sampled every 20 ms'}), "
                f"{(peak - rss_before) / conversations:.1f} KiB per conversation over the RSS "
                f"before the sockets; {bot.rss() / 1024:.1f} MiB after"
            )
            lag, theirs = sampler.lag, result.lag
            if separate:
                cpu = (
                    f"the fake GLM's process {cpu_here:.1f} s (loop lag p99 "
                    f"{pct(lag, 0.99) * 1e3:.0f} ms), the clients' {result.cpu:.1f} s "
                    f"(loop lag p99 {pct(theirs, 0.99) * 1e3:.0f} ms)"
                )
            else:
                cpu = (
                    f"this process (fake GLM and clients) {cpu_here:.1f} s, loop lag p99 "
                    f"{pct(lag, 0.99) * 1e3:.0f} ms, max {max(lag) * 1e3:.0f} ms"
                )
            print(
                f"     CPU: bot {cpu_bot:.1f} s ({cpu_bot / conversations * 1e3:.1f} ms per "
                f"turn); {cpu}"
            )
            print(
                f"     the machine meanwhile: {cpu_all / wall:.2f} of {os.cpu_count()} cores "
                f"busy, {max(0.0, cpu_others) / wall:.2f} of them by other processes"
            )
            if not separate and pct(lag, 0.99) > 0.02:
                print(
                    "     (this loop was late: the clients' receive stamps include it; "
                    "--clients process takes them out of it)"
                )
    finally:
        await clients.close()


def print_round(glm: StampedGlm, r: int, result: RoundResult) -> None:
    answers, started = result.answers, result.started
    sends = [a.sent for a in answers]
    print(
        f"   round {r}: {len(answers)} messages sent within {(max(sends) - started) * 1e3:.0f} ms; "
        f"all answers ended in {result.done - started:.1f} s"
    )
    report_errors(answers)
    from_send = [a.first_frame - a.sent for a in answers if a.first_frame and a.error is None]
    print(f"     message sent -> first frame:           {spread(from_send)}")
    print(f"     model's first token -> first frame:    {spread(token_to_frame(glm, answers))}")
    to_token = []
    for a in answers:
        first = glm.first_written(a.tag)
        if first is not None:
            to_token.append(first - a.sent)
    print(f"     message sent -> model's first token:   {spread(to_token)}")
    whole = [a.ended - a.sent for a in answers if a.ended and a.error is None]
    print(f"     message sent -> end frame:             {spread(whole, 's')}")
    frames = [a.frames for a in answers if a.error is None]
    if frames:
        print(f"     frames per answer: median {statistics.median(frames):.0f}, max {max(frames)}")


# ---- main ---------------------------------------------------------------------------------------


def raise_open_files(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return f"ulimit -n {soft} -> {new} (hard {hard}; the bot inherits it)"
    return f"ulimit -n {soft} (hard {hard}), enough"


def burst_settings(conversations: int, rounds: int, keys: int) -> dict[str, str]:
    """The bot's caps raised only where they would refuse the burst."""
    per_key = math.ceil(conversations / keys)
    settings = {}
    if per_key > 100:
        settings["WEB_KEY_MAX_CONCURRENT"] = str(per_key)
    turns = per_key * rounds + 10  # and the warm-up
    if turns > 600:
        settings["WEB_KEY_RATE_PER_MINUTE"] = str(turns)
    if conversations > 100:
        settings["GLM_MAX_CONCURRENCY"] = str(conversations)
    return settings


async def main(args: argparse.Namespace) -> None:
    keys = [f"bench-web-key-{j}" for j in range(args.keys)]
    async with StampedGlm() as glm, FakeEmbeddings(api_key=glm.api_key) as embeddings:
        if args.part in ("all", "sequential"):
            await sequential_part(glm, embeddings, keys[:1], args)
        if args.part in ("all", "burst"):
            for delay in (args.chunk_delay, 0.0):
                settings = burst_settings(args.conversations, args.rounds, args.keys)
                profile = f"{args.profile}.{delay * 1e3:.0f}ms" if args.profile else None
                async with bot_process(glm, embeddings, keys, profile, **settings) as bot:
                    separate = args.clients == "process"
                    await burst(
                        glm,
                        bot,
                        args.conversations,
                        args.rounds,
                        args.chunks,
                        delay,
                        separate,
                        deflate=not args.no_deflate,
                        profile=profile is not None,
                    )
                    if "Traceback" in bot.log_tail(200):
                        print(f"   the bot's log ends:\n{bot.log_tail()}")
                if profile:
                    print(f"   the bot's round 1 under cProfile: {profile} (pstats)")


async def sequential_part(
    glm: StampedGlm, embeddings: FakeEmbeddings, keys: list[str], args: argparse.Namespace
) -> None:
    print(
        f"== sequential turns on one WebSocket: {args.turns} after {args.warmup} of warm-up, "
        f"a new user each; answers of {args.chunks} chunks (a word and a space each); "
        f"permessage-deflate {'not offered' if args.no_deflate else 'offered, as browsers do'}"
    )
    async with bot_process(glm, embeddings, keys) as bot:
        print("   bot settings: defaults")
        for delay in (0.0, args.chunk_delay):
            label = f"a chunk every {delay * 1e3:.0f} ms" if delay else "zero latency"
            cpu_all, cpu_bot, cpu_here = machine_cpu(), proc_cpu(bot.pid), time.process_time()
            wall = time.monotonic()
            answers = await sequential(
                glm, bot, args.turns, args.warmup, args.chunks, delay, not args.no_deflate
            )
            wall = time.monotonic() - wall
            others = machine_cpu() - cpu_all - (proc_cpu(bot.pid) - cpu_bot)
            others -= time.process_time() - cpu_here
            print_sequential(glm, answers, label)
            print(
                f"   [{label}] other processes kept {max(0.0, others) / wall:.2f} of "
                f"{os.cpu_count()} cores busy meanwhile"
            )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 turns, 100 sockets, 1 round")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--chunk-delay", type=float, default=0.025)
    parser.add_argument("--part", choices=("all", "sequential", "burst"), default="all")
    parser.add_argument(
        "--clients",
        choices=("inline", "process"),
        default="process",
        help="the burst's clients in a process of their own (default), or in the fake GLM's "
        "loop (whose lag then delays their receive stamps)",
    )
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="the clients do not offer permessage-deflate (browsers do)",
    )
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="run the burst's bots under cProfile; round 1's statistics go to PATH.<delay>",
    )
    parser.add_argument("--keys", type=int, default=1, help="API keys the sockets spread over")
    args = parser.parse_args()
    if args.quick:
        args.turns, args.warmup, args.conversations, args.rounds = 40, 5, 100, 1
    banner("web channel: one bot process (python -m bot run), fake GLM and clients here")
    print(f"   {raise_open_files(args.conversations * 3 + 256)}")
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
