"""Review stage: people rank, accept and correct the drafts in Argilla; their judgement comes back whole.

    export ARGILLA_API_URL=http://localhost:6900 ARGILLA_API_KEY=…      # the SDK's own variables
    mirada review users add ana bruno --workspace ws   # give annotators access (creates missing ones)
    mirada review push   --workspace ws        # one dataset per language, shuffled anonymous candidates
    mirada review pull   --workspace ws        # every annotator's responses -> workspace, then aggregation
    mirada review status --workspace ws        # progress per annotator, agreement, PNG chart in exports/
    mirada review export --workspace ws        # tasks as JSONL, for teams that annotate elsewhere
    mirada review import --workspace ws --file answers.jsonl
    python -m data_tools.review status --workspace ws

Try the review UI locally with `make argilla` (a real argilla-server on 127.0.0.1:6900).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_tools.config import load_config
from data_tools.review.agreement import RELIABLE, TENTATIVE, agreement, plot_review, progress
from data_tools.review.config import ReviewConfig
from data_tools.review.service import PullSummary, ReviewError, ReviewService
from data_tools.secrets import redact, register_secret
from data_tools.stage_args import UserError, add_common_args, add_config_args, run_stage
from data_tools.workspace import Workspace


def connect(config: ReviewConfig) -> Any:
    """An Argilla client from config/environment; a down server or a wrong key is one clear error."""
    import argilla as rg

    url = config.api_url or os.environ.get("ARGILLA_API_URL")
    key = os.environ.get("ARGILLA_API_KEY")
    if not url or not key:
        raise UserError(
            "set ARGILLA_API_URL and ARGILLA_API_KEY (or review.api_url in the config) to reach Argilla"
        )
    register_secret(key)
    try:
        client = rg.Argilla(api_url=url, api_key=key, timeout=30, retries=1)
        client.me  # noqa: B018 - one cheap authenticated call to fail fast
    except Exception as exc:
        raise UserError(f"cannot use Argilla at {url}: {redact(_describe(exc))}") from None
    return client


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "401" in text or "Unauthorized" in type(exc).__name__ or "Credentials" in type(exc).__name__:
        return "the API key was rejected (401); check ARGILLA_API_KEY"
    return f"{type(exc).__name__}: {text[:200]}"


def review_status(workspace: Workspace, config: ReviewConfig) -> dict[str, Any]:
    items = workspace.review_items()
    responses = workspace.review_responses()
    summary = {
        "progress": progress(responses, items, config.min_submitted),
        "agreement": agreement(responses, items),
        "decisions": {},
    }
    summary["corrections"] = {"edits": 0, "suggestions_accepted": 0}
    for decision in workspace.review_decisions():
        summary["decisions"][decision["status"]] = summary["decisions"].get(decision["status"], 0) + 1
        summary["corrections"]["edits"] += len(decision.get("corrections") or [])
        summary["corrections"]["suggestions_accepted"] += int(decision.get("suggestion_accepted") or 0)
    summary["chart"] = str(
        plot_review(summary["progress"], summary["agreement"], workspace.exports_dir / "review_status.png")
    )
    return summary


def _image_name(workspace: Workspace, image: Any) -> str:
    """The name the person gave the file (``foto_03.jpg``), not the workspace's content hash."""
    sources = workspace.image_sources(image.id)
    return Path(sources[0]["input_key"]).name if sources else image.source_id or image.file_name


def left_out_of_review(workspace: Workspace) -> dict[str, dict[str, list[str]]]:
    """The collected images that have no drafted candidate, so review cannot show them, and why.

    ``{"untemplated": {tag: names}, "failed": {first error: names}, "not_drafted": {"": names}}``.
    Untemplated uses collect's own check (:func:`data_tools.collect.draft_template_gaps`), so review
    names exactly the images that collect and draft warned about instead of leaving them out silently.
    """
    from data_tools.collect import draft_template_gaps

    images = workspace.images(status="ok")
    gaps = draft_template_gaps(image.language for image in images)
    done = {draft.image_id for draft in workspace.drafts(status="done")}
    errors: dict[str, str] = {}
    for draft in workspace.drafts(status="failed"):
        errors.setdefault(draft.image_id, (draft.error or "unknown error").split(":")[0])
    left: dict[str, dict[str, list[str]]] = {"untemplated": {}, "failed": {}, "not_drafted": {}}
    for image in images:
        if image.id in done:
            continue
        if image.language in gaps:
            kind, key = "untemplated", str(image.language)
        elif image.id in errors:
            kind, key = "failed", errors[image.id]
        else:
            kind, key = "not_drafted", ""
        left[kind].setdefault(key, []).append(_image_name(workspace, image))
    return {kind: dict(sorted(groups.items())) for kind, groups in left.items() if groups}


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _left_out_notes(left: dict[str, dict[str, list[str]]]) -> list[str]:
    """One sentence per reason, each with the count, the file names and the fix."""
    notes = []
    if untemplated := left.get("untemplated"):
        total = sum(len(names) for names in untemplated.values())
        parts = "; ".join(f"{tag}: {len(names)} ({_names(names)})" for tag, names in untemplated.items())
        files = ", ".join(f"configs/prompts/draft/v1/{tag}.yaml" for tag in untemplated)
        notes.append(
            f"{total} image(s) are not in review because their language has no draft template — {parts}. "
            f"Add {files} (copy es.yaml and translate it) or give them a variety that has one (e.g. es-PE), "
            "then run `mirada draft` again"
        )
    if failed := left.get("failed"):
        total = sum(len(names) for names in failed.values())
        parts = "; ".join(f"{error}: {_names(names)}" for error, names in failed.items())
        notes.append(
            f"{total} image(s) are not in review because every draft of theirs failed ({parts}); "
            "run `mirada draft` again to retry them"
        )
    if not_drafted := left.get("not_drafted"):
        names = [name for group in not_drafted.values() for name in group]
        notes.append(
            f"{len(names)} image(s) are not in review because they were not drafted yet ({_names(names)}); "
            "run `mirada draft`"
        )
    return notes


