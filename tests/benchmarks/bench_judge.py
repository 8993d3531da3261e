"""Benchmark the judge against the local Cohere-compatible server (real SDK, real HTTP).

    .venv/bin/python tests/benchmarks/bench_judge.py                      # 250 images = 500 verdicts
    .venv/bin/python tests/benchmarks/bench_judge.py --images 100 --latency 0.1

The server runs in its own process and answers every request with a valid verdict after a fixed
latency, so the bound for a client with C requests in flight is C / latency requests per second.
Printed: judge throughput at concurrency 1 (a subset) and at 16 in flight, each as a share of its
ideal C / latency (goal >= 90 % at 16, as drafting reaches), and the draft stage's share measured
in the same run against the same server, and the bare SDK sending the judge's own requests with no
workspace at all (the peers: on a machine busy with other work everything falls short of the
ideal, and the peers show whether the judge adds overhead of its own). Everything the
judge does per verdict is included: image read and base64, the SDK call, the claim, the write-ahead
ledger row, JSON validation with pydantic and the committed verdict.
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

import cohere

from data_tools.config import load_config
from data_tools.draft.backends import CohereBackend
from data_tools.draft.config import DraftConfig
from data_tools.draft.runner import DraftRunner
from data_tools.logs import setup_logging
from data_tools.workspace import Generation, Workspace
from eval.judge import service
from eval.judge.config import JudgeConfig
from eval.judge.prompts import load_prompt
from eval.judge.runner import JudgeRunner

sys.path.insert(0, str(Path(__file__).parent))  # run as a script: its sibling benchmark is importable
import bench_draft

ROOT = Path(__file__).resolve().parents[2]
KEY = bench_draft.KEY


def make_workspace(folder: Path, count: int) -> Path:
    """``count`` collected images (the draft benchmark's set-up), each with a "base" and an "aligned" caption."""
    ws_path = bench_draft.make_workspace(folder, count, seed=20_000)
    with Workspace.open(ws_path) as ws:
        rows = []
        for n, image in enumerate(ws.images(status=None)):
            rows += [Generation("base", f"b{n}", image.id, f"Una foto {n}.", "m"),
                     Generation("aligned", f"a{n}", image.id, f"Unos tacos al pastor en México, foto {n}.", "m")]  # fmt: skip
        ws.add_generations(rows, None)
    return ws_path


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    return bench_draft.start_server(latency, "--responder", "tests.eval.judge.scripted:first_wins")


def run_once(base: Path, url: str, images: int, concurrency: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        ws_path = Path(tmp) / "ws"
        shutil.copytree(base, ws_path)
        with Workspace.open(ws_path) as ws:
            config = load_config(JudgeConfig, None, [f"limits.concurrency={concurrency}"])
            runner = JudgeRunner(ws, config)
            plans, _ = service.plan_win_rates(ws, runner, load_prompt("v1"), ["base", "aligned"], None)
            pairs = plans[("aligned", "base")][:images]
            jobs = service.jobs_of(pairs)

            async def go() -> float:
                runner.backend = CohereBackend(cohere.AsyncClientV2(api_key=KEY, base_url=url), config.model)
                run_id = ws.start_run("judge", {})
                started = time.perf_counter()
                summary = await runner.run(jobs, run_id)
                elapsed = time.perf_counter() - started
                await runner.backend.aclose()
                assert summary.done == len(jobs), summary.to_dict()
                return elapsed

            return asyncio.run(go()), len(jobs)


def bare_sdk(base: Path, url: str, images: int, concurrency: int) -> tuple[float, int]:
    """The peer: the judge's requests through the same SDK and backend, ``concurrency`` at a time, with no
    workspace (no claim, no reservation, no ledger, no verdict write, no validation)."""
    with Workspace.open(base) as ws:
        runner = JudgeRunner(ws, load_config(JudgeConfig, None, []))
        plans, _ = service.plan_win_rates(ws, runner, load_prompt("v1"), ["base", "aligned"], None)
        requests = [runner._request(job) for job in service.jobs_of(plans[("aligned", "base")][:images])]

    async def go() -> float:
        backend = CohereBackend(cohere.AsyncClientV2(api_key=KEY, base_url=url), runner.config.model)
        gate = asyncio.Semaphore(concurrency)

        async def one(request: object) -> None:
            async with gate:
                await backend.chat(request)  # type: ignore[arg-type]

        started = time.perf_counter()
        await asyncio.gather(*(one(r) for r in requests))
        elapsed = time.perf_counter() - started
        await backend.aclose()
        return elapsed

    return asyncio.run(go()), len(requests)


def run_draft(base: Path, url: str, images: int, concurrency: int) -> tuple[float, int]:
    """The peer: one cultural draft per image through the draft stage, same server, same concurrency."""
    with tempfile.TemporaryDirectory() as tmp:
        ws_path = Path(tmp) / "ws"
        shutil.copytree(base, ws_path)
        with Workspace.open(ws_path) as ws:
            config = load_config(DraftConfig, None, ["strategies.cultural=1", "strategies.generic=0",
                                                     "strategies.perturbed=0", f"limits.concurrency={concurrency}"])  # fmt: skip
            runner = DraftRunner(ws, config)
            jobs = runner.plan(images)

            async def go() -> float:
                runner.backend = CohereBackend(
                    cohere.AsyncClientV2(api_key=KEY, base_url=url), config.cohere.model
                )
                run_id = ws.start_run("draft", {})
                started = time.perf_counter()
                summary = await runner.run(jobs, run_id)
                elapsed = time.perf_counter() - started
                await runner.backend.aclose()
                # the server answers with verdicts, not captions: every draft is an invalid answer, re-asked
                # once; count every request the draft stage made
                return elapsed, summary.calls["sent"]  # type: ignore[return-value]

            return asyncio.run(go())  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=250, help="pairs judged (x2 orders = verdicts)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serial-images", type=int, default=10, help="subset for the concurrency-1 run")
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternated runs of each measure; medians printed"
    )
    args = parser.parse_args()
    setup_logging(quiet=True)
    os.environ.pop("CO_API_URL", None)
    rates: dict[str, list[float]] = {"judge": [], "draft": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"collecting {args.images} generated images ...", flush=True)
        base = make_workspace(Path(tmp), args.images)
        server, url = start_server(args.latency)
        try:
            run_once(base, url, 2, 4)  # warm-up: imports, connection pool
            serial_s, serial_n = run_once(base, url, args.serial_images, 1)
            for _ in range(args.repeats):  # alternated, so a change in the machine's load hits every measure
                for name, measure, count in (("judge", run_once, args.images), ("draft", run_draft, args.images // 2),
                                             ("bare", bare_sdk, args.images)):  # fmt: skip
                    seconds, requests = measure(base, url, count, args.concurrency)
                    rates[name].append(requests / seconds)
        finally:
            server.terminate()
            server.wait()
    ideal_serial, ideal_parallel = 1 / args.latency, args.concurrency / args.latency
    serial = serial_n / serial_s
    judge, draft, bare = (statistics.median(rates[k]) / ideal_parallel for k in ("judge", "draft", "bare"))
    print(f"\njudge throughput, local server with {args.latency * 1000:.0f} ms latency per verdict "
          f"(medians of {args.repeats} alternated runs; all runs: "
          + "; ".join(f"{k} " + ", ".join(f"{r / ideal_parallel:.0%}" for r in v) for k, v in rates.items()) + ")")  # fmt: skip
    print(f"  concurrency 1   ({serial_n} verdicts)  {serial:6.2f} req/s   ideal {ideal_serial:6.2f}   "
          f"{serial / ideal_serial:6.1%} of ideal")  # fmt: skip
    print(f"  concurrency {args.concurrency:<2d} ({2 * args.images} verdicts)  {judge * ideal_parallel:6.2f} req/s   "
          f"ideal {ideal_parallel:6.2f}   {judge:6.1%} of ideal   goal >= 90 %: {'MET' if judge >= 0.9 else 'NOT MET'}")  # fmt: skip
    print(
        f"  peer: draft stage at {args.concurrency} in flight  {draft:6.1%} of ideal   judge / draft = {judge / draft:5.2f}"
    )
    print(f"  peer: bare SDK, the judge's requests, no workspace  {bare:6.1%} of ideal   "
          f"judge / bare SDK = {judge / bare:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
