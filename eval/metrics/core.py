"""Reference metrics as per-image sufficient statistics, so corpus scores and bootstrap resamples agree.

Every metric here is a pair: per-image statistics (a row of numbers per caption) and a function that
turns the *sum* of such rows into the corpus score. Resampling images then only re-sums rows, so a
bootstrap interval costs one matrix product, and the corpus score is exactly what the peer library
reports on the same input:

- BLEU and chrF++ are sacrebleu's own objects; the rows are sacrebleu's segment statistics (the ones
  its paired-bootstrap significance test re-sums), the final score its ``_compute_score_from_stats``.
- CIDEr-D re-implements coco-caption's ``CiderScorer`` (pycocoevalcap 1.2) operation for operation:
  n-grams 1-4, tf-idf with document frequencies over the references of the *whole evaluated set*,
  clipped (min) numerator, Gaussian length penalty sigma=6 on the (bigram-counted, as upstream)
  lengths, averaged over references, x10. The per-image score is its row; the corpus score the mean.
  It is re-implemented because pycocoevalcap is a 104 MB wheel of Java jars and ``evaluate`` has no
  CIDEr; ``tests/eval`` asserts equality with pycocoevalcap on the same tokens.
- ROUGE-L is Google's ``rouge-score`` with a Unicode-aware tokenizer (its default one splits
  "España" into "espa" + "a"), best F-measure over the references, per image; the corpus score the mean.
"""

from __future__ import annotations

import math
import multiprocessing
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.text import tokenize, tokenized

Stats = np.ndarray  # (n_images, k) float64


@dataclass
class MetricStats:
    """Per-image rows plus how to turn a summed row into the metric (``nan`` when undefined)."""

    name: str
    rows: Stats
    finalize: Callable[[np.ndarray], float]
    per_image: np.ndarray  # the metric on each image alone (sentence-level), for tables and wins/losses
    finalize_batch: Callable[[np.ndarray], np.ndarray] | None = None  # same, over (batch, k) at once

    def corpus(self, mask: np.ndarray | None = None) -> float:
        rows = self.rows if mask is None else self.rows[mask]
        return self.finalize(rows.sum(axis=0))


def _mean_finalize(total: np.ndarray) -> float:
    return float(total[0] / total[1]) if total[1] > 0 else float("nan")


def mean_finalize_batch(totals: np.ndarray) -> np.ndarray:
    """:func:`_mean_finalize` over a batch of summed rows ``(batch, 2)`` at once (the bootstrap's hot path)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals[:, 1] > 0, totals[:, 0] / np.where(totals[:, 1] > 0, totals[:, 1], 1), np.nan)


def mean_stats(name: str, values: Sequence[float | None], scale: float = 1.0) -> MetricStats:
    """A metric that is the mean of per-image values; None marks an image where it is undefined."""
    rows = np.array([[0.0, 0.0] if v is None else [float(v) * scale, 1.0] for v in values], dtype=float)
    rows = rows.reshape(len(values), 2)
    per_image = np.array([np.nan if v is None else float(v) * scale for v in values], dtype=float)
    return MetricStats(name, rows, _mean_finalize, per_image, mean_finalize_batch)


# -- sacrebleu -------------------------------------------------------------------------------------
def _ref_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: one stream per reference position, None where an image has fewer references."""
    width = max((len(refs) for refs in references), default=0)
    return [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]


def bleu_metric(tokenize_name: str = "13a", references: Sequence[Sequence[str]] | None = None) -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=tokenize_name, references=_ref_streams(references) if references else None)


def chrf_metric(references: Sequence[Sequence[str]] | None = None) -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF(word_order=2, references=_ref_streams(references) if references else None)


