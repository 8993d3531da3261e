"""How far to trust the judge: its agreement with the team's own annotators, next to theirs.

Units are candidate pairs of reviewed records. Each annotator's ranking gives a preference per
pair (LEFT / TIE / RIGHT); their majority is the aggregated human preference. Against it the judge
(both orders combined, :mod:`eval.judge.pairs`) gets pairwise accuracy with ties (three classes)
and without (pairs where neither side says tie), Cohen's κ (statsmodels), and per image Kendall's
τ-b between the judge's Copeland ranking and the annotators' mean ranks (scipy). Krippendorff's α
(ordinal, the ``krippendorff`` package through the review stage's helper) of the judge with each
annotator is set beside the annotators' α with each other: the human ceiling. A judge below the
ceiling agrees with people less than they agree with each other, and every report says so.

Intervals are percentile bootstraps over *images* (scipy.stats.bootstrap resampling image
indices): pairs of one image share candidates and are not independent, so resampling pairs would
give intervals that are too narrow (DESIGN §7.1).
"""

from __future__ import annotations

import itertools
import math
import statistics
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data_tools.review.agreement import _alpha
from eval.judge.pairs import LEFT, RIGHT, TIE

METRICS = (
    "accuracy_with_ties",
    "accuracy_without_ties",
    "cohen_kappa",
    "kendall_tau",
    "position_consistency",
    "judge_alpha",
    "human_alpha",
)


@dataclass
class CalibrationUnit:
    """One candidate pair of one reviewed record, with each annotator's and the judge's preference."""

    image_id: str
    left: str  # draft cache keys
    right: str
    humans: dict[str, int]  # annotator -> LEFT | TIE | RIGHT
    judge: int | None = None
    consistent: bool | None = None
    record: str = ""

    @property
    def human(self) -> int:
        total = sum(self.humans.values())
        return LEFT if total > 0 else RIGHT if total < 0 else TIE


@dataclass
class RankedImage:
    """Mean human rank per candidate of one record (lower is better), for Kendall's τ."""

    image_id: str
    mean_rank: dict[str, float] = field(default_factory=dict)


def preference(rank_left: int, rank_right: int) -> int:
    """``preference(1, 3) == LEFT``: a lower rank is better."""
    return LEFT if rank_left < rank_right else RIGHT if rank_left > rank_right else TIE


def human_units(
    responses: Sequence[Any], items: dict[tuple[str, str], Any], captions: dict[str, str]
) -> tuple[list[CalibrationUnit], list[RankedImage]]:
    """Pairs and mean ranks from submitted review responses over candidates that have a caption."""
    by_record: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for response in responses:
        if response.status == "submitted" and response.ranking:
            by_record[(response.dataset, response.record_id)].append(response)
    units: list[CalibrationUnit] = []
    ranked: list[RankedImage] = []
    for key, group in sorted(by_record.items()):
        item = items.get(key)
        candidates = sorted(
            {c for c in (item.slots.values() if item else ()) if c in captions}
            | {c for r in group for c in r.ranking if c in captions}
        )
        image_id = item.image_id if item else group[0].image_id
        for left, right in itertools.combinations(candidates, 2):
            humans = {
                r.username: preference(r.ranking[left], r.ranking[right])
                for r in group
                if left in r.ranking and right in r.ranking
            }
            if humans:
                units.append(CalibrationUnit(image_id, left, right, humans, record="/".join(key)))
        ranks = {c: statistics.fmean(r.ranking[c] for r in group if c in r.ranking) for c in candidates
                 if any(c in r.ranking for r in group)}  # fmt: skip
        ranked.append(RankedImage(image_id, ranks))
    return units, ranked


def _kappa(judge: list[int], human: list[int]) -> float:
    from statsmodels.stats.inter_rater import cohens_kappa

    classes = {RIGHT: 0, TIE: 1, LEFT: 2}
    table = np.zeros((3, 3))
    for j, h in zip(judge, human, strict=True):
        table[classes[j], classes[h]] += 1
    if table.sum() < 2:
        return math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(cohens_kappa(table).kappa)


def _taus(units: list[CalibrationUnit], ranked: list[RankedImage]) -> dict[str, float]:
    """Kendall τ-b per image between Copeland scores (wins − losses) and mean human ranks.

    Computed once per image: resampling images only changes which of these values are averaged.
    """
    from scipy.stats import kendalltau

    copeland: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for unit in units:
        if unit.judge is None:
            continue
        copeland[unit.image_id][unit.left] += unit.judge
        copeland[unit.image_id][unit.right] -= unit.judge
    taus: dict[str, list[float]] = defaultdict(list)
    for image in ranked:
        scores = copeland.get(image.image_id)
        keys = [k for k in image.mean_rank if scores is not None and k in scores]
        if len(keys) < 2:
            continue
        judge = [scores[k] for k in keys]  # type: ignore[index]
        human = [-image.mean_rank[k] for k in keys]  # higher is better on both sides
        if len(set(judge)) < 2 or len(set(human)) < 2:
            continue  # τ is undefined when either ranking is constant
        tau = kendalltau(judge, human).statistic
        if not math.isnan(tau):
            taus[image.image_id].append(float(tau))
    return {image: statistics.fmean(values) for image, values in taus.items()}


