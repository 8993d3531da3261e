from __future__ import annotations

import numpy as np
import pytest

from data_tools.neardup import all_pairs_bruteforce, cluster, hex_to_uint64, near_duplicate_pairs
from tests.helpers import draw_image


def _planted(count: int, seed: int, flips: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, size=count, dtype=np.uint64
    )
    for _ in range(count // 10):  # plant near twins: copy a hash and flip a few bits
        source, target = rng.integers(count), rng.integers(count)
        bits = rng.choice(64, size=rng.integers(0, flips + 1), replace=False)
        value = hashes[source]
        for bit in bits:
            value ^= np.uint64(1) << np.uint64(bit)
        hashes[target] = value
    return hashes


@pytest.mark.parametrize("threshold", [0, 3, 6, 10])
def test_multi_index_search_equals_all_pairs(threshold):
    hashes = _planted(3000, seed=threshold, flips=threshold + 2)
    expected = all_pairs_bruteforce(hashes, threshold)
    found = near_duplicate_pairs(hashes, threshold)
    assert len(expected) > 0
    np.testing.assert_array_equal(found, expected)


def test_skewed_bucket_is_still_exact():
    # Many hashes sharing most bits (e.g. near-blank images) make one huge bucket; it must stay exact.
    rng = np.random.default_rng(1)
    base = np.uint64(0xFFFF_0000_FFFF_0000)
    hashes = base ^ rng.integers(0, 2**12, size=2000, dtype=np.uint64)
    np.testing.assert_array_equal(near_duplicate_pairs(hashes, 3), all_pairs_bruteforce(hashes, 3))


def test_cluster_is_transitive():
    labels = cluster(5, np.array([[0, 1], [1, 2]]))
    assert labels[0] == labels[1] == labels[2]
    assert len({labels[0], labels[3], labels[4]}) == 3


def test_real_copies_are_near_and_distinct_images_are_not():
    import imagehash
    from PIL import Image

    original = draw_image(1, (640, 480))
    copy = original.resize((480, 360), Image.Resampling.BICUBIC)
    other = draw_image(2, (640, 480))
    hashes = hex_to_uint64([str(imagehash.phash(im)) for im in (original, copy, other)])
    pairs = near_duplicate_pairs(hashes, 6)
    assert pairs.tolist() == [[0, 1]]
