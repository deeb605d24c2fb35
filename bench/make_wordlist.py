#!/usr/bin/env python3
"""Write a deterministic banned-word list of N entries for benchmarks.

The list starts with the entries of bot/data/banned_words.txt (the shipped sample), then
adds synthetic Korean entries (2-6 Hangul syllables from about 1,300 common-shaped
syllables) and lower-case ASCII entries (3-10 letters), half and half, all distinct.

usage: make_wordlist.py [--count 100000] [--seed 13] [--full-hangul] > words.txt
  --full-hangul  draw syllables from all 11,172 Hangul syllables (a worst case for
                 tries whose nodes scan their children linearly)
"""

import argparse
import pathlib
import random
import string

HERE = pathlib.Path(__file__).resolve().parent
# Copied from the shared tools; in this project the sample list ships as the bot's default.
SAMPLE = HERE.parent / "bot" / "data" / "banned_words.txt"


def syllable(initial: int, medial: int, final: int) -> str:
    return chr(0xAC00 + (initial * 21 + medial) * 28 + final)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--full-hangul", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    if args.full_hangul:
        syllables = [chr(c) for c in range(0xAC00, 0xD7A4)]
    else:
        medials = [0, 1, 4, 8, 13, 18, 20, 2, 6, 12]  # ㅏ ㅐ ㅓ ㅗ ㅜ ㅡ ㅣ ㅑ ㅕ ㅛ
        finals = [0, 4, 8, 16, 17, 21, 1]  # none ㄴ ㄹ ㅁ ㅂ ㅇ ㄱ
        syllables = [syllable(i, m, f) for i in range(19) for m in medials for f in finals]

    words: list[str] = []
    seen: set[str] = set()
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line not in seen:
            seen.add(line)
            words.append(line)

    while len(words) < args.count:
        if len(words) % 2:
            word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 6)))
        else:
            word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 10)))
        if word not in seen:
            seen.add(word)
            words.append(word)

    print("\n".join(words))


if __name__ == "__main__":
    main()
