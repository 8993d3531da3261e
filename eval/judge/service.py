"""What ``mirada judge`` and ``mirada judge calibrate`` do, as library calls tests use directly.

Planning turns the workspace's reviewed candidates (calibration) or generated captions (win
rates) into both-order judge jobs; after :class:`~eval.judge.runner.JudgeRunner` has run them, the
stored verdicts are combined per pair and summarised. Nothing here sends a request itself.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data_tools.errors import UserError
from data_tools.workspace import ImageRow, Workspace
from eval.judge.calibrate import CalibrationUnit, RankedImage, calibration_metrics, human_units, warnings_for
from eval.judge.pairs import PairOutcome, combine, grouped_win_rates, side
from eval.judge.prompts import JudgePrompt
from eval.judge.runner import JudgeJob, JudgeRunner


class JudgeError(UserError, ValueError):
    """The judge cannot run on this input (no reviews, one system, no valid verdict…)."""


@dataclass
class PairPlan:
    """One pair to judge in both orders (jobs are None when the two captions are identical)."""

    image: ImageRow
    left: str
    right: str
    forward: JudgeJob | None
    backward: JudgeJob | None
    groups: dict[str, str | None] = field(default_factory=dict)


def plan_pair(runner: JudgeRunner, prompt: JudgePrompt, image: ImageRow, left: tuple[str, str],
              right: tuple[str, str]) -> PairPlan:  # fmt: skip
    groups = {"country": image.country, "language": image.language, "category": image.category}
    if left[1].strip() == right[1].strip():  # nothing to compare: a tie that costs nothing
        return PairPlan(image, left[0], right[0], None, None, groups)
    forward = runner.pairwise_job(image, prompt, left, right)
    backward = runner.pairwise_job(image, prompt, right, left)
    return PairPlan(image, left[0], right[0], forward, backward, groups)


def jobs_of(plans: Sequence[PairPlan]) -> list[JudgeJob]:
    return [job for p in plans for job in (p.forward, p.backward) if job is not None]


def outcomes(ws: Workspace, plans: Sequence[PairPlan]) -> tuple[list[PairOutcome], dict[str, int]]:
    """Combined verdicts of ``plans`` from the workspace; pairs missing a verdict are counted, not guessed."""
    keys = [job.cache_key for job in jobs_of(plans)]
    stored = ws.verdicts(keys)
    missing: dict[str, int] = defaultdict(int)
    result = []
    for plan in plans:
        if plan.forward is None or plan.backward is None:
            result.append(PairOutcome(plan.image.id, plan.left, plan.right, 0, True, 0, plan.groups))
            continue
        winners = []
        for job in (plan.forward, plan.backward):
            verdict = stored.get(job.cache_key)
            if verdict is None:
                missing["not_judged"] += 1
            elif verdict.status != "done" or not verdict.verdict:
                missing[(verdict.error or "failed").split(":")[0]] += 1
            winners.append(
                verdict.verdict["winner"]
                if verdict and verdict.status == "done" and verdict.verdict
                else None
            )
        outcome, consistent = combine(winners[0], winners[1])
        if outcome is None:
            continue
        result.append(PairOutcome(plan.image.id, plan.left, plan.right, outcome, bool(consistent),
                                  side(winners[0], True), plan.groups))  # type: ignore[arg-type]  # fmt: skip
    return result, dict(missing)


# -- calibration -----------------------------------------------------------------------------------
@dataclass
class CalibrationPlan:
    units: list[CalibrationUnit]
    ranked: list[RankedImage]
    pairs: dict[str, list[PairPlan]]  # prompt version -> one plan per unit (same order)


def plan_calibration(
    ws: Workspace, runner: JudgeRunner, prompts: Sequence[JudgePrompt], limit: int | None = None
) -> CalibrationPlan:
    """Both-order jobs for every candidate pair the annotators ranked, for each judge prompt.

    ``limit``: only the first N reviewed images (a cheap first look; intervals get wider).
    """
    captions = {d.cache_key: d.caption for d in ws.drafts(status="done") if d.caption}
    units, ranked = human_units(ws.review_responses(), ws.review_items(), captions)
    if limit is not None:
        keep = set(sorted({u.image_id for u in units})[:limit])
        units = [u for u in units if u.image_id in keep]
        ranked = [r for r in ranked if r.image_id in keep]
    if not units:
        raise JudgeError(
            "no reviewed images with ranked candidates in this workspace: calibration compares the judge with "
            "your annotators, so push, review and `mirada review pull` first"
        )
    images = {image.id: image for image in ws.images(status=None)}
    pairs: dict[str, list[PairPlan]] = {}
    for prompt in prompts:
        pairs[prompt.version] = [
            plan_pair(
                runner, prompt, images[u.image_id], (u.left, captions[u.left]), (u.right, captions[u.right])
            )
            for u in units
        ]
    return CalibrationPlan(units, ranked, pairs)


def calibration_results(ws: Workspace, plan: CalibrationPlan, *, n_resamples: int, confidence: float,
                        seed: int = 0) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per prompt version: agreement metrics (with intervals), failures and warnings."""
    results = {}
    for version, plans in plan.pairs.items():
        combined, missing = outcomes(ws, plans)
        by_pair = {(o.image_id, o.left, o.right): o for o in combined}
        units = []
        for unit in plan.units:
            found = by_pair.get((unit.image_id, unit.left, unit.right))
            units.append(CalibrationUnit(unit.image_id, unit.left, unit.right, unit.humans,
                                         found.outcome if found else None, found.consistent if found else None,
                                         unit.record))  # fmt: skip
        metrics = calibration_metrics(
            units, plan.ranked, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        metrics["failed_verdicts"] = missing
        metrics["warnings"] = warnings_for(metrics)
        if metrics["judged_pairs"] == 0:
            metrics["warnings"].insert(0, "no pair got a valid verdict in both orders (see failed_verdicts)")
        results[version] = metrics
    return results


def choose(results: dict[str, dict[str, Any]]) -> str | None:
    """The prompt with the highest Cohen's κ against the aggregated human preference.

    Ties (and undefined κ) fall back to accuracy with ties, then position consistency.
    """

    def score(version: str) -> tuple[float, float, float]:
        m = results[version]["metrics"]
        return tuple(m[k]["value"] if m[k]["value"] is not None else -9.0  # type: ignore[return-value]
                     for k in ("cohen_kappa", "accuracy_with_ties", "position_consistency"))  # fmt: skip

    usable = [v for v in results if results[v]["judged_pairs"] > 0]
    return max(usable, key=score) if usable else None


# -- win rates -------------------------------------------------------------------------------------
def comparisons(systems: Sequence[str]) -> list[tuple[str, str]]:
    """Every later system against the first one listed (the baseline), then the remaining pairs."""
    first, rest = systems[0], list(systems[1:])
    return [(s, first) for s in rest] + [(a, b) for a, b in itertools.combinations(rest, 2)]


def check_systems(ws: Workspace, systems: Sequence[str], mode: str) -> None:
    known = ws.systems()
    unknown = [s for s in systems if s not in known]
    if unknown:
        raise JudgeError(
            f"no generated captions for {', '.join(unknown)}; systems in this workspace: {', '.join(known) or 'none'} "
            "(run `mirada generate` first)"
        )
    if len(set(systems)) != len(systems):
        raise JudgeError(f"a system is listed twice in --systems {','.join(systems)}")
    if mode == "pairwise" and len(systems) < 2:
        raise JudgeError(
            f"pairwise judging compares two systems; got only {systems[0]!r} "
            f"(add one, e.g. --systems base,{systems[0]}, or use --mode rubric to score one system)"
        )


def eligible_images(ws: Workspace, split: str | None) -> tuple[dict[str, ImageRow], str]:
    """Images of ``split`` (all when prefs recorded no split); returns them and a description."""
    images = {image.id: image for image in ws.images(status=None)}
    splits = ws.image_splits()
    if split and splits:
        chosen = {i: img for i, img in images.items() if splits.get(i) == split}
        return chosen, f"{split} split"
    return images, "all images (no split recorded by prefs)" if split else "all images"


def plan_win_rates(ws: Workspace, runner: JudgeRunner, prompt: JudgePrompt, systems: Sequence[str],
                   split: str | None) -> tuple[dict[tuple[str, str], list[PairPlan]], str]:  # fmt: skip
    images, where = eligible_images(ws, split)
    captions: dict[tuple[str, str], str] = {
        (row["image_id"], row["system"]): row["caption"]
        for row in ws.generations(list(systems))
        if row["caption"]
    }
    plans: dict[tuple[str, str], list[PairPlan]] = {}
    for left, right in comparisons(systems):
        plans[(left, right)] = [
            plan_pair(runner, prompt, image, (left, captions[(i, left)]), (right, captions[(i, right)]))
            for i, image in images.items()
            if (i, left) in captions and (i, right) in captions
        ]
        if not plans[(left, right)]:
            raise JudgeError(f"no image of the {where} has captions from both {left!r} and {right!r}")
    return plans, where


def win_rate_results(ws: Workspace, plans: dict[tuple[str, str], list[PairPlan]], group_by: Sequence[str],
                     confidence: float) -> dict[str, Any]:  # fmt: skip
    result = {}
    for (left, right), pair_plans in plans.items():
        combined, missing = outcomes(ws, pair_plans)
        summary = grouped_win_rates(combined, group_by, alpha=1 - confidence)
        summary.update(
            left=left, right=right, pairs=len(pair_plans), judged=len(combined), failed_verdicts=missing
        )
        ties = summary["overall"]["tie_rate"]
        summary["warnings"] = (
            ["the judge called every pair a tie: it cannot tell these systems apart"] if ties == 1.0 else []
        )
        result[f"{left} vs {right}"] = summary
    return result


def plan_rubric(ws: Workspace, runner: JudgeRunner, prompt: JudgePrompt, systems: Sequence[str],
                split: str | None) -> tuple[dict[str, list[JudgeJob]], str]:  # fmt: skip
    images, where = eligible_images(ws, split)
    jobs: dict[str, list[JudgeJob]] = {}
    for row in ws.generations(list(systems)):
        image = images.get(row["image_id"])
        if image is not None and row["caption"]:
            jobs.setdefault(row["system"], []).append(
                runner.rubric_job(image, prompt, (row["system"], row["caption"]))
            )
    if not jobs:
        raise JudgeError(f"no generated caption of {', '.join(systems)} on the {where}")
    return jobs, where


def rubric_results(
    ws: Workspace, jobs: dict[str, list[JudgeJob]], confidence: float, n_resamples: int
) -> dict[str, Any]:
    """Mean 1–5 score per criterion and system, with percentile bootstrap intervals over images (scipy)."""
    from scipy.stats import bootstrap

    result: dict[str, Any] = {}
    for system, system_jobs in jobs.items():
        stored = ws.verdicts([j.cache_key for j in system_jobs])
        scores: dict[str, list[float]] = defaultdict(list)
        failed = 0
        for job in system_jobs:
            verdict = stored.get(job.cache_key)
            if verdict is None or verdict.status != "done" or not verdict.verdict:
                failed += 1
                continue
            for criterion, value in verdict.verdict["scores"].items():
                scores[criterion].append(float(value))
            scores["mean"].append(statistics.fmean(verdict.verdict["scores"].values()))
        summary: dict[str, Any] = {"n": len(system_jobs) - failed, "failed": failed, "criteria": {}}
        for criterion, values in sorted(scores.items()):
            ci = None
            if len(values) >= 2 and len(set(values)) > 1 and n_resamples:
                res = bootstrap((np.array(values),), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                                method="percentile", rng=0)  # fmt: skip
                ci = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
            summary["criteria"][criterion] = {"mean": statistics.fmean(values), "ci": ci, "n": len(values)}
        result[system] = summary
    return result
