"""The real ``python -m bot chat`` process, piped input, against the fake GLM and real Redis."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.fakes.glm import FakeGlm, Reply
from tests.fakes.weather import FakeOpenMeteo
from tests.scenarios.process import clean_env, run_bot


@pytest.fixture
async def fake() -> FakeGlm:
    async with FakeGlm() as server:
        yield server


def env_for(fake: FakeGlm, **extra: str) -> dict[str, str]:
    return clean_env(GLM_API_KEY=fake.api_key, GLM_BASE_URL=fake.base_url, **extra)


async def test_two_streamed_answers_and_the_second_request_carries_the_first(
    fake: FakeGlm,
) -> None:
    # The weather form fetches the facts (fake Open-Meteo); the model words them, streamed.
    fake.enqueue(
        Reply("서울은 맑고 21도예요.", chunks=["서울은 ", "맑고 ", "21도예요."]),
        Reply("부산은 흐리고 19도예요.", chunks=["부산은 ", "흐리고 ", "19도예요."]),
    )
    async with FakeOpenMeteo() as weather:
        env = env_for(
            fake,
            WEATHER_GEOCODING_URL=weather.geocoding_url,
            WEATHER_FORECAST_URL=weather.forecast_url,
        )
        done = await run_bot("chat", stdin="서울 날씨 알려줘\n부산은?\n", env=env)
    assert done.code == 0, done.stderr
    assert done.stdout.splitlines() == ["서울은 맑고 21도예요.", "부산은 흐리고 19도예요."]
    assert len(weather.forecast_coordinates()) == 2  # real facts for both cities
    assert len(fake.requests) == 2
    assert all(r.stream for r in fake.requests)
    assert "Open-Meteo" in fake.requests[0].messages[0]["content"]
    second = [(m["role"], m["content"]) for m in fake.requests[1].json["messages"][1:]]
    assert second == [
        ("user", "서울 날씨 알려줘"),
        ("assistant", "서울은 맑고 21도예요."),
        ("user", "부산은?"),
    ]


async def test_plain_chat_carries_history(fake: FakeGlm) -> None:
    done = await run_bot("chat", stdin="내 이름은 민수야\n내 이름이 뭐지?\n", env=env_for(fake))
    assert done.code == 0, done.stderr
    assert done.stdout.splitlines() == ["echo: 내 이름은 민수야", "echo: 내 이름이 뭐지?"]
    carried = [m["content"] for m in fake.requests[1].json["messages"]]
    assert "내 이름은 민수야" in carried and "echo: 내 이름은 민수야" in carried


async def test_reset_in_the_terminal(fake: FakeGlm) -> None:
    done = await run_bot("chat", stdin="사과를 기억해\n/reset\n뭘 기억해?\n", env=env_for(fake))
    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "echo: 사과를 기억해"
    assert "초기화" in lines[1]
    last = fake.requests[-1].json["messages"]
    assert all("사과" not in m["content"] for m in last)


async def test_bad_input_lines_get_clear_answers_and_no_model_call(fake: FakeGlm) -> None:
    done = await run_bot("chat", stdin="\n" + "가" * 5000 + "\n", env=env_for(fake))
    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "비어 있어요" in lines[0]
    assert "너무 길어요" in lines[1]
    assert fake.requests == []


async def test_offline_model_without_a_key() -> None:
    done = await run_bot("chat", stdin="안녕하세요\nhello there\n", env=clean_env())
    assert done.code == 0, done.stderr
    assert "오프라인" in done.stderr or "Offline" in done.stderr
    lines = done.stdout.splitlines()
    assert "오프라인" in lines[0] and "안녕하세요" in lines[0]
    assert "offline" in lines[1].lower() and "hello there" in lines[1]


async def test_history_survives_a_restart_with_redis(fake: FakeGlm, redis_url: str) -> None:
    import redis.asyncio as redis

    env = env_for(fake, REDIS_URL=redis_url)
    first = await run_bot("chat", stdin="내 이름은 민수야\n", env=env)
    assert first.code == 0, first.stderr
    second = await run_bot("chat", stdin="내 이름이 뭐지?\n", env=env)
    assert second.code == 0, second.stderr
    carried = [m["content"] for m in fake.requests[-1].json["messages"]]
    assert "내 이름은 민수야" in carried
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match="*session*")]
        assert len(keys) == 1
        ttl = await client.ttl(keys[0])
    finally:
        await client.aclose()
    assert 30 * 86400 - 120 <= ttl <= 30 * 86400


async def test_check_prints_what_would_run_and_masks_tokens() -> None:
    token = "123456789:AAEexampleexampleexampleexample99"
    done = await run_bot(
        "check",
        env=clean_env(GLM_API_KEY="zai-secret-key-abcdef123456", TELEGRAM_BOT_TOKEN=token),
    )
    assert done.code == 0, done.stdout + done.stderr
    assert "telegram: polling" in done.stdout
    assert "glm-4.5" in done.stdout
    assert "zai-secret-key" not in done.stdout + done.stderr
    assert token not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GLM_FIRST_TOKEN_TIMEOUT": "soon"}, "GLM_FIRST_TOKEN_TIMEOUT"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"SLACK_BOT_TOKEN": "xoxb-1-2-abc"}, "SLACK_SIGNING_SECRET"),
        ({"TELEGRAM_BOT_TOKEN": "not-a-token"}, "TELEGRAM_BOT_TOKEN"),
        ({"FILTER_MASK_CHAR": "**"}, "FILTER_MASK_CHAR"),
    ],
)
async def test_check_fails_on_bad_values(env: dict[str, str], message: str) -> None:
    done = await run_bot("check", env=clean_env(**env))
    assert done.code != 0
    assert message in done.stdout + done.stderr
    if "TELEGRAM_BOT_TOKEN" in env:
        assert env["TELEGRAM_BOT_TOKEN"] not in done.stdout + done.stderr


async def test_offline_check_says_offline() -> None:
    done = await run_bot("check", env=clean_env())
    assert done.code == 0, done.stdout + done.stderr
    assert "OFFLINE" in done.stdout


class PtyChat:
    """``python -m bot chat`` on a real pseudo-terminal, as a person at a terminal runs it.

    The pty is the process's controlling terminal, so writing Ctrl-C (``\\x03``) to it makes the
    kernel send SIGINT, exactly as a keyboard does.
    """

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc = proc
        self.master = master
        self.output = b""
        self._grew = asyncio.Event()
        asyncio.get_running_loop().add_reader(master, self._read)

    @classmethod
    async def start(cls, env: dict[str, str], cwd: str) -> PtyChat:
        master, slave = pty.openpty()

        def controlling_tty() -> None:  # runs in the child: a new session owning the pty
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "chat",
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            preexec_fn=controlling_tty,
        )
        os.close(slave)
        return cls(proc, master)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end is closed (the process exited)
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.output += data
        self._grew.set()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def wait_for(self, needle: str, *, count: int = 1, within: float = 30) -> None:
        async with asyncio.timeout(within):
            while self.text.count(needle) < count:
                self._grew.clear()
                if self.proc.returncode is not None:
                    raise AssertionError(f"exited before {needle!r}: {self.text!r}")
                await self._grew.wait()

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)


async def test_ctrl_c_at_the_prompt_exits_at_once_and_logs_stay_out_of_the_chat(
    fake: FakeGlm, tmp_path: Path
) -> None:
    # LOG_LEVEL=INFO (the default): info lines such as "kiwi ready" would otherwise land in
    # the middle of the conversation.
    chat = await PtyChat.start(env_for(fake, LOG_LEVEL="INFO"), str(tmp_path))
    try:
        await chat.wait_for("> ")  # once the bot is built, Kiwi loaded
        chat.type("안녕\n".encode())
        await chat.wait_for("echo: 안녕")
        await chat.wait_for("> ", count=2)
        pressed = time.monotonic()
        chat.type(b"\x03")  # Ctrl-C, no Enter
        async with asyncio.timeout(5):
            code = await chat.proc.wait()
        assert time.monotonic() - pressed < 3, chat.text
    finally:
        await chat.close()
    assert code in (0, 130), chat.text
    assert "Traceback" not in chat.text
    assert " INFO " not in chat.text, chat.text
    assert len(fake.requests) == 1


async def test_without_a_terminal_the_log_keeps_log_level(fake: FakeGlm) -> None:
    done = await run_bot("chat", stdin="안녕\n", env=env_for(fake, LOG_LEVEL="INFO"))
    assert done.code == 0, done.stderr
    assert done.stdout.splitlines() == ["echo: 안녕"]
    assert " INFO bot.forms.korean: kiwi ready" in done.stderr


def test_the_terminal_language_comes_from_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.terminal import locale_language

    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert locale_language() == ""
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    assert locale_language() == "ko"
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    assert locale_language() == "en"
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    assert locale_language() == ""
