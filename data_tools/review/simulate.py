"""Simulated annotators for ``make demo`` only: they are not people, and their output says so.

The demo has no reviewers, yet must show the review round-trip (export → answers → import →
aggregation and agreement). Two simulated annotators rank candidates by the strategy that produced
them (cultural first), with per-annotator noise so that agreement is high but not perfect, flag
the perturbation a candidate carries, and sometimes write a correction. Their usernames start with
``simulated-`` so nothing downstream can mistake them for human judgement.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from data_tools.workspace import Workspace

_PROBLEM_OF = {"wrong_country": "wrong_culture", "stereotype": "stereotype", "wrong_variety": "wrong_variety"}
_STRATEGY_SCORE = {"cultural": 3.0, "generic": 1.0, "perturbed": 0.0}


def simulate_responses(workspace: Workspace, out: Path, *, annotators: tuple[str, ...] = ("ana", "bruno"),
                       noise: float = 0.8, seed: int = 0) -> int:  # fmt: skip
    """Write simulated answers for every exported record to ``out`` (the import format); return the line count."""
    drafts = {d.cache_key: d for d in workspace.drafts()}
    rng = random.Random(seed)
    lines = 0
    with out.open("w", encoding="utf-8") as handle:
        for (dataset, record_id), item in sorted(workspace.review_items().items()):
            for name in annotators:
                scored = {
                    slot: _STRATEGY_SCORE.get(drafts[key].strategy, 1.0) + rng.gauss(0, noise)
                    for slot, key in item.slots.items()
                    if key in drafts
                }
                ranking = sorted(scored, key=scored.get, reverse=True)
                appropriate = [
                    s for s in ranking if drafts[item.slots[s]].strategy == "cultural" and scored[s] > 2.0
                ]
                problems = sorted(
                    {
                        _PROBLEM_OF[d.perturbation]
                        for d in (drafts[item.slots[s]] for s in ranking)
                        if d.perturbation
                    }
                )
                correction = None
                if rng.random() < 0.2:
                    correction = drafts[item.slots[ranking[0]]].caption
                row = {"dataset": dataset, "record_id": record_id, "user": f"simulated-{name}", "status": "submitted",
                       "ranking": ranking, "appropriate": appropriate, "problems": problems, "correction": correction}  # fmt: skip
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                lines += 1
    return lines
