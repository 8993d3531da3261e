"""Benchmark the collect stage against bare Pillow, and near-duplicate search against all pairs.

    .venv/bin/python tests/benchmarks/bench_collect.py            # defaults: 24 photos, 100 000 hashes
    .venv/bin/python tests/benchmarks/bench_collect.py --images 48 --hashes 200000

Part 1 writes N generated 12-megapixel JPEGs (4000x3000, photo-like noise so they compress like
photos) and measures, on the same files in the same run:
  * bound: a bare Pillow loop, open + full decode + resize to the stored size (what any collector
    must at least do); also shown with Pillow's draft() shortcut, the fastest bare-Pillow loop;
  * collect: the whole stage (read, hash, validate, decode, orient, resize, encode, pHash, write,
    commit) with one worker and with the configured workers.
Goal: collect >= 0.7x the bare-Pillow bound.

Part 2 times multi-index near-duplicate search on 100 000 64-bit hashes and compares it with the
all-pairs search timed on a subset and extrapolated by n^2. Hashes come in two kinds: uniform
random bits, and bits drawn with the per-bit frequencies of pHashes of generated pictures (real
pHash bits are skewed, which makes buckets larger). Goal: under 5 s for 100 000 hashes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from data_tools.collect import CollectConfig, Collector
from data_tools.config import load_config
from data_tools.logs import setup_logging
from data_tools.neardup import all_pairs_bruteforce, near_duplicate_pairs
from data_tools.workspace import Workspace


def make_photos(folder: Path, count: int, size: tuple[int, int] = (4000, 3000)) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    base = rng.integers(0, 256, size=(size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    smooth = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
    for i in range(count):
        noise = rng.integers(-12, 12, size=(size[1], size[0], 1), dtype=np.int16)
        pixels = np.clip(np.asarray(smooth, dtype=np.int16) + noise + i * 3, 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def bare_pillow(paths: list[Path], max_side: int, use_draft: bool) -> float:
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            scale = max_side / max(image.size)
            target = (round(image.width * scale), round(image.height * scale))
            if use_draft:
                image.draft("RGB", target)
            image.load()
            image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0 if use_draft else None)
    return time.perf_counter() - start


def run_collect(folder: Path, workers: int, max_side: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, Workspace.open(Path(tmp) / "ws") as ws:
        config = load_config(
            CollectConfig,
            None,
            [
                f"workers={workers}",
                f"images.max_side={max_side}",
                "source.defaults.language=es",
                "neardup.enabled=false",
            ],
        )
        start = time.perf_counter()
        summary = Collector(ws, config).run([str(folder)])
        elapsed = time.perf_counter() - start
        assert summary.new == len(list(folder.glob("*.jpg"))), summary.to_dict()
    return elapsed


def bench_collect(count: int, max_side: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        print(f"writing {count} 12-megapixel JPEGs ...", flush=True)
        paths = make_photos(folder, count)
        bare_pillow(paths[:2], max_side, False)  # warm the page cache and Pillow
        naive = count / bare_pillow(paths, max_side, use_draft=False)
        drafted = count / bare_pillow(paths, max_side, use_draft=True)
        one = count / run_collect(folder, 1, max_side)
        default_workers = CollectConfig().workers
        many = count / run_collect(folder, default_workers, max_side)
    print(f"\ncollect of {count} x 12 MP JPEGs -> longest side {max_side}")
    print(f"  bare Pillow open+decode+resize (bound)     {naive:7.2f} img/s")
    print(f"  bare Pillow with draft() (fastest bare)    {drafted:7.2f} img/s")
    print(
        f"  collect, 1 worker                          {one:7.2f} img/s   {one / naive:5.2f}x bound   {one / drafted:5.2f}x draft loop"
    )
    print(
        f"  collect, {default_workers} workers                          {many:7.2f} img/s   {many / naive:5.2f}x bound   {many / drafted:5.2f}x draft loop"
    )
    print(f"  goal >= 0.70x bound: {'MET' if one / naive >= 0.7 else 'NOT MET'} with 1 worker")
    return {"bound": naive, "draft": drafted, "one": one, "many": many}


def skewed_hashes(count: int, seed: int = 0) -> np.ndarray:
    """Hashes whose bits follow the per-bit frequencies of pHashes of generated pictures."""
    import imagehash

    from data_tools.sample import random_picture

    bits = np.array(
        [
            [int(c) for c in bin(int(str(imagehash.phash(random_picture(s, (128, 96)))), 16))[2:].zfill(64)]
            for s in range(400)
        ]
    )
    frequency = bits.mean(axis=0)
    rng = np.random.default_rng(seed)
    sampled = rng.random((count, 64)) < frequency
    weights = np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)
    return (sampled.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def bench_neardup(count: int, threshold: int, subset: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    results = {}
    print(f"\nnear-duplicate search, {count} hashes, threshold {threshold}")
    for name, hashes in (
        ("uniform bits", rng.integers(0, 2**63, size=count, dtype=np.uint64) << np.uint64(1)),
        ("pHash-like bits", skewed_hashes(count)),
    ):
        twins = rng.choice(count, size=count // 100, replace=False)
        hashes[twins] = hashes[twins - 1] ^ np.uint64(0b101)  # plant near twins at distance 2
        start = time.perf_counter()
        pairs = near_duplicate_pairs(hashes, threshold)
        fast = time.perf_counter() - start
        start = time.perf_counter()
        all_pairs_bruteforce(hashes[:subset], threshold)
        brute = (time.perf_counter() - start) * (count / subset) ** 2
        print(
            f"  {name:16s} multi-index {fast:6.2f} s   all-pairs (extrapolated from {subset}) {brute:8.1f} s   "
            f"speed-up {brute / fast:6.1f}x   pairs found {len(pairs)}   goal < 5 s: {'MET' if fast < 5 else 'NOT MET'}"
        )
        results[name] = fast
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--max-side", type=int, default=1536)
    parser.add_argument("--hashes", type=int, default=100_000)
    parser.add_argument("--threshold", type=int, default=6)
    parser.add_argument("--subset", type=int, default=5000)
    args = parser.parse_args()
    setup_logging(quiet=True)
    bench_collect(args.images, args.max_side)
    bench_neardup(args.hashes, args.threshold, args.subset)


if __name__ == "__main__":
    main()
