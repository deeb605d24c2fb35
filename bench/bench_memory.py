"""Memory: recall of planted facts, request build time, tokens sent per turn.

Synthetic conversations of 200 turns with 20 planted facts ("needles") asked back at the end;
for each question, is the needle's message (or a summary holding it) in the request the
context window builds? Measured with the Korean-aware lexical score (no network) and with the
fake embeddings server's vectors over HTTP (tests/fakes/embeddings.py), within the default
budget (GLM_CONTEXT_TOKENS=12000). Run: ``python -m bench.bench_memory``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from bench.common import banner, summary
from bot.context.embeddings import EmbeddingClient, pack
from bot.context.recall import EmbeddingRecall, exchange_id, exchange_text
from bot.context.window import LEXICAL_MIN, ContextWindow, exchanges, lexical_scores
from bot.sessions.base import Message, Session
from tests.fakes.embeddings import FakeEmbeddings

BUDGET = 12_000
SYSTEM = "You are a helpful assistant chatting with people on telegram."

# (the fact the user tells, the question asked back at the end, a word the fact holds)
NEEDLES: list[tuple[str, str, str]] = [
    ("내 동생 이름은 지훈이야", "내 동생 이름이 뭐였지?", "지훈"),
    ("우리 집 강아지는 콩이라고 해", "우리 강아지 이름 기억나?", "콩이"),
    ("내 사물함 번호는 4471이야", "내 사물함 번호가 몇 번이었지?", "4471"),
    ("나는 땅콩 알레르기가 있어", "내가 무슨 알레르기 있다고 했지?", "땅콩"),
    ("다음 달 12일에 제주도로 출장 가", "내 출장 어디로 간다고 했지?", "제주도"),
    (
        "회사 와이파이 비밀번호는 blue-river-88이야",
        "회사 와이파이 비밀번호 알려줘",
        "blue-river-88",
    ),
    ("엄마 생신은 3월 14일이야", "엄마 생신이 언제였지?", "3월 14일"),
    ("내 차는 흰색 아반떼야", "내 차가 뭐였더라?", "아반떼"),
    ("My favourite author is Ursula Le Guin", "Who did I say my favourite author is?", "Le Guin"),
    ("My gym locker code is 2918", "What was my gym locker code?", "2918"),
    ("I'm allergic to penicillin", "Which medicine am I allergic to?", "penicillin"),
    ("My daughter's school is Hanbit Elementary", "What's my daughter's school called?", "Hanbit"),
    ("The project deadline is November 28", "When is the project deadline?", "November 28"),
    ("My landlord is called Mr. Baek", "What's my landlord's name?", "Baek"),
    ("내 혈액형은 AB형이야", "내 혈액형이 뭐라고 했지?", "AB형"),
    ("결혼기념일은 6월 2일이야", "우리 결혼기념일 언제야?", "6월 2일"),
    ("내 자전거는 빨간색 브롬톤이야", "내 자전거 무슨 브랜드였지?", "브롬톤"),
    ("I parked on level B3, spot 41", "Where did I park?", "B3"),
    ("My cat Mochi is twelve years old", "How old is my cat?", "Mochi"),
    ("우리 팀 회의는 매주 화요일 10시야", "팀 회의가 언제라고 했지?", "화요일"),
]

FILLER_KO = [
    "오늘 점심 뭐 먹을까",
    "주말에 볼 영화 추천해 줘",
    "파이썬 리스트 정렬하는 법 알려줘",
    "요즘 잠이 잘 안 와",
    "서울에서 가볼 만한 카페 있어?",
    "엑셀에서 합계 내는 방법",
    "운동 루틴 짜 줘",
    "여행 짐 싸는 팁",
    "비 오는 날 듣기 좋은 노래",
    "이메일 정중하게 쓰는 법",
]
FILLER_EN = [
    "Give me a quick pasta recipe",
    "How do I center a div?",
    "Tips for a job interview",
    "Explain compound interest",
    "What's a good stretching routine?",
    "Summarise the news style",
    "How to keep basil alive",
    "Suggest a board game for four",
    "How does DNS work?",
    "Write a short birthday message",
]


def conversation(seed: int, turns: int = 200, answer_chars: int = 600) -> tuple[Session, list[int]]:
    """A session of ``turns`` exchanges with the needles planted at random turns."""
    rng = random.Random(seed)
    planted = sorted(rng.sample(range(turns - 10), len(NEEDLES)))
    history: list[Message] = []
    where: list[int] = []
    needle = 0
    for turn in range(turns):
        if needle < len(NEEDLES) and turn == planted[needle]:
            question = NEEDLES[needle][0]
            where.append(turn)
            needle += 1
        else:
            question = rng.choice(FILLER_KO + FILLER_EN)
        filler = rng.choice(FILLER_KO + FILLER_EN)
        answer = (f"{filler}에 대해 말씀드리면, " * 40)[:answer_chars]
        history.append(Message("user", question, float(2 * turn)))
        history.append(Message("assistant", answer, float(2 * turn + 1)))
    return Session(key=f"bench:-:{seed}:-:1", history=history), where


def recall(window: ContextWindow, sessions: int) -> tuple[float, list[int]]:
    found = 0
    asked = 0
    sent: list[int] = []
    for seed in range(sessions):
        session, _ = conversation(seed)
        for fact, question, word in NEEDLES:
            built = window.build(session, question, system_prompt=SYSTEM)
            text = "\n".join(str(m["content"]) for m in built)
            asked += 1
            found += fact in text and word in text
            sent.append(window.estimator.count_messages(built))
    return found / asked, sent


def build_time(window: ContextWindow, messages: int, runs: int) -> list[float]:
    session, _ = conversation(7, turns=messages // 2, answer_chars=300)
    timings = []
    for n in range(runs):
        question = NEEDLES[n % len(NEEDLES)][1]
        started = time.perf_counter()
        window.build(session, question, system_prompt=SYSTEM)
        timings.append(time.perf_counter() - started)
    return timings


async def embedding_recall(window: ContextWindow, sessions: int) -> tuple[float, list[float]]:
    """The same questions with exchange vectors from the fake embeddings server over HTTP."""
    found = 0
    asked = 0
    query_times: list[float] = []
    async with FakeEmbeddings() as server:
        client = EmbeddingClient(server.base_url, server.api_key, dimensions=256)
        recall = EmbeddingRecall(client, query_budget=2.0)
        try:
            for seed in range(sessions):
                session, _ = conversation(seed)
                units = exchanges(session.history)
                vectors = await client.embed([exchange_text(u) for u in units])
                recall.merge(
                    session, {exchange_id(u): pack(v) for u, v in zip(units, vectors, strict=True)}
                )
                for fact, question, word in NEEDLES:
                    started = time.perf_counter()
                    scores = await recall.scores(session, question)
                    query_times.append(time.perf_counter() - started)
                    built = window.build(session, question, system_prompt=SYSTEM, scores=scores)
                    text = "\n".join(str(m["content"]) for m in built)
                    asked += 1
                    found += fact in text and word in text
        finally:
            await client.close()
    return found / asked, query_times


async def main(sessions: int) -> None:
    banner("Memory: recall, request build, tokens per turn (bench/bench_memory.py)")
    print(
        f"   {sessions} conversations x 200 turns (answers of 600 chars), 20 planted facts "
        f"asked back at the end, budget {BUDGET} tokens, no summary"
    )
    window = ContextWindow(BUDGET, scorer=lexical_scores, min_relevance=LEXICAL_MIN)
    share, sent = recall(window, sessions)
    print(f"   recall, lexical score: {share:.1%} of {len(NEEDLES) * sessions} questions")
    whole = ContextWindow(10**9)
    session, _ = conversation(0)
    everything = whole.estimator.count_messages(
        whole.build(session, NEEDLES[0][1], system_prompt=SYSTEM)
    )
    print(
        f"   tokens sent per turn: median {statistics.median(sent):.0f}, max {max(sent)} "
        f"(budget {BUDGET}); the whole history would be {everything} "
        f"({statistics.median(sent) / everything:.1%})"
    )
    share, query_times = await embedding_recall(window, sessions)
    print(f"   recall, fake embeddings over HTTP (+ lexical): {share:.1%}")
    print(f"   query vector + scores, 200-turn session (HTTP on loopback): {summary(query_times)}")
    timings = build_time(window, 1_000, 400)
    print(f"   building the request, 1,000-message session, lexical: {summary(timings)}")
    print(f"   exchanges in a 200-turn session: {len(exchanges(session.history))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10)
    asyncio.run(main(parser.parse_args().sessions))
