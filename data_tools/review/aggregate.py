"""One decision per record from several annotators, keeping the disagreement instead of hiding it.

A decision says which candidates are acceptable (by vote), how they rank (mean, median or Borda
over the annotators' ranks), which correction (if any) beats them all, and how much annotators
disagreed (rank spread, split votes). Later stages build preference pairs from it and the Dataset
Card reports the disagreement.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from data_tools.review.config import AggregationPolicy
from data_tools.review.items import is_unchanged_suggestion, problems_by_slot
from data_tools.workspace import ReviewResponse


def _vote(yes: int, total: int, policy: str) -> bool:
    if policy == "unanimous":
        return yes == total and total > 0
    if policy == "any":
        return yes > 0
    return yes * 2 > total  # strict majority: a 1–1 split is not acceptable, and is reported as disputed


def typed_correction(response: ReviewResponse) -> str | None:
    """What the annotator's correction box held when they submitted (also when pull already set it aside)."""
    values = (response.raw or {}).get("values") or {}
    text = response.correction or values.get("correction")
    return text.strip() if isinstance(text, str) and text.strip() else None


def aggregate_record(
    responses: list[ReviewResponse],
    candidates: list[str],
    policy: AggregationPolicy,
    suggestion: str | None = None,
    suggestion_key: str | None = None,
    slots: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The decision for one record from its annotators' responses (any status; only submitted ones count).

    ``suggestion`` is the text the correction box was pre-filled with: a submitted box that still
    holds it (whitespace aside) is counted in ``suggestion_accepted`` (a vote for the candidate
    ``suggestion_key``), never as a correction. Applied here, to every stored response, so answers
    pulled or imported before this rule existed are judged by it on the next pull or import too.
    """
    submitted = [r for r in responses if r.status == "submitted"]
    discarded = [r for r in responses if r.status == "discarded"]
    decision: dict[str, Any] = {
        "annotators": sorted(r.username for r in submitted),
        "n_submitted": len(submitted),
        "n_discarded": len(discarded),
    }
    if len(submitted) < policy.min_submitted:
        decision["status"] = "discarded" if discarded and not submitted else "pending"
        return decision
    ranks: dict[str, list[int]] = {key: [] for key in candidates}
    for response in submitted:
        for key, rank in response.ranking.items():
            if key in ranks:
                ranks[key].append(rank)
    scores: dict[str, float] = {}
    for key, values in ranks.items():
        if not values:
            continue
        if policy.rank == "median":
            scores[key] = float(statistics.median(values))
        elif policy.rank == "borda":  # points: n_candidates - rank, summed; stored negated so lower is better
            scores[key] = -float(sum(len(candidates) - v for v in values))
        else:
            scores[key] = float(statistics.fmean(values))
    ranking = sorted(scores, key=lambda k: (scores[k], k))
    votes = {key: sum(bool(r.acceptable.get(key)) for r in submitted) for key in candidates}
    voters = {
        key: sum(key in r.acceptable for r in submitted) for key in candidates
    }  # who answered the question
    typed = [typed_correction(r) for r in submitted]
    accepted = sum(1 for text in typed if text and is_unchanged_suggestion(text, suggestion))
    corrections = [text for text in typed if text and not is_unchanged_suggestion(text, suggestion)]
    problems = Counter(label for r in submitted for label in r.problems)
    by_candidate: dict[str, Counter[str]] = {}  # cache key -> problem -> annotators who flagged it there
    for response in submitted:
        values = (response.raw or {}).get("values") or {}
        for slot, labels in problems_by_slot(values).items():
            key = (slots or {}).get(slot)
            if key is not None:
                by_candidate.setdefault(key, Counter()).update(labels)
    decision.update(
        status="decided",
        ranking=ranking,
        rank_scores=scores,
        rank_spread={k: (statistics.pstdev(v) if len(v) > 1 else 0.0) for k, v in ranks.items() if v},
        acceptable={k: _vote(votes[k], voters[k], policy.acceptable) for k in candidates},
        acceptable_votes={k: [votes[k], voters[k]] for k in candidates},
        disputed=[k for k in candidates if 0 < votes[k] < voters[k]],
        problems=dict(problems),
        candidate_problems={key: dict(counts) for key, counts in sorted(by_candidate.items())},
        corrections=corrections,
        suggestion_key=suggestion_key,
        suggestion_accepted=accepted,
        correction=Counter(corrections).most_common(1)[0][0]
        if corrections and policy.correction == "wins"
        else None,
    )
    return decision
