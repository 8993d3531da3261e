"""The judge through the draft runner against the local Cohere-compatible server (real SDK).

A scripted judge with a planted agreement rate and position bias must be measured as planted;
both-order judging must remove the bias from win rates; bad answers are re-asked, billed and
reported; inputs the judge cannot work with give one clear message.
"""

from __future__ import annotations

import pytest

from eval.judge import service
from eval.judge.prompts import load_prompt
from eval.judge.runner import JudgeRunner
from tests.eval.judge.conftest import API_KEY, judge_config, run_jobs
from tests.eval.judge.scripted import ScriptedJudge
from tests.fakes.cohere_server import FakeCohereServer

AGREEMENT, BIAS = 0.8, 0.2


def calibrate(ws, judge: ScriptedJudge, resamples: int = 300, limit: int | None = None):
    with FakeCohereServer(api_key=API_KEY, responder=judge) as server:
        runner = JudgeRunner(ws, judge_config())
        plan = service.plan_calibration(ws, runner, [load_prompt("v1")], limit)
        summary = run_jobs(ws, runner, [j for p in plan.pairs.values() for j in service.jobs_of(p)], server)
        results = service.calibration_results(ws, plan, n_resamples=resamples, confidence=0.95)
    return plan, summary, results["v1"], server


def planted_kappa(units) -> float:
    """κ a judge with AGREEMENT and BIAS has against these human labels (no human ties here)."""
    left = sum(u.human == 1 for u in units) / len(units)
    right = 1 - left
    p_left = (1 - BIAS) * (AGREEMENT * left + (1 - AGREEMENT) * right)
    p_right = (1 - BIAS) * (AGREEMENT * right + (1 - AGREEMENT) * left)
    observed = AGREEMENT * (1 - BIAS)
    expected = left * p_left + right * p_right
    return (observed - expected) / (1 - expected)


def inside(metric: dict, value: float) -> bool:
    low, high = metric["ci"]
    return low <= value <= high


def test_planted_agreement_kappa_and_position_bias_are_measured(reviewed):
    ws, truth = reviewed
    plan, summary, result, server = calibrate(
        ws, ScriptedJudge(truth["better"], agreement=AGREEMENT, bias=BIAS)
    )
    assert (
        summary.done == 2 * len(plan.units) and server.count() == summary.done
    )  # both orders, nothing twice
    m = result["metrics"]
    assert result["human_tie_rate"] == 0
    assert inside(m["accuracy_without_ties"], AGREEMENT)
    assert inside(m["accuracy_with_ties"], AGREEMENT * (1 - BIAS))
    assert inside(m["position_consistency"], 1 - BIAS)
    assert inside(m["cohen_kappa"], planted_kappa(plan.units))
    # a perfect judge would have shown the annotators' own level; this one is below it, and says so
    assert m["human_alpha"]["value"] > m["judge_alpha"]["value"] and result["below_human_ceiling"] is True
    assert any("below the human ceiling" in w for w in result["warnings"])
    assert set(result["judge_alpha_per_annotator"]) == {"ana", "bruno", "carla"}


def test_a_judge_that_agrees_and_has_no_bias_reaches_the_humans(reviewed):
    ws, truth = reviewed
    _, _, result, _ = calibrate(ws, ScriptedJudge(truth["better"]), resamples=50, limit=10)
    m = result["metrics"]
    assert m["accuracy_with_ties"]["value"] == 1.0 and m["position_consistency"]["value"] == 1.0
    assert m["cohen_kappa"]["value"] == pytest.approx(1.0) and m["kendall_tau"]["value"] > 0.8


