"""Fixtures for the draft and review stages: a collected workspace and the local Cohere-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from data_tools.collect import CollectConfig, Collector
from data_tools.sample import write_sample
from data_tools.workspace import Workspace
from tests.data_tools.draft.draft_helpers import API_KEY, draft_key
from tests.fakes.cohere_server import FakeCohereServer


@pytest.fixture(scope="session")
def clean_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("clean") / "sample", include_problems=False)


@pytest.fixture
def collected(tmp_path: Path, clean_sample: Path) -> Iterator[Workspace]:
    """A workspace holding the 11 sample images."""
    with Workspace.open(tmp_path / "ws") as ws:
        Collector(ws, CollectConfig(workers=2)).run([str(clean_sample)])
        yield ws


@pytest.fixture
def server() -> Iterator[FakeCohereServer]:
    with FakeCohereServer(api_key=API_KEY, key_fn=draft_key) as fake:
        yield fake
