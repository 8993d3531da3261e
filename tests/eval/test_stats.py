"""Bootstrap intervals cover the truth at their nominal rate; the paired test finds planted differences only."""

from __future__ import annotations

import numpy as np

from eval.metrics.core import _mean_finalize
from eval.stats import MetricColumns, bootstrap_intervals, cluster_table, paired_comparison

MEAN = [MetricColumns("mean", slice(0, 2), _mean_finalize)]


def rows(values: np.ndarray) -> np.ndarray:
    return np.stack([values, np.ones_like(values)], axis=1)


def test_the_95_percent_interval_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(123)
    hits, repetitions = 0, 200
    for rep in range(repetitions):
        sample = rng.normal(10.0, 3.0, size=60)
        table = cluster_table(rows(sample), [str(i) for i in range(60)])
        [(low, high)] = bootstrap_intervals(table, MEAN, n_resamples=300, confidence=0.95, seed=rep)
        hits += low <= 10.0 <= high
    assert 0.89 <= hits / repetitions <= 0.99  # binomial sd at n=200 is ~1.5 points


def test_clusters_are_resampled_together_so_duplicates_do_not_narrow_the_interval():
    rng = np.random.default_rng(0)
    values = np.repeat(rng.normal(0, 1, size=20), 10)  # 20 photos, each with 9 near-duplicates
    as_clusters = cluster_table(rows(values), [str(i // 10) for i in range(200)])
    as_images = cluster_table(rows(values), [str(i) for i in range(200)])
    [(cl_low, cl_high)] = bootstrap_intervals(as_clusters, MEAN, n_resamples=500, confidence=0.95, seed=0)
    [(im_low, im_high)] = bootstrap_intervals(as_images, MEAN, n_resamples=500, confidence=0.95, seed=0)
    assert (cl_high - cl_low) > 2 * (im_high - im_low)


def test_the_paired_test_finds_a_planted_difference_and_not_an_absent_one():
    rng = np.random.default_rng(7)
    base = rng.normal(50, 10, size=80)  # image difficulty varies a lot; the pairing removes it
    clusters = [str(i) for i in range(80)]
    better = base + 2.0 + rng.normal(0, 1, size=80)
    same = base + rng.normal(0, 1, size=80)
    [found] = paired_comparison(
        cluster_table(rows(base), clusters), cluster_table(rows(better), clusters), MEAN,
        n_resamples=500, confidence=0.95, seed=0,
    )  # fmt: skip
    assert found.p_value < 0.01 and found.ci_low > 0 and abs(found.difference - 2.0) < 0.5
    [none] = paired_comparison(
        cluster_table(rows(base), clusters), cluster_table(rows(same), clusters), MEAN,
        n_resamples=500, confidence=0.95, seed=0,
    )  # fmt: skip
    assert none.p_value > 0.05 and none.ci_low < 0 < none.ci_high


def test_one_cluster_has_no_interval_rather_than_a_fake_one():
    table = cluster_table(rows(np.array([1.0, 2.0])), ["a", "a"])
    assert all(
        np.isnan(x) for x in bootstrap_intervals(table, MEAN, n_resamples=100, confidence=0.95, seed=0)[0]
    )
