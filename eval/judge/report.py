"""The judge's part of the eval report: ``judge.json``, ``judge.md`` and charts.

Every win-rate table is printed next to the judge's measured agreement with the annotators (or a
plain statement that it was never calibrated), and a judge below the human ceiling is labelled so
in every output, because a win rate is only as good as the judge that produced it. Only facts from
this workspace's own record are written: no local paths, no keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

UNCALIBRATED = (
    "not calibrated against this workspace's annotators: run `mirada judge calibrate` before trusting it"
)


def trust_label(calibration: dict[str, Any] | None) -> str:
    """One line saying how far the judge's figures can be trusted."""
    if not calibration:
        return UNCALIBRATED
    m = calibration["metrics"]
    metric = m["metrics"]
    parts = [f"judge prompt {calibration['prompt_version']} ({calibration['model']})"]
    for name, label in (("accuracy_with_ties", "accuracy vs humans"), ("cohen_kappa", "κ"),
                        ("judge_alpha", "α with annotators"), ("human_alpha", "annotators' own α")):  # fmt: skip
        value = metric[name]["value"]
        parts.append(f"{label} {value:.2f}" if value is not None else f"{label} n/a")
    if m.get("below_human_ceiling"):
        parts.append("BELOW the human ceiling")
    elif m.get("below_human_ceiling") is False:
        parts.append("at or above the human ceiling")
    return "; ".join(parts)


def _fmt(value: float | None, ci: list[float] | None = None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.0%}" if pct else f"{value:.3f}"
    if ci:
        text += f" [{ci[0]:.0%}, {ci[1]:.0%}]" if pct else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def calibration_markdown(results: dict[str, dict[str, Any]], chosen: str | None) -> str:
    lines = ["# Judge calibration", "",
             "Agreement of each judge prompt with the annotators on the reviewed images (intervals: bootstrap "
             "over images). The human ceiling is the annotators' Krippendorff α with one another.", "",
             "| prompt | pairs | accuracy (ties) | accuracy (no ties) | Cohen κ | Kendall τ | α judge–annotator "
             "| α human ceiling | position consistency | label |", "|" + "---|" * 10]  # fmt: skip
    for version, r in results.items():
        m = r["metrics"]
        label = (
            "below human ceiling" if r.get("below_human_ceiling") else ("chosen" if version == chosen else "")
        )
        if version == chosen and r.get("below_human_ceiling"):
            label = "chosen; below human ceiling"
        lines.append(
            f"| {version} | {r['judged_pairs']}/{r['pairs']} | {_fmt(m['accuracy_with_ties']['value'], m['accuracy_with_ties']['ci'])} "
            f"| {_fmt(m['accuracy_without_ties']['value'], m['accuracy_without_ties']['ci'])} "
            f"| {_fmt(m['cohen_kappa']['value'], m['cohen_kappa']['ci'])} | {_fmt(m['kendall_tau']['value'], m['kendall_tau']['ci'])} "
            f"| {_fmt(m['judge_alpha']['value'], m['judge_alpha']['ci'])} | {_fmt(m['human_alpha']['value'], m['human_alpha']['ci'])} "
            f"| {_fmt(m['position_consistency']['value'], m['position_consistency']['ci'])} | {label} |"
        )
    for version, r in results.items():
        for warning in r.get("warnings", []):
            lines.append(f"\n- {version}: {warning}")
    lines.append(f"\nCalibrated judge for this workspace: **{chosen or 'none'}**.")
    return "\n".join(lines) + "\n"