def _print_pull(summary: PullSummary, verb: str) -> None:
    print(
        f"{verb} {summary.responses} responses ({', '.join(f'{k}={v}' for k, v in sorted(summary.by_status.items())) or 'none'}): "
        f"{summary.new} new, {summary.changed} changed; decisions: "
        + ", ".join(f"{k}={v}" for k, v in sorted(summary.decisions.items()))
        + (
            f"; {summary.unknown_records} records not pushed from this workspace were ignored"
            if summary.unknown_records
            else ""
        )
    )
    for name in summary.missing_datasets:
        print(
            f"warning: Argilla has no dataset {name!r}; its answers were not pulled (push again to recreate it)"
        )


MEASURES = {
    "ranking_alpha_ordinal": "ranking (Krippendorff α, ordinal)",
    "acceptable_alpha_nominal": "acceptable candidates (Krippendorff α)",
    "problems_alpha_nominal": "problems (Krippendorff α)",
    "acceptable_fleiss_kappa": "acceptable candidates (Fleiss κ)",
}


def _reading(value: float | None) -> str:
    """Krippendorff's thresholds in words, the same ones the chart draws."""
    if value is None:
        return "too few shared answers to tell"
    if value >= RELIABLE:
        return f"reliable (≥ {RELIABLE:g})"
    if value >= TENTATIVE:
        return f"tentative ({TENTATIVE:g}–{RELIABLE:g})"
    return f"low (< {TENTATIVE:g})"


def _print_status(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    p = summary["progress"]
    if not p["records"]:
        console.print(
            "nothing is out for review yet: `mirada review push` (Argilla) or `mirada review export` "
            "(JSONL) sends the drafted images"
        )
    console.print(
        f"[bold]review progress[/bold]: {p['complete']}/{p['records']} records complete ({p['complete_fraction']:.0%}), "
        f"{p['started']} started, {p['untouched']} untouched"
    )
    table = Table(title="per annotator")
    for column in ("annotator", "submitted", "discarded", "draft"):
        table.add_column(column)
    for user, counts in p["per_annotator"].items():
        table.add_row(user, *(str(counts.get(s, 0)) for s in ("submitted", "discarded", "draft")))
    console.print(table)
    a = summary["agreement"]
    agreement_table = Table(
        title=f"agreement on the {a['overlap_records']} records answered by two or more annotators"
    )
    agreement_table.add_column("what annotators agree on (measure)")
    agreement_table.add_column("value", justify="right")
    agreement_table.add_column("reading (1 = perfect, 0 = chance)")
    for key, label in MEASURES.items():
        agreement_table.add_row(label, "n/a" if a[key] is None else f"{a[key]:.3f}", _reading(a[key]))
    for pair, value in a["acceptable_cohen_kappa"].items():
        agreement_table.add_row(
            f"acceptable, {pair.replace('~', ' vs ')} (Cohen κ)",
            "n/a" if value is None else f"{value:.3f}",
            _reading(value),
        )
    console.print(agreement_table)
    c = summary["corrections"]
    console.print(
        f"corrections: {c['edits']} real edits; {c['suggestions_accepted']} answers left the pre-filled "
        "suggestion unchanged (a vote for that candidate, not a correction)"
    )
    decided = ", ".join(f"{count} {status}" for status, count in sorted(summary["decisions"].items()))
    console.print(f"decisions: {decided or 'none yet'}  ·  chart: {summary['chart']}")


def _users_add(service: ReviewService, client: Any, names: list[str]) -> int:
    """Create the annotators Argilla lacks and give every named one access to the review workspace."""
    added = service.grant_access(client, names, create_missing=True)
    workspace = service.config.argilla_workspace
    for name in names:
        password = service.new_passwords.get(name)
        if password:  # shown once, here, for the person who hands it on; never stored or logged
            print(f"created annotator {name} with password {password} (shown only now: give it to them)")
        print(f"{name}: {'now has' if name in added else 'already had'} access to workspace {workspace!r}")
    return 0


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Human review of drafted captions in Argilla (or through a JSONL round-trip).",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["push", "pull", "status", "export", "import", "simulate", "users"],
                        help="what to do (simulate: write simulated answers, for the demo only; "
                             "users add NAME…: give annotators access)")  # fmt: skip
    parser.add_argument("names", nargs="*", metavar="add NAME", help="users: `add` then Argilla usernames")
    add_common_args(parser)
    parser.add_argument(
        "--file", type=Path, help="export: where to write tasks; import/simulate: the answers file"
    )
    parser.add_argument("--json", action="store_true", help="status: print JSON")
    add_config_args(parser, ReviewConfig)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.review") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        config = load_config(ReviewConfig, args.config, args.overrides)
        with Workspace.open(args.workspace, create=False) as workspace:
            service = ReviewService(workspace, config)
            try:
                return _act(args, config, workspace, service)
            except ReviewError as exc:
                raise UserError(str(exc)) from None

    return run_stage(body, parser, argv)


