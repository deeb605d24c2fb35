"""Content filter figures: build, memory, full check on 1,000 chars, streaming masker."""

# Run from the project root: .venv/bin/python bench/bench_filter.py [--runs N] [--streams N]
# The 100,000-entry lists are generated at run time (bench/make_wordlist.py) into a temp dir.

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.moderation import WordFilter, normalize  # noqa: E402

TEXT_PATH = HERE / "data" / "bench_text.txt"
ALLOWED_PATH = ROOT / "bot" / "data" / "allowed_words.txt"
SAMPLE_BANNED = ROOT / "bot" / "data" / "banned_words.txt"
TARGETS = {"median_ms": 0.5, "p99_ms": 1.0, "build_s": 1.0, "chunk_us": 5.0}


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def verdict(value: float, target: float) -> str:
    if value <= target:
        return f"target <= {target:g}: met"
    return f"target <= {target:g}: MISSED by {value - target:.3g} ({value / target:.2f}x)"


def time_calls(fn: Callable[[], object], runs: int) -> list[float]:
    """Durations in seconds of ``runs`` calls (after a short warm-up)."""
    for _ in range(min(50, runs)):
        fn()
    out: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        fn()
        out.append((clock() - t0) / 1e9)
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_child(words: Path) -> None:
    """Run in a fresh process: print the resident-memory growth of one build."""
    gc.collect()
    before = rss_bytes()
    flt = WordFilter.from_files(words, ALLOWED_PATH)
    gc.collect()
    print(rss_bytes() - before)
    del flt


def make_list(tmp: Path, full_hangul: bool) -> Path:
    path = tmp / ("words_full.txt" if full_hangul else "words.txt")
    cmd = [sys.executable, str(HERE / "make_wordlist.py"), "--count", "100000"]
    if full_hangul:
        cmd.append("--full-hangul")
    with path.open("w", encoding="utf-8") as out:
        subprocess.run(cmd, stdout=out, check=True)
    return path


def chunk_sizes(total: int, seed: int = 7) -> list[int]:
    """Streamed-answer chunk sizes: 1-8 characters (GLM deltas are a token or two)."""
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(rng.randint(1, 8))
    return sizes


def split(text: str, sizes: Sequence[int]) -> list[str]:
    out: list[str] = []
    pos = 0
    for size in sizes:
        if pos >= len(text):
            break
        out.append(text[pos : pos + size])
        pos += size
    return out


def bench_stream(flt: WordFilter, text: str, streams: int) -> tuple[list[float], list[float], int]:
    """Per-chunk times of ``feed`` and of the bare continued scan over the same amount."""
    chunks = split(text, chunk_sizes(len(text)))
    expected = flt.mask(text)
    feeds: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(streams):
        masker = flt.masker()
        shown: list[str] = []
        for chunk in chunks:
            t0 = clock()
            out = masker.feed(chunk)
            feeds.append((clock() - t0) / 1e9)
            shown.append(out)
        shown.append(masker.flush())
        if "".join(shown) != expected:
            raise SystemExit("stream output differs from whole-text masking")
    # The scan alone: the normalised text in chunks of the same sizes, UTF-8 as the
    # automaton reads it, through one continued iterator.
    norm = normalize(text).text
    encoded = [c.encode("utf-8").decode("latin-1") for c in split(norm, chunk_sizes(len(norm)))]
    auto = flt.lists.automaton
    scans: list[float] = []
    for _ in range(streams):
        search = auto.iter("")
        for enc in encoded:
            t0 = clock()
            search.set(enc)
            for _hit in search:
                pass
            scans.append((clock() - t0) / 1e9)
    return feeds, scans, len(chunks)


def plain_scan_reference(words: Path, text: str, runs: int) -> list[float]:
    """iter() over a str-keyed automaton (no UTF-8 trick) on casefolded text, for context."""
    import ahocorasick

    auto = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for i, word in enumerate(words.read_text(encoding="utf-8").split("\n")):
        if word:
            auto.add_word(word.casefold(), i)
    auto.make_automaton()
    folded = text.casefold()
    return time_calls(lambda: list(auto.iter(folded)), runs)


