"""Inter-annotator agreement and progress, computed with maintained libraries.

* Rankings: Krippendorff's alpha, ordinal, over (record, candidate) units (``krippendorff``).
* Multi-labels (acceptable candidates, problems): Krippendorff's alpha, nominal, over
  (record, label) yes/no units — it tolerates a different number of annotators per record.
* Binary acceptability: Fleiss' kappa over records that share the modal number of annotators, and
  Cohen's kappa for each pair of annotators on the units they both answered (``statsmodels``).
Only submitted responses on records with at least two of them count ("overlap").
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from data_tools.review.items import PROBLEM_LABELS
from data_tools.workspace import ReviewItem, ReviewResponse


def _overlap(responses: list[ReviewResponse]) -> dict[tuple[str, str], list[ReviewResponse]]:
    by_record: dict[tuple[str, str], list[ReviewResponse]] = defaultdict(list)
    for response in responses:
        if response.status == "submitted":
            by_record[(response.dataset, response.record_id)].append(response)
    return {key: group for key, group in by_record.items() if len(group) >= 2}


def _alpha(matrix: list[list[float]], level: str) -> float | None:
    import krippendorff

    data = np.array(matrix, dtype=float).T  # krippendorff wants (coders, units)
    if data.size == 0 or data.shape[1] < 2:
        return None
    values = data[~np.isnan(data)]
    if len(np.unique(values)) < 2:  # no variation at all: alpha is undefined
        return None
    value = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    return None if math.isnan(value) else value


def agreement(responses: list[ReviewResponse], items: dict[tuple[str, str], ReviewItem]) -> dict[str, Any]:
    """Agreement figures on the overlapping records; each is None when the data cannot define it."""
    overlap = _overlap(responses)
    users = sorted({r.username for group in overlap.values() for r in group})
    column = {user: i for i, user in enumerate(users)}
    rank_rows, accept_rows, problem_rows = [], [], []
    binary: dict[tuple[str, str, str], dict[str, int]] = {}
    for key, group in overlap.items():
        item = items.get(key)
        candidates = list(item.slots.values()) if item else sorted({c for r in group for c in r.ranking})
        for candidate in candidates:
            rank_row = [math.nan] * len(users)
            accept_row = [math.nan] * len(users)
            for response in group:
                if candidate in response.ranking:
                    rank_row[column[response.username]] = response.ranking[candidate]
                if candidate not in response.acceptable:  # the question was left unanswered: no vote
                    continue
                accepted = int(bool(response.acceptable[candidate]))
                accept_row[column[response.username]] = accepted
                binary.setdefault((*key, candidate), {})[response.username] = accepted
            rank_rows.append(rank_row)
            accept_rows.append(accept_row)
        for label in PROBLEM_LABELS:
            row = [math.nan] * len(users)
            for response in group:
                row[column[response.username]] = int(label in response.problems)
            problem_rows.append(row)
    return {
        "overlap_records": len(overlap),
        "annotators": users,
        "ranking_alpha_ordinal": _alpha(rank_rows, "ordinal"),
        "acceptable_alpha_nominal": _alpha(accept_rows, "nominal"),
        "problems_alpha_nominal": _alpha(problem_rows, "nominal"),
        "acceptable_fleiss_kappa": _fleiss(binary),
        "acceptable_cohen_kappa": _cohen_pairs(binary, users),
    }


def _fleiss(binary: dict[tuple[str, str, str], dict[str, int]]) -> float | None:
    from statsmodels.stats.inter_rater import fleiss_kappa

    if not binary:
        return None
    modal = Counter(len(v) for v in binary.values()).most_common(1)[0][0]
    table = [
        [list(votes.values()).count(0), list(votes.values()).count(1)]
        for votes in binary.values()
        if len(votes) == modal
    ]
    if len(table) < 2:
        return None
    value = float(fleiss_kappa(np.array(table), method="fleiss"))
    return None if math.isnan(value) else value


def _cohen_pairs(
    binary: dict[tuple[str, str, str], dict[str, int]], users: list[str]
) -> dict[str, float | None]:
    from statsmodels.stats.inter_rater import cohens_kappa

    result: dict[str, float | None] = {}
    for a, b in itertools.combinations(users, 2):
        table = np.zeros((2, 2))
        for votes in binary.values():
            if a in votes and b in votes:
                table[votes[a], votes[b]] += 1
        if table.sum() < 2:
            result[f"{a}~{b}"] = None
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            kappa = float(cohens_kappa(table).kappa)
        result[f"{a}~{b}"] = None if math.isnan(kappa) else kappa
    return result


def progress(
    responses: list[ReviewResponse], items: dict[tuple[str, str], ReviewItem], min_submitted: int
) -> dict[str, Any]:
    """Per annotator: submitted/discarded/draft counts; overall: records complete, started, untouched."""
    per_user: dict[str, Counter[str]] = defaultdict(Counter)
    submitted_per_record: Counter[tuple[str, str]] = Counter()
    touched: set[tuple[str, str]] = set()
    for response in responses:
        per_user[response.username][response.status] += 1
        touched.add((response.dataset, response.record_id))
        if response.status == "submitted":
            submitted_per_record[(response.dataset, response.record_id)] += 1
    total = len(items)
    complete = sum(1 for key in items if submitted_per_record[key] >= min_submitted)
    return {
        "records": total,
        "complete": complete,
        "started": len(touched & set(items)) - complete if total else 0,
        "untouched": total - len(touched & set(items)),
        "complete_fraction": complete / total if total else 0.0,
        "per_annotator": {user: dict(counts) for user, counts in sorted(per_user.items())},
    }


# Krippendorff's reading of alpha (Content Analysis, 2004): data are reliable from 0.8 on, and
# 0.667 is the lowest value from which tentative conclusions may be drawn. Named in the chart's
# legend so a reader does not have to know the convention.
RELIABLE = 0.8
TENTATIVE = 0.667
STATUS_COLORS = {"submitted": "#2a9d8f", "discarded": "#e76f51", "draft": "#e9c46a"}


def plot_review(progress_summary: dict[str, Any], agreement_summary: dict[str, Any], path: Path) -> Path:
    """A PNG with progress per annotator and the agreement figures against Krippendorff's thresholds."""
    import matplotlib.pyplot as plt

    fig = review_figure(progress_summary, agreement_summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def review_figure(progress_summary: dict[str, Any], agreement_summary: dict[str, Any]) -> Any:
    """The review chart as a matplotlib Figure (tests inspect it; :func:`plot_review` saves it).

    Meant to be read by someone who has never heard of alpha: every line is named in a legend, the
    axes say what they count, and no legend sits on top of a bar (legends go below the axes).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    users = list(progress_summary["per_annotator"])
    bottom = np.zeros(len(users))
    for status, color in STATUS_COLORS.items():
        values = np.array([progress_summary["per_annotator"][u].get(status, 0) for u in users])
        left.bar(users, values, bottom=bottom, label=status, color=color)
        bottom += values
    left.set_title(
        f"Progress: {progress_summary['complete']}/{progress_summary['records']} records complete "
        f"({progress_summary['complete_fraction']:.0%})"
    )
    left.set_xlabel("annotator")
    left.set_ylabel("responses (count)")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylim(0, max([1.0, *bottom]) * 1.05)
    if not users:  # before any answer: say so rather than draw an empty numeric axis
        left.set_xticks([])
        left.text(
            0.5, 0.5, "no answers yet", ha="center", va="center", transform=left.transAxes, color="grey"
        )
    handles = [Patch(color=color, label=status) for status, color in STATUS_COLORS.items()]
    left.legend(
        handles=handles, title="response status", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3,
        frameon=False,
    )  # fmt: skip
    names = ["ranking\nKrippendorff α", "acceptable\nKrippendorff α", "problems\nKrippendorff α",
             "acceptable\nFleiss κ"]  # fmt: skip
    keys = [
        "ranking_alpha_ordinal",
        "acceptable_alpha_nominal",
        "problems_alpha_nominal",
        "acceptable_fleiss_kappa",
    ]
    values = [agreement_summary.get(k) for k in keys]
    right.bar(
        names,
        [v if v is not None else 0 for v in values],
        color=["#264653" if v is not None else "#cccccc" for v in values],
    )
    for x, v in enumerate(values):  # inside the bar's top, clear of the threshold lines
        if v is not None and v >= 0.15:
            right.text(x, v - 0.02, f"{v:.2f}", ha="center", va="top", color="white", fontweight="bold")
        else:
            shown = "n/a\n(too few answers)" if v is None else f"{v:.2f}"
            right.text(
                x, max(v or 0, 0) + 0.02, shown, ha="center", va="bottom", fontsize=8 if v is None else None
            )
    right.axhline(RELIABLE, ls=":", color="grey", lw=1.2, label=f"{RELIABLE:g}: reliable agreement")
    right.axhline(
        TENTATIVE, ls="--", color="grey", lw=1.2, label=f"{TENTATIVE:g}: lowest for tentative conclusions"
    )
    right.axhline(0, color="black", lw=0.8)
    right.set_ylim(min([0.0, *(v for v in values if v is not None)]) - 0.05, 1.12)
    right.set_ylabel("agreement (1 = perfect, 0 = chance level)")
    right.set_title(f"Agreement between annotators on {agreement_summary['overlap_records']} shared records")
    right.legend(title="Krippendorff's thresholds", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                 frameon=False)  # fmt: skip
    fig.tight_layout()
    return fig
