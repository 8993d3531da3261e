"""``mirada status``: what a workspace holds, as tables for people or JSON for scripts.

mirada status --workspace ws
mirada status --workspace ws --json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from data_tools.stage_args import add_common_args, run_stage
from data_tools.workspace import Workspace

REJECTIONS_SHOWN = 50


def workspace_summary(workspace: Workspace) -> dict[str, Any]:
    """Counts a user asks about first: images by country/language/category/licence, rejections, duplicates."""
    images = workspace.count_images_by("status", status=None)
    return {
        "workspace": str(workspace.root),
        "images": images.get("ok", 0),
        "near_duplicates": images.get("near_duplicate", 0),
        "by_country": workspace.count_images_by("country"),
        "by_language": workspace.count_images_by("language"),
        "by_category": workspace.count_images_by("category"),
        "by_license": workspace.count_images_by("license"),
        "publishable": workspace.count_images_by("publishable").get("1", 0),
        "inputs_by_outcome": workspace.count_inputs_by("outcome"),
        "rejected_by_reason": {
            reason: count
            for reason, count in workspace.count_inputs_by("reason").items()
            if reason != "exact_duplicate"
        },
        "drafts_by_strategy": workspace.draft_counts(),
        "spend": workspace.spend(),
        "ledger": workspace.ledger_summary(),
        "rejections": [
            {"input": row.input_key, "reason": row.reason, "detail": row.detail} for row in workspace.rejections()
        ],
        "review": review_summary(workspace),
        "runs": [
            {**{key: run[key] for key in ("id", "stage", "status", "started_at", "finished_at")},
             "result": run_result(run["stage"], run.get("summary"))}
            for run in workspace.runs()
        ],
    }  # fmt: skip


def review_summary(workspace: Workspace) -> dict[str, Any]:
    """Where the review stands: records out for review, answers in, decisions made (by status)."""
    responses = workspace.review_responses()
    decisions: dict[str, int] = {}
    for decision in workspace.review_decisions():
        decisions[decision["status"]] = decisions.get(decision["status"], 0) + 1
    return {
        "records": len(workspace.review_items()),
        "responses": len(responses),
        "annotators": len({response.username for response in responses}),
        "decisions": decisions,
    }


def run_result(stage: str, summary: Any) -> str:
    """One line on what a run did, from its recorded summary (any stage: collect, draft, review, prefs,
    train, eval…): the counts it recorded, never guessed."""
    if not isinstance(summary, dict) or not summary:
        return ""
    parts = []
    for key, value in summary.items():
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            counts = {k: v for k, v in value.items() if v} if isinstance(value, dict) else {}
            if counts and all(isinstance(v, int) for v in counts.values()):
                parts.append(f"{key} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            continue
        if key in ("seconds",) or value in (0, ""):
            continue
        parts.append(f"{key} {value}")
    return "; ".join(parts[:8])


def _minute(stamp: str | None) -> str:
    """``2026-12-02T06:22:55+00:00`` -> ``2026-12-02 06:22`` (UTC, as stored)."""
    return (stamp or "")[:16].replace("T", " ")


def print_status(summary: dict[str, Any]) -> None:
    from rich.columns import Columns
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{summary['workspace']}[/bold]: {summary['images']} images "
        f"({summary['publishable']} publishable), {summary['near_duplicates']} near-duplicates set aside"
    )
    tables = []
    for key, title in (
        ("by_country", "country"),
        ("by_language", "language"),
        ("by_category", "category"),
        ("by_license", "licence"),
        ("rejected_by_reason", "rejected inputs"),
    ):
        table = Table(title=title)
        table.add_column(title)
        table.add_column("n", justify="right")
        for name, count in summary[key].items():
            table.add_row(name, str(count))
        tables.append(table)
    console.print(Columns(tables))
    if summary["drafts_by_strategy"] or summary["ledger"]:
        drafts = Table(title="drafts")
        for column in ("strategy", "done", "failed"):
            drafts.add_column(column)
        for strategy, counts in sorted(summary["drafts_by_strategy"].items()):
            drafts.add_row(strategy, str(counts.get("done", 0)), str(counts.get("failed", 0)))
        ledger = Table(title="API calls (ledger)")
        for column in ("backend", "model", "status", "calls", "input tok", "output tok", "cost USD"):
            ledger.add_column(column)
        for row in summary["ledger"]:
            ledger.add_row(
                row["backend"], row["model"], row["status"], str(row["calls"]), f"{row['input_tokens']:,}",
                f"{row['output_tokens']:,}", f"{row['cost_usd']:.4f}",
            )  # fmt: skip
        console.print(Columns([drafts, ledger]))
        spend = summary["spend"]
        uncertain = (
            f" (+ up to ${spend['uncertain_usd']:.4f} for calls of unknown outcome)"
            if spend["uncertain_usd"]
            else ""
        )
        console.print(f"[bold]spend so far: ${spend['cost_usd']:.4f}[/bold]{uncertain}")
    if summary["rejections"]:
        rejected = Table(title="rejected inputs (fix them and collect again; fixed ones are cleared)")
        for column in ("input", "reason", "detail"):
            rejected.add_column(column, overflow="fold")  # fold, never cut: paths and reasons are the point
        for row in summary["rejections"][:REJECTIONS_SHOWN]:
            rejected.add_row(row["input"], row["reason"] or "", row["detail"] or "")
        console.print(rejected)
        if len(summary["rejections"]) > REJECTIONS_SHOWN:
            console.print(
                f"… {len(summary['rejections']) - REJECTIONS_SHOWN} more rejected inputs: see --json"
            )
    review = summary["review"]
    if review["records"]:
        decided = ", ".join(f"{count} {status}" for status, count in sorted(review["decisions"].items()))
        console.print(
            f"[bold]review[/bold]: {review['records']} records out for review, {review['responses']} answers "
            f"from {review['annotators']} annotator(s), decisions: {decided or 'none yet'} "
            "(`mirada review status` for agreement)"
        )
    runs = Table(title="runs of every stage (collect, draft, review, prefs, train, eval)")
    for column in ("id", "stage", "status", "started_at", "finished_at", "result"):
        runs.add_column(column, overflow="fold")
    for run in summary["runs"]:
        started, finished = _minute(run["started_at"]), _minute(run["finished_at"])
        runs.add_row(str(run["id"]), run["stage"], run["status"], started, finished, run["result"])
    console.print(runs)


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.status") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Show what a Mirada workspace holds.")
    add_common_args(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def body(args: argparse.Namespace) -> int:
        with Workspace.open(args.workspace, create=False) as workspace:
            summary = workspace_summary(workspace)
        if args.json:
            print(json.dumps(summary, indent=2, ensure_ascii=False))
        else:
            print_status(summary)
        return 0

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