def report_list(title: str, words: Path, text: str, args: argparse.Namespace) -> None:
    print(f"-- {title}")
    builds: list[float] = []
    flt = None
    for _ in range(3):
        gc.collect()
        t0 = time.perf_counter()
        flt = WordFilter.from_files(words, ALLOWED_PATH)
        builds.append(time.perf_counter() - t0)
    assert flt is not None
    build = statistics.median(builds)
    print(
        f"   build (read + normalise + automaton): median {build:.3f} s of 3 "
        f"[{', '.join(f'{b:.3f}' for b in builds)}]  {verdict(build, TARGETS['build_s'])}"
    )
    gc.collect()
    tracemalloc.start()
    traced = WordFilter.from_files(words, ALLOWED_PATH)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    rss = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(words)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stats = flt.lists.automaton.get_stats() if flt.lists.automaton is not None else {}
    print(
        f"   memory: tracemalloc {current / 2**20:.1f} MiB retained (peak {peak / 2**20:.1f} MiB "
        f"while building); RSS +{int(rss) / 2**20:.1f} MiB in a fresh process; "
        f"{stats.get('nodes_count', 0):,} trie nodes"
    )
    verdict_1000 = flt.check(text)
    checks = time_calls(lambda: flt.check(text), args.runs)
    med, p99 = statistics.median(checks) * 1e3, pct(checks, 0.99) * 1e3
    print(
        f"   full check of {len(text):,} chars ({len(verdict_1000.matches)} matches masked): "
        f"median {med:.3f} ms  {verdict(med, TARGETS['median_ms'])}; "
        f"p99 {p99:.3f} ms  {verdict(p99, TARGETS['p99_ms'])}  (n={len(checks)})"
    )
    norm = normalize(text)
    enc = (norm.utf8 or norm.text.encode("utf-8")).decode("latin-1")
    auto = flt.lists.automaton
    scans = time_calls(lambda: list(auto.iter(enc)), args.runs)
    norms = time_calls(lambda: normalize(text), args.runs)
    print(
        f"   parts: normalise median {statistics.median(norms) * 1e3:.3f} ms, "
        f"iter() scan median {statistics.median(scans) * 1e3:.3f} ms "
        f"(p99 {pct(scans, 0.99) * 1e3:.3f} ms)"
    )
    plain = plain_scan_reference(words, text, args.runs // 5)
    print(
        f"   reference, iter() over a plain str automaton (not used): median "
        f"{statistics.median(plain) * 1e3:.3f} ms, p99 {pct(plain, 0.99) * 1e3:.3f} ms"
    )
    feeds, chunk_scans, n_chunks = bench_stream(flt, text, args.streams)
    f_med, f_p99 = statistics.median(feeds) * 1e6, pct(feeds, 0.99) * 1e6
    s_med, s_p99 = statistics.median(chunk_scans) * 1e6, pct(chunk_scans, 0.99) * 1e6
    print(
        f"   stream, {n_chunks} chunks of 1-8 chars x {args.streams}: feed median {f_med:.2f} us, "
        f"p99 {f_p99:.2f} us; bare scan per chunk median {s_med:.2f} us, p99 {s_p99:.2f} us"
    )
    over = f_med - s_med
    print(
        f"   masker on top of the scan, per chunk: median {over:.2f} us  "
        f"{verdict(over, TARGETS['chunk_us'])}; p99 {f_p99 - s_p99:.2f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="timed full checks per list")
    parser.add_argument("--streams", type=int, default=300, help="streamed answers per list")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    started = time.perf_counter()
    text = TEXT_PATH.read_text(encoding="utf-8")[:1000]
    norm = normalize(text)
    print("== content filter (bench/bench_filter.py)")
    print(
        f"   python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"pyahocorasick {metadata.version('pyahocorasick')}"
    )
    print(
        f"   text: first {len(text):,} chars of bench/data/bench_text.txt "
        f"({len(norm.text):,} normalised chars, {len(norm.text.encode('utf-8')):,} UTF-8 bytes)"
    )
    print("   lists: make_wordlist.py --count 100000 (seed 13) + bot/data/allowed_words.txt")
    with tempfile.TemporaryDirectory() as tmp:
        common, full = make_list(Path(tmp), False), make_list(Path(tmp), True)
        report_list("100,000 entries (common syllables)", common, text, args)
        report_list("100,000 entries, --full-hangul (worst case)", full, text, args)
    sample = WordFilter.from_files(SAMPLE_BANNED, ALLOWED_PATH)
    checks = time_calls(lambda: sample.check(text), args.runs)
    feeds, chunk_scans, _ = bench_stream(sample, text, args.streams)
    print(
        f"-- shipped sample lists ({sample.lists.banned_count} banned), for comparison: "
        f"full check median {statistics.median(checks) * 1e3:.3f} ms, "
        f"p99 {pct(checks, 0.99) * 1e3:.3f} ms; stream feed median "
        f"{statistics.median(feeds) * 1e6:.2f} us "
        f"(bare scan {statistics.median(chunk_scans) * 1e6:.2f} us)"
    )
    print(f"   total bench time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
