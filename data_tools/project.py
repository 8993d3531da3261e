"""``mirada project``: the workspace's project settings (Hub owner, dataset name, code URL), set once.

    mirada project set owner=my-team code_url=https://github.com/my-team/tacos --workspace ws
    mirada project show --workspace ws

Dataset and model cards link to each other and to the code. These links are the same for every
stage of a project, so they are stored in the workspace (not repeated in each config) and every
card-writing stage reads them; a stage that writes a card without them says so first.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from data_tools.stage_args import UserError, add_common_args, run_stage
from data_tools.workspace import Workspace
from data_tools.workspace.project import PROJECT_KEYS, ProjectError


def build_parser(prog: str = "python -m data_tools.project") -> argparse.ArgumentParser:
    keys = "\n".join(f"  {key:<13} {text}" for key, text in PROJECT_KEYS.items())
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Show or set the workspace's project settings, used by the cards of prefs (and later "
        "train, eval and publish) to link the datasets, models and code.",
        epilog=f"settings:\n{keys}\n\nexamples:\n  {prog} set owner=my-team code_url=https://github.com/my-team/x "
        f"--workspace ws\n  {prog} set code_url= --workspace ws   (clears it)\n  {prog} show --workspace ws",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("show", "set"), help="show the settings, or set KEY=VALUE pairs")
    parser.add_argument("values", nargs="*", metavar="KEY=VALUE", help="settings to set (empty value clears)")
    add_common_args(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.project") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        if args.action == "show" and args.values:
            raise UserError("`project show` takes no KEY=VALUE arguments; use `project set`")
        values: dict[str, str] = {}
        for pair in args.values:
            key, sep, value = pair.partition("=")
            if not sep:
                raise UserError(f"{pair!r} is not KEY=VALUE (keys: {', '.join(PROJECT_KEYS)})")
            values[key.strip()] = value
        if args.action == "set" and not values:
            raise UserError(f"`project set` needs KEY=VALUE pairs (keys: {', '.join(PROJECT_KEYS)})")
        with Workspace.open(args.workspace, create=False) as workspace:
            try:
                settings = workspace.set_project(**values) if values else workspace.project()
            except ProjectError as exc:
                raise UserError(str(exc)) from None
        for key in PROJECT_KEYS:
            print(f"{key}: {settings.get(key, '(not set)')}")
        return 0

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
