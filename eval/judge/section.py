"""The judge's section of the eval report and of a training run's Model Card, from the judge's JSON only.

``mirada judge`` writes ``exports/eval/<name>/judge.json`` and ``mirada judge calibrate`` writes
``exports/eval/judge-calibration/calibration.json``; :func:`load_results` puts both into
``report.json`` under ``"judge"`` and :func:`judge_section` renders that entry. The same section is
written whichever stage runs last: ``mirada eval`` picks the judge's files up, and ``mirada judge``
refreshes an existing eval report (and a card with ``--card``) through :func:`refresh`. Every win
rate stands next to the judge's measured agreement with the annotators, and a judge below the human
ceiling (or never calibrated) is labelled so, because a win rate is only as good as its judge.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

START, END = "<!-- mirada-judge:start -->", "<!-- mirada-judge:end -->"
# what `mirada judge` writes into an eval report folder; `mirada eval` keeps these when it rewrites the folder
JUDGE_FILES = ("judge.json", "judge.md", "judge_win_rates.png")
CALIBRATION_FOLDER = "judge-calibration"


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        from eval.inputs import EvalError

        raise EvalError(
            f"{path.name} in {path.parent.name}/ is not readable JSON ({exc}); rerun mirada judge"
        ) from None


def load_results(exports_dir: Path, name: str) -> dict[str, Any] | None:
    """``report.json``'s ``"judge"`` entry for report ``name``: the judge's results and the calibration.

    None when the judge never ran on this workspace; either part may be None on its own.
    """
    results = _read(Path(exports_dir) / "eval" / name / "judge.json")
    calibration = _read(Path(exports_dir) / "eval" / CALIBRATION_FOLDER / "calibration.json")
    if results is None and calibration is None:
        return None
    return {"results": results, "calibration": calibration}


def _model(model: str | None) -> str:
    """A model name fit for a card: a Hub id, or a local folder's name only (no paths in cards)."""
    from vlm.train.card import public_name

    return public_name(model) or "unknown model"


def _num(value: float | None, ci: list[float] | None = None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.0%}" if pct else f"{value:.2f}"
    if ci:
        text += f" [{ci[0]:.0%}, {ci[1]:.0%}]" if pct else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def agreement_line(judge: dict[str, Any]) -> str:
    """The judge's measured agreement with the annotators, with its label, in one sentence."""
    calibration = judge.get("calibration")
    name = f"`{_model(judge.get('model'))}` with judge prompt `{judge.get('prompt_version')}`"
    if not calibration:
        return (
            f"Judge: {name}, **not calibrated** against this workspace's annotators (run `mirada judge calibrate`): "
            "its agreement with people is unknown."
        )
    m = calibration["metrics"]
    text = (
        f"Judge: {name}; measured agreement with the annotators on {calibration['images']} reviewed images: "
        f"accuracy {_num(m['accuracy_with_ties']['value'], m['accuracy_with_ties']['ci'], True)}, "
        f"Cohen κ {_num(m['cohen_kappa']['value'], m['cohen_kappa']['ci'])}, "
        f"α with the annotators {_num(m['judge_alpha']['value'], m['judge_alpha']['ci'])} against the annotators' "
        f"own α {_num(m['human_alpha']['value'], m['human_alpha']['ci'])} (the human ceiling)."
    )
    below = calibration.get("below_human_ceiling")
    if below:
        text += " **Below the human ceiling**: it agrees with the annotators less than they agree with each other."
    elif below is None:
        text += " No human ceiling to compare with (fewer than two annotators on the same records)."
    else:
        text += " At or above the human ceiling."
    return text


def _status(judge: dict[str, Any]) -> str:
    calibration = judge.get("calibration")
    if not calibration:
        return "not calibrated"
    below = calibration.get("below_human_ceiling")
    return "below human ceiling" if below else ("no ceiling" if below is None else "at/above ceiling")


