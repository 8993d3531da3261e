"""``mirada judge`` as users run it: calibrate then judge, cache, dry run, budget, kill -9, messages."""

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

from data_tools.workspace import CallRecord
from tests.eval.judge.conftest import API_KEY
from tests.eval.judge.scripted import ScriptedJudge
from tests.fakes.cohere_server import FakeCohereServer

ROOT = Path(__file__).resolve().parents[3]
FAST = ["--set", "limits.backoff_s=0.01", "--set", "limits.timeout_s=10", "--set", "bootstrap_resamples=100"]


def mirada(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "CO_API_URL")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "data_tools.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full_env, timeout=300)  # fmt: skip


@pytest.fixture
def judge_server(reviewed):
    ws, truth = reviewed
    with FakeCohereServer(
        api_key=API_KEY, responder=ScriptedJudge(truth["better"], agreement=0.8, bias=0.2)
    ) as s:
        yield ws, s, {"CO_API_KEY": API_KEY, "CO_API_URL": s.url}


def test_calibrate_then_judge_uses_the_calibrated_prompt_and_never_pays_twice(judge_server):
    ws, server, env = judge_server
    result = mirada(
        "judge", "calibrate", "-w", str(ws.root), "--judge-prompt", "v1,v2", "--limit", "8", *FAST, env=env
    )
    assert result.returncode == 0, result.stderr
    calibration = json.loads((ws.root / "exports/eval/judge-calibration/calibration.json").read_text())
    assert set(calibration["prompts"]) == {"v1", "v2"} and calibration["chosen"] in {"v1", "v2"}
    assert (ws.root / "exports/eval/judge-calibration/calibration.png").stat().st_size > 1000
    assert "below human ceiling" in result.stdout  # the planted judge agrees less than the annotators
    chosen = ws.calibrated_judge()
    assert chosen is not None and chosen["prompt_version"] == calibration["chosen"] and chosen["chosen"]
    other = ws.calibrated_judge(prompt_version=({"v1", "v2"} - {chosen["prompt_version"]}).pop())
    assert other is not None and not other["chosen"]  # the other prompt's figures stay available
    calls = server.count()
    assert calls == 2 * 2 * calibration["prompts"]["v1"]["pairs"]  # 2 prompts x both orders

    result = mirada("judge", "-w", str(ws.root), "--systems", "base,aligned", *FAST, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads((ws.root / "exports/eval/test/judge.json").read_text())
    assert report["judge"]["prompt_version"] == chosen["prompt_version"] and report["judge"]["calibration"]
    assert (
        report["judge"]["below_human_ceiling"] is True
        and "BELOW the human ceiling" in report["judge"]["trust"]
    )
    overall = report["win_rates"]["aligned vs base"]["overall"]
    assert overall["n"] == 30 and overall["wins"] + overall["ties"] + overall["losses"] == 30
    assert "BELOW the human ceiling" in (ws.root / "exports/eval/test/judge.md").read_text()
    assert (ws.root / "exports/eval/test/judge_win_rates.png").exists()
    assert server.count() == calls + 60

    again = mirada("judge", "-w", str(ws.root), "--systems", "base,aligned", *FAST, env=env)
    assert again.returncode == 0 and "sent 0" in again.stdout and server.count() == calls + 60
    for text in (result.stdout, result.stderr, again.stdout):
        assert API_KEY not in text
    for path in ws.root.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    assert all(r.api_key == API_KEY for r in server.chat_requests)  # the key was really used


def test_dry_run_and_rubric_mode(judge_server):
    ws, server, env = judge_server
    dry = mirada("judge", "-w", str(ws.root), "--systems", "base,aligned", "--dry-run")  # no key needed
    assert dry.returncode == 0 and "cost upper bound" in dry.stdout and "uncalibrated" not in dry.stdout
    assert "not calibrated" in dry.stdout and server.count() == 0
    rubric = mirada(
        "judge", "-w", str(ws.root), "--systems", "aligned", "--mode", "rubric", "--name", "r", *FAST, env=env
    )
    assert rubric.returncode == 0, rubric.stderr
    scores = json.loads((ws.root / "exports/eval/r/judge.json").read_text())["rubric"]["aligned"]
    assert scores["n"] == 30 and scores["criteria"]["respect"]["mean"] == 4.0


def test_budget_cap_counts_drafting_spend_then_resumes(judge_server):
    ws, server, env = judge_server
    run_id = ws.start_run("draft", {})
    ws.record_call(
        CallRecord(backend="cohere", model="command-a-vision-07-2025", status="ok", cost_usd=0.5), run_id
    )
    capped = mirada(
        "judge", "-w", str(ws.root), "--systems", "base,aligned", "--budget-usd", "0.52", *FAST, env=env
    )
    assert capped.returncode == 0, capped.stderr
    assert "stopped: the next verdict could pass the budget" in capped.stdout
    assert ws.spend()["cost_usd"] <= 0.52
    done = sum(1 for v in ws.verdicts().values() if v.status == "done")
    assert 0 < done < 60 and server.count() == done
    rest = mirada(
        "judge", "-w", str(ws.root), "--systems", "base,aligned", "--budget-usd", "5", *FAST, env=env
    )
    assert rest.returncode == 0 and server.count() == 60 and not server.repeated_successes()


def test_sigkill_mid_run_then_resume_never_repeats_a_recorded_verdict(judge_server):
    ws, server, env = judge_server
    server.latency_s = 0.2
    concurrency = 4
    cmd = [sys.executable, "-m", "eval.judge", "-w", str(ws.root), "-q", "--systems", "base,aligned", *FAST,
           "--set", f"limits.concurrency={concurrency}"]  # fmt: skip
    full_env = {**os.environ, **env}
    process = subprocess.Popen(
        cmd, env=full_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline, recorded = time.time() + 90, 0
    while time.time() < deadline and process.poll() is None and recorded < 10:
        time.sleep(0.05)
        db = sqlite3.connect(ws.root / "mirada.db", timeout=5)
        recorded = db.execute("SELECT COUNT(*) FROM judge_verdicts WHERE status = 'done'").fetchone()[0]
        db.close()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 10 <= recorded < 60
    before = {k for k, v in ws.verdicts().items() if v.status == "done"}
    server.latency_s = 0.0
    subprocess.run(cmd, env=full_env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    verdicts = ws.verdicts()
    assert sum(v.status == "done" for v in verdicts.values()) == 60 and before <= set(verdicts)
    ok = ws._query("SELECT cache_key, COUNT(*) FROM api_calls WHERE status = 'ok' GROUP BY cache_key")
    assert len(ok) == 60 and all(row[1] == 1 for row in ok)
    repeated = server.repeated_successes()  # only answers in flight at the kill were asked again
    assert sum(repeated.values()) - len(repeated) <= concurrency


def test_inputs_the_judge_cannot_use_are_one_line_errors(judge_server, tmp_path, capsys, monkeypatch):
    from data_tools.workspace import Workspace
    from eval.judge.cli import main

    ws, server, env = judge_server
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def run(*args: str) -> tuple[int, str]:
        code = main(list(args), prog="mirada judge")
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return code, err

    code, err = run("-w", str(ws.root), "--systems", "aligned")
    assert code == 2 and "--mode rubric" in err
    Workspace.open(tmp_path / "empty").close()
    code, err = run("calibrate", "-w", str(tmp_path / "empty"))
    assert code == 2 and "no reviewed images" in err
    code, err = run("-w", str(ws.root), "--systems", "base,aligned", "--judge-prompt", "v7")
    assert code == 2 and "no judge prompt 'v7'" in err
    code, err = run("-w", str(tmp_path / "missing"), "--systems", "base,aligned")
    assert code == 2
    assert server.count() == 0


def test_eval_report_and_model_card_carry_the_judge_whichever_stage_runs_last(judge_server, tmp_path):
    """eval before the judge shows the calibration; judge --card then adds win rates beside the agreement;
    a later eval keeps them. Every figure is checked against the judge's own JSON."""
    from eval.card import END as EVAL_END
    from eval.cli import run_eval
    from eval.config import EvalConfig
    from eval.judge.section import START
    from tests.eval.builders import train_card

    ws, _, env = judge_server
    run_dir = tmp_path / "run"
    train_card(run_dir)
    settings = EvalConfig.model_validate(
        {"bootstrap": {"resamples": 50}, "charts": False, "min_group_size": 3}
    )
    calibrated = mirada(
        "judge", "calibrate", "-w", str(ws.root), "--judge-prompt", "v1", "--limit", "8", *FAST, env=env
    )
    assert calibrated.returncode == 0, calibrated.stderr
    calibration = json.loads((ws.root / "exports/eval/judge-calibration/calibration.json").read_text())

    folder, report = run_eval(ws, settings, card=run_dir, card_system="aligned")
    assert report["judge"] == {"results": None, "calibration": calibration}
    markdown = (folder / "report.md").read_text()
    v1 = calibration["prompts"]["v1"]
    acc = v1["metrics"]["accuracy_with_ties"]
    assert (
        f"| v1 | {v1['judged_pairs']}/{v1['pairs']} | {acc['value']:.0%} [{acc['ci'][0]:.0%}, {acc['ci'][1]:.0%}]"
        in markdown
    )
    assert (
        "chosen; below human ceiling |" in markdown and "(../judge-calibration/calibration.png)" in markdown
    )
    assert (
        START not in (run_dir / "README.md").read_text()
    )  # no win rates yet: the card says nothing of a judge

    judged = mirada(
        "judge", "-w", str(ws.root), "--systems", "base,aligned", "--card", str(run_dir), *FAST, env=env
    )
    assert judge_ok(judged) and "updated: exports/eval/test/report.md" in judged.stdout
    results = json.loads((folder / "judge.json").read_text())
    assert json.loads((folder / "report.json").read_text())["judge"] == {
        "results": results,
        "calibration": calibration,
    }
    overall = results["win_rates"]["aligned vs base"]["overall"]
    m = results["judge"]["calibration"]["metrics"]
    row = (f"| aligned vs base | {overall['n']} | {overall['win_rate']:.0%} [{overall['win_rate_ci'][0]:.0%}, "
           f"{overall['win_rate_ci'][1]:.0%}] |")  # fmt: skip
    agreement = (f"| {m['accuracy_with_ties']['value']:.0%} | {m['judge_alpha']['value']:.2f} | "
                 f"{m['human_alpha']['value']:.2f} | below human ceiling |")  # fmt: skip
    markdown = (folder / "report.md").read_text()
    line = next(x for x in markdown.splitlines() if x.startswith(row))
    assert line.endswith(agreement)  # the judge's agreement with humans next to its win rate, and its label
    assert "**Below the human ceiling**" in markdown and markdown.count(START) == 1
    assert markdown.index(START) < markdown.index("## Caveats") and "by country" in markdown
    card = (run_dir / "README.md").read_text()
    assert card.count(START) == 1 and card.index(EVAL_END) < card.index(START)
    assert next(x for x in card.splitlines() if x.startswith(row)).endswith(agreement)
    assert "by country" not in card and str(tmp_path) not in card

    settings.bootstrap.seed = 1  # eval again: the judge's files and sections survive the rewrite
    folder, report = run_eval(ws, settings, card=run_dir, card_system="aligned")
    assert report["judge"]["results"] == results
    assert all((folder / f).is_file() for f in ("judge.json", "judge.md", "judge_win_rates.png"))
    again = (run_dir / "README.md").read_text()
    assert again.count(START) == 1 and row in again and row in (folder / "report.md").read_text()


def judge_ok(result: subprocess.CompletedProcess) -> bool:
    assert result.returncode == 0, result.stderr
    return True


def test_judge_card_without_a_readme_is_refused_before_any_call(judge_server, tmp_path):
    ws, server, env = judge_server
    result = mirada(
        "judge", "-w", str(ws.root), "--systems", "base,aligned", "--card", str(tmp_path), env=env
    )
    assert result.returncode == 2 and "no README.md there" in result.stderr and server.count() == 0
