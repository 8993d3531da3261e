"""``mirada demo``: try a base model and its adapters side by side in the browser, or export a Space.

    mirada demo --model Qwen/Qwen2.5-VL-7B-Instruct --adapter runs/qwen-dpo --workspace ws
    mirada demo --model demo/models/tiny-qwen2_5_vl --adapter demo/runs/tiny-qwen2_5_vl-dpo --workspace demo/workspace
    mirada demo --model Qwen/Qwen2.5-VL-7B-Instruct --adapter org/qwen-dpo --workspace ws \\
        --export-space space/ --push-to-hub org/qwen-dpo-demo        # token from $HF_TOKEN

Models load through the shared loader (Hub ids or local folders; a run folder restores its image
budget). A Cohere draft column appears when ``COHERE_API_KEY`` is set; it is only called when the
visitor ticks it, because each call costs credits.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from data_tools.secrets import register_secret
from data_tools.stage_args import UserError, add_common_args, run_stage

HF_TOKEN_ENV = "HF_TOKEN"
COHERE_KEY_ENV = "COHERE_API_KEY"


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    add_common_args(parser, workspace_required=False)
    parser.add_argument("--model", required=True, help="base model: Hub id or local folder")
    parser.add_argument("--adapter", action="append", default=[], metavar="RUN",
                        help="a trained run folder or Hub adapter id (repeatable; one caption column each)")  # fmt: skip
    parser.add_argument("--quantization", choices=["none", "4bit", "8bit"], default="none",
                        help="load the base in 4/8 bit (needs a GPU with bitsandbytes)")  # fmt: skip
    parser.add_argument(
        "--examples", type=int, default=8, help="how many test-split images to offer as examples"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 to share on a LAN)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--export-space", type=Path, metavar="DIR",
                        help="write a Hugging Face Space (app.py, requirements.txt, README header) instead of serving")  # fmt: skip
    parser.add_argument(
        "--push-to-hub", metavar="OWNER/NAME", help="with --export-space: create/update that Space"
    )
    parser.add_argument(
        "--code-url", help="repository Mirada is installed from in the Space (requirements.txt)"
    )
    parser.add_argument("--dataset", action="append", default=[], metavar="OWNER/NAME",
                        help="datasets to list in the Space header (repeatable)")  # fmt: skip
    parser.add_argument("--hardware", default="zero-a10g", help="the Space's suggested_hardware")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m vlm.demo") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        if args.push_to_hub and not args.export_space:
            raise UserError("--push-to-hub needs --export-space DIR (the folder that becomes the Space)")
        token = os.environ.get(HF_TOKEN_ENV)
        if args.push_to_hub and not token:
            raise UserError(
                f"--push-to-hub needs a Hugging Face write token in ${HF_TOKEN_ENV}; nothing was written"
            )
        register_secret(token)
        examples = []
        if args.workspace:
            from data_tools.workspace import Workspace
            from vlm.demo.app import examples_from_workspace

            if not (Path(args.workspace) / "mirada.db").is_file():
                raise UserError(f"--workspace {args.workspace}: no Mirada workspace there (no mirada.db)")
            with Workspace.open(args.workspace, create=False) as workspace:
                examples = examples_from_workspace(workspace, limit=args.examples)
        if args.export_space:
            from vlm.demo.space import export_space, push_space

            warnings = export_space(args.export_space, base_model=args.model, adapters=args.adapter,
                                    datasets=args.dataset, examples=examples, code_url=args.code_url,
                                    hardware=args.hardware, quantization=args.quantization)  # fmt: skip
            for warning in warnings:
                print(f"warning: {warning}")
            print(f"Space written to {args.export_space} (app.py, requirements.txt, README.md, "
                  f"{len(examples)} examples)")  # fmt: skip
            if args.push_to_hub:
                print(f"pushed: {push_space(args.export_space, args.push_to_hub, token=token or '')}")
            return 0
        from vlm.demo.app import build_demo
        from vlm.demo.captioners import cohere_drafter, model_captioners

        captioners = model_captioners(args.model, args.adapter, quantization=args.quantization)
        key = os.environ.get(COHERE_KEY_ENV)
        register_secret(key)
        drafter = cohere_drafter(key) if key else None
        demo = build_demo(captioners, examples=examples, drafter=drafter)
        demo.launch(server_name=args.host, server_port=args.port)
        return 0

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
