"""Verdict parsing, both-order combination, win rates and agreement statistics on known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa

from data_tools.draft.parsing import InvalidOutput
from eval.judge.calibrate import CalibrationUnit, RankedImage, calibration_metrics, preference
from eval.judge.pairs import LEFT, RIGHT, TIE, combine, side, win_rates
from eval.judge.prompts import JudgePromptError, load_prompt
from eval.judge.schema import PairwiseVerdict, RubricVerdict, parse_verdict


@pytest.mark.parametrize(
    ("text", "winner"),
    [('{"winner": "A", "reason": "x"}', "A"), ('Sure:\n```json\n{"winner": "caption b"}\n```', "B"),
     ('{"winner": "TIE", "criteria": {"respect": "a"}}', "tie")],
)  # fmt: skip
def test_pairwise_verdicts_accept_the_spellings_models_use(text, winner):
    verdict = parse_verdict(text, "pairwise")
    assert isinstance(verdict, PairwiseVerdict) and verdict.winner == winner


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("The first one is better.", "no JSON"), ('{"winner": "C"}', "winner"),
     ('{"winner": "A"', "no JSON"), ('{"reason": "x"}', "winner")],
)  # fmt: skip
def test_invalid_pairwise_answers_raise_invalid_output(text, message):
    with pytest.raises(InvalidOutput, match=message):
        parse_verdict(text, "pairwise")


def test_rubric_scores_are_1_to_5_for_every_criterion():
    verdict = parse_verdict('{"scores": {"respect": 5, "fluency": 3}}', "rubric", ("respect", "fluency"))
    assert isinstance(verdict, RubricVerdict) and verdict.scores == {"respect": 5, "fluency": 3}
    with pytest.raises(InvalidOutput, match="1-5"):
        parse_verdict('{"scores": {"respect": 7}}', "rubric")
    with pytest.raises(InvalidOutput, match="no score for fluency"):
        parse_verdict('{"scores": {"respect": 4}}', "rubric", ("respect", "fluency"))


def test_a_verdict_that_flips_with_the_order_is_a_tie():
    assert side("A", left_first=True) == LEFT and side("A", left_first=False) == RIGHT
    assert combine("A", "B") == (LEFT, True)  # left first won, then (right first) the second, i.e. left, won
    assert combine("B", "A") == (RIGHT, True)
    assert combine("A", "A") == (TIE, False)  # always the first shown: position bias
    assert combine("tie", "tie") == (TIE, True)
    assert combine("A", "tie") == (TIE, False)
    assert combine("A", None) == (None, None)


def test_win_rates_count_and_wilson_intervals():
    result = win_rates([LEFT] * 6 + [TIE] * 2 + [RIGHT] * 2)
    assert (result["wins"], result["ties"], result["losses"], result["n"]) == (6, 2, 2, 10)
    assert result["win_rate"] == 0.6 and result["score"] == 0.7
    low, high = result["win_rate_ci"]
    assert 0 < low < 0.6 < high < 1
    assert win_rates([])["win_rate"] is None


def test_prompts_load_render_and_fail_clearly(tmp_path):
    prompt = load_prompt("v1")
    text = prompt.pairwise({"country_name": "Peru", "region": "Cusco", "category": "craft", "cultural_context": None,
                            "language": "es-PE"}, "uno", "dos")  # fmt: skip
    assert text.index("<<<uno>>>") < text.index("<<<dos>>>") and "Peru (Cusco)" in text and "es-PE" in text
    assert all(name in text for name in prompt.criteria) and "None" not in text
    with pytest.raises(JudgePromptError, match=r"no judge prompt 'v9'.*available: v1, v2"):
        load_prompt("v9")
    (tmp_path / "v3.yaml").write_text("version: v3\nsystem: s\n")
    with pytest.raises(JudgePromptError, match=r"v3\.yaml lacks criteria, pairwise, rubric"):
        load_prompt("v3", tmp_path)


def units_from(judge: list[int], humans: list[list[int]], per_image: int = 3) -> list[CalibrationUnit]:
    names = [f"h{i}" for i in range(len(humans[0]))]
    return [
        CalibrationUnit(f"img{n // per_image}", f"a{n}", f"b{n}", dict(zip(names, h, strict=True)), j, True)
        for n, (j, h) in enumerate(zip(judge, humans, strict=True))
    ]


def test_calibration_metrics_against_direct_computation():
    rng = np.random.default_rng(3)
    humans = [[int(v)] * 2 for v in rng.choice([LEFT, RIGHT], size=60)]
    judge = [h[0] if rng.random() < 0.75 else (TIE if rng.random() < 0.5 else -h[0]) for h in humans]
    units = units_from(judge, humans)
    result = calibration_metrics(units, [], n_resamples=200)
    m = result["metrics"]
    agree = [j == h[0] for j, h in zip(judge, humans, strict=True)]
    assert m["accuracy_with_ties"]["value"] == pytest.approx(np.mean(agree), abs=1e-6)
    strict = [j == h[0] for j, h in zip(judge, humans, strict=True) if j != TIE]
    assert m["accuracy_without_ties"]["value"] == pytest.approx(np.mean(strict), abs=1e-6)
    table = np.zeros((3, 3))
    for j, h in zip(judge, humans, strict=True):
        table[j + 1, h[0] + 1] += 1
    assert m["cohen_kappa"]["value"] == pytest.approx(cohens_kappa(table).kappa, abs=1e-6)
    low, high = m["accuracy_with_ties"]["ci"]
    assert low < m["accuracy_with_ties"]["value"] < high
    assert m["human_alpha"]["value"] == pytest.approx(1.0)  # two identical annotators
    assert result["below_human_ceiling"] is True


def test_kendall_tau_of_a_perfect_and_a_reversed_judge():
    ranks = {"k1": 1.0, "k2": 2.0, "k3": 3.0}
    pairs = [("k1", "k2"), ("k1", "k3"), ("k2", "k3")]
    for sign, expected in ((1, 1.0), (-1, -1.0)):
        units = [CalibrationUnit("i", a, b, {"h": preference(ranks[a], ranks[b])}, sign * preference(ranks[a], ranks[b]), True)
                 for a, b in pairs]  # fmt: skip
        value = calibration_metrics(units, [RankedImage("i", ranks)], n_resamples=0)["metrics"][
            "kendall_tau"
        ]["value"]
        assert math.isclose(value, expected)