def bleu_batch(metric: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """sacrebleu's corpus BLEU over many summed stat rows at once, for the bootstrap's thousands of resamples.

    Only for the configuration Mirada uses (``smooth_method="exp"``, no effective order, 4-grams), where
    ``BLEU.compute_bleu`` reduces to: zero if any n-gram order has no candidates or nothing matches,
    else brevity penalty x geometric mean of the precisions, each zero count replaced by 100/(2^k x total)
    for the k-th zero. Tests assert equality with ``_compute_score_from_stats`` on random rows.
    """
    if metric.smooth_method != "exp" or metric.effective_order or metric.max_ngram_order != 4:
        return None

    def finalize(rows: np.ndarray) -> np.ndarray:
        sys_len, ref_len = rows[:, 0], rows[:, 1]
        correct, total = rows[:, 2:6], rows[:, 6:10]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            bp = np.where(sys_len >= ref_len, 1.0, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0))
            zeros = correct == 0
            halvings = np.cumsum(zeros, axis=1)
            safe_total = np.where(total > 0, total, 1.0)
            precision = np.where(zeros, 100.0 / (2.0**halvings * safe_total), 100.0 * correct / safe_total)
            score = bp * np.exp(np.log(precision).sum(axis=1) / 4)
        return np.where((total == 0).any(axis=1) | zeros.all(axis=1), 0.0, score)

    return finalize


def chrf_batch(metric: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """sacrebleu's chrF over many summed stat rows at once (effective-order averaging, no eps smoothing)."""
    if metric.eps_smoothing:
        return None
    factor, eps = metric.beta**2, 1e-16

    def finalize(rows: np.ndarray) -> np.ndarray:
        stats = rows.reshape(rows.shape[0], -1, 3)
        n_hyp, n_ref, n_match = stats[..., 0], stats[..., 1], stats[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(n_hyp > 0, n_match / np.where(n_hyp > 0, n_hyp, 1), eps)
            rec = np.where(n_ref > 0, n_match / np.where(n_ref > 0, n_ref, 1), eps)
            valid = (n_hyp > 0) & (n_ref > 0)
            order = valid.sum(axis=1)
            avg_prec = np.where(order > 0, (prec * valid).sum(axis=1) / np.maximum(order, 1), 0.0)
            avg_rec = np.where(order > 0, (rec * valid).sum(axis=1) / np.maximum(order, 1), 0.0)
            denom = factor * avg_prec + avg_rec
            score = 100 * (1 + factor) * avg_prec * avg_rec / np.where(denom > 0, denom, 1)
        return np.where(avg_prec + avg_rec > 0, score, 0.0)

    return finalize


def sacrebleu_stats(
    name: str,
    metric: Any,
    sentence_metric: Any,
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]] | None,
    batch: Callable[[np.ndarray], np.ndarray] | None = None,
) -> MetricStats:
    """Segment statistics of ``hyps``; ``refs=None`` uses the references cached in ``metric`` (built once
    per report and shared by every system, which halves the work of comparing two systems)."""
    stats = metric._extract_corpus_statistics(list(hyps), _ref_streams(refs) if refs is not None else None)
    return sacrebleu_from_stats(name, metric, sentence_metric, stats, batch)


def sacrebleu_from_stats(
    name: str,
    metric: Any,
    sentence_metric: Any,
    stats: Sequence[Sequence[int]],
    batch: Callable[[np.ndarray], np.ndarray] | None = None,
) -> MetricStats:
    rows = np.asarray(stats, dtype=float).reshape(len(stats), -1)

    def finalize(total: np.ndarray) -> float:
        return float(metric._compute_score_from_stats(np.rint(total).astype(np.int64).tolist()).score)

    per_image = np.array([sentence_metric._compute_score_from_stats(list(map(int, s))).score for s in stats])
    return MetricStats(name, rows, finalize, per_image, batch)


def bleu_stats(
    hyps: Sequence[str], refs: Sequence[Sequence[str]] | None, tokenize_name: str = "13a", metric: Any = None
) -> MetricStats:
    from sacrebleu.metrics import BLEU

    metric = metric if metric is not None else bleu_metric(tokenize_name)
    sentence = BLEU(tokenize=tokenize_name, effective_order=True)
    return sacrebleu_stats("bleu", metric, sentence, hyps, refs, bleu_batch(metric))


def chrf_stats(hyps: Sequence[str], refs: Sequence[Sequence[str]] | None, metric: Any = None) -> MetricStats:
    metric = metric if metric is not None else chrf_metric()
    return sacrebleu_stats("chrf++", metric, metric, hyps, refs, chrf_batch(metric))