def win_rates_markdown(results: dict[str, Any], trust: str, where: str) -> str:
    lines = ["# Judge win rates", "", f"Images: {where}. Judge: {trust}.", "",
             "Each pair was judged in both orders; a verdict that changed with the order counts as a tie."]  # fmt: skip
    for name, r in results.items():
        o = r["overall"]
        lines += ["", f"## {name}", "",
                  f"Win {_fmt(o['win_rate'], o['win_rate_ci'], True)}, tie {_fmt(o['tie_rate'], o['tie_rate_ci'], True)}, "
                  f"loss {_fmt(o['loss_rate'], o['loss_rate_ci'], True)} over {o['n']} images; position consistency "
                  f"{_fmt(r['position_consistency'], None, True)}. Judged in the first order only ({name.split(' vs ')[0]} "
                  f"always shown first), the win rate would read {_fmt(r['first_order_only']['win_rate'], None, True)}.",
                  ""]  # fmt: skip
        for key, groups in r.items():
            if not key.startswith("by_"):
                continue
            lines += [f"| {key[3:]} | n | win | tie | loss |", "|---|---|---|---|---|"]
            for group, g in groups.items():
                lines.append(f"| {group} | {g['n']} | {_fmt(g['win_rate'], g['win_rate_ci'], True)} | "
                             f"{_fmt(g['tie_rate'], None, True)} | {_fmt(g['loss_rate'], g['loss_rate_ci'], True)} |")  # fmt: skip
            lines.append("")
        for warning in r.get("warnings", []):
            lines.append(f"- {warning}")
    return "\n".join(lines) + "\n"


def plot_win_rates(results: dict[str, Any], path: Path, by: str = "country", trust: str = "") -> Path:
    """Win rate per group (default: country) with Wilson intervals, one panel per comparison.

    ``trust`` (see :func:`trust_label`) is printed under the panels: the chart travels without the report.
    """
    # A Figure on its own Agg canvas, not pyplot: never switch the caller's backend (e.g. a notebook's).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * len(results), 4))

    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(results), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items(), strict=True):
        groups = r.get(f"by_{by}", {})
        labels = [*groups, "overall"]
        stats = [*groups.values(), r["overall"]]
        values = [s["win_rate"] or 0 for s in stats]
        low = [v - (s["win_rate_ci"] or [v, v])[0] for v, s in zip(values, stats, strict=True)]
        high = [(s["win_rate_ci"] or [v, v])[1] - v for v, s in zip(values, stats, strict=True)]
        ax.bar(labels, values, yerr=[low, high], capsize=4, color=["#2a9d8f"] * len(groups) + ["#264653"])
        ax.axhline(0.5, ls="--", color="grey", lw=1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}: win rate per {by}")
        ax.set_ylabel("win rate (ties count as not won)")
    if trust:
        import textwrap

        fig.text(0.01, 0.01, textwrap.fill("Judge: " + trust, 110), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.08 if trust else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_calibration(results: dict[str, dict[str, Any]], path: Path) -> Path:
    """Each prompt's Krippendorff α with the annotators (with interval) against the human ceiling."""
    # A Figure on its own Agg canvas, not pyplot: never switch the caller's backend (e.g. a notebook's).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6, 1.6 * len(results) + 2), 4))  # 6 in: room for the title

    FigureCanvasAgg(fig)
    ax = fig.subplots()
    names = list(results)
    values, errors, ceilings = [], [[], []], []
    for version in names:
        m = results[version]["metrics"]
        v = m["judge_alpha"]["value"]
        ci = m["judge_alpha"]["ci"] or [v or 0, v or 0]
        values.append(v or 0)
        errors[0].append((v or 0) - ci[0])
        errors[1].append(ci[1] - (v or 0))
        ceilings.append(m["human_alpha"]["value"])
    ax.bar(names, values, yerr=errors, capsize=4, color="#e76f51", label="judge α with annotators")
    ceiling = next((c for c in ceilings if c is not None), None)
    if ceiling is not None:
        ax.axhline(ceiling, color="#264653", ls="--", label=f"human ceiling α = {ceiling:.2f}")
    ax.set_ylim(min(0, *values) - 0.05, 1.05)
    ax.set_ylabel("Krippendorff α (ordinal)")
    ax.set_title("Judge prompts vs the annotators' own agreement")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return path
