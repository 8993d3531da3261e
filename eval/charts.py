"""PNG charts of an eval report: per-country bars with intervals, base->system differences, language
fidelity by variety, and a page of the largest per-image wins and losses with their images.

Drawn with matplotlib's Agg backend from ``report.json`` data only, so a chart never shows a number
the report does not have. Legends sit outside the axes so they never cover bars.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.config import EvalConfig
from eval.inputs import EvalInputs

COUNTRY_METRICS = ("chrf++", "cider-d", "term_recall", "wrong_culture")


def _subplots(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs: Any
) -> tuple[Any, Any]:
    """A Figure on its own Agg canvas, not pyplot: charts never switch the caller's backend (e.g. a notebook's)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig: Any, path: Path) -> str:
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    return path.name


def _label(report: dict[str, Any], name: str) -> tuple[str, str]:
    for m in report["metrics"]:
        if m["name"] == name:
            return m["label"], m["unit"]
    return name, ""


def grouped_bars(
    ax: Any, groups: list[str], systems: list[str], values: dict[str, list[dict[str, Any]]], small: list[bool]
) -> None:
    """Bars per group and system with interval whiskers; small groups hatched."""
    width = 0.8 / max(1, len(systems))
    x = np.arange(len(groups))
    for i, system in enumerate(systems):
        entries = values[system]
        heights = np.array([e["value"] if e["value"] is not None else np.nan for e in entries], dtype=float)
        low = np.array([e["ci_low"] if e["ci_low"] is not None else np.nan for e in entries], dtype=float)
        high = np.array([e["ci_high"] if e["ci_high"] is not None else np.nan for e in entries], dtype=float)
        errors = np.vstack([np.clip(heights - low, 0, None), np.clip(high - heights, 0, None)])
        errors = np.nan_to_num(errors)
        bars = ax.bar(x + (i - (len(systems) - 1) / 2) * width, np.nan_to_num(heights), width, label=system,
                      yerr=errors, capsize=3, error_kw={"elinewidth": 1})  # fmt: skip
        for bar, is_small, height in zip(bars, small, heights, strict=True):
            if is_small:
                bar.set_hatch("//")
                bar.set_alpha(0.6)
            if np.isnan(height):  # undefined (e.g. no expected terms), not zero: say so
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    0,
                    "n/a",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                )
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=8)


