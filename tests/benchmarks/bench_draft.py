"""Benchmark the draft stage against the local Cohere-compatible server (real SDK, real HTTP).

    .venv/bin/python tests/benchmarks/bench_draft.py                    # 500 images, 200 ms latency
    .venv/bin/python tests/benchmarks/bench_draft.py --images 200 --latency 0.1

The server runs in its own process and answers every request after a fixed latency, so the bound
for a client with C requests in flight is C / latency requests per second. Printed:
  * throughput at concurrency 1 (on a subset: it is slow by design) and at the configured
    concurrency, each as a ratio to its ideal C / latency — goal >= 90 % at concurrency 16 with the
    rate limiter off;
  * the requests per minute achieved with the client-side limiter set to a target — goal within 5 %;
  * two processes drafting one workspace together (claims in the database keep them off each
    other's candidates) against one process alone on the same work, measured in the same run —
    goal: together no slower than one (ratio of wall times <= 1.0), and no candidate requested twice.
Everything the stage does per request is included: prompt rendering, image read and base64, the SDK
call, JSON parsing and validation, the claim, the write-ahead reservation and the committed ledger +
draft write (three short SQLite transactions per candidate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def make_workspace(folder: Path, count: int, seed: int = 10_000) -> Path:
    """``count`` collected generated pictures (``seed`` onwards) in ``folder/base_ws``; the judge's bench reuses it."""
    images = folder / "images_src"
    images.mkdir(parents=True)
    with (images / "metadata.jsonl").open("w") as handle:
        for i in range(count):
            random_picture(seed + i, (160, 120)).save(images / f"{i:04d}.png")
            handle.write(
                f'{{"file_name": "{i:04d}.png", "country": "MX", "language": "es-MX", "category": "food"}}\n'
            )
    ws_path = folder / "base_ws"
    with Workspace.open(ws_path) as ws:
        Collector(ws, CollectConfig(workers=2, neardup={"enabled": False})).run([str(images)])
    return ws_path


