"""Arguments every stage shares, and the error boundary that turns known failures into one line.

Stages raise typed errors (``ConfigError``, ``WorkspaceError``, ``SourceError``…); users should see
one actionable sentence, not a traceback. ``--verbose`` shows the traceback for bug reports.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from data_tools.config import StageConfig, describe_config
from data_tools.errors import UserError as BaseUserError
from data_tools.logs import setup_logging
from data_tools.secrets import redact

log = logging.getLogger("data_tools")


class UserError(BaseUserError, RuntimeError):
    """A failure the user can fix (bad input, missing workspace); shown without a traceback."""


def add_common_args(parser: argparse.ArgumentParser, *, workspace_required: bool = True) -> None:
    parser.add_argument(
        "--workspace",
        "-w",
        type=Path,
        required=workspace_required,
        help="the workspace directory (`mirada collect` creates it; other stages need an existing one)",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="only warnings, errors and the final summary"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging and full tracebacks")


def add_config_args(parser: argparse.ArgumentParser, config_cls: type[StageConfig]) -> None:
    parser.add_argument("--config", "-c", type=Path, help="YAML file with settings (see --help-config)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set images.max_side=1024 (repeatable; wins over --config)",
    )
    parser.add_argument(
        "--help-config",
        action=_HelpConfig,
        config_cls=config_cls,
        help="print every setting with its default and meaning, then exit",
    )


class _HelpConfig(argparse.Action):
    def __init__(
        self, option_strings: list[str], dest: str, config_cls: type[StageConfig], **kwargs: object
    ) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)  # type: ignore[arg-type]
        self.config_cls = config_cls

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(describe_config(self.config_cls))
        parser.exit()


def run_stage(
    body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> int:
    """Parse ``argv``, set up logging, run ``body`` and map known errors to exit codes."""
    args = parser.parse_args(argv)
    setup_logging(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
    try:
        return body(args)
    except KeyboardInterrupt:
        print(
            "interrupted: everything finished so far is saved; rerun the same command to continue",
            file=sys.stderr,
        )
        return 130
    except BaseUserError as exc:  # ConfigError, WorkspaceError, SourceError, every stage's own
        if getattr(args, "verbose", False):
            raise
        print(f"{parser.prog}: error: {redact(str(exc))}", file=sys.stderr)  # no registered key, ever
        return 2
