"""Readable logging and progress bars, both silenced by ``--quiet``.

Messages go to stderr so a stage's stdout stays clean for its summary (and for piping).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

from data_tools.secrets import RedactingFilter

T = TypeVar("T")
_state = {"quiet": False}


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Configure the ``mirada`` loggers once per process; ``quiet`` keeps warnings and errors only."""
    _state["quiet"] = quiet
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    for name in ("data_tools", "vlm", "eval"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def is_quiet() -> bool:
    return _state["quiet"]


def progress(
    iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[T]:
    """A tqdm bar on stderr over ``iterable`` unless quiet."""
    yield from progress_bar(total=total, desc=desc, unit=unit, iterable=iterable)


def progress_bar(
    *, total: int | None = None, desc: str = "", unit: str = "it", iterable: Iterable[T] | None = None
) -> tqdm:
    """A tqdm bar on stderr (disabled when quiet) for work advanced by hand with ``update``/``set_postfix``."""
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=is_quiet(), file=sys.stderr, dynamic_ncols=True
    )
