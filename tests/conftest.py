"""Shared fixtures: the embedded sample, fresh workspaces under tmp_path, tiny offline models."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from data_tools.logs import setup_logging
from data_tools.sample import write_sample
from data_tools.workspace import Workspace


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    setup_logging(quiet=True)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded sample (with its planted near-duplicate and broken files), written once."""
    return write_sample(tmp_path_factory.mktemp("sample") / "sample")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.open(tmp_path / "ws") as ws:
        yield ws


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_model("qwen2_5_vl")`` → path of a tiny random VLM, built once per session and family."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            from vlm.tiny import build_tiny_vlm

            built[family] = build_tiny_vlm(family, tmp_path_factory.mktemp("models") / family)
        return built[family]

    return get
