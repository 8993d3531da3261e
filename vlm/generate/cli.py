"""Generate stage: captions from a base model and its trained adapters, for evaluation and the demo.

    mirada generate --workspace ws --model Qwen/Qwen2.5-VL-7B-Instruct --adapter runs/sft --adapter runs/dpo
    mirada generate -w ws --model Qwen/Qwen2.5-VL-7B-Instruct --adapter runs/dpo --name dpo --no-base --split all
    mirada generate -w ws --model Qwen/Qwen2.5-VL-7B-Instruct --dataset ws/exports/prefs/tacos_image_dpo --out preds.jsonl
    mirada generate -w ws --model Qwen/Qwen2.5-VL-7B-Instruct --set quantization=4bit --set decoding.num_beams=3
    mirada generate -w ws --model Qwen/Qwen2.5-VL-7B-Instruct --adapter dpo --backend openai \\
        --set openai.base_url=http://gpu:8000/v1      # vllm serve … --enable-lora --lora-modules dpo=runs/dpo
    python -m vlm.generate --workspace ws --model … --help-config

Each image of the split prefs assigned (``test`` by default: never trained on) is captioned in its own
language variety with the instruction its preference rows carried, by the base model (a system named
after the model) and by each adapter (a system named after its folder; ``--name`` renames them).
Captions are stored in the workspace under a key of everything that changes them, so a rerun costs
nothing, a killed run resumes, and a retrained adapter is captioned again. ``exports/generations/`` (a
``datasets`` folder) and ``--out`` (JSON lines) hold ``image_id, system, caption, language, country,
seconds, tokens``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from data_tools.config import load_config
from data_tools.errors import UserError
from data_tools.secrets import register_secret
from data_tools.stage_args import add_common_args, add_config_args, run_stage
from data_tools.workspace import Workspace
from vlm.generate.backends import Backend, System
from vlm.generate.config import BACKENDS, SPLIT_CHOICES, GenerateConfig
from vlm.generate.runner import (
    BackendFactory,
    GenerateSummary,
    export_rows,
    generate,
    resolve_systems,
    write_dataset,
    write_jsonl,
)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Caption the evaluation images with a base model and any number of trained adapters (each a named "
            "system), batched, prompted exactly as in training, cached in the workspace."
        ),
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_args(parser)
    parser.add_argument(
        "--model", required=True, help="base model: Hub id or local folder (the adapters' base)"
    )
    parser.add_argument("--adapter", action="append", default=[], metavar="RUN_DIR_OR_HUB_ID",
                        help="a `mirada train` output folder or a Hub adapter repo (repeatable)")  # fmt: skip
    parser.add_argument("--name", action="append", default=[], help="system name of each --adapter, in order")
    parser.add_argument(
        "--base-name", help="system name of the base model (default: the model's folder/repo name)"
    )
    parser.add_argument("--no-base", action="store_true", help="caption with the adapters only")
    parser.add_argument("--split", choices=SPLIT_CHOICES, help="which prefs split to caption (default: test)")
    parser.add_argument("--dataset", metavar="PREFS_EXPORT",
                        help="prefs export folder or dataset base name whose split to use (default: latest prefs)")  # fmt: skip
    parser.add_argument("--backend", choices=BACKENDS, help="hf (default), vllm or openai")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (hf)")
    parser.add_argument("--limit", type=int, help="caption only the first N images")
    parser.add_argument("--out", type=Path, help="also write the captions as JSON lines here")
    add_config_args(parser, GenerateConfig)
    return parser


def resolve_config(args: argparse.Namespace) -> GenerateConfig:
    overrides = list(args.overrides)
    for flag, key in (("split", "split"), ("dataset", "dataset"), ("backend", "backend"),
                      ("batch_size", "batch_size"), ("limit", "limit")):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(GenerateConfig, args.config, overrides)


def backend_factory(model: str, config: GenerateConfig) -> BackendFactory:
    """A function that builds the chosen backend for these systems (called only when work is pending)."""

    def make(systems: Sequence[System]) -> Backend:
        if config.backend == "vllm":
            from vlm.generate.backends import VLLMBackend

            return VLLMBackend(model, systems, config)
        if config.backend == "openai":
            from vlm.generate.backends import OpenAICaptioner

            key = os.environ.get(config.openai.api_key_env)
            register_secret(key)
            return OpenAICaptioner(model, config, key)
        from vlm.generate.backends import HFBackend

        return HFBackend.load(model, systems, config)

    return make


def print_summary(summary: GenerateSummary, out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"generate: {summary.images} images")
    for column in ("system", "cached (not recomputed)", "generated now", "failed"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name, counts in summary.systems.items():
        table.add_row(name, str(counts["cached"]), str(counts["generated"]), str(counts["failed"]))
    console = Console()
    console.print(table)
    generated = sum(c["generated"] for c in summary.systems.values())
    rate = f", {generated / summary.seconds:.2f} captions/s" if generated and summary.seconds else ""
    console.print(f"model loaded: {'yes' if summary.model_loaded else 'no'}; {summary.seconds:.1f} s{rate}")
    for where in (summary.export, out):
        if where:
            console.print(f"captions -> {where}")


def main(argv: Sequence[str] | None = None, prog: str = "python -m vlm.generate") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        config = resolve_config(args)
        systems = resolve_systems(args.model, args.adapter, args.name, base_name=args.base_name,
                                  include_base=not args.no_base, backend=config.backend)  # fmt: skip
        with Workspace.open(args.workspace, create=False) as workspace:
            run_config = {**config.model_dump(mode="json"), "model": args.model,
                          "systems": {s.name: s.source for s in systems}}  # fmt: skip
            with workspace.run("generate", run_config) as run:
                summary = generate(workspace, args.model, systems, config, backend_factory(args.model, config),
                                   run_id=run.id)  # fmt: skip
                rows = export_rows(workspace, systems, summary.keys)
                if config.export:
                    folder = write_dataset(rows, workspace.exports_dir / "generations")
                    summary.export = str(folder)
                if args.out:
                    write_jsonl(rows, args.out)
                run.summary = summary.to_dict()
                if summary.failures:
                    run.status = "partial"
            print_summary(summary, args.out)
        if summary.failures:
            system, image_id, reason = summary.failures[0]
            more = f" (and {len(summary.failures) - 1} more)" if len(summary.failures) > 1 else ""
            raise UserError(f"image {image_id[:12]} was not captioned by {system}: {reason}{more}; "
                            "every other caption is saved")  # fmt: skip
        return 0

    return run_stage(body, parser, argv)
