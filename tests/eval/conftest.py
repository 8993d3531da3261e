"""Fixtures of the eval tests (the builders are in tests/eval/builders.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from data_tools.workspace import Workspace
from tests.eval.builders import build_workspace, predictions, write_jsonl


@pytest.fixture
def eval_ws(tmp_path: Path) -> Iterator[Workspace]:
    ws = build_workspace(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture
def predictions_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "preds.jsonl", predictions())