def start_server(latency: float, *extra: str) -> tuple[subprocess.Popen, str]:
    """The local Cohere-compatible server in its own process (``extra``: more of its options); returns its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.cohere_server", "--port", "0", "--latency", str(latency), "--api-key", KEY,
         *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    url = process.stdout.readline().strip()  # type: ignore[union-attr]
    return process, url


def run_once(base: Path, url: str, limit: int, overrides: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        ws_path = Path(tmp) / "ws"
        shutil.copytree(base, ws_path)
        with Workspace.open(ws_path) as ws:
            runner, jobs = plan(ws, limit, overrides)
            elapsed = draft(ws, runner, jobs, url)
        return elapsed, len(jobs)


def plan(ws: Workspace, limit: int | None, overrides: list[str]) -> tuple[DraftRunner, list]:
    config = load_config(DraftConfig, None, ["strategies.cultural=1", "strategies.generic=0",
                                             "strategies.perturbed=0", *overrides])  # fmt: skip
    runner = DraftRunner(ws, config)
    return runner, runner.plan(limit)


def draft(ws: Workspace, runner: DraftRunner, jobs: list, url: str, *, all_done: bool = True) -> float:
    """Seconds the runner takes to draft ``jobs`` (planning excluded: it is the same with or without claims)."""

    async def go() -> float:
        runner.backend = CohereBackend(
            cohere.AsyncClientV2(api_key=KEY, base_url=url), runner.config.cohere.model
        )
        run_id = ws.start_run("draft", {})
        started = time.perf_counter()
        summary = await runner.run(jobs, run_id)
        elapsed = time.perf_counter() - started
        await runner.backend.aclose()
        if all_done:
            assert summary.done == len(jobs), summary.to_dict()
        return elapsed

    return asyncio.run(go())


def bare_sdk(base: Path, url: str, limit: int, concurrency: int) -> tuple[float, int]:
    """The peer: the same requests through the same SDK and backend, ``concurrency`` at a time, with no
    workspace at all (no claim, no reservation, no ledger, no draft write, no parsing)."""
    with Workspace.open(base) as ws:
        runner, jobs = plan(ws, limit, [])
        requests = [runner._request(job) for job in jobs]

    async def go() -> float:
        backend = CohereBackend(cohere.AsyncClientV2(api_key=KEY, base_url=url), runner.config.cohere.model)
        gate = asyncio.Semaphore(concurrency)

        async def one(request: Any) -> None:
            async with gate:
                await backend.chat(request)

        started = time.perf_counter()
        await asyncio.gather(*(one(r) for r in requests))
        elapsed = time.perf_counter() - started
        await backend.aclose()
        return elapsed

    return asyncio.run(go()), len(requests)


def worker(ws_path: str, url: str, concurrency: int) -> None:
    """A drafting process for the two-process measure: plans, says ready, drafts on 'go', says done."""
    setup_logging(quiet=True)
    with Workspace.open(ws_path) as ws:
        runner, jobs = plan(ws, None, [f"limits.concurrency={concurrency}"])
        # The SDK imports much of itself on first use: do that before the clock starts, as run_once's warm-up does.
        cohere.ClientV2(api_key=KEY, base_url=url).chat(
            model=runner.config.cohere.model, messages=[{"role": "user", "content": "warm-up"}]
        )
        print("ready", flush=True)
        sys.stdin.readline()
        draft(ws, runner, jobs, url, all_done=False)
        print("done", flush=True)


def processes_together(base: Path, url: str, processes: int, concurrency: int) -> float:
    """Seconds from 'go' until ``processes`` drafting processes have drafted one workspace together."""
    with tempfile.TemporaryDirectory() as tmp:
        ws_path = Path(tmp) / "ws"
        shutil.copytree(base, ws_path)
        workers = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(ws_path), url, str(concurrency)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            for _ in range(processes)
        ]  # fmt: skip
        for process in workers:
            assert process.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
        started = time.perf_counter()
        for process in workers:
            process.stdin.write("go\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
        for process in workers:
            assert process.stdout.readline().strip() == "done"  # type: ignore[union-attr]
        elapsed = time.perf_counter() - started
        for process in workers:
            process.wait()
        with Workspace.open(ws_path) as ws:
            done = len(ws.drafts(status="done"))
            repeated = ws._query(
                "SELECT COUNT(*) - COUNT(DISTINCT cache_key) FROM api_calls WHERE status = 'ok'"
            )[0][0]
            assert done == len(ws.images(status="ok")) and repeated == 0, (done, repeated)
        return elapsed


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serial-images", type=int, default=25, help="subset for the concurrency-1 run")
    parser.add_argument("--rpm", type=float, default=1200, help="target for the rate-limiter check")
    parser.add_argument("--rpm-requests", type=int, default=200)
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternated one- and two-process runs (median)"
    )
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
            mirada_runs, bare_runs = [], []
            for _ in range(args.repeats):  # alternated with the bare-SDK peer, so load changes hit both
                mirada_runs.append(
                    run_once(base, url, args.images, [f"limits.concurrency={args.concurrency}"])
                )
                bare_runs.append(bare_sdk(base, url, args.images, args.concurrency))
            parallel_s, parallel_n = statistics.median(r[0] for r in mirada_runs), mirada_runs[0][1]
            bare_s, bare_n = statistics.median(r[0] for r in bare_runs), bare_runs[0][1]
            limited_s, limited_n = run_once(
                base, url, args.rpm_requests,
                [f"limits.concurrency={args.concurrency}", f"limits.requests_per_minute={args.rpm}"],
            )  # fmt: skip
            ones, twos = [], []
            for _ in range(args.repeats):  # alternated, so a load spike on a shared machine hits both
                ones.append(processes_together(base, url, 1, args.concurrency))
                twos.append(processes_together(base, url, 2, args.concurrency))
            one_s, two_s = statistics.median(ones), statistics.median(twos)
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
    print(f"  concurrency {args.concurrency:<2d} ({parallel_n} calls, median of {args.repeats}) {parallel:6.2f} req/s   ideal {ideal_parallel:6.2f}   "
          f"{parallel / ideal_parallel:6.1%} of ideal   goal >= 90 %: {'MET' if parallel / ideal_parallel >= 0.9 else 'NOT MET'}")  # fmt: skip
    bare = bare_n / bare_s
    print(f"  bare SDK, no workspace ({bare_n} calls, median of {args.repeats}) {bare:6.2f} req/s   Mirada with claims + write-ahead ledger "
          f"{parallel / bare:6.1%} of it (peer in the same run; the CPU this machine leaves sets both)")  # fmt: skip
    deviation = achieved_rpm / args.rpm - 1
    print(
        f"  rate limiter at {args.rpm:.0f} rpm ({limited_n} calls): achieved {achieved_rpm:7.1f} rpm   "
        f"deviation {deviation:+.1%}   goal within 5 %: {'MET' if abs(deviation) <= 0.05 else 'NOT MET'}"
    )
    print(
        f"  one workspace, {args.images} candidates, concurrency {args.concurrency} per process, median of "
        f"{args.repeats}: one process {one_s:5.2f} s, two processes together {two_s:5.2f} s   ratio {two_s / one_s:.2f}   "
        f"goal <= 1.00: {'MET' if two_s <= one_s else 'NOT MET'}   (no candidate requested twice: checked)"
    )


if __name__ == "__main__":
    main()
