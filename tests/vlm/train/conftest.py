"""Fixtures for the train stage: small DESIGN §3 datasets on disk and a settings builder.

The datasets have the same columns as ``mirada prefs`` exports (``images`` as ``List(Image())``,
conversational turns with string content, plus ``country``/``language`` metadata), with train and
test splits. Settings go through the real parser (``vlm.train.cli.parse_args``), so tests exercise
the same defaults < YAML < command-line path as users.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from tests.vlm.train.train_helpers import FAST, write_dataset


@pytest.fixture(scope="session")
def pref_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``pref_data("dpo")`` → a ``save_to_disk`` folder (4 train rows, 2 test rows), built once."""
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = write_dataset(kind, tmp_path_factory.mktemp("data") / f"t_image_{kind}")
        return built[kind]

    return get


@pytest.fixture
def settings(tiny_model: Callable[[str], Path], pref_data: Callable[[str], Path], tmp_path: Path) -> Callable:
    """``settings("dpo", "qwen2_5_vl", "load_in_4bit=false")`` → parsed (script, training, model)."""
    from vlm.train.cli import parse_args

    def make(method: str, family: str, *overrides: str, data: str | None = None) -> tuple[Any, Any, Any]:
        argv = [
            f"method={method}",
            f"model_name_or_path={tiny_model(family)}",
            f"dataset_name={pref_data(data or method)}",
            f"output_dir={tmp_path / f'{method}-{family}'}",
            *FAST,
            *overrides,
        ]
        return parse_args(argv)

    return make


@pytest.fixture(autouse=True)
def _quiet_upstream_deprecations() -> None:
    """TRL 1.16 still calls transformers 5's deprecated ``gradient_checkpointing_*`` names; not ours to fix."""
    import warnings

    warnings.filterwarnings(
        "ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning
    )
