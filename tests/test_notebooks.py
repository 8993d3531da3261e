"""The notebooks run top to bottom against a real workspace (code cells executed in order)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

from data_tools.collect import CollectConfig, Collector
from data_tools.workspace import Workspace

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", ["01_inspect_workspace.ipynb"])
def test_notebook_runs(name, tmp_path, sample_dir):
    matplotlib.use("Agg")
    with Workspace.open(tmp_path / "ws") as ws:
        Collector(ws, CollectConfig(workers=1)).run([str(sample_dir)])
    notebook = json.loads((NOTEBOOKS / name).read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]).replace(
                'Path("../demo/workspace")', f'Path("{tmp_path / "ws"}")'
            )
            exec(compile(source, f"{name}", "exec"), namespace)
    assert len(namespace["dataset"]) == 11