def per_country_chart(report: dict[str, Any], path: Path) -> str | None:
    systems = report["systems"]
    entries = report["results"][systems[0]].get("by_country")
    if not entries:
        return None
    countries = list(entries)
    metrics = [m for m in COUNTRY_METRICS if m in {x["name"] for x in report["metrics"]}]
    fig, axes = _subplots(
        len(metrics),
        1,
        figsize=(max(6, 1.1 * len(countries) * max(1, len(systems)) / 2 + 3), 2.6 * len(metrics)),
        squeeze=False,
    )
    small = [entries[c]["small"] for c in countries]
    labels = [f"{c}\n(n={entries[c]['n_images']})" for c in countries]
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        values = {
            s: [report["results"][s]["by_country"][c]["metrics"][metric] for c in countries] for s in systems
        }
        grouped_bars(ax, labels, systems, values, small)
        label, unit = _label(report, metric)
        ax.set_ylabel(f"{label}\n({unit})", fontsize=8)
        ax.set_ylim(0, 105) if "%" in unit else ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title("By country, with 95% intervals (hatched: group too small to trust)")
    axes[0, 0].legend(title="system", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes[-1, 0].set_xlabel("country (images)")
    return _save(fig, path)


def differences_chart(report: dict[str, Any], path: Path) -> str | None:
    comparisons = report["comparisons"]
    if not comparisons:
        return None
    names = [m["name"] for m in report["metrics"]]
    better = {m["name"]: m["higher_is_better"] for m in report["metrics"]}
    fig, axes = _subplots(
        1, len(comparisons), figsize=(6.5 * len(comparisons), 0.45 * len(names) + 1.5), squeeze=False
    )
    for ax, comparison in zip(axes[0], comparisons, strict=True):
        rows = comparison["groups"]["overall"]["metrics"]
        diffs = np.array([rows[n]["difference"] if rows[n]["difference"] is not None else 0.0 for n in names])
        lows = np.array(
            [
                rows[n]["ci_low"] if rows[n]["ci_low"] is not None else d
                for n, d in zip(names, diffs, strict=True)
            ]
        )
        highs = np.array(
            [
                rows[n]["ci_high"] if rows[n]["ci_high"] is not None else d
                for n, d in zip(names, diffs, strict=True)
            ]
        )
        improved = [(d > 0) == better[n] and d != 0 for n, d in zip(names, diffs, strict=True)]
        colours = ["tab:green" if ok else "tab:red" for ok in improved]
        y = np.arange(len(names))
        ax.barh(
            y,
            diffs,
            color=colours,
            xerr=np.vstack([np.clip(diffs - lows, 0, None), np.clip(highs - diffs, 0, None)]),
            capsize=3,
        )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels(
            [_label(report, n)[0] + ("  (lower is better)" if not better[n] else "") for n in names],
            fontsize=8,
        )
        ax.invert_yaxis()
        ax.set_xlabel(f"{comparison['system']} − {comparison['base']} (each metric's own units)")
        ax.set_title(
            f"{comparison['base']} → {comparison['system']}: difference with 95% interval\n(green: better, red: worse)",
            fontsize=9,
        )
        ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def fidelity_chart(report: dict[str, Any], path: Path) -> str | None:
    systems = report["systems"]
    entries = report["results"][systems[0]].get("by_language")
    if not entries or "language_fidelity" not in {m["name"] for m in report["metrics"]}:
        return None
    tags = list(entries)
    fig, ax = _subplots(figsize=(max(5, 0.9 * len(tags) * max(1, len(systems)) / 2 + 3), 3.2))
    values = {
        s: [report["results"][s]["by_language"][t]["metrics"]["language_fidelity"] for t in tags]
        for s in systems
    }
    grouped_bars(
        ax,
        [f"{t}\n(n={entries[t]['n_images']})" for t in tags],
        systems,
        values,
        [entries[t]["small"] for t in tags],
    )
    ax.set_ylim(0, 105)
    ax.set_ylabel("captions in the requested language (%)")
    ax.set_xlabel("requested variety (images)")
    ax.set_title("Language fidelity by variety (py3langid), 95% intervals")
    ax.legend(title="system", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def examples_chart(
    report: dict[str, Any], per_image: Sequence[dict[str, Any]], inputs: EvalInputs, path: Path,
    config: EvalConfig, images_dir: Path | None,
) -> str | None:  # fmt: skip
    comparisons = report["comparisons"]
    if not comparisons or config.examples == 0:
        return None
    metric = config.example_metric
    by_key = {(row["system"], row["image_id"]): row for row in per_image}
    images = {image.id: image for image in inputs.images}
    picks: list[tuple[str, dict[str, Any], dict[str, Any], float]] = []
    for comparison in comparisons:
        diffs = []
        for image in inputs.images:
            base, other = by_key[(comparison["base"], image.id)], by_key[(comparison["system"], image.id)]
            a, b = base["scores"].get(metric), other["scores"].get(metric)
            if a is not None and b is not None:
                diffs.append((b - a, image.id, base, other))
        diffs.sort(key=lambda d: (d[0], d[1]))
        wins = [d for d in reversed(diffs) if d[0] > 0][: config.examples]
        losses = [d for d in diffs if d[0] < 0][: config.examples]
        picks += [("win", base, other, d) for d, _, base, other in wins]
        picks += [("loss", base, other, d) for d, _, base, other in losses]
    if not picks:
        return None
    from PIL import Image

    fig, axes = _subplots(
        len(picks), 2, figsize=(11, 2.3 * len(picks)), gridspec_kw={"width_ratios": [1, 3.5]}, squeeze=False
    )
    label = _label(report, metric)[0]
    for (kind, base, other, diff), (ax_img, ax_text) in zip(picks, axes, strict=True):
        image = images[base["image_id"]]
        ax_img.axis("off")
        file = (images_dir / image.file_name) if images_dir else None
        if file is not None and file.is_file():
            with Image.open(file) as im:
                im.thumbnail((256, 256))
                ax_img.imshow(np.asarray(im.convert("RGB")))
        else:
            ax_img.text(0.5, 0.5, "(image not in workspace)", ha="center", va="center", fontsize=8)
        ax_text.axis("off")
        wrap = lambda s: "\n".join(textwrap.wrap(_printable(s) or "(empty)", 95)[:3])  # noqa: E731
        text = (
            f"{'WIN' if kind == 'win' else 'LOSS'}  {label} {other['scores'][metric]:.1f} vs {base['scores'][metric]:.1f} "
            f"({diff:+.1f})   {image.country or '?'} · {image.language or '?'} · {image.category or '?'}\n"
            f"{other['system']}: {wrap(other['caption'])}\n{base['system']}: {wrap(base['caption'])}\n"
            f"reference: {wrap(inputs.references[image.id][0])}"
        )
        ax_text.text(
            0,
            0.5,
            text,
            va="center",
            ha="left",
            fontsize=8,
            color="darkgreen" if kind == "win" else "darkred",
        )
    fig.suptitle(f"Largest per-image wins and losses by {label}", fontsize=11)
    return _save(fig, path)


def write_charts(
    report: dict[str, Any], per_image: Sequence[dict[str, Any]], inputs: EvalInputs, folder: Path,
    config: EvalConfig, images_dir: Path | None,
) -> list[str]:  # fmt: skip
    """Write every chart that has data into ``folder``; returns their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        per_country_chart(report, folder / "per_country.png"),
        differences_chart(report, folder / "differences.png"),
        fidelity_chart(report, folder / "language_fidelity.png"),
        examples_chart(report, per_image, inputs, folder / "wins_losses.png", config, images_dir),
    ]
    return [name for name in written if name]


def _printable(text: str | None) -> str:
    """Captions as a font can draw them: control characters and U+FFFD (a random model's bytes) become "·"."""
    return "".join(
        "·" if ch == "\ufffd" or (unicodedata.category(ch).startswith("C") and ch not in "\n\t") else ch
        for ch in text or ""
    )
