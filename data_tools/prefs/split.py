"""Leak-free splits: whole near-duplicate clusters go to one split, spread evenly over countries and categories.

    from data_tools.prefs.split import SplitItem, assign_splits
    assign_splits([SplitItem("img1", "clusterA", "MX", "food"), …], {"test": 0.1}, seed=0)
    # -> {"img1": "train", …}

A caption model evaluated on a near-twin of a training image looks better than it is, so the unit
of assignment is the near-duplicate cluster (``ImageRow.cluster_id``; a lone image is its own
cluster), never the row or the image. Exact stratification is impossible with the small, lumpy
strata of a hackathon dataset (many country × category cells hold one cluster), so this is
*systematic allocation*: clusters are ordered by country, then category (strata and clusters in
seeded random order), and each goes to the split furthest below its target share of images. Every
country's and category's clusters are thereby spread over the splits in proportion, the global
shares are met to within one cluster, and the same seed always gives the same split. A requested
split never ends up empty while there are enough clusters to fill it.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SPLIT_ORDER = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitItem:
    """One image to place: its id, its near-duplicate cluster and what to stratify by."""

    image_id: str
    cluster: str
    country: str | None
    category: str | None
    seq: int = 0


def _draw(seed: int, *parts: object) -> str:
    """A seeded, platform-independent sort key (Python's ``hash`` of str is salted per process)."""
    return hashlib.sha256("\x1f".join([str(seed), *map(str, parts)]).encode()).hexdigest()


def _mode(values: Sequence[str | None]) -> str:
    counts = Counter("" if v is None else v for v in values)
    return min(counts, key=lambda v: (-counts[v], v))


def assign_splits(items: Sequence[SplitItem], sizes: Mapping[str, float], seed: int) -> dict[str, str]:
    """``image_id -> split`` for every item; ``sizes`` gives the shares of ``test`` and ``validation``.

    Example: 10 singleton clusters with ``{"test": 0.2}`` put exactly 2 images in test.
    """
    shares = {"test": float(sizes.get("test", 0.0)), "validation": float(sizes.get("validation", 0.0))}
    unknown = set(sizes) - set(shares)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; use test and validation (train is the rest)")
    shares["train"] = 1.0 - shares["test"] - shares["validation"]
    if shares["train"] <= 0 or min(shares.values()) < 0:
        raise ValueError(f"split shares must be non-negative and leave room for train: {shares}")
    wanted = [s for s in SPLIT_ORDER if shares[s] > 0]
    clusters: dict[str, list[SplitItem]] = defaultdict(list)
    for item in items:
        clusters[item.cluster].append(item)

    def order(cluster: str) -> tuple[str, ...]:
        members = clusters[cluster]
        country, category = _mode([m.country for m in members]), _mode([m.category for m in members])
        return (_draw(seed, country), country, _draw(seed, country, category), category,
                _draw(seed, "cluster", cluster), cluster)  # fmt: skip

    ordered = sorted(clusters, key=order)
    assigned: dict[str, str] = {}
    weight = dict.fromkeys(SPLIT_ORDER, 0)
    for cluster in ordered:
        size = len(clusters[cluster])
        total = sum(weight.values()) + size
        split = max(wanted, key=lambda s: (shares[s] * total - weight[s], -SPLIT_ORDER.index(s)))
        assigned[cluster] = split
        weight[split] += size
    # Small datasets: a requested split that got nothing takes the last-placed cluster of the largest split.
    for split in wanted:
        if weight[split] == 0 and len(ordered) >= len(wanted):
            donor = max(wanted, key=lambda s: (weight[s], -SPLIT_ORDER.index(s)))
            donors = [c for c in ordered if assigned[c] == donor]
            if len(donors) <= 1:
                continue
            smallest = min(reversed(donors), key=lambda c: len(clusters[c]))
            assigned[smallest] = split
            weight[donor] -= len(clusters[smallest])
            weight[split] += len(clusters[smallest])
    return {item.image_id: assigned[item.cluster] for item in items}
