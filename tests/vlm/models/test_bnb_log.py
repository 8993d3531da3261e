"""bitsandbytes' harmless "kernels" hint is not printed by every train/generate command.

Checked without importing torch: the hint's text and logger are read from the installed
bitsandbytes source (so an upstream rewording fails here), and the filter ``vlm`` installs must drop
exactly that record and keep every other bitsandbytes warning.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

import vlm  # noqa: F401  (installs the filter)

LOGGER = "bitsandbytes.backends.cpu.ops"
HINT = "Failed to load CPU gemm_4bit_forward from kernels-community"


def test_the_hint_is_what_bitsandbytes_logs():
    spec = importlib.util.find_spec("bitsandbytes")
    if spec is None or spec.origin is None:
        pytest.skip("bitsandbytes is not installed")
    source = (Path(spec.origin).parent / "backends" / "cpu" / "ops.py").read_text(encoding="utf-8")
    assert HINT in source and "logger = logging.getLogger(__name__)" in source


def test_the_hint_is_dropped_and_other_warnings_are_kept(caplog):
    logger = logging.getLogger(LOGGER)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        logger.warning(
            HINT + ": %s. Please make sure you already `pip install kernels`", "No module named 'kernels'"
        )
        logger.warning("a real problem")
    assert [r.getMessage() for r in caplog.records] == ["a real problem"]
