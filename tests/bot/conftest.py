"""Fixtures of the core's tests: the fake GLM and a manager wired to it on a memory store.

A test module's own fixture of the same name (e.g. a parametrised ``store``) wins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.manager import ConversationManager
from bot.sessions.memory import MemorySessionStore
from tests.bot.helpers import make_manager
from tests.fakes.glm import FakeGlm


@pytest.fixture
async def fake() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as server:
        yield server


@pytest.fixture
def store() -> MemorySessionStore:
    return MemorySessionStore()


@pytest.fixture
async def manager(fake: FakeGlm, store: MemorySessionStore) -> AsyncIterator[ConversationManager]:
    m = make_manager(fake.base_url, fake.api_key, store)
    yield m
    await m.glm.client.close()
