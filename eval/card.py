"""Put an eval report into a training run's Model Card: ``model-index`` entries and a marked section.

The card written by ``mirada train`` (``vlm/train/card.py``) promises that caption quality is measured
by the eval stage; this module delivers it in place, from ``report.json`` only (no typed numbers):

- the YAML header's ``model-index`` gets one ``EvalResult`` per overall metric of the card's system
  (``metric_config`` starts with ``mirada-eval`` so a rerun replaces exactly these and keeps the
  training-objective results the train stage wrote);
- the body gets a section between ``<!-- mirada-eval:start -->`` and ``<!-- mirada-eval:end -->``,
  replaced on every run, inserted after the card's "Evaluation" section the first time;
- when the report carries the judge's results (``report.json``'s ``"judge"``), a second marked section
  (:mod:`eval.judge.section`) right after it: win rates next to the judge's measured agreement with
  the annotators. ``mirada judge --card`` refreshes that section alone, from ``judge.json``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_tools.cards import md_text, scrub_local_paths
from eval.inputs import EvalError

START, END = "<!-- mirada-eval:start -->", "<!-- mirada-eval:end -->"
CONFIG_PREFIX = "mirada-eval"


def card_system_for(systems: Sequence[str], base: str, explicit: str | None) -> str:
    """Which evaluated system the card's model is: the explicit one, else the only non-base system."""
    if explicit:
        if explicit not in systems:
            raise EvalError(f"--card-system {explicit!r} was not evaluated; systems: {', '.join(systems)}")
        return explicit
    candidates = [s for s in systems if s != base]
    if len(candidates) != 1:
        raise EvalError(
            f"--card: cannot tell which of {', '.join(systems)} the card's model is; pass --card-system NAME"
        )
    return candidates[0]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def eval_section(report: dict[str, Any], system: str) -> str:
    """The card section: overall scores, the comparison with the base, and the per-country table."""
    from eval.report import METRICS, metric_table

    names = [m["name"] for m in report["metrics"]]
    conf = round(report["settings"]["bootstrap"]["confidence"] * 100)
    lines = [
        START,
        "## Caption evaluation",
        "",
        f"Measured by Mirada's eval stage on the `{report['split']}` split ({report['images']} images with human "
        f"reference captions or reviewers' corrections; {report['clusters']} near-duplicate clusters). Values are "
        f"followed by {conf}% bootstrap intervals that resample images ({report['settings']['bootstrap']['resamples']} "
        f"resamples, seed {report['seed']}).",
        "",
        "| metric | " + " | ".join(md_text(s) for s in report["systems"]) + " |",
        "|---|" + "---:|" * len(report["systems"]),
    ]
    for n in names:
        cells = []
        for s in report["systems"]:
            e = report["results"][s]["overall"]["metrics"][n]
            cells.append(
                _fmt(e["value"])
                + (f" [{_fmt(e['ci_low'])}, {_fmt(e['ci_high'])}]" if e["ci_low"] is not None else "")
            )
        lines.append(f"| {METRICS[n].label} ({METRICS[n].unit}) | " + " | ".join(cells) + " |")
    for comparison in report["comparisons"]:
        if comparison["system"] != system:
            continue
        lines += [
            "",
            f"Paired difference `{system}` − `{comparison['base']}` on the same images (paired bootstrap interval, "
            "two-sided permutation p-value):",
            "",
            "| metric | difference | interval | p-value |",
            "|---|---:|---:|---:|",
        ]
        for n in names:
            r = comparison["groups"]["overall"]["metrics"][n]
            p = "–" if r["p_value"] is None else f"{r['p_value']:.3f}"
            lines.append(
                f"| {METRICS[n].label} | {_fmt(r['difference'])} | [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {p} |"
            )
    if "by_country" in report["results"][system]:
        shown = [
            n
            for n in ("chrf++", "cider-d", "term_recall", "wrong_culture", "language_fidelity")
            if n in names
        ]
        lines += ["", f"### By country (`{system}`; ⚠ = fewer than {report['settings']['min_group_size']} images)", "",
                  metric_table(report, system, "by_country", shown)]  # fmt: skip
    lines += [
        "",
        f"sacrebleu signatures: BLEU `{report['signatures']['bleu']}`, chrF++ `{report['signatures']['chrf++']}`. "
        "CIDEr-D uses a Java-free tokenizer and is not comparable with published XM3600/COCO figures. Cultural "
        "metrics are lexicon-based signals (see the eval report for what each counts).",
        END,
    ]
    return "\n".join(lines)


