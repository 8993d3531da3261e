"""The training run's Model Card after eval: parses, its model-index validates, numbers equal the report's."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from eval.card import END, START
from eval.cli import run_eval
from eval.config import EvalConfig
from eval.inputs import EvalError
from tests.eval.builders import train_card


def test_model_card_gets_model_index_and_a_section_from_the_report(eval_ws, predictions_file, tmp_path):
    run_dir = tmp_path / "run"
    train_card(run_dir)
    settings = EvalConfig.model_validate({"split": "all", "bootstrap": {"resamples": 50}, "charts": False})
    _, report = run_eval(
        eval_ws, settings, predictions=[predictions_file], card=run_dir
    )  # aligned: the only non-base

    card = ModelCard.load(run_dir / "README.md")
    model_name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert model_name == "tacos-dpo"
    ours = {
        r.metric_type: r.metric_value for r in results if (r.metric_config or "").startswith("mirada-eval")
    }
    expected = {
        k: v["value"]
        for k, v in report["results"]["aligned"]["overall"]["metrics"].items()
        if v["value"] is not None
    }
    assert ours == expected and "chrf++" in ours and "wrong_culture" in ours
    assert any(r.metric_type == "loss" for r in results)  # the train stage's own result is kept
    text = card.text
    assert text.count(START) == 1 and text.index("## Evaluation") < text.index(START) < text.index(
        "## Environmental impact"
    )
    chrf = report["results"]["aligned"]["overall"]["metrics"]["chrf++"]
    assert f"{chrf['value']:.2f} [{chrf['ci_low']:.2f}, {chrf['ci_high']:.2f}]" in text
    diff = report["comparisons"][0]["groups"]["overall"]["metrics"]["chrf++"]["difference"]
    assert f"| chrF++ | {diff:.2f} |" in text
    assert "| PE ⚠ small | 3 |" in text and str(tmp_path) not in text  # 3 images < min_group_size 10

    # a second eval replaces its own entries and section, nothing else
    settings.bootstrap.seed = 1
    run_eval(eval_ws, settings, predictions=[predictions_file], card=run_dir)
    again = ModelCard.load(run_dir / "README.md")
    assert again.text.count(START) == 1 and again.text.count(END) == 1
    assert len(again.data.eval_results) == len(card.data.eval_results)


def test_card_needs_to_know_which_system_it_describes(eval_ws, tmp_path):
    from tests.eval.builders import predictions, write_jsonl

    run_dir = tmp_path / "run"
    train_card(run_dir)
    preds = write_jsonl(tmp_path / "p.jsonl", predictions(systems=("base", "sft", "dpo")))
    settings = EvalConfig.model_validate({"split": "all", "bootstrap": {"resamples": 10}, "charts": False})
    with pytest.raises(EvalError, match="pass --card-system"):
        run_eval(eval_ws, settings, predictions=[preds], card=run_dir)
    with pytest.raises(EvalError, match=r"no README\.md"):
        run_eval(eval_ws, settings, predictions=[preds], card=tmp_path)
    assert not (eval_ws.exports_dir / "eval").exists()
