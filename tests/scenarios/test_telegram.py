"""The real ``python -m bot run`` process against the fake Bot API and the fake GLM."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.i18n import t
from tests.fakes.glm import FakeGlm, RecordedRequest, Reply, Sensitive
from tests.fakes.telegram import TOKEN, Call, FakeTelegram
from tests.scenarios.process import BotProcess, clean_env, run_bot, start_bot

MIN, ANN, BOSS, JI = 111, 222, 333, 444
GROUP = -1001234567890


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:  # Telegram's real limits
        minsu = fake.user(MIN, "민수")
        ann = fake.user(ANN, "Ann", language_code="en")
        boss = fake.user(BOSS, "팀장")
        ji = fake.user(JI, "지우")
        for user in (minsu, ann, boss, ji):
            fake.private_chat(user)
        fake.group(GROUP, "스터디", members=[minsu, ann, ji], admins=[boss])
        yield fake


@pytest.fixture
async def glm() -> AsyncIterator[FakeGlm]:
    async with FakeGlm() as fake:
        yield fake


@asynccontextmanager
async def running(tg: FakeTelegram, glm: FakeGlm, **env: str) -> AsyncIterator[BotProcess]:
    """The bot process, ready once it polls (or has set its webhook); checked when it stops."""
    # Adapter scenarios; forms have their own (terminal) scenario unless a test asks for them.
    env.setdefault("FORMS_ENABLED", "false")
    # Suggestions too (tests/scenarios/test_suggestions.py): two turns about cats and dogs
    # would otherwise end with an offer under the answer that these tests compare exactly.
    env.setdefault("SUGGESTIONS_ENABLED", "false")
    proc = await start_bot(
        env=clean_env(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_BASE_URL=tg.base_url,
            GLM_API_KEY=glm.api_key,
            GLM_BASE_URL=glm.base_url,
            **env,
        )
    )
    try:
        async with asyncio.timeout(20):
            while not (tg.calls_to("getUpdates") or tg.webhook):
                if not proc.running:
                    break
                await asyncio.sleep(0.02)
        assert proc.running, "the bot exited at start"
        yield proc
    finally:
        code = await proc.stop()
        output = proc.stdout + proc.stderr
        assert code == 0, output
        assert TOKEN not in output and TOKEN.split(":")[1] not in output
        assert "Traceback" not in output, output


async def answered(tg: FakeTelegram, chat: int, *texts: str, within: float = 15) -> str:
    """Wait until a bot message in ``chat`` shows exactly one of ``texts``; returns it."""
    await tg.wait_for(lambda f: any(t in f.bot_texts(chat) for t in texts), within)
    return next(t for t in texts if t in tg.bot_texts(chat))


def either(key: str, **values: object) -> tuple[str, str]:
    """The message ``key`` in Korean and in English.

    Commands are Latin text, so which language the core answers them in is its own choice.
    """
    return t(key, "ko", **values), t(key, "en", **values)


def texts_of(requests: list[RecordedRequest]) -> list[str]:
    return [str(m["content"]) for r in requests for m in r.messages]


def shown(tg: FakeTelegram, chat: int) -> list[Call]:
    methods = ("sendMessage", "sendMessageDraft", "editMessageText")
    return [c for c in tg.calls_to(chat_id=chat) if c.method in methods and c.ok]


# ---- private chats -----------------------------------------------------------------------------


async def test_private_answer_streams_as_drafts_and_ends_as_one_message(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    chunks = ["**서울**은 ", "오늘 ", "맑고 ", "최고 ", "21도예요. ", "내일은 ", "비가 ", "와요."]
    glm.enqueue(Reply("".join(chunks), chunks=chunks, delay=0.25))
    async with running(tg, glm):
        question = tg.say(tg.chats[MIN], tg.users[MIN], "서울 날씨 알려줘")
        await answered(tg, MIN, "서울은 오늘 맑고 최고 21도예요. 내일은 비가 와요.")

    calls = tg.calls_to(chat_id=MIN)
    # The first words came within a second: no "typing…" status was needed before them.
    assert calls[0].method == "sendMessageDraft"
    drafts = [c for c in calls if c.method == "sendMessageDraft"]
    assert len(drafts) >= 3
    assert len({c.params["draft_id"] for c in drafts}) == 1
    assert drafts[0].text.startswith("**서울**")  # plain while streaming
    assert [c.method for c in calls if c.method != "sendChatAction"][-1] == "sendMessage"
    final = tg.calls_to("sendMessage", MIN)
    assert len(final) == 1 and final[0].params["parse_mode"] == "HTML"
    assert tg.bot_messages(MIN)[0].entities == [{"type": "bold", "offset": 0, "length": 2}]
    assert glm.requests[0].last_user_text() == question["message"]["text"]
    assert tg.rejected() == []
    # The command menu, in English for everyone and in Korean for Korean clients.
    menus = {lang: [c["command"] for c in cmds] for (_, lang), cmds in tg.commands.items()}
    assert menus == {
        "": ["start", "help", "reset", "forget", "memory", "usage", "interests", "suggestions"],
        "ko": ["start", "help", "reset", "forget", "memory", "usage", "interests", "suggestions"],
    }


async def test_two_users_at_once_have_their_own_histories(tg: FakeTelegram, glm: FakeGlm) -> None:
    glm.default = lambda r: Reply(f"네, {r.last_user_text()}", delay=0.1)
    async with running(tg, glm):
        tg.say(tg.chats[MIN], tg.users[MIN], "나는 민수야")
        tg.say(tg.chats[ANN], tg.users[ANN], "I am Ann")
        await answered(tg, MIN, "네, 나는 민수야")
        await answered(tg, ANN, "네, I am Ann")
        assert glm.max_in_flight == 2  # answered side by side, not one after the other
        tg.say(tg.chats[MIN], tg.users[MIN], "내 이름은?")
        tg.say(tg.chats[ANN], tg.users[ANN], "my name?")
        await answered(tg, MIN, "네, 내 이름은?")
        await answered(tg, ANN, "네, my name?")

    by_user = {r.last_user_text(): texts_of([r]) for r in glm.requests}
    assert "나는 민수야" in by_user["내 이름은?"] and "I am Ann" not in by_user["내 이름은?"]
    assert "I am Ann" in by_user["my name?"] and "나는 민수야" not in by_user["my name?"]


async def test_a_users_quick_second_message_waits_for_the_first_answer(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    glm.enqueue(Reply("첫 답입니다", chunks=["첫 ", "답입니다"], delay=0.8), Reply("둘째 답"))
    async with running(tg, glm):
        tg.say(tg.chats[MIN], tg.users[MIN], "첫 질문")
        tg.say(tg.chats[MIN], tg.users[MIN], "둘째 질문")
        await answered(tg, MIN, "둘째 답")

    assert tg.bot_texts(MIN) == ["첫 답입니다", "둘째 답"]
    assert [r.last_user_text() for r in glm.requests] == ["첫 질문", "둘째 질문"]
    assert "첫 답입니다" in texts_of([glm.requests[1]])  # the second turn saw the first


async def test_a_rejected_token_stops_the_bot_without_printing_it(tg: FakeTelegram) -> None:
    done = await run_bot(
        "run",
        env=clean_env(TELEGRAM_BOT_TOKEN="999:rejected-token-value", TELEGRAM_BASE_URL=tg.base_url),
        within=30,
    )
    assert done.code != 0
    assert "rejected TELEGRAM_BOT_TOKEN" in done.stderr
    assert "rejected-token-value" not in done.stdout + done.stderr


async def test_a_6000_character_answer_arrives_as_two_messages(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    paragraphs = [f"{i}. " + " ".join(["긴 답변의 한 문단입니다."] * 13) for i in range(1, 31)]
    text = "\n\n".join(paragraphs)
    assert 5900 < len(text) < 6500
    glm.enqueue(
        Reply(text, chunks=[text[i : i + 150] for i in range(0, len(text), 150)], delay=0.01)
    )
    async with running(tg, glm):
        tg.say(tg.chats[MIN], tg.users[MIN], "길게 설명해 줘")
        await tg.wait_for(lambda f: len(f.bot_texts(MIN)) == 2, within=15)
        await asyncio.sleep(0.3)  # nothing more should follow

    parts = tg.bot_texts(MIN)
    assert len(parts) == 2
    assert all(len(p) <= 4096 for p in parts)
    assert parts[0].endswith("문단입니다.") and parts[1][0].isdigit()  # cut between paragraphs
    assert "\n\n".join(parts) == text
    assert tg.rejected() == []


async def test_stickers_photos_get_text_only_and_edits_are_not_answered(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    async with running(tg, glm):
        tg.say(tg.chats[MIN], tg.users[MIN], media="sticker")
        tg.say(tg.chats[ANN], tg.users[ANN], media="voice")
        tg.say(tg.chats[GROUP], tg.users[MIN], media="photo")  # not addressed: no reply
        await tg.wait_for(lambda f: bool(f.bot_texts(MIN) and f.bot_texts(ANN)), within=10)
        question = tg.say(tg.chats[JI], tg.users[JI], "안녕")
        await answered(tg, JI, "echo: 안녕")
        message = tg.messages[JI][question["message"]["message_id"]]
        tg.edit_by_user(message, "안녕하세요")
        tg.say(tg.chats[JI], tg.users[JI], "두 번째")
        await answered(tg, JI, "echo: 두 번째")

    assert tg.bot_texts(MIN) == [t("non_text", "ko")]  # in each user's language
    assert tg.bot_texts(ANN) == [t("non_text", "en")]
    assert tg.bot_texts(GROUP) == []
    assert [r.last_user_text() for r in glm.requests] == ["안녕", "두 번째"]


async def test_forget_deletes_the_history(tg: FakeTelegram, glm: FakeGlm) -> None:
    async with running(tg, glm):
        tg.say(tg.chats[MIN], tg.users[MIN], "내 비밀번호 힌트는 고양이야")
        await answered(tg, MIN, "echo: 내 비밀번호 힌트는 고양이야")
        tg.say(tg.chats[MIN], tg.users[MIN], "/forget")
        await tg.wait_for(lambda f: len(f.bot_texts(MIN)) == 2, within=15)
        tg.say(tg.chats[MIN], tg.users[MIN], "힌트가 뭐였지?")
        await answered(tg, MIN, "echo: 힌트가 뭐였지?")
    assert len(glm.requests) == 2
    assert "고양이" not in " ".join(texts_of([glm.requests[-1]]))


# ---- groups ------------------------------------------------------------------------------------


async def test_group_answers_only_when_addressed_and_edits_within_the_limits(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    words = ["그룹 ", "답변은 ", "한 ", "메시지를 ", "고쳐 ", "가며 ", "보여 ", "줍니다. ", "*끝*"]
    glm.enqueue(Reply("".join(words), chunks=words, delay=0.35))
    async with running(tg, glm):
        tg.say(tg.chats[GROUP], tg.users[MIN], "오늘 점심 뭐 먹지")  # not for the bot
        question = tg.say(tg.chats[GROUP], tg.users[MIN], "@glm_test_bot 설명해 줘")
        await answered(tg, GROUP, "그룹 답변은 한 메시지를 고쳐 가며 보여 줍니다. 끝")

    assert [r.last_user_text() for r in glm.requests] == ["설명해 줘"]
    calls = shown(tg, GROUP)
    assert calls[0].method == "sendMessage"
    assert calls[0].params["reply_parameters"]["message_id"] == question["message"]["message_id"]
    assert len(calls) >= 3 and all(c.method == "editMessageText" for c in calls[1:])
    gaps = [b.time - a.time for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.99  # one a second per chat at most
    assert len(calls) <= 20  # within the group's minute
    assert calls[-1].params["parse_mode"] == "HTML"
    assert "parse_mode" not in calls[-2].params
    assert len(tg.bot_messages(GROUP)) == 1
    assert tg.rejected() == []


async def test_a_flood_wait_mid_answer_still_delivers_the_whole_text(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    words = [f"{i}번째 조각 " for i in range(1, 25)]
    full = "".join(words).strip()
    glm.enqueue(Reply("".join(words), chunks=words, delay=0.1))
    async with running(tg, glm):
        tg.say(tg.chats[GROUP], tg.users[MIN], "@glm_test_bot 세어 줘")
        await tg.wait_for(lambda f: bool(f.calls_to("sendMessage", GROUP)), within=10)
        tg.flood("editMessageText", GROUP, seconds=2)
        await answered(tg, GROUP, full)

    flooded = tg.rejected(429)
    assert len(flooded) == 1 and flooded[0].retry_after == 2
    later = [c for c in tg.calls_to(chat_id=GROUP) if c.time > flooded[0].time]
    assert later and later[0].time - flooded[0].time >= 1.95  # waited as told
    assert [c.status for c in later] == [200] * len(later)
    assert tg.bot_texts(GROUP) == [full]


async def test_group_resets_need_an_admin_for_someone_elses_session(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    group = tg.chats[GROUP]
    async with running(tg, glm, TELEGRAM_ADMIN_IDS=str(JI)):
        tg.say(group, tg.users[MIN], "@glm_test_bot 내 별명은 감자야")
        await answered(tg, GROUP, "echo: 내 별명은 감자야")
        tg.say(group, tg.users[ANN], "@glm_test_bot my nickname is Tomato")
        await answered(tg, GROUP, "echo: my nickname is Tomato")

        tg.say(group, tg.users[MIN], f"/reset {ANN}")  # a member, about someone else
        denied = await answered(tg, GROUP, *either("reset_denied"))
        tg.say(group, tg.users[BOSS], f"/reset@glm_test_bot {MIN}")  # a chat administrator
        await answered(tg, GROUP, *either("reset_other_done", target=MIN))

        tg.say(group, tg.users[MIN], "@glm_test_bot 내 별명이 뭐였지?")
        await answered(tg, GROUP, "echo: 내 별명이 뭐였지?")
        tg.say(group, tg.users[ANN], "@glm_test_bot what is my nickname?")
        await answered(tg, GROUP, "echo: what is my nickname?")

        tg.say(group, tg.users[ANN], "/reset")  # anyone may reset their own
        await answered(tg, GROUP, *either("reset_done"))
        tg.say(group, tg.users[ANN], "@glm_test_bot nickname again?")
        await answered(tg, GROUP, "echo: nickname again?")
        tg.say(group, tg.users[JI], f"/reset {BOSS}")  # in TELEGRAM_ADMIN_IDS
        await answered(tg, GROUP, *either("reset_other_done", target=BOSS))

    assert tg.bot_texts(GROUP).count(denied) == 1
    assert "/reset" in denied  # polite, and says what the caller may do instead
    history = {r.last_user_text(): " ".join(texts_of([r])) for r in glm.requests}
    assert "감자" not in history["내 별명이 뭐였지?"]  # the admin's reset was done
    assert "Tomato" in history["what is my nickname?"]  # the member's was refused
    assert "Tomato" not in history["nickname again?"]  # the own reset was done
    checked = {int(c.params["user_id"]) for c in tg.calls_to("getChatMember")}
    assert checked == {MIN, BOSS}  # JI is an admin by configuration, no lookup needed
    assert tg.rejected() == []


async def test_a_retracted_answer_replaces_what_the_group_saw(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    glm.enqueue(Sensitive("이 답변은 곧 철회될 내용입니다 " * 3))
    async with running(tg, glm):
        tg.say(tg.chats[GROUP], tg.users[MIN], "@glm_test_bot 질문")
        await answered(tg, GROUP, t("retracted", "ko"))
    assert tg.bot_texts(GROUP) == [t("retracted", "ko")]
    assert all("철회" not in m.text for m in tg.bot_messages(GROUP, deleted=True))


# ---- webhook -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_webhook_refuses_a_wrong_secret_and_answers_a_redelivery_once(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    env: dict[str, Any] = {
        "TELEGRAM_WEBHOOK_URL": url,
        "TELEGRAM_WEBHOOK_SECRET": "hook-Secret_42",
        "TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
        "TELEGRAM_WEBHOOK_PORT": str(port),
        "LOG_LEVEL": "DEBUG",  # even at DEBUG the token stays out of the logs
    }
    async with running(tg, glm, **env):
        assert tg.webhook == {"url": url, "secret_token": "hook-Secret_42"}
        assert tg.calls_to("getUpdates") == []
        # PTB may call setWebhook a moment before its server accepts connections.
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        # Forged deliveries: a wrong or a missing secret gets 403 and nothing is processed.
        real = tg.say(tg.chats[MIN], tg.users[MIN], "웹훅 질문", send=False)
        assert await tg.deliver(real, secret="wrong-secret", url=url) == 403
        assert await tg.deliver(real, secret=None, url=url) == 403
        await asyncio.sleep(0.3)
        assert glm.requests == [] and tg.bot_texts(MIN) == []

        assert await tg.deliver(real, secret="hook-Secret_42", url=url) == 200
        await answered(tg, MIN, "echo: 웹훅 질문")
        assert await tg.deliver(real, secret="hook-Secret_42", url=url) == 200  # re-delivery
        await asyncio.sleep(0.5)

    assert len(glm.requests) == 1
    assert tg.bot_texts(MIN) == ["echo: 웹훅 질문"]


# ---- operations: METRICS_PORT and LOG_FORMAT=json ---------------------------------------------


async def http_status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url) as resp:
            return resp.status
    except aiohttp.ClientError:
        return 0


async def until_status(
    http: aiohttp.ClientSession, url: str, wanted: int, within: float = 10.0
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (got := await http_status(http, url)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"{url} answers {got}"
        await asyncio.sleep(0.02)


async def test_ops_endpoints_follow_the_bot_from_start_to_stop(
    tg: FakeTelegram, glm: FakeGlm
) -> None:
    ops = f"http://127.0.0.1:{free_port()}"
    words = [f"{i}번째 조각 " for i in range(1, 25)]
    glm.enqueue(
        Reply("안녕하세요", chunks=["안녕", "하세요"], delay=0.1),
        Reply("".join(words), chunks=words, delay=0.1),
        Reply("느린 답", chunks=["느린 ", "답"], delay=3.0),
    )
    env = {"METRICS_PORT": ops.rsplit(":", 1)[1], "LOG_FORMAT": "json"}
    async with aiohttp.ClientSession() as http, running(tg, glm, **env) as proc:
        assert await http_status(http, ops + "/livez") == 200
        await until_status(http, ops + "/readyz", 200)
        tg.say(tg.chats[MIN], tg.users[MIN], "안녕")
        await answered(tg, MIN, "안녕하세요")
        tg.say(tg.chats[GROUP], tg.users[MIN], "@glm_test_bot 세어 줘")
        await tg.wait_for(lambda f: bool(f.calls_to("sendMessage", GROUP)), within=10)
        tg.flood("editMessageText", GROUP, seconds=1)
        await answered(tg, GROUP, "".join(words).strip())

        samples: list[tuple[str, dict[str, str], float]] = []

        def total(name: str, **labels: str) -> float:
            return sum(
                v
                for n, found, v in samples
                if n == name and all(found.get(k) == x for k, x in labels.items())
            )

        # A turn is counted once it has ended (answer delivered, session saved), a moment
        # after the platform shows its last word.
        for _ in range(50):
            async with http.get(ops + "/metrics") as resp:
                samples = [
                    (s.name, dict(s.labels), s.value)
                    for family in text_string_to_metric_families(await resp.text())
                    for s in family.samples
                ]
            if total("bot_turns_total", platform="telegram", result="answered") >= 2:
                break
            await asyncio.sleep(0.1)
        assert total("bot_turns_total", platform="telegram", result="answered") == 2
        assert total("bot_time_to_first_visible_seconds_count", platform="telegram") == 2
        assert total("gen_ai_client_operation_duration_seconds_count") == 2
        assert total("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 2
        assert total("gen_ai_client_token_usage_count", gen_ai_token_type="output") == 2
        assert total("bot_platform_rate_limited_total", platform="telegram") == 1
        assert (total("bot_turns_in_flight"), total("bot_breaker_open")) == (0, 0)
        label_values = {v for _, found, _ in samples for v in found.values()}
        assert str(MIN) not in label_values and str(GROUP) not in label_values

        # SIGTERM with an answer in flight: not ready at once, alive while it finishes.
        tg.say(tg.chats[MIN], tg.users[MIN], "천천히")
        await glm.wait_for_requests(3)
        proc.proc.terminate()
        await until_status(http, ops + "/readyz", 503, within=2)
        assert await http_status(http, ops + "/livez") == 200
        await answered(tg, MIN, "느린 답")

    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    not_json = [line for line in lines if not line.lstrip().startswith("{")]
    assert not_json == [], proc.stderr  # LOG_FORMAT=json: every line is one object
    entries = [json.loads(line) for line in lines]
    turns = [e for e in entries if e.get("result") == "answered"]
    assert len(turns) == 3
    assert all(e["session"].startswith("telegram:") and "total_ms" in e["timings"] for e in turns)
