"""The settings this issue added: defaults, parsing and bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import Settings


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]


def test_answer_and_session_bounds_have_sensible_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GLM_MAX_ANSWER_TOKENS", raising=False)
    monkeypatch.delenv("SESSION_MAX_BYTES", raising=False)
    s = settings()
    assert s.glm_max_answer_tokens == 4096
    assert s.session_max_bytes == 256 * 1024


def test_bounds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLM_MAX_ANSWER_TOKENS", "1024")
    monkeypatch.setenv("SESSION_MAX_BYTES", "65536")
    s = settings()
    assert (s.glm_max_answer_tokens, s.session_max_bytes) == (1024, 65536)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GLM_MAX_ANSWER_TOKENS", "0"),
        ("GLM_MAX_ANSWER_TOKENS", "1000000"),
        ("SESSION_MAX_BYTES", "100"),
    ],
)
def test_unusable_bounds_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        settings()