def sacrebleu_signatures(tokenize_name: str = "13a", n_refs: int | None = None) -> dict[str, str]:
    """The signatures to publish beside BLEU and chrF++ (``nrefs:var`` when images differ in references)."""
    bleu, chrf = bleu_metric(tokenize_name), chrf_metric()
    for metric in (bleu, chrf):
        metric.num_refs = n_refs if n_refs is not None else -1
    return {"bleu": str(bleu.get_signature()), "chrf++": str(chrf.get_signature())}


# -- CIDEr-D ---------------------------------------------------------------------------------------
def _ngrams(tokens: Sequence[str], n: int) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i : i + k])] += 1
    return counts


class CiderD:
    """coco-caption's CiderScorer over a fixed set of references (see the module docstring).

    Document frequencies come from all the references given here, so build it once over the whole
    evaluated set; :meth:`scores` then scores any captions (any system, any slice of images) against it.
    """

    def __init__(self, refs: Sequence[Sequence[str]], *, n: int = 4, sigma: float = 6.0) -> None:
        self.n, self.sigma = n, sigma
        cooked = [[_ngrams(r.split(), n) for r in image_refs] for image_refs in refs]
        if any(not image_refs for image_refs in cooked):
            raise ValueError("CIDEr-D: every image needs at least one reference")
        document_frequency: dict[tuple[str, ...], float] = defaultdict(float)
        for image_refs in cooked:
            for ngram in {g for ref in image_refs for g in ref}:
                document_frequency[ngram] += 1
        self.ref_len = math.log(float(len(cooked))) if cooked else 0.0
        self.log_df = {g: math.log(max(1.0, df)) for g, df in document_frequency.items()}
        self.ref_vectors = [[self._vectorise(ref) for ref in image_refs] for image_refs in cooked]

    def _vectorise(self, counts: dict[tuple[str, ...], int]) -> tuple[list[dict], list[float], int]:
        vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(self.n)]
        norm = [0.0] * self.n
        length = 0
        for ngram, tf in counts.items():
            order = len(ngram) - 1
            weight = float(tf) * (self.ref_len - self.log_df.get(ngram, 0.0))
            vec[order][ngram] = weight
            norm[order] += weight**2
            if order == 1:  # upstream counts the length in bigrams; kept for identical scores
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    def scores(self, hyps: Sequence[str], start: int = 0) -> np.ndarray:
        """CIDEr-D of whitespace-tokenised ``hyps`` against images ``start, start + 1, …``."""
        n, two_sigma_sq = self.n, 2 * self.sigma**2
        result = np.zeros(len(hyps))
        for index, hyp in enumerate(hyps):
            vec, norm, length = self._vectorise(_ngrams(hyp.split(), n))
            refs = self.ref_vectors[start + index]
            total = np.zeros(n)
            for vec_ref, norm_ref, length_ref in refs:
                penalty = math.e ** (-(float(length - length_ref) ** 2) / two_sigma_sq)
                for order in range(n):
                    value = 0.0
                    ref_order = vec_ref[order]
                    for ngram, weight in vec[order].items():
                        ref_weight = ref_order.get(ngram, 0.0)
                        value += min(weight, ref_weight) * ref_weight
                    if norm[order] != 0 and norm_ref[order] != 0:
                        value /= norm[order] * norm_ref[order]
                    total[order] += value * penalty
            result[index] = float(np.mean(total)) / len(refs) * 10.0
        return result


def cider_d_scores(
    hyps: Sequence[str], refs: Sequence[Sequence[str]], *, n: int = 4, sigma: float = 6.0
) -> np.ndarray:
    """Per-image CIDEr-D of whitespace-tokenised ``hyps`` against ``refs`` (one call = one evaluated set)."""
    if len(hyps) != len(refs):
        raise ValueError("cider_d_scores: one list of references per hypothesis")
    return CiderD(refs, n=n, sigma=sigma).scores(hyps)


