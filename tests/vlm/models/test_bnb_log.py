"""bitsandbytes' harmless "kernels" hint is not printed by every train/generate command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("bitsandbytes")


def test_importing_bitsandbytes_through_vlm_prints_no_kernels_hint():
    code = "import logging; logging.basicConfig(); import vlm, bitsandbytes; logging.getLogger('bitsandbytes').warning('still shown')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True
    )
    assert "kernels-community" not in done.stderr
    assert "still shown" in done.stderr  # other bitsandbytes warnings are not hidden
