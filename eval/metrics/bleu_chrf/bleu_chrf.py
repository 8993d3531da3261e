"""sacrebleu BLEU and chrF++ with their signatures, as a local ``evaluate`` module (works offline)."""

import datasets
import evaluate

from eval.metrics.core import bleu_stats, chrf_stats, sacrebleu_signatures

_DESCRIPTION = """Corpus BLEU and chrF++ (chrF with word bigrams) from sacrebleu, allowing a different number
of references per caption. The signatures must be published with the scores."""

_KWARGS = """predictions: list of captions. references: list of lists of reference captions.
tokenize: sacrebleu BLEU tokenizer ("13a" default, or "intl"; the flores/spm ones download models).
Returns {"bleu", "chrf++", "bleu_signature", "chrf++_signature"}."""


class BleuChrf(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post. A Call for Clarity in Reporting BLEU Scores. WMT 2018.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions: list[str], references: list[list[str]], tokenize: str = "13a") -> dict:
        counts = {len(rs) for rs in references}
        signatures = sacrebleu_signatures(tokenize, counts.pop() if len(counts) == 1 else None)
        return {
            "bleu": bleu_stats(predictions, references, tokenize).corpus(),
            "chrf++": chrf_stats(predictions, references).corpus(),
            "bleu_signature": signatures["bleu"],
            "chrf++_signature": signatures["chrf++"],
        }