def cider_stats(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricStats:
    scores = cider_d_scores([tokenized(h) for h in hyps], [[tokenized(r) for r in rs] for rs in refs])
    return mean_stats("cider-d", list(scores))


# -- ROUGE-L ---------------------------------------------------------------------------------------
class UnicodeTokenizer:
    """rouge-score's tokenizer interface over :func:`eval.text.tokenize` (keeps "España" whole)."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


def rouge_l_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-image ROUGE-L F-measure, the best over the image's references (rouge-score's ``score_multi``)."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], tokenizer=UnicodeTokenizer())
    return np.array(
        [scorer.score_multi(list(rs), h)["rougeL"].fmeasure for h, rs in zip(hyps, refs, strict=True)]
    )


def rouge_stats(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricStats:
    return mean_stats("rouge-l", list(rouge_l_scores(hyps, refs)), scale=100.0)


class ReferenceSet:
    """The evaluated images' references, pre-processed once for every system that is scored against them."""

    def __init__(self, refs: Sequence[Sequence[str]], bleu_tokenize: str = "13a") -> None:
        self.refs = [list(r) for r in refs]
        self.bleu_tokenize = bleu_tokenize
        self.bleu = bleu_metric(bleu_tokenize, self.refs)
        self.chrf = chrf_metric(self.refs)
        self.cider = CiderD([[tokenized(r) for r in rs] for rs in self.refs])


_WORK: dict[str, Any] = {}  # inherited by forked workers: the references and the captions being scored


def _score_slice(job: tuple[str, int, int]) -> list:
    """One metric over captions ``start:stop`` (segment-level work only, so slices concatenate exactly)."""
    kind, start, stop = job
    hyps, refset = _WORK["hyps"][start:stop], _WORK["refset"]
    if kind in ("bleu", "chrf"):
        metric = getattr(refset, kind)
        full = metric._ref_cache
        metric._ref_cache = full[start:stop]  # the cached references of these images only
        try:
            return metric._extract_corpus_statistics(hyps, None)
        finally:
            metric._ref_cache = full
    if kind == "cider":
        return refset.cider.scores([tokenized(h) for h in hyps], start).tolist()
    return rouge_l_scores(hyps, refset.refs[start:stop]).tolist()


def reference_metrics(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]] | ReferenceSet,
    *,
    bleu_tokenize: str = "13a",
    workers: int = 1,
) -> list[MetricStats]:
    """BLEU, chrF++, CIDEr-D and ROUGE-L rows for one system over the evaluated images.

    With ``workers > 1`` the per-caption work runs in forked processes on slices of the captions; every
    statistic is per caption (CIDEr's document frequencies are fixed in the ``ReferenceSet``), so the
    result is identical to one process.
    """
    from sacrebleu.metrics import BLEU

    if not isinstance(refs, ReferenceSet):
        refs = ReferenceSet(refs, bleu_tokenize)
    n = len(hyps)
    parts = max(1, min(workers, n // 100))
    bounds = [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]
    jobs = [(kind, a, b) for kind in ("bleu", "chrf", "cider", "rouge") for a, b in bounds]
    _WORK.update(hyps=list(hyps), refset=refs)
    try:
        if parts == 1 or "fork" not in multiprocessing.get_all_start_methods():
            outputs = [_score_slice(job) for job in jobs]
        else:
            with multiprocessing.get_context("fork").Pool(parts) as pool:
                outputs = pool.map(_score_slice, jobs, chunksize=1)
    finally:
        _WORK.clear()
    merged: dict[str, list] = defaultdict(list)
    for (kind, _, _), output in zip(jobs, outputs, strict=True):
        merged[kind].extend(output)
    sentence_bleu = BLEU(tokenize=refs.bleu_tokenize, effective_order=True)
    return [
        sacrebleu_from_stats("bleu", refs.bleu, sentence_bleu, merged["bleu"], bleu_batch(refs.bleu)),
        sacrebleu_from_stats("chrf++", refs.chrf, refs.chrf, merged["chrf"], chrf_batch(refs.chrf)),
        mean_stats("cider-d", merged["cider"]),
        mean_stats("rouge-l", merged["rouge"], scale=100.0),
    ]
