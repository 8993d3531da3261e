"""The judge's section of the eval report and Model Card: labels, no local paths, unreadable files."""

from __future__ import annotations

import json

import pytest

from eval.cli import run_eval
from eval.config import EvalConfig
from eval.inputs import EvalError
from eval.judge.pairs import LEFT, RIGHT, TIE, PairOutcome, grouped_win_rates
from eval.judge.section import START
from tests.eval.builders import train_card

SETTINGS = {"split": "all", "bootstrap": {"resamples": 20}, "charts": False, "min_group_size": 3}


def judge_json(model: str) -> dict:
    """What an uncalibrated `mirada judge` run writes (pairwise), from the judge's own aggregation."""
    outcomes = [LEFT] * 7 + [TIE] * 2 + [RIGHT] * 3
    pairs = [PairOutcome(f"i{n}", "aligned", "base", o, n % 4 != 0, o, {"country": "PE" if n % 2 else "MX"})
             for n, o in enumerate(outcomes)]  # fmt: skip
    rates = grouped_win_rates(pairs, ("country",))
    rates.update(left="aligned", right="base", pairs=12, judged=12, failed_verdicts={}, warnings=[])
    return {"judge": {"backend": "local", "model": model, "prompt_version": "v1", "calibration": None,
                      "trust": "not calibrated", "below_human_ceiling": None},
            "images": "all images", "mode": "pairwise", "systems": ["base", "aligned"], "confidence": 0.9,
            "win_rates": {"aligned vs base": rates}}  # fmt: skip


def test_an_uncalibrated_judge_is_labelled_and_a_local_model_path_stays_out_of_the_card(
    eval_ws, predictions_file, tmp_path
):
    model = tmp_path / "models" / "my-judge"
    model.mkdir(parents=True)
    data = judge_json(str(model))
    folder = eval_ws.exports_dir / "eval" / "all"
    folder.mkdir(parents=True)
    (folder / "judge.json").write_text(json.dumps(data), encoding="utf-8")
    run_dir = tmp_path / "run"
    train_card(run_dir)
    out, report = run_eval(
        eval_ws, EvalConfig.model_validate(SETTINGS), predictions=[predictions_file], card=run_dir
    )
    assert report["judge"] == {"results": data, "calibration": None}
    overall = data["win_rates"]["aligned vs base"]["overall"]
    row = f"| aligned vs base | 12 | {overall['win_rate']:.0%} [{overall['win_rate_ci'][0]:.0%}, "
    markdown = (out / "report.md").read_text(encoding="utf-8")
    card = (run_dir / "README.md").read_text(encoding="utf-8")
    for text in (markdown, card):
        line = next(x for x in text.splitlines() if x.startswith(row))
        assert line.endswith("| n/a | n/a | n/a | not calibrated |") and "**not calibrated**" in text
        assert "90% Wilson intervals" in text and "`my-judge`" in text and str(tmp_path) not in text
    assert "| PE | 6 |" in markdown and "| PE | 6 |" not in card  # groups in the report only
    assert card.count(START) == 1
    # the win rate is in the model-index too, from judge.json, with the judge's trust in its name
    from huggingface_hub import ModelCard

    (judged,) = [r for r in ModelCard.load(run_dir / "README.md").data.eval_results
                 if r.metric_type == "judge_win_rate"]  # fmt: skip
    assert judged.metric_value == pytest.approx(overall["score"]) and "not calibrated" in judged.metric_name


def test_an_unreadable_judge_file_is_one_clear_error_and_the_old_report_stays(eval_ws, predictions_file):
    settings = EvalConfig.model_validate(SETTINGS)
    out, _ = run_eval(eval_ws, settings, predictions=[predictions_file])
    before = (out / "report.json").read_bytes()
    (out / "judge.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(EvalError, match=r"judge\.json in all/ is not readable JSON"):
        run_eval(eval_ws, settings, predictions=[predictions_file])
    assert (out / "report.json").read_bytes() == before


def test_rubric_scores_are_shown_with_the_judges_label():
    from eval.judge.section import judge_section

    criteria = {
        "respect": {"mean": 4.25, "ci": [4.0, 4.5], "n": 4},
        "mean": {"mean": 3.8, "ci": None, "n": 4},
    }
    data = {
        **judge_json("CohereLabs/judge"),
        "mode": "rubric",
        "rubric": {"aligned": {"n": 4, "failed": 1, "criteria": criteria}},
    }
    del data["win_rates"]
    text = judge_section({"results": data, "calibration": None})
    assert "| system | captions | respect | mean | judge |" in text
    assert (
        "| aligned | 4 | 4.25 [4.00, 4.50] | 3.80 | not calibrated |" in text and "`CohereLabs/judge`" in text
    )
