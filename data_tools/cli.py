"""The ``mirada`` command: one subcommand per pipeline stage.

A thin dispatcher driven by a table of ``subcommand -> "module:function"`` strings imported lazily,
so ``mirada --help`` starts instantly and the base package never imports the heavier ``vlm`` or
``eval`` layers (DESIGN §4b). Each stage module also runs alone: ``python -m data_tools.collect``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# subcommand: (entry point, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "sample": ("data_tools.sample:main", "write the embedded sample image folder (generated, no network)"),
    "project": ("data_tools.project:main", "set the workspace's Hub owner, dataset name and code URL once"),
    "collect": ("data_tools.collect:main", "collect images + cultural metadata into a workspace"),
    "draft": (
        "data_tools.draft.cli:main",
        "draft caption candidates with Cohere (or a local/OpenAI-compatible VLM)",
    ),
    "review": (
        "data_tools.review.cli:main",
        "push drafts to Argilla for people to rank/correct; pull, agreement, export/import",
    ),
    "prefs": (
        "data_tools.prefs.cli:main",
        "build TRL image-preference datasets (DPO, KTO, SFT) + Dataset Card",
    ),
    "train": (
        "vlm.train.cli:main",
        "align a VLM with QLoRA SFT/DPO/KTO through TRL, with emissions and a Model Card",
    ),
    "generate": (
        "vlm.generate.cli:main",
        "caption the test split with a base model and its adapters (batched, cached) for eval and demo",
    ),
    "eval": (
        "eval.cli:main",
        "compare captioning systems: BLEU/chrF++/CIDEr-D/ROUGE-L + cultural metrics per country, with intervals",
    ),
    "judge": (
        "eval.judge.cli:main",
        "VLM judge that sees the image: win rates between systems; `judge calibrate` against your annotators",
    ),
    "demo": ("vlm.demo.cli:main", "try the base model and adapters side by side in Gradio; export a Space"),
    "publish": (
        "vlm.publish.cli:main",
        "push datasets, adapter, eval report, notebooks, configs and the demo Space (--dry-run lists all)",
    ),
    "run": (
        "data_tools.pipeline:main",
        "run the stages of a pipeline YAML in order, skipping finished unchanged ones",
    ),
    "status": ("data_tools.status:main", "show what a workspace holds: images, rejections, duplicates, runs"),
    "export": ("data_tools.export:main", "export collected images as a Hugging Face dataset"),
}

USAGE = """usage: mirada <command> [options]   (mirada <command> --help for details)

Mirada turns a folder of photos into a culturally better captioning model:
collect -> draft -> review -> prefs -> train -> generate -> eval/judge -> demo/publish,
all on one workspace directory.

commands:
{commands}

example:
  mirada sample demo/sample && mirada collect demo/sample --workspace demo/ws && mirada status --workspace demo/ws
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        width = max(len(name) for name in COMMANDS)
        listing = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
        print(USAGE.format(commands=listing))
        return 0
    if args[0] in ("-V", "--version"):
        from data_tools import __version__

        print(f"mirada {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"mirada: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, function_name = COMMANDS[name][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest, prog=f"mirada {name}") or 0)


if __name__ == "__main__":
    sys.exit(main())
