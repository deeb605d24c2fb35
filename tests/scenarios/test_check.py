"""The real ``python -m bot check``: is Redis reachable, would a channel answer offline."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_servers import RedisServer, free_port
from tests.scenarios.process import clean_env, run_bot

TELEGRAM_TOKEN = "123456789:AAEexampleexampleexampleexample99"
GLM_KEY = "zai-secret-key-abcdef123456"


async def test_reachable_redis_is_reported(redis_url: str) -> None:
    done = await run_bot("check", env=clean_env(GLM_API_KEY=GLM_KEY, REDIS_URL=redis_url))
    assert done.code == 0, done.stdout + done.stderr
    assert "Redis reachable" in done.stdout
    assert done.stdout.rstrip().endswith("settings OK")


async def test_reachable_redis_cluster_is_reported(redis_cluster_url: str) -> None:
    env = clean_env(GLM_API_KEY=GLM_KEY, REDIS_URL=redis_cluster_url, REDIS_CLUSTER="true")
    done = await run_bot("check", env=env)
    assert done.code == 0, done.stdout + done.stderr
    assert "Redis Cluster reachable" in done.stdout


async def test_dead_redis_is_an_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    done = await run_bot("check", env=clean_env(GLM_API_KEY=GLM_KEY, REDIS_URL=url))
    assert done.code != 0, done.stdout
    assert "ERROR: REDIS_URL" in done.stdout and "unreachable" in done.stdout
    assert "settings OK" not in done.stdout


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server, a firewall)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


async def test_a_redis_that_never_answers_fails_within_seconds(silent_port: int) -> None:
    url = f"redis://127.0.0.1:{silent_port}/0"
    started = time.monotonic()
    done = await run_bot("check", env=clean_env(GLM_API_KEY=GLM_KEY, REDIS_URL=url), within=30)
    assert done.code != 0, done.stdout
    assert "ERROR: REDIS_URL" in done.stdout
    assert time.monotonic() - started < 15


@pytest.fixture
def redis_user(redis_url: str, redis_server: RedisServer) -> Iterator[int]:
    """A Redis user ``checker`` with the password ``right-password-123``; yields the port."""
    with redis_server.client() as client:
        client.acl_setuser(
            "checker", enabled=True, passwords=["+right-password-123"], commands=["+@all"]
        )
    try:
        yield redis_server.port
    finally:
        with redis_server.client() as client:
            client.acl_deluser("checker")


async def test_redis_password_is_checked_and_never_printed(redis_user: int) -> None:
    wrong = f"redis://checker:wrong-password-456@127.0.0.1:{redis_user}/0"
    done = await run_bot("check", env=clean_env(GLM_API_KEY=GLM_KEY, REDIS_URL=wrong))
    assert done.code != 0, done.stdout
    assert "ERROR: REDIS_URL" in done.stdout
    assert "wrong-password-456" not in done.stdout + done.stderr
    right = f"redis://checker:right-password-123@127.0.0.1:{redis_user}/0"
    done = await run_bot("check", env=clean_env(GLM_API_KEY=GLM_KEY, REDIS_URL=right))
    assert done.code == 0, done.stdout
    assert "Redis reachable" in done.stdout
    assert "right-password-123" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("channel", "env"),
    [
        ("TELEGRAM_BOT_TOKEN", {"TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN}),
        ("SLACK_BOT_TOKEN", {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_SIGNING_SECRET": "s3"}),
    ],
)
async def test_channel_without_a_glm_key_is_warned_about(channel: str, env: dict[str, str]) -> None:
    done = await run_bot("check", env=clean_env(**env))
    assert done.code == 0, done.stdout  # it runs; it just would not answer with GLM-4.5
    warning = [line for line in done.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1, done.stdout
    assert channel in warning[0] and "GLM_API_KEY" in warning[0] and "offline" in warning[0]
    keyed = await run_bot("check", env=clean_env(GLM_API_KEY=GLM_KEY, **env))
    assert keyed.code == 0, keyed.stdout
    assert "WARNING" not in keyed.stdout


async def test_terminal_chat_without_a_key_is_no_warning() -> None:
    done = await run_bot("check", env=clean_env())
    assert done.code == 0, done.stdout
    assert "WARNING" not in done.stdout


async def test_a_wrong_recommendations_catalog_is_named_by_check_and_at_start(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        '{"items": [{"id": "x", "title": {"en": "X"}, "url": "ftp://x", "topics": []}]}',
        encoding="utf-8",
    )
    env = clean_env(GLM_API_KEY=GLM_KEY, RECOMMENDATIONS_PATH=str(catalog), FORMS_ENABLED="false")
    done = await run_bot("check", env=env)
    assert done.code != 0 and "settings OK" not in done.stdout
    assert "RECOMMENDATIONS_PATH" in done.stdout and "only http and https" in done.stdout
    started = await run_bot("chat", stdin="안녕\n", env=env)
    assert started.code == 2 and "Traceback" not in started.stderr
    assert "RECOMMENDATIONS_PATH" in started.stderr and "item 0 (id 'x')" in started.stderr
    good = await run_bot("check", env=clean_env(GLM_API_KEY=GLM_KEY))
    assert "suggestions: 52 catalog items" in good.stdout
