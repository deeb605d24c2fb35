"""Suggestions per turn, without I/O: topic extraction, the profile's update and the policy.

Run from the repository root: .venv/bin/python -m bench.bench_suggest [--rounds 20]

Every line of the held-out topic set (tests/data/topics.heldout.jsonl) is one user's turn,
in rounds: the user's profile grows, and offers come when the policy says so. Measured per
turn: (1) topics and entities of the message (the gazetteer, Kiwi for entities); (2) the
profile loaded from the in-memory store, scored, the policy asked, the built-in recommender
asked when an offer is due (the whole of ``SuggestionTurn``'s work before the answer ends);
(3) the same with Kiwi's entities left out. Also: precision and recall of the topics on that
set (the test asserts them; they are printed here with the timing for the README).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from bench.common import banner, summary
from bot.forms.extractors import CityGazetteer
from bot.forms.korean import KoreanAnalyzer
from bot.suggest.catalog import DEFAULT_CATALOG, Catalog
from bot.suggest.engine import BuiltinRecommender
from bot.suggest.profile import MemoryProfileStore
from bot.suggest.service import Suggestions
from bot.suggest.topics import TopicGazetteer, entities
from bot.turn import Turn

HELD_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "topics.heldout.jsonl"


async def run(rounds: int) -> None:
    banner("suggestions per turn, no I/O (bench/bench_suggest.py)")
    lines = [json.loads(line) for line in HELD_OUT.read_text("utf-8").splitlines() if line]
    analyzer = KoreanAnalyzer(proper_nouns=CityGazetteer.load().korean_names())
    topics = TopicGazetteer.load()
    clock = [1_780_000_000.0]
    suggestions = Suggestions(
        topics,
        MemoryProfileStore(clock=lambda: clock[0]),
        BuiltinRecommender(Catalog.load(DEFAULT_CATALOG)),
        analyzer=analyzer,
        clock=lambda: clock[0],
    )
    print(f"   {len(lines)} held-out messages x {rounds} rounds, 20 users, profiles in memory")

    found = expected = right = 0
    for line in lines:
        got = topics.topics(line["text"], analyzer)
        want = set(line["topics"])
        found += len(got)
        expected += len(want)
        right += len(got & want)
    print(
        f"   topics on the held-out set: precision {right / found:.3f}, "
        f"recall {right / expected:.3f} ({right} of {expected} labels, {found} found)"
    )

    extraction: list[float] = []
    pipeline: list[float] = []
    offers = 0
    for _ in range(rounds):
        for i, line in enumerate(lines):
            text = line["text"]
            t0 = time.perf_counter()
            topics.topics(text, analyzer)
            entities(text, analyzer)
            extraction.append(time.perf_counter() - t0)
            turn = Turn(platform="bench", chat_id=str(i % 20), user_id=str(i % 20), text=text)
            t0 = time.perf_counter()
            part = suggestions.begin(turn, text, "ko")
            offer = await part.offer()  # as the manager asks when the answer is complete
            pipeline.append(time.perf_counter() - t0)
            offers += offer is not None
            part.settle("")
            await suggestions.drain()
            clock[0] += 600  # ten minutes between turns
    print(f"   topics + entities of a message:           {summary(extraction)}")
    print(f"   + profile, policy, recommender (a turn):   {summary(pipeline)}")
    print(f"   offers made: {offers} in {len(pipeline)} turns (target: median <= 1 ms a turn)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
