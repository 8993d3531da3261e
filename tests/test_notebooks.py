"""The notebooks run top to bottom against real workspaces and a real (tiny) training run, cells in order.

Each notebook points at ``../demo/workspace`` (and ``../demo/runs/…``), what ``make demo`` builds; the
test swaps in the paths of workspaces built here through the stages' own code. Notebooks are stored
without outputs: a committed output would be a stale claim about data the reader does not have.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

from data_tools.collect import CollectConfig, Collector
from data_tools.prefs.cli import main as prefs_main
from data_tools.workspace import Workspace

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
WORKSPACE = 'Path("../demo/workspace")'
RUN = 'Path("../demo/runs/tiny-qwen2_5_vl-dpo")'


def run_notebook(name: str, replacements: dict[str, str], cwd: Path, monkeypatch) -> dict:
    matplotlib.use("Agg")
    monkeypatch.chdir(cwd)  # notebooks write their charts next to themselves
    notebook = json.loads((NOTEBOOKS / name).read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            for old, new in replacements.items():
                source = source.replace(old, new)
            exec(compile(source, name, "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """A workspace with images, drafts, two annotators' answers and decisions, and the prefs exports."""
    from tests.data_tools.prefs.test_prefs_card import fill

    root = tmp_path_factory.mktemp("reviewed")
    with Workspace.open(root / "ws") as workspace:
        fill(workspace)
    assert (
        prefs_main(["--workspace", str(root / "ws"), "--name", "nb", "--set", "splits.test_size=0.25"]) == 0
    )
    return root / "ws"


def test_stored_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), path.name


def test_inspect_workspace(tmp_path, sample_dir, monkeypatch):
    with Workspace.open(tmp_path / "ws") as ws:
        Collector(ws, CollectConfig(workers=1)).run([str(sample_dir)])
    namespace = run_notebook("01_inspect_workspace.ipynb", {WORKSPACE: f'Path("{tmp_path / "ws"}")'}, tmp_path,
                             monkeypatch)  # fmt: skip
    assert len(namespace["dataset"]) == 11


def test_dataset_explorer(reviewed, tmp_path, monkeypatch):
    namespace = run_notebook(
        "02_dataset_explorer.ipynb", {WORKSPACE: f'Path("{reviewed}")'}, tmp_path, monkeypatch
    )
    with Workspace.open(reviewed, create=False) as ws:
        assert namespace["counts"]["country"] == ws.count_images_by("country")
    assert set(namespace["by_country"]) == {row["country"] or "?" for row in namespace["dataset"]}
    assert namespace["without_author"]  # fill() leaves one image without an author


def test_review_analysis(reviewed, tmp_path, monkeypatch):
    namespace = run_notebook(
        "03_review_analysis.ipynb", {WORKSPACE: f'Path("{reviewed}")'}, tmp_path, monkeypatch
    )
    assert namespace["done"]["complete"] == namespace["done"]["records"] > 0
    spreads = [namespace["spread"](d) for d in namespace["disputed"]]
    assert spreads == sorted(spreads, reverse=True) and spreads[0] > 0  # fill() plants disagreements
    assert (tmp_path / "review_summary.png").stat().st_size > 1000


def test_training_run(reviewed, tiny_model, tmp_path, monkeypatch):
    from vlm.train.cli import main as train_main

    run = tmp_path / "run"
    code = train_main(["--config", str(CONFIGS / "train" / "tiny-qwen2_5_vl-dpo.yaml"),
                       f"model_name_or_path={tiny_model('qwen2_5_vl')}", f"dataset_name={reviewed}/exports/prefs/nb_image_dpo",
                       f"output_dir={run}", "max_steps=2", "eval_strategy=no", "save_steps=2"])  # fmt: skip
    assert code == 0
    namespace = run_notebook("04_training_run.ipynb", {WORKSPACE: f'Path("{reviewed}")', RUN: f'Path("{run}")'},
                             tmp_path, monkeypatch)  # fmt: skip
    assert [e["step"] for e in namespace["history"] if "loss" in e] == [
        1,
        2,
    ]  # one entry per step (logging_steps=1)
    assert namespace["emissions"].sessions == 1 and namespace["emissions"].emissions_kg > 0
    assert namespace["card"].data.library_name == "peft"
    assert (tmp_path / "training_curves.png").stat().st_size > 1000


def test_evaluation(tmp_path, monkeypatch):
    from eval.cli import main as eval_main
    from tests.eval.builders import build_workspace, predictions, write_jsonl

    build_workspace(tmp_path / "ws").close()
    preds = write_jsonl(tmp_path / "preds.jsonl", predictions())
    assert eval_main(["--workspace", str(tmp_path / "ws"), "--predictions", str(preds), "--split", "all",
                      "--name", "nb"]) == 0  # fmt: skip
    namespace = run_notebook("05_evaluation.ipynb", {WORKSPACE: f'Path("{tmp_path / "ws"}")', 'EVAL = "test"':
                             'EVAL = "nb"'}, tmp_path, monkeypatch)  # fmt: skip
    assert set(namespace["overall"]) == {"base", "aligned"}
    worst, best = namespace["cases"]["worst"], namespace["cases"]["best"]
    metric = namespace["metric"]
    assert worst and best and worst[0]["scores"][metric] <= best[0]["scores"][metric]
    assert namespace["chart"] and (tmp_path / "per_country.png").stat().st_size > 1000
