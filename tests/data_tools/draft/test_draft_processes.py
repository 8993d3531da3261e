"""Several ``mirada draft`` processes on one workspace, and ``kill -9`` mid-call, against one budget.

What a team really does: two teammates start drafting on the same workspace, or a laptop kills the
process while requests are in flight. The server (the real Cohere SDK talks to it over HTTP) is the
judge: it counts what was requested and what it billed, whatever the workspace believes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from data_tools.draft.config import DraftConfig
from tests.data_tools.draft.draft_helpers import API_KEY, FAST, draft_key
from tests.fakes.cohere_server import FakeCohereServer

ROOT = Path(__file__).resolve().parents[3]
CANDIDATES = 44


def server_spend(server: FakeCohereServer) -> float:
    """What the server billed (its ``billed_units``) at the configured price, answered or not."""
    price = DraftConfig().price()
    total = 0.0
    for request in server.chat_requests:
        if request.usage:
            billed = request.usage["billed_units"]
            total += (billed["input_tokens"] * price.input + billed["output_tokens"] * price.output) / 1e6
    return total


def waiting(server: FakeCohereServer, since: int) -> int:
    """Requests received after the first ``since`` that have no answer yet."""
    return sum(1 for r in server.chat_requests[since:] if r.responded_monotonic is None)


def draft_command(workspace: Path, *args: str) -> list[str]:
    settings = [item for pair in (("--set", o) for o in FAST) for item in pair]
    return [sys.executable, "-m", "data_tools.draft", "-w", str(workspace), "-q", *settings, *args]


def environment(server: FakeCohereServer, key: str = API_KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "CO_API_URL")}
    return {**env, "CO_API_KEY": key, "CO_API_URL": server.url}


def run_together(commands: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    processes = [
        subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    results = []
    for cmd, process in zip(commands, processes, strict=True):
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(cmd, process.returncode, out, err))
    return results


def test_two_processes_never_request_a_candidate_twice_and_share_the_budget(collected):
    budget = 0.03  # about half the candidates
    with FakeCohereServer(api_key=API_KEY, key_fn=draft_key, latency_s=0.15) as server:
        env = environment(server)
        cmd = draft_command(collected.root, "--budget-usd", str(budget), "--set", "limits.concurrency=4")
        for result in run_together([cmd, cmd], env):
            assert result.returncode == 0, result.stderr
        assert server_spend(server) <= budget  # the cap holds for both processes together
        done = len(collected.drafts(status="done"))
        assert 0 < done < CANDIDATES
        assert max(server.counts_by_key().values()) == 1  # no candidate was asked for by both

        # with room in the budget, two processes finish the work between them, still one request each
        cmd = draft_command(collected.root, "--budget-usd", "10", "--set", "limits.concurrency=4")
        results = run_together([cmd, cmd], env)
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        assert len(collected.drafts(status="done")) == CANDIDATES
        counts = server.counts_by_key()
        assert len(counts) == CANDIDATES and set(counts.values()) == {1}
        assert collected.claims() == {}  # every claim was released
        ledger = collected._query("SELECT status, COUNT(*) FROM api_calls GROUP BY status")
        assert {row[0]: row[1] for row in ledger} == {"ok": CANDIDATES}


def test_repeated_kill_mid_call_never_passes_the_budget(collected):
    budget = 0.10  # ~17 upper bounds of $0.006: each kill may strand 4 of them
    concurrency = 4
    with FakeCohereServer(api_key=API_KEY, key_fn=draft_key, latency_s=0.4) as server:
        env = environment(server)
        cmd = draft_command(
            collected.root, "--budget-usd", str(budget), "--set", f"limits.concurrency={concurrency}"
        )
        kills = 0
        for _ in range(5):
            before = len(server.chat_requests)
            process = subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.time() + 30
            # kill while requests are on the wire (the server holds each one for its latency)
            while time.time() < deadline and process.poll() is None and waiting(server, before) < 2:
                time.sleep(0.01)
            if process.poll() is None and waiting(server, before) >= 2:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
        assert kills >= 3
        time.sleep(0.5)  # the killed processes' requests finish (and are billed) server-side
        final = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        spend = collected.spend()
        assert server_spend(server) <= budget
        assert spend["cost_usd"] + spend["uncertain_usd"] <= budget + 1e-9
        statuses = {row[0] for row in collected._query("SELECT DISTINCT status FROM api_calls")}
        assert (
            "lost" in statuses and "reserved" not in statuses
        )  # killed calls reconciled at their upper bound


def test_an_endpoint_echoing_the_key_in_a_401_never_shows_it(collected):
    secret = "co-live-key-9f8e7d6c5b"
    with FakeCohereServer(key_fn=draft_key) as server:
        server.inject("401", times=None, message=f"invalid api token {secret}")
        result = subprocess.run(
            draft_command(collected.root), env=environment(server, secret), cwd=ROOT, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert server.chat_requests and all(r.api_key == secret for r in server.chat_requests)
    assert result.returncode == 2
    assert "rejected the credentials" in result.stderr and "Traceback" not in result.stderr
    assert secret not in result.stdout + result.stderr
    for path in collected.root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# -- the machinery, one rule at a time ----------------------------------------------------------


def dead_run(ws) -> int:
    """A run whose process has exited (a real pid, reaped), as ``kill -9`` leaves one."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    run_id = ws.start_run("draft", {})
    with ws.transaction() as db:
        db.execute("UPDATE runs SET pid = ? WHERE id = ?", (process.pid, run_id))
    return run_id