def test_both_orders_remove_the_planted_position_bias_from_win_rates(reviewed):
    ws, truth = reviewed
    judge = ScriptedJudge(truth["better"], bias=0.3, seed="w")
    with FakeCohereServer(api_key=API_KEY, responder=judge) as server:
        runner = JudgeRunner(ws, judge_config())
        plans, where = service.plan_win_rates(ws, runner, load_prompt("v1"), ["base", "aligned"], "test")
        run_jobs(ws, runner, [j for p in plans.values() for j in service.jobs_of(p)], server)
    assert (
        where == "test split"
        and list(plans) == [("aligned", "base")]
        and len(plans[("aligned", "base")]) == 30
    )
    result = service.win_rate_results(ws, plans, ["country"], 0.95)["aligned vs base"]
    pairs = plans[("aligned", "base")]
    truly_better = [truth["aligned_better"][p.image.id] for p in pairs]
    overall, first = result["overall"], result["first_order_only"]
    # both orders: a biased pair is a tie, the others go to the truly better caption
    unbiased_wins = sum(
        better and not judge.is_biased(*captions)
        for better, captions in zip(truly_better, _captions(ws, pairs), strict=True)
    )
    n_biased = sum(judge.is_biased(*c) for c in _captions(ws, pairs))
    assert overall["wins"] == unbiased_wins and overall["ties"] == n_biased
    # the first order alone (aligned always shown first) credits every biased pair to aligned
    assert first["wins"] == unbiased_wins + n_biased and n_biased > 0
    assert result["position_consistency"] == pytest.approx(1 - n_biased / 30)
    assert set(result["by_country"]) == {"MX", "PE", "ES"}
    assert sum(g["n"] for g in result["by_country"].values()) == 30


def _captions(ws, pairs) -> list[tuple[str, str]]:
    rows = {(r["image_id"], r["system"]): r["caption"] for r in ws.generations(["base", "aligned"])}
    return [(rows[(p.image.id, "aligned")], rows[(p.image.id, "base")]) for p in pairs]


def test_invalid_json_is_reasked_billed_and_then_reported(reviewed):
    ws, truth = reviewed
    with FakeCohereServer(
        api_key=API_KEY, responder=ScriptedJudge(truth["better"], style="fenced")
    ) as server:
        runner = JudgeRunner(ws, judge_config("limits.max_invalid_outputs=1"))
        plans, _ = service.plan_win_rates(ws, runner, load_prompt("v2"), ["base", "aligned"], "test")
        jobs = [j for p in plans.values() for j in service.jobs_of(p)]
        server.inject("invalid_caption", times=3, message="The first caption is better, clearly.")
        summary = run_jobs(ws, runner, jobs, server)
        # each bad answer is asked again, once: a job that draws two bad answers in a row fails after
        # its one re-ask, so it costs 2 calls, not 3 (which job draws which answer depends on timing)
        out_of_reasks = len(jobs) - summary.done
        assert summary.calls["invalid_output"] == 3 and 0 <= out_of_reasks <= 1
        assert server.count() == len(jobs) + 3 - out_of_reasks
        ledger = ws.ledger_summary()
        assert (
            sum(r["calls"] for r in ledger if r["status"] == "invalid_output") == 3
        )  # bad answers are billed too
    with FakeCohereServer(
        api_key=API_KEY, responder=ScriptedJudge(truth["better"], style="malformed")
    ) as server:
        runner = JudgeRunner(ws, judge_config("limits.max_invalid_outputs=1"))
        plans, _ = service.plan_win_rates(ws, runner, load_prompt("v1"), ["base", "aligned"], "test")
        summary = run_jobs(ws, runner, [j for p in plans.values() for j in service.jobs_of(p)], server)
        assert summary.done == 0 and summary.failures == {"invalid_output": 60}
        result = service.win_rate_results(ws, plans, ["country"], 0.95)["aligned vs base"]
        assert result["judged"] == 0 and result["failed_verdicts"] == {"invalid_output": 60}


def test_a_judge_that_always_says_tie_is_labelled(reviewed):
    ws, truth = reviewed
    _, _, result, _ = calibrate(ws, ScriptedJudge(truth["better"], style="tie"), resamples=20, limit=6)
    assert result["judge_tie_rate"] == 1.0 and result["metrics"]["accuracy_without_ties"]["value"] is None
    assert any("called every pair a tie" in w for w in result["warnings"])


def test_inputs_the_judge_cannot_use_give_one_clear_message(reviewed, tmp_path):
    ws, _ = reviewed
    runner = JudgeRunner(ws, judge_config())
    with pytest.raises(service.JudgeError, match=r"got only 'aligned'.*--mode rubric"):
        service.check_systems(ws, ["aligned"], "pairwise")
    service.check_systems(ws, ["aligned"], "rubric")  # one system is fine for rubric scores
    with pytest.raises(
        service.JudgeError, match="no generated captions for dpo; systems in this workspace: aligned, base"
    ):
        service.check_systems(ws, ["base", "dpo"], "pairwise")
    from data_tools.workspace import Workspace

    with (
        Workspace.open(tmp_path / "empty") as empty,
        pytest.raises(service.JudgeError, match="no reviewed images"),
    ):
        service.plan_calibration(empty, JudgeRunner(empty, judge_config()), [load_prompt("v1")])
    with pytest.raises(service.JudgeError, match="no image of the validation split"):
        service.plan_win_rates(ws, runner, load_prompt("v1"), ["base", "aligned"], "validation")


