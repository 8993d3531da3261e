"""Both-order pairwise verdicts and the win rates built on them.

A judge that prefers whichever caption it reads first would inflate a system that is always shown
first. Every pair is therefore judged twice, once in each order; the two verdicts are mapped back
to the pair's own sides (``left``/``right``), and a verdict that changes with the order counts as a
tie. The share of pairs whose two verdicts agree is the judge's position-consistency rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from statsmodels.stats.proportion import proportion_confint

LEFT, TIE, RIGHT = 1, 0, -1


def side(winner: str, left_first: bool) -> int:
    """Map a verdict ("A" = shown first) to the pair's sides: ``side("A", left_first=False) == RIGHT``."""
    if winner == "tie":
        return TIE
    first_won = winner == "A"
    return LEFT if first_won == left_first else RIGHT


def combine(forward: str | None, backward: str | None) -> tuple[int | None, bool | None]:
    """``(outcome, consistent)`` from the verdict with left shown first and the one with right first.

    Both orders agree -> that outcome; they differ -> a tie, inconsistent. With one order missing
    (it failed), the outcome is unknown: ``(None, None)``.
    """
    if forward is None or backward is None:
        return None, None
    a, b = side(forward, True), side(backward, False)
    return (a, True) if a == b else (TIE, False)


@dataclass
class PairOutcome:
    """One judged pair: ``outcome`` is LEFT, RIGHT or TIE after both orders."""

    image_id: str
    left: str
    right: str
    outcome: int
    consistent: bool
    first_order: int  # the verdict with left shown first alone (for showing what position bias does)
    groups: dict[str, str | None] = field(default_factory=dict)  # country, language, category


def wilson(count: int, total: int, alpha: float = 0.05) -> list[float] | None:
    if total == 0:
        return None
    low, high = proportion_confint(count, total, alpha=alpha, method="wilson")
    return [float(low), float(high)]


def win_rates(outcomes: Iterable[int], alpha: float = 0.05) -> dict[str, Any]:
    """Win/tie/loss shares of the left side with Wilson intervals (statsmodels)."""
    values = list(outcomes)
    n = len(values)
    counts = {"wins": values.count(LEFT), "ties": values.count(TIE), "losses": values.count(RIGHT)}
    result: dict[str, Any] = {"n": n, **counts}
    for name, key in (("win_rate", "wins"), ("tie_rate", "ties"), ("loss_rate", "losses")):
        result[name] = counts[key] / n if n else None
        result[name + "_ci"] = wilson(counts[key], n, alpha)
    # Ties split evenly: 0.5 means "no difference the judge can see".
    result["score"] = (counts["wins"] + 0.5 * counts["ties"]) / n if n else None
    return result


def grouped_win_rates(
    pairs: Sequence[PairOutcome], by: Sequence[str] = ("country", "language", "category"), alpha: float = 0.05
) -> dict[str, Any]:
    """Overall and per-group win rates of ``left`` over ``right``; also the first-order-only figures."""
    result: dict[str, Any] = {
        "overall": win_rates((p.outcome for p in pairs), alpha),
        "first_order_only": win_rates((p.first_order for p in pairs), alpha),
        "position_consistency": (sum(p.consistent for p in pairs) / len(pairs)) if pairs else None,
    }
    for key in by:
        groups: dict[str, list[int]] = defaultdict(list)
        for pair in pairs:
            groups[str(pair.groups.get(key) or "unknown")].append(pair.outcome)
        result[f"by_{key}"] = {name: win_rates(values, alpha) for name, values in sorted(groups.items())}
    return result