def _act(args: argparse.Namespace, config: ReviewConfig, workspace: Workspace, service: ReviewService) -> int:
    action = args.action
    if action != "users" and args.names:
        raise UserError(f"unexpected arguments {' '.join(args.names)!r} for `review {action}`")
    if action == "users":
        if len(args.names) < 2 or args.names[0] != "add":
            raise UserError("usage: mirada review users add NAME [NAME…]")
        return _users_add(service, connect(config), args.names[1:])
    if action in ("push", "pull"):
        client = connect(config)
        with workspace.run(f"review-{action}", config.model_dump(mode="json")) as run:
            try:
                if action == "push":
                    pushed = service.push(client)
                    run.summary = pushed.datasets
                    for name, counts in pushed.datasets.items():
                        print(
                            f"{name}: {counts['logged']} records logged, {counts['unchanged']} unchanged, "
                            f"{counts['kept_answered']} already answered (left untouched)"
                        )
                    if pushed.annotators_added:
                        print(f"gave {', '.join(pushed.annotators_added)} access to Argilla workspace "
                              f"{config.argilla_workspace!r}")  # fmt: skip
                    if pushed.answered_meanwhile:
                        print(
                            f"warning: {len(pushed.answered_meanwhile)} records were answered while being "
                            "updated; check them in Argilla"
                        )
                else:
                    pulled = service.pull(client)
                    run.summary = pulled.__dict__
                    _print_pull(pulled, "pulled")
            except (UserError, ReviewError):
                raise
            except Exception as exc:  # the server went away or answered nonsense mid-operation
                run.summary = {"error": redact(_describe(exc))}
                raise UserError(
                    f"review {action} failed: {redact(_describe(exc))}; the workspace is unchanged"
                ) from None
        return 0
    if action == "export":
        path = args.file or workspace.exports_dir / "review" / "tasks.jsonl"
        left = left_out_of_review(workspace)
        notes = _left_out_notes(left)
        # Recorded as a run, like push and pull, so `mirada status` shows the review round-trip.
        with workspace.run("review-export", config.model_dump(mode="json")) as run:
            run.summary = {
                "left_out": {kind: sum(map(len, groups.values())) for kind, groups in left.items()}
            }
            try:
                count = service.export_jsonl(path)
            except ReviewError:
                if notes:  # the images there are have no draft: say which and why, instead of `exc`
                    raise UserError(f"nothing to review: {' '.join(notes)}") from None
                raise
            run.summary["tasks"] = count
        print(f"exported {count} review tasks to {path}")
        for note in notes:
            print(f"warning: {note}")
        return 0
    if action == "import":
        if not args.file:
            raise UserError("import needs --file answers.jsonl")
        with workspace.run("review-import", config.model_dump(mode="json")) as run:
            imported = service.import_jsonl(args.file)
            run.summary = imported.__dict__
        _print_pull(imported, "imported")
        return 0
    if action == "simulate":
        from data_tools.review.simulate import simulate_responses

        path = args.file or workspace.exports_dir / "review" / "simulated_answers.jsonl"
        count = simulate_responses(workspace, path)
        print(f"wrote {count} SIMULATED answers to {path} (demo only: not human judgement)")
        return 0
    summary = review_status(workspace, config)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_status(summary)
    return 0