def _insert_section(text: str, section: str) -> str:
    if START in text and END in text:
        return re.sub(
            re.escape(START) + r".*?" + re.escape(END), lambda _: section, text, count=1, flags=re.S
        )
    headings = [m for m in re.finditer(r"^## .*$", text, flags=re.M)]
    for i, heading in enumerate(headings):
        if heading.group(0).strip().lower() == "## evaluation":
            end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
            return text[:end].rstrip() + "\n\n" + section + "\n\n" + text[end:]
    return text.rstrip() + "\n\n" + section + "\n"


def update_model_card(run_dir: Path, report: dict[str, Any], system: str) -> Path:
    """Rewrite ``run_dir/README.md``'s ``model-index`` and eval section from ``report``; returns the path."""
    from huggingface_hub import EvalResult, ModelCard

    path = Path(run_dir) / "README.md"
    card = ModelCard.load(path)
    data = card.data
    kept = [r for r in (data.eval_results or []) if not (r.metric_config or "").startswith(CONFIG_PREFIX)]
    dataset = (data.datasets or [None])[0] if getattr(data, "datasets", None) else None
    labels = {m["name"]: m["label"] for m in report["metrics"]}
    ours = []
    for name, entry in report["results"][system]["overall"]["metrics"].items():
        if entry["value"] is None:
            continue
        ours.append(
            EvalResult(
                task_type="image-text-to-text",
                task_name="Culturally grounded image description",
                dataset_type=dataset or "mirada-eval",
                dataset_name=f"Mirada eval {report['name']} ({report['images']} images)",
                dataset_split=report["split"],
                metric_type=name,
                metric_name=labels[name],
                metric_value=entry["value"],
                metric_config=f"{CONFIG_PREFIX}:{report['name']}",
            )
        )
    data.eval_results = kept + ours
    if not data.model_name:
        data.model_name = Path(run_dir).name
    card.text = _insert_section(card.text, eval_section(report, system))
    if (report.get("judge") or {}).get("results"):
        card.text = _with_judge(card.text, report["judge"])
        _set_judge_results(data, report["judge"])
    card.text = scrub_local_paths(card.text)  # the card kit's last pass: no local path reaches a card
    card.save(path)
    return path


JUDGE_PREFIX = "mirada-judge"


def _judge_results(entry: dict[str, Any], dataset: str | None) -> list[Any]:
    """``model-index`` entries for the judge's overall win rates (ties split evenly), from judge.json only.

    The metric name carries the judge's trust label, so the Hub's leaderboard view never shows a
    win rate without saying whether the judge was calibrated against the annotators.
    """
    from huggingface_hub import EvalResult

    results = entry.get("results") or {}
    trust = (results.get("judge") or {}).get("trust") or "not calibrated"
    entries = []
    for name, rates in (results.get("win_rates") or {}).items():
        score = (rates.get("overall") or {}).get("score")
        if score is None:
            continue
        entries.append(
            EvalResult(
                task_type="image-text-to-text",
                task_name="Culturally grounded image description",
                dataset_type=dataset or "mirada-eval",
                dataset_name=f"Mirada judge ({results.get('images', 'images')})",
                metric_type="judge_win_rate",
                metric_name=f"judge win rate, {name} (ties count half; judge: {trust})",
                metric_value=round(float(score), 6),
                metric_config=f"{JUDGE_PREFIX}:{name}",
            )
        )
    return entries


def _set_judge_results(data: Any, entry: dict[str, Any]) -> None:
    kept = [r for r in (data.eval_results or []) if not (r.metric_config or "").startswith(JUDGE_PREFIX)]
    dataset = (data.datasets or [None])[0] if getattr(data, "datasets", None) else None
    data.eval_results = kept + _judge_results(entry, dataset)


def _with_judge(text: str, entry: dict[str, Any]) -> str:
    """Replace the judge's card section, else put it after the eval section, else after "## Evaluation"."""
    from eval.judge import section as judge

    new = judge.judge_section(entry, card=True)
    if (judge.START in text and judge.END in text) or END in text:
        return judge.replace_or_insert(text, new, after=END)
    return _insert_section(text, new)


def update_judge_section(run_dir: Path, entry: dict[str, Any]) -> Path:
    """Rewrite only the judge's section of ``run_dir/README.md`` (after ``mirada judge --card``)."""
    from huggingface_hub import ModelCard

    path = Path(run_dir) / "README.md"
    card = ModelCard.load(path)
    card.text = scrub_local_paths(_with_judge(card.text, entry))
    _set_judge_results(card.data, entry)
    if card.data.eval_results and not card.data.model_name:  # model-index entries need a model name
        card.data.model_name = Path(run_dir).name
    card.save(path)
    return path
