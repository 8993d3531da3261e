"""Near-duplicate search over 64-bit perceptual hashes without comparing all pairs.

Multi-index hashing (Norouzi et al., 2012): split each hash into ``threshold + 1`` disjoint bit
chunks. Two hashes within Hamming distance ``threshold`` must agree exactly on at least one chunk
(pigeonhole), so it suffices to compare hashes that share a chunk value. Each bucket is compared
as one vectorised NumPy block, so the cost is about ``n²/2^(64/(t+1))`` popcounts instead of
``n²/2``; for 100 000 hashes at threshold 6 that is a few percent of the all-pairs work. The
trade-off: a bucket made huge by many identical chunks (e.g. blank images) degrades towards
all-pairs for that bucket, so buckets are processed in bounded blocks to cap memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_BLOCK = 2048


def popcount64(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64."""
    return np.bitwise_count(values).astype(np.int64)


def hex_to_uint64(hex_hashes: Sequence[str]) -> np.ndarray:
    """``["ffd8…", …]`` (imagehash's ``str(hash)``, 16 hex digits) → uint64 array."""
    return np.array([int(h, 16) for h in hex_hashes], dtype=np.uint64)


def _chunk_bounds(threshold: int) -> list[tuple[int, int]]:
    chunks = threshold + 1
    if chunks > 64:
        raise ValueError("threshold must be below 64 for 64-bit hashes")
    bounds, start = [], 0
    for index in range(chunks):
        width = 64 // chunks + (1 if index < 64 % chunks else 0)
        bounds.append((start, width))
        start += width
    return bounds


def _pairs_within(indices: np.ndarray, hashes: np.ndarray, threshold: int) -> list[np.ndarray]:
    """All pairs (i < j) of ``indices`` within ``threshold`` bits, in blocks of at most _BLOCK² cells."""
    found = []
    values = hashes[indices]
    size = len(indices)
    for row_start in range(0, size, _BLOCK):
        rows = values[row_start : row_start + _BLOCK]
        for col_start in range(row_start, size, _BLOCK):
            cols = values[col_start : col_start + _BLOCK]
            close = popcount64(rows[:, None] ^ cols[None, :]) <= threshold
            if col_start == row_start:  # diagonal block: keep j > i only
                close &= np.arange(cols.size)[None, :] > np.arange(rows.size)[:, None]
            r, c = np.nonzero(close)
            if r.size:
                found.append(np.stack([indices[row_start + r], indices[col_start + c]], axis=1))
    return found


def near_duplicate_pairs(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """Index pairs ``(i, j)``, ``i < j``, whose hashes differ in at most ``threshold`` bits; shape (k, 2)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    if threshold < 0 or hashes.size < 2:
        return np.empty((0, 2), dtype=np.int64)
    found: list[np.ndarray] = []
    for shift, width in _chunk_bounds(threshold):
        keys = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], sorted_keys.size]
        for begin, end in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
            found.extend(_pairs_within(np.sort(order[begin:end]), hashes, threshold))
    return _stack(found, hashes.size)


def all_pairs_bruteforce(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """The O(n²) reference: compare every pair. For tests and the benchmark baseline only."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    return _stack(_pairs_within(np.arange(hashes.size), hashes, threshold), hashes.size)


def _stack(parts: list[np.ndarray], count: int) -> np.ndarray:
    """Sorted unique pairs; a pair found through several chunks appears once."""
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(parts).astype(np.int64), axis=1)
    codes = np.unique(pairs[:, 0] * count + pairs[:, 1])  # 1-D unique is much faster than axis=0
    return np.stack([codes // count, codes % count], axis=1)


def cluster(count: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``count`` items linked by ``pairs`` (transitive)."""
    if count == 0:
        return np.empty(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return labels