@pytest.mark.slow
def test_local_backend_judges_with_a_transformers_model_at_no_cost(reviewed, tiny_model):
    """The local backend is drafting's (same factory): a random tiny VLM answers no valid JSON, which is
    re-asked, recorded per verdict at zero cost, and reported instead of guessed."""
    import asyncio

    from data_tools.draft.cli import make_backend

    ws, _ = reviewed
    config = judge_config("backend=local", f"local.model={tiny_model('qwen2_5_vl')}", "max_tokens=16",
                          "limits.max_invalid_outputs=1")  # fmt: skip
    runner = JudgeRunner(ws, config)
    plans, _ = service.plan_win_rates(ws, runner, load_prompt("v1"), ["base", "aligned"], "test")
    pairs = {("aligned", "base"): plans[("aligned", "base")][:1]}
    jobs = service.jobs_of(pairs[("aligned", "base")])
    runner.backend = make_backend(config)

    async def go():
        try:
            return await runner.run(jobs, ws.start_run("judge", {}))
        finally:
            await runner.backend.aclose()

    summary = asyncio.run(go())
    assert summary.done + summary.failed == 2 and summary.spent_usd == 0
    calls = ws._query("SELECT backend, input_tokens, cost_usd, status FROM api_calls")
    assert calls and all(c[0] == "local" and c[1] > 0 and c[2] == 0 for c in calls)
    result = service.win_rate_results(ws, pairs, ["country"], 0.95)["aligned vs base"]
    assert result["judged"] + sum(result["failed_verdicts"].values()) >= 1


def test_an_edited_prompt_without_a_new_version_is_reported(reviewed, tmp_path):
    import shutil

    ws, truth = reviewed
    prompts = tmp_path / "prompts"
    shutil.copytree(load_prompt("v1").path.parent, prompts)
    with FakeCohereServer(api_key=API_KEY, responder=ScriptedJudge(truth["better"])) as server:
        runner = JudgeRunner(ws, judge_config(f"prompts_dir={prompts}"))
        prompt = load_prompt("v1", prompts)
        plans, _ = service.plan_win_rates(ws, runner, prompt, ["base", "aligned"], "test")
        run_jobs(ws, runner, service.jobs_of(plans[("aligned", "base")])[:2], server)
    assert runner.prompt_warnings([prompt]) == []
    path = prompts / "v1.yaml"
    path.write_text(path.read_text().replace("careful evaluator", "strict evaluator"))
    (warning,) = runner.prompt_warnings([load_prompt("v1", prompts)])
    assert "v1.yaml changed since verdicts were made with version 'v1'" in warning


def test_verdicts_another_process_holds_or_finished_are_not_paid_again(reviewed):
    """The judge's claims are drafting's: a verdict claimed by a live run elsewhere, or done meanwhile, is skipped."""
    from data_tools.workspace import CallRecord

    ws, truth = reviewed
    with FakeCohereServer(api_key=API_KEY, responder=ScriptedJudge(truth["better"])) as server:
        runner = JudgeRunner(ws, judge_config())
        plans, _ = service.plan_win_rates(ws, runner, load_prompt("v1"), ["base", "aligned"], "test")
        jobs = service.jobs_of(plans[("aligned", "base")])[:6]
        other = ws.start_run("judge", {})  # a live run of this process stands in for another process
        held = jobs[0]
        reservation = ws.reserve_verdict_call(
            CallRecord(backend="cohere", model=runner.config.model, status="reserved", cache_key=held.cache_key,
                       cost_upper_usd=0.001), other, budget_usd=None, ttl_s=60, claim=True,
        )  # fmt: skip
        assert reservation.call_id is not None
        summary = run_jobs(ws, runner, jobs, server)
        assert summary.held_elsewhere == 1 and summary.done == 5 and server.count() == 5
        again = run_jobs(ws, runner, jobs, server)
        assert again.cached == 5 and server.count() == 5
