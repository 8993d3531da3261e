"""Benchmark the draft stage against the local Cohere-compatible server (real SDK, real HTTP).

    .venv/bin/python tests/benchmarks/bench_draft.py                    # 500 images, 200 ms latency
    .venv/bin/python tests/benchmarks/bench_draft.py --images 200 --latency 0.1

The server runs in its own process and answers every request after a fixed latency, so the bound
for a client with C requests in flight is C / latency requests per second. Printed:
  * throughput at concurrency 1 (on a subset: it is slow by design) and at the configured
    concurrency, each as a ratio to its ideal C / latency — goal >= 90 % at concurrency 16 with the
    rate limiter off;
  * the requests per minute achieved with the client-side limiter set to a target — goal within 5 %.
Everything the stage does per request is included: prompt rendering, image read and base64, the SDK
call, JSON parsing and validation, and the committed ledger + draft write.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cohere

from data_tools.collect import CollectConfig, Collector
from data_tools.config import load_config
from data_tools.draft.backends import CohereBackend
from data_tools.draft.config import DraftConfig
from data_tools.draft.runner import DraftRunner
from data_tools.logs import setup_logging
from data_tools.sample import random_picture
from data_tools.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
KEY = "bench-key"


def make_workspace(folder: Path, count: int) -> Path:
    images = folder / "images_src"
    images.mkdir(parents=True)
    with (images / "metadata.jsonl").open("w") as handle:
        for i in range(count):
            random_picture(10_000 + i, (160, 120)).save(images / f"{i:04d}.png")
            handle.write(
                f'{{"file_name": "{i:04d}.png", "country": "MX", "language": "es-MX", "category": "food"}}\n'
            )
    ws_path = folder / "base_ws"
    with Workspace.open(ws_path) as ws:
        Collector(ws, CollectConfig(workers=2, neardup={"enabled": False})).run([str(images)])
    return ws_path


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.cohere_server", "--port", "0", "--latency", str(latency), "--api-key", KEY],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    url = process.stdout.readline().strip()  # type: ignore[union-attr]
    return process, url


def run_once(base: Path, url: str, limit: int, overrides: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        ws_path = Path(tmp) / "ws"
        shutil.copytree(base, ws_path)
        with Workspace.open(ws_path) as ws:
            config = load_config(DraftConfig, None, ["strategies.cultural=1", "strategies.generic=0",
                                                     "strategies.perturbed=0", *overrides])  # fmt: skip
            runner = DraftRunner(ws, config)
            jobs = runner.plan(limit)

            async def go() -> float:
                runner.backend = CohereBackend(
                    cohere.AsyncClientV2(api_key=KEY, base_url=url), config.cohere.model
                )
                run_id = ws.start_run("draft", {})
                started = time.perf_counter()
                summary = await runner.run(jobs, run_id)
                elapsed = time.perf_counter() - started
                await runner.backend.aclose()
                assert summary.done == len(jobs), summary.to_dict()
                return elapsed

            return asyncio.run(go()), len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serial-images", type=int, default=25, help="subset for the concurrency-1 run")
    parser.add_argument("--rpm", type=float, default=1200, help="target for the rate-limiter check")
    parser.add_argument("--rpm-requests", type=int, default=200)
    args = parser.parse_args()
    setup_logging(quiet=True)
    os.environ.pop("CO_API_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"collecting {args.images} generated images ...", flush=True)
        base = make_workspace(Path(tmp), args.images)
        server, url = start_server(args.latency)
        try:
            run_once(base, url, 4, [])  # warm-up: imports, connection pool
            serial_s, serial_n = run_once(base, url, args.serial_images, ["limits.concurrency=1"])
            parallel_s, parallel_n = run_once(
                base, url, args.images, [f"limits.concurrency={args.concurrency}"]
            )
            limited_s, limited_n = run_once(
                base, url, args.rpm_requests,
                [f"limits.concurrency={args.concurrency}", f"limits.requests_per_minute={args.rpm}"],
            )  # fmt: skip
        finally:
            server.terminate()
            server.wait()
    serial, parallel = serial_n / serial_s, parallel_n / parallel_s
    ideal_serial, ideal_parallel = 1 / args.latency, args.concurrency / args.latency
    # n requests paced at interval 60/rpm span (n - 1) intervals plus one latency.
    achieved_rpm = (limited_n - 1) * 60 / (limited_s - args.latency)
    print(f"\ndraft throughput, local server with {args.latency * 1000:.0f} ms latency per call")
    print(
        f"  concurrency 1   ({serial_n} calls)  {serial:6.2f} req/s   ideal {ideal_serial:6.2f}   {serial / ideal_serial:6.1%} of ideal"
    )
    print(f"  concurrency {args.concurrency:<2d} ({parallel_n} calls) {parallel:6.2f} req/s   ideal {ideal_parallel:6.2f}   "
          f"{parallel / ideal_parallel:6.1%} of ideal   goal >= 90 %: {'MET' if parallel / ideal_parallel >= 0.9 else 'NOT MET'}")  # fmt: skip
    deviation = achieved_rpm / args.rpm - 1
    print(
        f"  rate limiter at {args.rpm:.0f} rpm ({limited_n} calls): achieved {achieved_rpm:7.1f} rpm   "
        f"deviation {deviation:+.1%}   goal within 5 %: {'MET' if abs(deviation) <= 0.05 else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