def test_claims_of_live_runs_hold_and_of_dead_or_silent_runs_are_taken_over(collected):
    live, mine = collected.start_run("draft", {}), collected.start_run("draft", {})
    assert collected.claim_draft("k1", live, ttl_s=60) == "claimed"
    assert collected.claim_draft("k1", mine, ttl_s=60) == "held"  # same machine, owner alive
    dead = dead_run(collected)
    assert collected.claim_draft("k2", dead, ttl_s=60) == "claimed"
    assert collected.claim_draft("k2", mine, ttl_s=60) == "claimed"  # its owner is gone
    remote = collected.start_run("draft", {})
    with collected.transaction() as db:  # another machine: only its heartbeat tells
        db.execute(
            "UPDATE runs SET host = 'laptop-2', heartbeat_at = ? WHERE id = ?", (time.time() - 300, remote)
        )
    assert collected.claim_draft("k3", remote, ttl_s=600) == "claimed"
    assert collected.claim_draft("k3", mine, ttl_s=600) == "held"
    assert collected.claim_draft("k3", mine, ttl_s=60) == "claimed"  # heartbeat older than the TTL
    collected.release_claims(mine)
    assert collected.claims() == {"k1": live}


def test_a_dead_process_reservation_counts_at_its_upper_bound_until_reconciled(collected):
    from data_tools.workspace import CallRecord

    dead = dead_run(collected)
    call = CallRecord(backend="cohere", model="m", status="reserved", cache_key="k", cost_upper_usd=0.04)
    assert collected.reserve_call(call, dead, budget_usd=0.05, ttl_s=60).call_id
    mine = collected.start_run("draft", {})
    # 0.04 stranded + 0.02 > 0.05: stop (not wait: that money may already be spent)
    refused = collected.reserve_call(call, mine, budget_usd=0.05, ttl_s=60)
    assert refused.call_id is None and not refused.wait
    assert collected.reconcile_lost_calls(ttl_s=60) == (1, 0.04)
    assert collected.spend()["uncertain_usd"] == 0.04
    assert collected.reserve_call(call, mine, budget_usd=0.05, ttl_s=60).call_id is None
    assert collected.reserve_call(call, mine, budget_usd=0.10, ttl_s=60).call_id


def test_a_later_failure_never_overwrites_a_paid_draft(collected):
    from data_tools.workspace import DraftRecord

    image = collected.images()[0].id
    fields = dict(cache_key="k", image_id=image, strategy="cultural", variant=0, backend="cohere", model="m",
                  prompt_version="v1", prompt_language="es-MX", prompt_sha256="x", params={})  # fmt: skip
    run = collected.start_run("draft", {})
    collected.save_draft(
        DraftRecord(**fields, status="done", caption="Tacos al pastor.", attempts=1, cost_usd=0.01), run
    )
    collected.save_draft(
        DraftRecord(**fields, status="failed", error="server_error", attempts=2, cost_usd=0.02), run
    )
    (kept,) = collected.drafts()
    assert (kept.status, kept.caption, kept.error) == ("done", "Tacos al pastor.", None)
    assert kept.attempts == 3 and abs(kept.cost_usd - 0.03) < 1e-12  # what was paid is still accounted


def test_candidates_held_by_a_process_that_dies_are_taken_over_in_the_same_run(collected):
    with FakeCohereServer(api_key=API_KEY, key_fn=draft_key, latency_s=0.3) as server:
        env = environment(server)
        first = subprocess.Popen(draft_command(collected.root, "--set", "limits.concurrency=1"), env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.time() + 30
        while time.time() < deadline and waiting(server, 0) < 1:
            time.sleep(0.01)
        second = subprocess.Popen(draft_command(collected.root, "--set", "limits.concurrency=4"), env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.time() + 60
        while time.time() < deadline and len(collected.runs("draft")) < 2:  # the second one has started
            time.sleep(0.02)
        time.sleep(0.5)  # it is drafting now, and has skipped what the first one holds
        assert second.poll() is None and first.poll() is None
        first.send_signal(signal.SIGKILL)
        first.wait()
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
    # the second process took over what the dead one held: nothing is left for a rerun
    assert "being drafted by another process" not in out, out
    assert len(collected.drafts(status="done")) == CANDIDATES
    assert collected.claims() == {}
