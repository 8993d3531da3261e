"""The draft command as users run it: environment keys, dry run, kill -9 and resume, other backends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_tools.draft.backends import LocalBackend
from tests.data_tools.draft.draft_helpers import API_KEY, FAST, draft_key
from tests.fakes.cohere_server import FakeCohereServer
from tests.fakes.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[3]
CANDIDATES = 44


def mirada(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "CO_API_URL")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "data_tools.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full_env, **kwargs)  # fmt: skip


def fast_args() -> list[str]:
    return [item for pair in (("--set", o) for o in FAST) for item in pair]


def test_dry_run_needs_no_key_and_sends_nothing(collected, server):
    result = mirada("draft", "-w", str(collected.root), "--dry-run", env={"CO_API_URL": server.url})
    assert result.returncode == 0, result.stderr
    assert (
        "candidates to draft" in result.stdout
        and "44" in result.stdout
        and "cost upper bound" in result.stdout
    )
    assert server.chat_requests == []


def test_missing_key_is_one_clear_line(collected):
    result = mirada("draft", "-w", str(collected.root))
    assert result.returncode == 2
    assert "set CO_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_cli_run_status_and_no_secret_anywhere(collected, server):
    env = {"CO_API_KEY": API_KEY, "CO_API_URL": server.url}
    result = mirada("draft", "-w", str(collected.root), *fast_args(), "--budget-usd", "5", env=env)
    assert result.returncode == 0, result.stderr
    assert "drafted now" in result.stdout and "cultural" in result.stdout
    status = json.loads(mirada("status", "-w", str(collected.root), "--json").stdout)
    assert status["drafts_by_strategy"] == {
        "cultural": {"done": 22},
        "generic": {"done": 11},
        "perturbed": {"done": 11},
    }
    assert status["spend"]["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in status["ledger"]))
    assert status["spend"]["cost_usd"] > 0
    for text in (result.stdout, result.stderr):
        assert API_KEY not in text
    for path in collected.root.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    assert all(r.api_key == API_KEY for r in server.chat_requests)  # it was really used


def test_wrong_key_stops_with_a_clear_message(collected, server):
    result = mirada(
        "draft", "-w", str(collected.root), env={"CO_API_KEY": "co-bad-key-123", "CO_API_URL": server.url}
    )
    assert result.returncode == 2
    assert (
        "rejected the credentials" in result.stderr and "co-bad-key-123" not in result.stderr + result.stdout
    )
    assert "Traceback" not in result.stderr


def test_sigkill_mid_run_then_resume_never_repeats_a_recorded_call(collected, tmp_path):
    concurrency = 6
    with FakeCohereServer(api_key=API_KEY, key_fn=draft_key, latency_s=0.2) as server:
        env = {
            **{k: v for k, v in os.environ.items() if k != "CO_API_URL"},
            "CO_API_KEY": API_KEY,
            "CO_API_URL": server.url,
        }
        cmd = [sys.executable, "-m", "data_tools.draft", "-w", str(collected.root), "-q", *fast_args(),
               "--set", f"limits.concurrency={concurrency}"]  # fmt: skip
        process = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline, recorded = time.time() + 60, 0
        while time.time() < deadline and process.poll() is None and recorded < 12:
            time.sleep(0.05)
            db = sqlite3.connect(collected.root / "mirada.db", timeout=5)
            recorded = db.execute("SELECT COUNT(*) FROM drafts WHERE status = 'done'").fetchone()[0]
            db.close()
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert 12 <= recorded < CANDIDATES
        done_before = {d.cache_key for d in collected.drafts(status="done")}
        subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True)
        drafts = collected.drafts(status="done")
        assert len(drafts) == CANDIDATES
        ok_calls = collected._query(
            "SELECT cache_key, COUNT(*) FROM api_calls WHERE status = 'ok' GROUP BY cache_key"
        )
        assert all(row[1] == 1 for row in ok_calls) and len(ok_calls) == CANDIDATES
        # the server saw at most the calls that were in flight at the kill twice, never a recorded one
        repeated = server.repeated_successes()
        assert sum(repeated.values()) - len(repeated) <= concurrency
        recorded_keys = {d.cache_key for d in drafts if d.cache_key in done_before}
        assert len(recorded_keys) == len(done_before)


def caption_answer(body: dict) -> str:
    """A valid draft caption; the request carries the image after the system turn."""
    assert body["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/")
    return json.dumps(
        {"caption": "Una foto de prueba.", "cultural_terms": [], "language": "es", "confidence": 0.5}
    )


def test_openai_compatible_backend(collected):
    server = OpenAIServer(caption_answer, usage=(300, 20), retry_after="0.1")
    try:
        result = mirada("draft", "-w", str(collected.root), "--backend", "openai", "--limit", "1", *fast_args(),
                        "--set", f"openai.base_url={server.url}", "--model", "my-vlm")  # fmt: skip
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert len(server.bodies) == 5  # one 429, then four candidates
    assert {b["model"] for b in server.bodies} == {"my-vlm"}
    drafts = collected.drafts(status="done")
    assert len(drafts) == 4 and all(
        d.caption == "Una foto de prueba." and d.model == "my-vlm" for d in drafts
    )
    assert collected.spend()["cost_usd"] == 0  # no price configured for a self-hosted model


def test_local_backend_with_a_transformers_model(collected, tiny_model):
    tiny_qwen = tiny_model("qwen2_5_vl")
    args = ["draft", "-w", str(collected.root), "--backend", "local", "--limit", "2", "--set", f"local.model={tiny_qwen}",
            "--set", "output=text", "--set", "max_tokens=12", "--set", "temperature=0"]  # fmt: skip
    result = mirada(*args)
    assert result.returncode == 0, result.stderr
    done = collected.drafts(status="done")
    failed = collected.drafts(status="failed")
    assert len(done) + len(failed) == 8 and len(done) >= 1
    assert all(d.backend == "local" and d.model == str(tiny_qwen) for d in done + failed)
    assert all(
        f.error and "invalid_output" in f.error for f in failed
    )  # a random model may emit nothing usable
    calls = collected._query("SELECT input_tokens, output_tokens, cost_usd FROM api_calls")
    assert all(c[0] > 0 and c[2] == 0 for c in calls)
    again = mirada(*args)
    assert "already drafted (cached, not sent)" in again.stdout


def test_local_backend_refuses_a_model_without_processor(tmp_path):
    import asyncio

    from data_tools.draft.backends import BackendError, ChatRequest

    (tmp_path / "m").mkdir()
    backend = LocalBackend(str(tmp_path / "m"))
    request = ChatRequest("s", "p", b"", "image/jpeg", "low", 0.0, 4, 0)
    with pytest.raises((BackendError, OSError, ValueError)):
        asyncio.run(backend.chat(request))
