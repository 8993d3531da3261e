"""Fixtures for the generate stage: a collected workspace with a recorded prefs split, tiny models.

The workspace is collected once per session from the embedded sample (11 images in 11 language
varieties) and copied per test, so each test may write captions freely. The split is recorded the
way ``mirada prefs`` records it (``workspace.record_splits``): 4 test, 2 validation, 5 train images.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from data_tools.collect import CollectConfig, Collector
from data_tools.sample import write_sample
from data_tools.workspace import Workspace

DATASET = "muestra"


@pytest.fixture(scope="session")
def _workspace_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    sample = write_sample(tmp_path_factory.mktemp("gen-sample") / "sample", include_problems=False)
    root = tmp_path_factory.mktemp("gen-ws") / "ws"
    with Workspace.open(root) as ws:
        Collector(ws, CollectConfig(workers=1)).run([str(sample)])
        ids = [image.id for image in ws.images(status="ok")]
        splits = {i: ("test" if n < 4 else "validation" if n < 6 else "train") for n, i in enumerate(ids)}
        ws.record_splits(DATASET, splits, None)
    return root, splits


@pytest.fixture
def gen_ws(_workspace_template: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[Workspace]:
    """A fresh copy of the collected workspace with its recorded split (``ws.image_splits()``)."""
    root = tmp_path / "ws"
    shutil.copytree(_workspace_template[0], root)
    with Workspace.open(root, create=False) as ws:
        yield ws


@pytest.fixture(scope="session")
def qwen_adapter(tiny_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA SFT run on the tiny Qwen2.5-VL (3 steps through `mirada train`), built once per session."""
    from tests.vlm.generate.gen_helpers import train_adapter

    return train_adapter(tiny_model("qwen2_5_vl"), tmp_path_factory.mktemp("runs") / "qwen-sft")


@pytest.fixture(scope="session")
def loaded_tiny(tiny_model: Callable[[str], Path]) -> Callable[[str], Any]:
    """``loaded_tiny("qwen2_5_vl")`` → the shared loading layer's ``LoadedModel`` for a tiny model, once per family."""
    cache: dict[str, Any] = {}

    def get(family: str) -> Any:
        if family not in cache:
            from vlm.models import load_for_inference

            cache[family] = load_for_inference(tiny_model(family), dtype="float32")
        return cache[family]

    return get
