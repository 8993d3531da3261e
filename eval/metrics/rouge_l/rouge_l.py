"""ROUGE-L with a Unicode-aware tokenizer, as a local ``evaluate`` module (works offline)."""

import datasets
import evaluate

from eval.metrics.core import rouge_l_scores

_DESCRIPTION = """ROUGE-L F-measure from Google's rouge-score, best over each caption's references, with
Mirada's Unicode tokenizer (rouge-score's default one splits accented words such as "España")."""

_KWARGS = """predictions: list of captions. references: list of lists of reference captions.
Returns {"rouge_l": mean F-measure in [0, 1], "scores": per-caption values}."""


class RougeL(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin. ROUGE: A Package for Automatic Evaluation of Summaries. 2004.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict:
        scores = rouge_l_scores(predictions, references)
        return {"rouge_l": float(scores.mean()) if len(scores) else float("nan"), "scores": scores.tolist()}
