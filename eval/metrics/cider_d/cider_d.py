"""CIDEr-D as coco-caption computes it, as a local ``evaluate`` module (works offline)."""

import datasets
import evaluate

from eval.metrics.core import cider_d_scores
from eval.text import tokenized

_DESCRIPTION = """CIDEr-D (Vedantam et al., 2015) exactly as pycocoevalcap's CiderScorer: n=4, sigma=6, clipped
counts, x10, document frequencies over the references of every image in the call. Text is tokenised by
Mirada's Unicode tokenizer (lower-cased letters/digits), not the Java PTB tokenizer, so values are not
comparable with published coco-caption/XM3600 figures."""

_KWARGS = """predictions: list of captions. references: list of lists of reference captions (>= 1 each).
Returns {"cider_d": corpus mean, "scores": per-caption values}."""


class CiderD(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Vedantam, Zitnick, Parikh. CIDEr: Consensus-based Image Description Evaluation. CVPR 2015.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict:
        scores = cider_d_scores(
            [tokenized(p) for p in predictions], [[tokenized(r) for r in rs] for rs in references]
        )
        return {"cider_d": float(scores.mean()) if len(scores) else float("nan"), "scores": scores.tolist()}