def _win_rates(results: dict[str, Any], judge: dict[str, Any], *, by_groups: bool) -> list[str]:
    calibration = judge.get("calibration") or {}
    m = calibration.get("metrics", {})
    accuracy = _num(m.get("accuracy_with_ties", {}).get("value"), None, True) if m else "n/a"
    alpha = _num(m.get("judge_alpha", {}).get("value")) if m else "n/a"
    ceiling = _num(m.get("human_alpha", {}).get("value")) if m else "n/a"
    conf = results.get("confidence")
    lines = [
        "Each pair was judged in both orders; a verdict that changed with the order counts as a tie"
        + (
            f"; intervals are {round(conf * 100)}% Wilson intervals."
            if conf
            else "; intervals are Wilson intervals."
        ),
        "",
        "| comparison | images | win | tie | loss | position consistency | judge accuracy vs humans | judge α "
        "| human ceiling α | judge |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results["win_rates"].items():
        o = r["overall"]
        lines.append(
            f"| {name} | {o['n']} | {_num(o['win_rate'], o['win_rate_ci'], True)} | "
            f"{_num(o['tie_rate'], o['tie_rate_ci'], True)} | {_num(o['loss_rate'], o['loss_rate_ci'], True)} | "
            f"{_num(r['position_consistency'], None, True)} | {accuracy} | {alpha} | {ceiling} | {_status(judge)} |"
        )
    for name, r in results["win_rates"].items():
        for warning in r.get("warnings", []):
            lines.append(f"\n- {name}: {warning}")
    if by_groups:
        for name, r in results["win_rates"].items():
            for key in [k for k in r if k.startswith("by_")]:
                lines += ["", f"#### {name}, by {key[3:]} (judge: {_status(judge)}; accuracy vs humans {accuracy})",
                          "", f"| {key[3:]} | images | win | tie | loss |", "|---|---:|---:|---:|---:|"]  # fmt: skip
                for group, g in r[key].items():
                    lines.append(
                        f"| {group} | {g['n']} | {_num(g['win_rate'], g['win_rate_ci'], True)} | "
                        f"{_num(g['tie_rate'], g['tie_rate_ci'], True)} | {_num(g['loss_rate'], g['loss_rate_ci'], True)} |"
                    )
    return lines


def _rubric(results: dict[str, Any], judge: dict[str, Any]) -> list[str]:
    rubric = results["rubric"]
    criteria = sorted({c for r in rubric.values() for c in r["criteria"]}, key=lambda c: (c == "mean", c))
    lines = [
        "Scores 1–5 per criterion (mean over captions, bootstrap interval over captions).",
        "",
        "| system | captions | " + " | ".join(criteria) + " | judge |",
        "|---|---:|" + "---:|" * len(criteria) + "---|",
    ]
    for system, r in rubric.items():
        cells = [
            _num(r["criteria"][c]["mean"], r["criteria"][c]["ci"]) if c in r["criteria"] else "n/a"
            for c in criteria
        ]
        lines.append(f"| {system} | {r['n']} | " + " | ".join(cells) + f" | {_status(judge)} |")
    return lines


def _calibration(calibration: dict[str, Any]) -> list[str]:
    lines = [
        "### Judge prompts against the human ceiling",
        "",
        f"`mirada judge calibrate` with `{_model(calibration.get('model'))}`: each judge prompt's agreement with the "
        "annotators on the reviewed images, next to the annotators' agreement with one another (the human ceiling).",
        "",
        "| prompt | pairs judged | accuracy (ties) | Cohen κ | Kendall τ | α judge–annotators | α human ceiling "
        "| position consistency | label |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    chosen = calibration.get("chosen")
    for version, r in calibration["prompts"].items():
        m = r["metrics"]
        labels = (["chosen"] if version == chosen else []) + (
            ["below human ceiling"] if r.get("below_human_ceiling") else []
        )
        lines.append(
            f"| {version} | {r['judged_pairs']}/{r['pairs']} | "
            f"{_num(m['accuracy_with_ties']['value'], m['accuracy_with_ties']['ci'], True)} | "
            f"{_num(m['cohen_kappa']['value'], m['cohen_kappa']['ci'])} | "
            f"{_num(m['kendall_tau']['value'], m['kendall_tau']['ci'])} | "
            f"{_num(m['judge_alpha']['value'], m['judge_alpha']['ci'])} | "
            f"{_num(m['human_alpha']['value'], m['human_alpha']['ci'])} | "
            f"{_num(m['position_consistency']['value'], m['position_consistency']['ci'], True)} | {'; '.join(labels)} |"
        )
    return lines


def judge_section(entry: dict[str, Any], *, card: bool = False) -> str:
    """Markdown between the judge markers; ``card=True`` leaves out per-group tables, charts and calibration."""
    results, calibration = entry.get("results"), entry.get("calibration")
    lines = [START, "## Judged preference (VLM judge)" if card else "## Judge", ""]
    if results:
        judge = results["judge"]
        lines += [f"Images: {results['images']}. {agreement_line(judge)}", ""]
        if "win_rates" in results:
            lines += _win_rates(results, judge, by_groups=not card)
            if not card:
                lines += ["", "![judge win rate per country](judge_win_rates.png)"]
        elif "rubric" in results:
            lines += _rubric(results, judge)
    elif not card:
        lines += ["The judge has not judged this report's systems yet (`mirada judge --systems …`).", ""]
    if calibration and not card:
        lines += ["", *_calibration(calibration), "", f"![judge prompts vs the human ceiling](../{CALIBRATION_FOLDER}/calibration.png)"]  # fmt: skip
    lines.append(END)
    return "\n".join(lines)


def replace_or_insert(text: str, section: str, *, after: str | None = None, before: str | None = None) -> str:
    """Replace the marked judge section of ``text``; else put it after the marker ``after`` or before the
    heading ``before`` when present, else at the end."""
    if START in text and END in text:
        return re.sub(
            re.escape(START) + r".*?" + re.escape(END), lambda _: section, text, count=1, flags=re.S
        )
    if after and after in text:
        at = text.index(after) + len(after)
        return text[:at] + "\n\n" + section + text[at:]
    if before:
        match = re.search(rf"^{re.escape(before)}\s*$", text, flags=re.M)
        if match:
            return text[: match.start()] + section + "\n\n" + text[match.start() :]
    return text.rstrip() + "\n\n" + section + "\n"


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def refresh(exports_dir: Path, name: str, card: Path | None = None) -> list[str]:
    """After ``mirada judge``: update eval report ``name`` (when one exists) and the card at ``card``.

    Returns what was updated, as names fit for printing (no paths).
    """
    entry = load_results(exports_dir, name)
    if entry is None:
        return []
    updated = []
    folder = Path(exports_dir) / "eval" / name
    if (folder / "report.json").is_file() and (folder / "report.md").is_file():
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        report["judge"] = entry
        _write_atomic(folder / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        markdown = (folder / "report.md").read_text(encoding="utf-8")
        _write_atomic(
            folder / "report.md", replace_or_insert(markdown, judge_section(entry), before="## Caveats")
        )
        updated.append(f"exports/eval/{name}/report.md (+ report.json)")
    if card is not None and entry.get("results"):
        from eval.card import update_judge_section

        update_judge_section(Path(card), entry)
        updated.append("the Model Card (README.md)")
    return updated
