"""Splits: grouped by near-duplicate cluster (no leakage, planted twins), stratified, deterministic per seed."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from data_tools.config import load_config
from data_tools.prefs.build import build_prefs
from data_tools.prefs.config import PrefsConfig
from data_tools.prefs.split import SplitItem, assign_splits
from tests.data_tools.prefs.prefs_helpers import Answer, Scenario, four

STRATA = [(country, category) for country in ("MX", "PE", "ES") for category in ("food", "craft")]


def items_with_twins() -> list[SplitItem]:
    """60 clusters over 6 strata; every third cluster holds 3 near-identical images."""
    items = []
    for index in range(60):
        country, category = STRATA[index % len(STRATA)]
        size = 3 if index % 3 == 0 else 1
        items += [SplitItem(f"img{index}-{k}", f"cluster{index}", country, category) for k in range(size)]
    return items


def clusters_by_split(items, assignment):
    seen = defaultdict(set)
    for item in items:
        seen[item.cluster].add(assignment[item.image_id])
    return seen


@pytest.mark.parametrize("seed", range(8))
def test_no_cluster_straddles_splits(seed):
    items = items_with_twins()
    assignment = assign_splits(items, {"test": 0.2, "validation": 0.1}, seed)
    assert set(assignment) == {i.image_id for i in items}
    assert all(len(splits) == 1 for splits in clusters_by_split(items, assignment).values())


def test_shares_and_stratification():
    items = items_with_twins()
    assignment = assign_splits(items, {"test": 0.2}, seed=3)
    counts = Counter(assignment.values())
    total = len(items)
    assert abs(counts["test"] - 0.2 * total) <= 3  # within one (largest) cluster of the target
    per_stratum = Counter((i.country, i.category) for i in items if assignment[i.image_id] == "test")
    sizes = Counter((i.country, i.category) for i in items)
    for stratum in STRATA:  # every country × category cell lands in test in proportion
        assert abs(per_stratum[stratum] - 0.2 * sizes[stratum]) <= 3, stratum


def test_deterministic_per_seed_and_seed_matters():
    items = items_with_twins()
    first = assign_splits(items, {"test": 0.2}, seed=7)
    assert assign_splits(list(reversed(items)), {"test": 0.2}, seed=7) == first  # input order is irrelevant
    assert assign_splits(items, {"test": 0.2}, seed=8) != first


def test_small_datasets_still_fill_requested_splits():
    singletons = [SplitItem(f"i{k}", f"c{k}", "MX", "food") for k in range(3)]
    assignment = assign_splits(singletons, {"test": 0.1, "validation": 0.1}, seed=0)
    assert sorted(assignment.values()) == ["test", "train", "validation"]
    assert assign_splits(singletons[:1], {"test": 0.5}, seed=0) == {"i0": "train"}  # cannot split one cluster
    assert set(assign_splits(singletons, {}, seed=0).values()) == {"train"}
    with pytest.raises(ValueError, match="unknown splits"):
        assign_splits(singletons, {"dev": 0.1}, seed=0)


def test_planted_near_duplicates_never_leak_through_prefs(workspace):
    """End to end: near-twins (status near_duplicate, same cluster_id) that have decisions stay together."""
    scenario = Scenario(workspace)
    answers = [
        Answer("ana", ["A", "B", "C", "D"], {"A", "B"}),
        Answer("bruno", ["A", "B", "C", "D"], {"A", "B"}),
    ]
    for index in range(18):
        country, category = STRATA[index % len(STRATA)]
        language = {"MX": "es-MX", "PE": "es-PE", "ES": "es-ES"}[country]
        head = scenario.image(
            four(f"Img{index}"), answers, country=country, language=language, category=category
        )
        if index % 3 == 0:  # plant two near-twins of this image, reviewed too
            for twin in range(2):
                scenario.image(four(f"Twin{index}.{twin}"), answers, country=country, language=language,
                               category=category, cluster_of=head.image_id)  # fmt: skip
    scenario.aggregate()
    images = {image.id: image for image in workspace.images(status=None)}
    assert Counter(image.status for image in images.values()) == {"ok": 18, "near_duplicate": 12}
    for seed in range(5):
        config = load_config(PrefsConfig, None, [f"splits.seed={seed}", "splits.test_size=0.25",
                                                 "splits.validation_size=0.15"])  # fmt: skip
        result = build_prefs(workspace, config)
        split_of_cluster: dict[str, set[str]] = defaultdict(set)
        split_of_image: dict[str, set[str]] = defaultdict(set)
        for fmt, rows in result.rows.items():
            assert rows, fmt
            for row in rows:
                split = result.splits[row["image_id"]]
                split_of_image[row["image_id"]].add(split)
                split_of_cluster[images[row["image_id"]].cluster_id].add(split)
        assert len(split_of_image) == 30  # near-duplicates with decisions are used…
        assert all(len(s) == 1 for s in split_of_image.values())  # …one split per image across all formats…
        assert all(len(s) == 1 for s in split_of_cluster.values())  # …and per near-duplicate cluster
        assert set(result.report["splits"]["images"]) == {"train", "validation", "test"}
        assert sum(result.report["splits"]["images"].values()) == 30


def test_split_does_not_depend_on_which_formats_are_built(workspace):
    """SFT today and DPO tomorrow: each image must land in the same split both times."""
    scenario = Scenario(workspace)
    for index in range(20):
        country, category = STRATA[index % len(STRATA)]
        language = {"MX": "es-MX", "PE": "es-PE", "ES": "es-ES"}[country]
        # half the images have a unanimous ranking with nothing acceptable: they give DPO pairs but no SFT row
        appropriate = {"A"} if index % 2 else set()
        answers = [
            Answer("ana", ["A", "B", "C", "D"], appropriate),
            Answer("bruno", ["A", "B", "C", "D"], appropriate),
        ]
        scenario.image(four(f"Img{index}"), answers, country=country, language=language, category=category)
    scenario.aggregate()
    splits = {}
    for fmt in ("sft", "dpo"):
        config = load_config(PrefsConfig, None, [f"formats=[{fmt}]", "splits.test_size=0.3"])
        splits[fmt] = build_prefs(workspace, config).splits
    shared = set(splits["sft"]) & set(splits["dpo"])
    assert shared and all(splits["sft"][i] == splits["dpo"][i] for i in shared)
