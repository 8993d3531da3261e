"""Eval stage: did alignment make the captions culturally better, for which countries, and how sure are we?

    mirada eval --workspace ws                                         # every stored system, test split
    mirada eval --workspace ws --systems base,dpo-r16 --split all
    mirada eval --workspace ws --predictions api_captions.jsonl --split all --name api-vs-base
    mirada eval --workspace ws --card runs/dpo-r16 --card-system dpo-r16   # + the run's Model Card
    python -m eval --workspace ws --help-config

Captions come from ``mirada generate`` (stored in the workspace) and/or predictions JSONL files with
``image_id`` or ``file_name``, ``system`` and ``caption`` per line. References are human only: the
images' reference captions and reviewers' corrections. Writes ``exports/eval/<name>/`` (report.md,
report.json, per_image.jsonl, charts/) and records the run in the workspace. When ``mirada judge``
has judged these systems (``judge.json`` in the same folder) or been calibrated, the report and the
card also carry the judge's win rates beside its measured agreement with the annotators.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from data_tools.config import load_config
from data_tools.stage_args import add_common_args, add_config_args, run_stage
from data_tools.workspace import Workspace
from eval.config import EvalConfig
from eval.inputs import EvalError, load_inputs

log = logging.getLogger("eval")


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Compare captioning systems on the same images: sacrebleu BLEU/chrF++, CIDEr-D, ROUGE-L and "
            "cultural metrics (culture terms, wrong-culture attribution, language fidelity, variety), per "
            "country/variety/category with bootstrap intervals and a paired base-vs-aligned test."
        ),
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_args(parser)
    parser.add_argument(
        "--systems",
        help="comma-separated systems to compare (default: all found); the base is --base, else the first",
    )
    parser.add_argument(
        "--predictions", action="append", type=Path, default=[], metavar="FILE.jsonl",
        help="captions from another tool: one JSON object per line with image_id or file_name, system, caption "
        "(optional language); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--split", choices=("test", "validation", "train", "all"), help="images to evaluate (default: test)"
    )
    parser.add_argument(
        "--base", dest="base_system", help="system the others are compared with (default: base)"
    )
    parser.add_argument("--name", help="report folder exports/eval/<name> (default: the split)")
    parser.add_argument(
        "--card",
        type=Path,
        metavar="RUN_DIR",
        help="a mirada train output folder whose README.md gets the results",
    )
    parser.add_argument(
        "--card-system", help="which system the card's model is (default: the only non-base system)"
    )
    add_config_args(parser, EvalConfig)
    return parser


def resolve_config(args: argparse.Namespace) -> EvalConfig:
    config = load_config(EvalConfig, args.config, list(args.overrides))
    try:
        if args.systems:
            config.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
        if args.split:
            config.split = args.split
        if args.base_system:
            config.base_system = args.base_system
        if args.name:
            config.name = args.name
    except ValueError as exc:
        raise EvalError(f"invalid option: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]
    return config


def run_eval(
    workspace: Workspace,
    config: EvalConfig,
    *,
    predictions: Sequence[Path] = (),
    card: Path | None = None,
    card_system: str | None = None,
) -> tuple[Path, dict]:
    """Evaluate, write the report (atomically), update a Model Card if asked; record the run."""
    from eval.report import write_report

    if card is not None and not (Path(card) / "README.md").is_file():
        raise EvalError(f"--card {card}: no README.md there (pass the output folder of mirada train)")
    inputs = load_inputs(
        workspace, systems=config.systems or None, prediction_files=predictions, split=config.split,
        category_terms=config.cultural.category_terms,
    )  # fmt: skip
    if len(inputs.systems) == 1:
        inputs.notes.append(
            f"only one system ({inputs.systems[0]}): scores and intervals, no paired comparison"
        )
    if card is not None:
        from eval.card import card_system_for

        card_system = card_system_for(inputs.systems, config.base_system, card_system)
    name = config.name or config.split
    stage_config = {**config.model_dump(mode="json"), "predictions": [p.name for p in predictions]}
    with workspace.run("eval", stage_config) as run:
        try:
            folder, report = write_report(inputs, config, workspace.exports_dir, name, workspace.images_dir)
            if card is not None and card_system is not None:
                from eval.card import update_model_card

                update_model_card(Path(card), report, card_system)
        except BaseException as exc:
            run.summary = {"error": str(exc)}
            raise
        run.summary = {"name": name, "images": report["images"], "systems": report["systems"]}
    return folder, report


def print_summary(report: dict, folder: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from eval.report import METRICS

    console = Console()
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    names = [m["name"] for m in report["metrics"]]
    table = Table(title=f"eval {report['name']}: {report['images']} images, split {report['split']}")
    table.add_column("metric")
    for system in report["systems"]:
        table.add_column(system, justify="right")
    for n in names:
        cells = []
        for system in report["systems"]:
            value = report["results"][system]["overall"]["metrics"][n]["value"]
            cells.append("–" if value is None else f"{value:.2f}")
        table.add_row(f"{METRICS[n].label} ({METRICS[n].unit})", *cells)
    console.print(table)
    for comparison in report["comparisons"]:
        rows = comparison["groups"]["overall"]["metrics"]
        shown = ", ".join(
            f"{METRICS[n].label} {rows[n]['difference']:+.2f} (p={rows[n]['p_value']:.3f})"
            for n in names
            if rows[n]["difference"] is not None and rows[n]["p_value"] is not None
        )
        console.print(f"{comparison['system']} vs {comparison['base']}: {shown}")
    console.print(f"BLEU signature: {report['signatures']['bleu']}")
    console.print(f"chrF++ signature: {report['signatures']['chrf++']}")
    console.print(f"[green]report:[/green] {folder / 'report.md'}")


def main(argv: Sequence[str] | None = None, prog: str = "python -m eval") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        config = resolve_config(args)
        if not args.workspace.exists():
            raise EvalError(f"workspace {args.workspace} does not exist")
        with Workspace.open(args.workspace, create=False) as workspace:
            folder, report = run_eval(
                workspace, config, predictions=args.predictions, card=args.card, card_system=args.card_system
            )
        print_summary(report, folder)
        return 0

    return run_stage(body, parser, argv)
