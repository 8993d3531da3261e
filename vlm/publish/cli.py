"""``mirada publish``: push everything the hackathon asks a team to publish, in its naming, in one command.

    mirada publish --workspace ws --run runs/qwen-dpo --owner somosnlp-hackathon-2026 \\
        --code-url https://github.com/org/repo --dry-run          # list every repository and file
    HF_TOKEN=… mirada publish --workspace ws --run runs/qwen-dpo --owner somosnlp-hackathon-2026 \\
        --code-url https://github.com/org/repo --base-model-id Qwen/Qwen2.5-VL-7B-Instruct

Pushes the ``<name>_image_dpo/kto/sft`` datasets (and with ``--images`` the collected images), one
model repository per ``--run`` (adapter, Model Card, curves, emissions, eval report; ``--merged``
adds ``<model>_merged``), the demo Space, and into every dataset and model repository the notebooks,
the resolved configuration of every stage and ``reproduce.md``. Cards link to each other. Missing
owner or code URL are warnings printed before anything is pushed; the token is read from $HF_TOKEN only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from data_tools.secrets import redact, register_secret
from data_tools.stage_args import UserError, add_common_args, run_stage
from data_tools.workspace import Workspace

HF_TOKEN_ENV = "HF_TOKEN"


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    add_common_args(parser)
    parser.add_argument("--owner", help="Hub user or organisation (default: the project's Hub owner)")
    parser.add_argument("--name", help="base name of the prefs datasets to push (default: the one exported)")
    parser.add_argument("--run", action="append", default=[], type=Path, metavar="DIR",
                        help="a trained run folder (output_dir of mirada train); repeatable")  # fmt: skip
    parser.add_argument("--model-name", action="append", default=[], metavar="NAME",
                        help="repository name per --run (default: the run folder's name)")  # fmt: skip
    parser.add_argument("--eval", action="append", dest="eval_names", metavar="NAME",
                        help="eval report(s) under exports/eval/ to include (default: all)")  # fmt: skip
    parser.add_argument(
        "--images", action="store_true", help="also push the collected images dataset (mirada export)"
    )
    parser.add_argument("--merged", action="store_true", help="also push merged weights (<model>_merged)")
    parser.add_argument("--no-space", action="store_true", help="do not export and push the demo Space")
    parser.add_argument(
        "--base-model-id", help="Hub id of the base model, when runs were trained from a local copy"
    )
    parser.add_argument("--code-url", help="link to the code (default: the project's code URL)")
    parser.add_argument(
        "--notebooks", type=Path, help="folder of notebooks to include (default: ./notebooks)"
    )
    parser.add_argument("--private", action="store_true", help="create private repositories")
    parser.add_argument(
        "--dry-run", action="store_true", help="stage and list every repository and file; push nothing"
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m vlm.publish") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        from vlm.publish.plan import PublishOptions, plan_publish, push_plan

        token = os.environ.get(HF_TOKEN_ENV)
        if not args.dry_run and not token:
            raise UserError(f"publishing needs a Hugging Face write token in ${HF_TOKEN_ENV} (or use --dry-run); "
                            "nothing was pushed")  # fmt: skip
        register_secret(token)
        if not (Path(args.workspace) / "mirada.db").is_file():
            raise UserError(f"--workspace {args.workspace}: no Mirada workspace there (no mirada.db)")
        options = PublishOptions(owner=args.owner, name=args.name, runs=args.run, model_names=args.model_name,
                                 eval_names=args.eval_names, images=args.images, merged=args.merged,
                                 space=not args.no_space, base_model_id=args.base_model_id, code_url=args.code_url,
                                 notebooks=args.notebooks, private=args.private)  # fmt: skip
        with Workspace.open(args.workspace, create=False) as workspace:
            config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            config["run"] = [str(r) for r in args.run]
            with workspace.run("publish", config) as run:
                try:
                    plan = plan_publish(workspace, options, pipeline_commands=_pipeline_commands(workspace))
                except ValueError as exc:
                    raise UserError(str(exc)) from exc
                for warning in plan.warnings:
                    print(f"warning: {warning}")
                print(plan.describe())
                run.summary["repos"] = {r.repo_id: r.repo_type for r in plan.repos}
                run.summary["warnings"] = plan.warnings
                if args.dry_run:
                    print(f"dry run: {len(plan.repos)} repositories staged under {plan.root}; nothing pushed")
                    run.summary["dry_run"] = True
                    return 0
                try:
                    urls = push_plan(plan, token=token or "", private=args.private)
                except ValueError as exc:
                    raise UserError(str(exc)) from exc
                except Exception as exc:  # network/Hub errors: one line, token never shown
                    detail = " ".join(redact(f"{type(exc).__name__}: {exc}").split())[:300]
                    raise UserError(f"pushing failed: {detail}; rerun to "
                                    "continue (pushes are idempotent)") from exc  # fmt: skip
                run.summary["pushed"] = urls
        for url in urls.values():
            print(f"pushed: {url}")
        return 0

    return run_stage(body, parser, argv)


def _pipeline_commands(workspace: Workspace) -> list[str] | None:
    """The commands ``mirada run`` last ran on this workspace (for reproduce.md), if it ran."""
    runs = [r for r in workspace.runs("pipeline") if r.get("summary")]
    return list(runs[-1]["summary"].get("commands") or []) or None if runs else None


if __name__ == "__main__":
    raise SystemExit(main())
