"""Two replicas of the real bot behind nginx (deploy/nginx-replicas.conf), Telegram webhook
mode, sessions and the turn journal on a real 3-master Redis Cluster."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.common import free_port
from bot.i18n import t
from tests.fakes.glm import Echo, FakeGlm, RecordedRequest, Reply
from tests.fakes.telegram import FakeTelegram
from tests.scenarios.process import BotProcess, start_bot
from tests.scenarios.test_shutdown import telegram_env
from tests.scenarios.test_slack import _listening
from tests.scenarios.test_telegram import ANN, JI, MIN, glm, tg

__all__ = ["glm", "tg"]  # the fixtures, shared with the channel scenarios

ROOT = Path(__file__).resolve().parents[2]
SECRET = "replica-Secret_7"
WORDS = [f"{n}번째 문장입니다. " for n in range(1, 13)]
FULL = "".join(WORDS).strip()


def behaviour(request: RecordedRequest) -> Any:
    """Long answers for messages asking for one, a quick echo otherwise."""
    text = request.last_user_text()
    if "길게" in text:
        return Reply(FULL, chunks=WORDS, delay=0.4)
    if "천천히" in text:
        return Reply(f"echo: {text}", chunks=list(f"echo: {text}"), delay=0.15)
    return Echo()


@contextmanager
def nginx(listen: int, replicas: tuple[int, int]) -> Iterator[str]:
    """deploy/nginx-replicas.conf with the test's ports; yields its URL."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(exe).exists():
        pytest.fail("nginx is not installed (bash scripts/setup.sh --dev installs it)")
    conf = (ROOT / "deploy" / "nginx-replicas.conf").read_text()
    conf = conf.replace("listen 127.0.0.1:8443;", f"listen 127.0.0.1:{listen};")
    conf = conf.replace("127.0.0.1:8081", f"127.0.0.1:{replicas[0]}")
    conf = conf.replace("127.0.0.1:8082", f"127.0.0.1:{replicas[1]}")
    assert re.search(rf"listen 127\.0\.0\.1:{listen};", conf)
    with tempfile.TemporaryDirectory() as prefix:
        Path(prefix, "nginx.conf").write_text(conf)
        proc = subprocess.Popen(
            [exe, "-p", prefix, "-c", f"{prefix}/nginx.conf", "-e", "stderr", "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            yield f"http://127.0.0.1:{listen}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@asynccontextmanager
async def replicas(
    tg: FakeTelegram, glm: FakeGlm, cluster_url: str
) -> AsyncIterator[tuple[str, list[BotProcess], list[str]]]:
    """nginx and two bot replicas; yields nginx's hook URL, the processes, their own URLs."""
    ports = (free_port(), free_port())
    front = free_port()
    with nginx(front, ports) as base:
        hook = f"{base}/telegram/hook"
        procs = []
        for port in ports:
            env = telegram_env(
                tg,
                glm,
                REDIS_URL=cluster_url,
                REDIS_CLUSTER="true",
                TELEGRAM_WEBHOOK_URL=hook,
                TELEGRAM_WEBHOOK_SECRET=SECRET,
                TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
                TELEGRAM_WEBHOOK_PORT=str(port),
            )
            procs.append(await start_bot(env=env))
        try:
            for proc, port in zip(procs, ports, strict=True):
                await _listening(port, proc)
            await _listening(front, procs[0])
            own = [f"http://127.0.0.1:{port}/telegram/hook" for port in ports]
            yield hook, procs, own
        finally:
            for proc in procs:
                if proc.running:
                    assert await proc.stop(within=30) == 0, proc.stderr


async def test_replicas_answer_once_keep_order_and_finish_a_dead_ones_answer(
    tg: FakeTelegram, glm: FakeGlm, redis_cluster_url: str
) -> None:
    glm.default = behaviour
    async with replicas(tg, glm, redis_cluster_url) as (hook, procs, own):
        assert tg.webhook is not None and tg.webhook["url"] == hook

        # Through nginx: each message answered once, whichever replica took it.
        for user in (MIN, ANN, JI):
            tg.say(tg.chats[user], tg.users[user], f"안녕 {user}")
        for user in (MIN, ANN, JI):
            await tg.wait_for(lambda f, u=user: len(f.bot_texts(u)) >= 1, within=15)

        # One delivery that reached both replicas (Telegram retried): answered once.
        update = tg.say(tg.chats[ANN], tg.users[ANN], "두 번 배달된 말", send=False)
        assert await tg.deliver(update, secret=SECRET, url=own[0]) == 200
        assert await tg.deliver(update, secret=SECRET, url=own[1]) == 200
        await tg.wait_for(lambda f: len(f.bot_texts(ANN)) >= 2, within=15)

        # A user's order across replicas: the first message is slow on one replica, the
        # second reaches the other at once; the second is answered after the first.
        first = tg.say(tg.chats[JI], tg.users[JI], "천천히 첫째", send=False)
        second = tg.say(tg.chats[JI], tg.users[JI], "둘째", send=False)
        assert await tg.deliver(first, secret=SECRET, url=own[0]) == 200
        await tg.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", JI)), within=15)
        assert await tg.deliver(second, secret=SECRET, url=own[1]) == 200
        await tg.wait_for(lambda f: len(f.bot_texts(JI)) >= 3, within=30)
        assert tg.bot_texts(JI)[1:] == ["echo: 천천히 첫째", "echo: 둘째"]

        # A replica dies mid-answer: the other one gives the whole answer.
        long = tg.say(tg.chats[MIN], tg.users[MIN], "길게 설명해 줘", send=False)
        assert await tg.deliver(long, secret=SECRET, url=own[0]) == 200
        await tg.wait_for(lambda f: bool(f.calls_to("sendMessageDraft", MIN)), within=15)
        await procs[0].kill()
        await tg.wait_for(lambda f: any(FULL in s for s in f.bot_texts(MIN)), within=30)
        (whole,) = [s for s in tg.bot_texts(MIN) if FULL in s]
        assert t("notice_resumed", "ko").strip("()") in whole

        # nginx sends new messages to the replica that is left.
        tg.say(tg.chats[ANN], tg.users[ANN], "아직 있나요")
        await tg.wait_for(lambda f: len(f.bot_texts(ANN)) >= 3, within=15)
        await asyncio.sleep(1.0)
        for user, count in ((MIN, 2), (ANN, 3), (JI, 3)):
            assert len(tg.bot_texts(user)) == count, (user, tg.bot_texts(user))