def _alpha_between(units: list[CalibrationUnit], coders: Sequence[str]) -> float:
    """Krippendorff's α (ordinal) of ``coders`` ("judge" or annotator names) over ``units``."""
    rows = []
    for unit in units:
        values = {**unit.humans, "judge": unit.judge}
        row = [float(values[c]) if values.get(c) is not None else math.nan for c in coders]
        if sum(not math.isnan(v) for v in row) >= 2:
            rows.append(row)
    value = _alpha(rows, "ordinal") if rows else None
    return math.nan if value is None else value


def _point(units: list[CalibrationUnit], taus: list[float], annotators: Sequence[str]) -> dict[str, float]:
    judged = [u for u in units if u.judge is not None]
    with_ties = [u.judge == u.human for u in judged]
    strict = [u.judge == u.human for u in judged if u.judge != TIE and u.human != TIE]
    per_annotator = [_alpha_between(judged, ["judge", a]) for a in annotators]
    per_annotator = [a for a in per_annotator if not math.isnan(a)]
    human_pairs = [_alpha_between(units, [a, b]) for a, b in itertools.combinations(annotators, 2)]
    human_pairs = [a for a in human_pairs if not math.isnan(a)]
    return {
        "accuracy_with_ties": statistics.fmean(with_ties) if with_ties else math.nan,
        "accuracy_without_ties": statistics.fmean(strict) if strict else math.nan,
        "cohen_kappa": _kappa([u.judge for u in judged], [u.human for u in judged]) if judged else math.nan,  # type: ignore[misc]
        "kendall_tau": statistics.fmean(taus) if taus else math.nan,
        "position_consistency": statistics.fmean(bool(u.consistent) for u in judged) if judged else math.nan,
        # the judge's mean α with one annotator vs the annotators' mean α with one another
        "judge_alpha": statistics.fmean(per_annotator) if per_annotator else math.nan,
        "human_alpha": statistics.fmean(human_pairs) if human_pairs else math.nan,
    }


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def calibration_metrics(
    units: list[CalibrationUnit], ranked: list[RankedImage], *, n_resamples: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Point estimates, image-clustered bootstrap intervals and the human-ceiling verdict."""
    from scipy.stats import DegenerateDataWarning, bootstrap

    annotators = sorted({a for u in units for a in u.humans})
    tau_by_image = _taus(units, ranked)
    point = _point(units, list(tau_by_image.values()), annotators)
    images = sorted({u.image_id for u in units})
    by_image: dict[str, list[CalibrationUnit]] = defaultdict(list)
    for unit in units:
        by_image[unit.image_id].append(unit)
    intervals: dict[str, list[float] | None] = dict.fromkeys(METRICS)
    if len(images) >= 2 and n_resamples > 0:

        def statistic(sample: np.ndarray) -> np.ndarray:
            chosen = [images[int(i)] for i in sample]
            # a resampled image appears several times: give each copy its own id so τ sees it twice
            picked = [u for img in chosen for u in by_image[img]]
            taus = [tau_by_image[img] for img in chosen if img in tau_by_image]
            values = _point(picked, taus, annotators)
            return np.array([values[m] for m in METRICS])

        with (
            warnings.catch_warnings()
        ):  # a constant metric (e.g. identical annotators) is reported, not warned
            warnings.simplefilter("ignore", DegenerateDataWarning)
            result = bootstrap(
                (np.arange(len(images)),), statistic, vectorized=False, n_resamples=n_resamples,
                confidence_level=confidence, method="percentile", rng=seed,
            )  # fmt: skip
        distribution = np.asarray(result.bootstrap_distribution)
        tail = (1 - confidence) / 2 * 100
        for index, metric in enumerate(METRICS):
            column = distribution[index]
            if np.isnan(point[metric]) or np.isnan(column).mean() > 0.5:
                continue
            low, high = np.nanpercentile(column, [tail, 100 - tail])
            intervals[metric] = [round(float(low), 6), round(float(high), 6)]
    judged = [u for u in units if u.judge is not None]
    judge_alpha, human_alpha = point["judge_alpha"], point["human_alpha"]
    below = None if math.isnan(judge_alpha) or math.isnan(human_alpha) else bool(judge_alpha < human_alpha)
    return {
        "pairs": len(units),
        "judged_pairs": len(judged),
        "images": len(images),
        "annotators": annotators,
        "metrics": {m: {"value": _clean(point[m]), "ci": intervals[m]} for m in METRICS},
        "judge_alpha_per_annotator": {a: _clean(_alpha_between(judged, ["judge", a])) for a in annotators},
        "judge_tie_rate": (sum(u.judge == TIE for u in judged) / len(judged)) if judged else None,
        "human_tie_rate": (sum(u.human == TIE for u in units) / len(units)) if units else None,
        "below_human_ceiling": below,
        "confidence": confidence,
        "bootstrap": {"unit": "image", "resamples": n_resamples, "method": "percentile", "seed": seed},
    }


def warnings_for(metrics: dict[str, Any]) -> list[str]:
    """Plain-language cautions to print (and store) next to the figures."""
    notes = []
    if metrics.get("judge_tie_rate") == 1.0:
        notes.append(
            "the judge called every pair a tie: it cannot tell these captions apart (accuracy without ties is undefined)"
        )
    if metrics.get("below_human_ceiling"):
        notes.append(
            "the judge agrees with the annotators less than they agree with each other (below the human ceiling)"
        )
    if len(metrics.get("annotators", [])) < 2:
        notes.append(
            "fewer than two annotators reviewed the same records: no human ceiling to compare against"
        )
    return notes
