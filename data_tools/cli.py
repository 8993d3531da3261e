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
    "judge": (
        "eval.judge.cli:main",
        "VLM judge that sees the image: win rates between systems; `judge calibrate` against your annotators",
    ),
    "status": ("data_tools.status:main", "show what a workspace holds: images, rejections, duplicates, runs"),
    "export": ("data_tools.export:main", "export collected images as a Hugging Face dataset"),
}

USAGE = """usage: mirada <command> [options]   (mirada <command> --help for details)

Mirada turns a folder of photos into a culturally better captioning model:
collect -> draft -> review -> prefs -> train, all on one workspace directory.

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
