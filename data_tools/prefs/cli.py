"""Prefs stage: reviewed captions become TRL-ready DPO, KTO and SFT image datasets, each with a Dataset Card.

    mirada prefs --workspace ws                                   # all three formats -> ws/exports/prefs/
    mirada prefs --workspace ws --config configs/prefs.yaml --format dpo,kto --name tacos
    mirada prefs --workspace ws --set dpo.pairing=all_pairs --set dpo.max_pairs_per_image=6
    HF_TOKEN=… mirada prefs --workspace ws --name tacos --push-to-hub somosnlp-hackathon-2026
    python -m data_tools.prefs --workspace ws --help-config

Outputs are ``<name>_image_dpo``, ``<name>_image_kto`` and ``<name>_image_sft`` folders (each a
``datasets.load_from_disk`` directory with README.md and charts/), plus ``exports/prefs/report.json``
with every filter's count. Reruns rebuild them from the workspace (cheap, deterministic); nothing
is paid for or asked of people here. The token is read from ``$HF_TOKEN`` only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from data_tools.config import load_config
from data_tools.prefs.build import CAPTION_FILTERS, FORMAT_FILTERS, RECORD_FILTERS, PrefsError, build_prefs
from data_tools.prefs.config import FORMATS, PrefsConfig, default_base_name
from data_tools.prefs.publish import Export, export_all, hub_repo_ids, push_all
from data_tools.secrets import redact, register_secret
from data_tools.stage_args import UserError, add_common_args, add_config_args, run_stage
from data_tools.workspace import Workspace


def print_summary(report: dict[str, Any], exports: list[Export], urls: dict[str, str]) -> None:
    """One table with every filter's count per level, then the splits and where the datasets are."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    records, captions = report["records"], report["captions"]
    table = Table(title="prefs: what was kept and why the rest was not")
    for column in ("level", "filter", "dropped"):
        table.add_column(column, justify="right" if column == "dropped" else "left")
    table.add_row("records", "[bold]used[/bold]", f"[bold]{records['used']} of {records['total']}[/bold]")
    for name in RECORD_FILTERS:
        table.add_row("", name, str(records["dropped"][name]))
    table.add_row("captions", "[bold]used[/bold]", f"[bold]{captions['used']} of {captions['total']}[/bold]")
    for name in CAPTION_FILTERS:
        table.add_row("", name, str(captions["dropped"][name]))
    for fmt in (f for f in FORMATS if f in report):
        entry = report[fmt]
        table.add_row(fmt, "[bold]rows[/bold]", f"[bold]{entry['rows']}[/bold] ({entry['images']} images)")
        for name in FORMAT_FILTERS[fmt]:
            table.add_row("", name, str(entry["dropped"][name]))
    console.print(table)
    for tag, count in (report.get("untemplated") or {}).items():
        console.print(
            f"[yellow]{count} collected image(s) in {tag} were never drafted: no draft template for {tag}; add "
            f"configs/prompts/draft/v1/{tag}.yaml and run `mirada draft` again[/yellow]"
        )
    splits = report["splits"]["images"]
    console.print("images per split: " + ", ".join(f"{k}={v}" for k, v in splits.items()))
    if "kto" in report:
        kto = report["kto"]
        weights = kto["suggested_weights"]
        console.print(
            f"KTO desirable:undesirable = {kto['desirable']}:{kto['undesirable']}; suggested "
            + (
                f"desirable_weight={weights['desirable_weight']}, undesirable_weight={weights['undesirable_weight']}"
                if weights
                else "weights: none (train lacks one of the labels)"
            )
        )
    for export in exports:
        rows = ", ".join(f"{k}={v['rows']}" for k, v in export.stats["splits"].items())
        where = urls.get(export.fmt) or str(export.path)
        console.print(f"[green]{export.name}[/green]: {rows} -> {where}")


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Build image preference datasets from the reviewed captions: DPO pairs, KTO labels and SFT targets in "
            "TRL's vision format, split without leaking near-duplicates, each with a Dataset Card computed from "
            "the data."
        ),
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_args(parser)
    parser.add_argument(
        "--format", dest="formats", help="comma-separated subset of dpo,kto,sft (default: config)"
    )
    parser.add_argument(
        "--name", help="dataset base name: <name>_image_dpo… (default: config, else the folder name)"
    )
    parser.add_argument("--push-to-hub", metavar="OWNER[/NAME]",
                        help="push each dataset and its card to OWNER/NAME_image_<format> (token from $HF_TOKEN)")  # fmt: skip
    parser.add_argument("--private", action="store_true", help="create private Hub repositories")
    add_config_args(parser, PrefsConfig)
    return parser


def resolve_config(args: argparse.Namespace) -> PrefsConfig:
    overrides = list(args.overrides)
    config = load_config(PrefsConfig, args.config, overrides)
    if args.formats:
        wanted = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
        unknown = sorted(set(wanted) - set(FORMATS))
        if unknown or not wanted:
            raise UserError(
                f"--format takes a comma-separated subset of {','.join(FORMATS)} (got {args.formats!r})"
            )
        config.formats = wanted
    if args.name:
        try:
            config.name = args.name
        except ValueError as exc:
            raise UserError(f"--name {args.name!r}: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]
    if args.private:
        config.hub.private = True
    return config


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.prefs") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        config = resolve_config(args)
        token = None
        if args.push_to_hub:  # fail before any work, not after it
            token = os.environ.get(config.hub.token_env)
            if not token:
                raise UserError(
                    f"--push-to-hub needs a Hugging Face token with write access in ${config.hub.token_env} "
                    "(create one at https://huggingface.co/settings/tokens); nothing was built or pushed"
                )
            register_secret(token)
        with Workspace.open(args.workspace, create=False) as workspace:
            base = config.name or workspace.project().get("dataset_name") or default_base_name(workspace.root)
            try:
                repo_ids = hub_repo_ids(args.push_to_hub, base, config.formats) if args.push_to_hub else None
            except ValueError as exc:
                raise UserError(str(exc)) from None
            with workspace.run("prefs", config.model_dump(mode="json")) as run:
                try:
                    result = build_prefs(workspace, config)
                except PrefsError as exc:
                    raise UserError(str(exc)) from None
                if not any(result.rows.values()):
                    run.summary = result.report
                    print_summary(result.report, [], {})
                    raise UserError(
                        f"no rows passed the filters ({result.report['records']['used']} of "
                        f"{result.report['records']['total']} records used); see the counts with --verbose or "
                        "relax filters (e.g. --set filters.min_agreement=0)"
                    )
                exports = export_all(workspace, config, result, base_name=base, repo_ids=repo_ids)
                # generate/eval caption exactly these splits (test images were never trained on)
                workspace.record_splits(base, result.splits, run.id)
                run.summary = {**result.report, "exports": {e.fmt: str(e.path) for e in exports}}
                urls: dict[str, str] = {}
                if token:
                    try:
                        urls = push_all(exports, token=token, private=config.hub.private)
                    except Exception as exc:  # network, permissions, quota: the local export stays valid
                        raise UserError(
                            f"pushing to the Hub failed: {' '.join(redact(f'{type(exc).__name__}: {exc}').split())[:300]}; the datasets "
                            f"are saved under {workspace.exports_dir / 'prefs'}"
                        ) from None
                    run.summary["pushed"] = urls
            print_summary(result.report, exports, urls)
        return 0

    return run_stage(body, parser, argv)
