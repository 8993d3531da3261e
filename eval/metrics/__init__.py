"""Mirada's reference metrics: shared computation in :mod:`eval.metrics.core`, plus local ``evaluate`` modules.

``evaluate.load("bleu")`` needs the Hub; a local module directory loads offline. Each folder here is
one such module, so other tools can use exactly the numbers Mirada reports:

    import evaluate
    from eval.metrics import metric_path
    cider = evaluate.load(metric_path("cider_d"))
    cider.compute(predictions=["un taco"], references=[["un taco al pastor"]])
"""

from __future__ import annotations

from pathlib import Path

LOCAL_METRICS = ("bleu_chrf", "cider_d", "rouge_l")


def metric_path(name: str) -> str:
    """The directory of a local ``evaluate`` module, for ``evaluate.load(metric_path(name))``."""
    if name not in LOCAL_METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(LOCAL_METRICS)}")
    return str(Path(__file__).parent / name)
