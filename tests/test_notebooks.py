"""The notebooks run top to bottom in a real Jupyter kernel (nbclient), on workspaces built like ``make demo``'s.

Each notebook points at ``../demo/workspace`` (and ``../demo/runs/…``), what ``make demo`` builds; the
test swaps in the paths of workspaces built here through the stages' own code, starts one ipykernel
per notebook and runs every cell in order, as a reader's "Run all" would (per-cell timeout; a failing
cell fails the test with its source and traceback). A last cell added here prints, as JSON, the
values the test checks. Notebooks are stored without outputs: a committed output would be a stale
claim about data the reader does not have.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from data_tools.collect import CollectConfig, Collector
from data_tools.prefs.cli import main as prefs_main
from data_tools.workspace import DraftRecord, ReviewItem, ReviewResponse, Workspace

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
WORKSPACE = 'Path("../demo/workspace")'
RUN = 'Path("../demo/runs/tiny-qwen2_5_vl-dpo")'
CELL_TIMEOUT_S = 120  # generous for 2 shared cores; a healthy cell takes well under 10 s


@pytest.fixture(scope="session")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernel spec for this interpreter only: a "python3" spec a developer installed elsewhere (another
    environment's Python) must not run the notebooks."""
    folder = tmp_path_factory.mktemp("kernels")
    # plain tracebacks: a failing cell is reported in the test output, where colour codes are noise
    write_kernel_spec(folder / "mirada-tests", extra_arguments=["--InteractiveShell.colors=nocolor"])
    return KernelSpecManager(kernel_dirs=[str(folder)], ensure_native_kernel=False)


def run_notebook(name: str, replacements: dict[str, str], cwd: Path, probe: str,
                 kernels: KernelSpecManager) -> tuple[Any, list[bytes]]:  # fmt: skip
    """Execute notebook ``name`` in a fresh kernel with ``cwd`` as its folder (charts are written there).

    ``probe`` is a Python expression evaluated after the last cell; its JSON value is returned with
    the PNG images the cells displayed (what a reader sees inline), in order.
    """
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for old, new in replacements.items():
                cell.source = cell.source.replace(old, new)
    notebook.cells.append(nbformat.v4.new_code_cell(f"import json as _json\nprint(_json.dumps({probe}))"))
    manager = KernelManager(kernel_name="mirada-tests", kernel_spec_manager=kernels)
    client = NotebookClient(
        notebook, km=manager, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(cwd)}}
    )
    try:
        client.execute()
    except CellExecutionError as exc:  # its text holds the failing cell's source and the traceback
        pytest.fail(f"{name} failed:\n{exc}", pytrace=False)
    finally:  # the executed copy, outputs included, next to its charts: the test's artefact to look at
        nbformat.write(notebook, cwd / name)
    images = [base64.b64decode(output["data"]["image/png"]) for cell in notebook.cells
              for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]  # fmt: skip
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs if o.output_type == "stream")
    return json.loads(printed), images


def is_png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG") and len(data) > 1000


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


def test_a_failing_cell_fails_the_test_with_its_source_and_traceback(tmp_path, kernels):
    with pytest.raises(pytest.fail.Exception) as failure:
        run_notebook("01_inspect_workspace.ipynb", {WORKSPACE: f'Path("{tmp_path / "missing"}")'}, tmp_path, "0",
                     kernels)  # fmt: skip
    message = str(failure.value)
    assert "01_inspect_workspace.ipynb failed" in message
    assert "ws = Workspace.open(WORKSPACE, create=False)" in message  # the cell's source
    assert "WorkspaceError" in message and "missing" in message and "\x1b[" not in message  # why, readable
    assert (tmp_path / "01_inspect_workspace.ipynb").exists()  # the executed copy, for a closer look


def test_inspect_workspace(tmp_path, sample_dir, kernels):
    with Workspace.open(tmp_path / "ws") as ws:
        Collector(ws, CollectConfig(workers=1)).run([str(sample_dir)])
    seen, images = run_notebook("01_inspect_workspace.ipynb", {WORKSPACE: f'Path("{tmp_path / "ws"}")'}, tmp_path,
                                "len(dataset)", kernels)  # fmt: skip
    assert seen == 11
    assert len(images) == 1 and is_png(images[0])  # the image grid


def test_dataset_explorer(reviewed, tmp_path, kernels):
    probe = ('{"counts": {c: {str(k): v for k, v in values.items()} for c, values in counts.items()}, '
             '"by_country": sorted(by_country), "countries": sorted({r["country"] or "?" for r in dataset}), '
             '"without_author": without_author}')  # fmt: skip
    seen, images = run_notebook(
        "02_dataset_explorer.ipynb", {WORKSPACE: f'Path("{reviewed}")'}, tmp_path, probe, kernels
    )
    with Workspace.open(reviewed, create=False) as ws:
        assert seen["counts"]["country"] == {str(k): v for k, v in ws.count_images_by("country").items()}
    assert seen["by_country"] == seen["countries"]
    assert seen["without_author"]  # fill() leaves one image without an author
    assert len(images) == 2 and all(map(is_png, images))  # the counts and the per-country grid


def test_review_analysis(reviewed, tmp_path, kernels):
    seen, images = run_notebook("03_review_analysis.ipynb", {WORKSPACE: f'Path("{reviewed}")'}, tmp_path,
                                '{"done": done, "spreads": [spread(d) for d in disputed]}', kernels)  # fmt: skip
    assert seen["done"]["complete"] == seen["done"]["records"] > 0
    spreads = seen["spreads"]
    assert spreads == sorted(spreads, reverse=True) and spreads[0] > 0  # fill() plants disagreements
    assert (tmp_path / "review_summary.png").stat().st_size > 1000
    assert len(images) == 1 + len(spreads) and all(map(is_png, images))  # summary, then each disputed image


def test_training_run(reviewed, tiny_model, tmp_path, kernels):
    from vlm.train.cli import main as train_main

    run = tmp_path / "run"
    code = train_main(["--config", str(CONFIGS / "train" / "tiny-qwen2_5_vl-dpo.yaml"),
                       f"model_name_or_path={tiny_model('qwen2_5_vl')}", f"dataset_name={reviewed}/exports/prefs/nb_image_dpo",
                       f"output_dir={run}", "max_steps=2", "eval_strategy=no", "save_steps=2"])  # fmt: skip
    assert code == 0
    probe = (
        '{"steps": [e["step"] for e in history if "loss" in e], "sessions": emissions.sessions, '
        '"kg": emissions.emissions_kg, "library": card.data.library_name}'
    )
    seen, images = run_notebook("04_training_run.ipynb", {WORKSPACE: f'Path("{reviewed}")', RUN: f'Path("{run}")'},
                                tmp_path, probe, kernels)  # fmt: skip
    assert seen["steps"] == [1, 2]  # one entry per step (logging_steps=1)
    assert seen["sessions"] == 1 and seen["kg"] > 0
    assert seen["library"] == "peft"
    assert (tmp_path / "training_curves.png").stat().st_size > 1000
    assert len(images) == 1 and is_png(images[0])


def add_reviews(ws: Workspace) -> dict[frozenset[str], str]:
    """Four drafted candidates per image, ranked by three annotators who mostly agree (as a review import stores
    them); returns, for each candidate pair, the caption the annotators' majority prefers."""
    from eval.judge.calibrate import human_units

    rng = random.Random(5)
    run_id = ws.start_run("test-setup", {})
    items, responses = [], []
    for n, image in enumerate(ws.images(status=None)):
        keys = [f"{image.id[:10]}-c{k}" for k in range(4)]
        for k, key in enumerate(keys):
            ws.save_draft(DraftRecord(cache_key=key, image_id=image.id, strategy="cultural", variant=k,
                                      backend="cohere", model="m", prompt_version="v1", prompt_language="es",
                                      prompt_sha256="x", params={}, status="done",
                                      caption=f"Pie {n}-{k}: una escena de {image.country}."), run_id)  # fmt: skip
        items.append(
            ReviewItem("ds", f"r{n}", image.id, {f"candidate_{k + 1}": key for k, key in enumerate(keys)})
        )
        quality = rng.sample(keys, len(keys))  # best first
        for user in ("ana", "bruno", "carla"):
            order = quality[:]
            if rng.random() < 0.35:  # a little disagreement, so the human ceiling is below 1
                j = rng.randrange(3)
                order[j], order[j + 1] = order[j + 1], order[j]
            responses.append(ReviewResponse("ds", f"r{n}", image.id, user, user, "submitted",
                                            ranking={key: r for r, key in enumerate(order, start=1)}))  # fmt: skip
    ws.save_review_items(items)
    ws.save_review_responses(responses)
    ws.finish_run(run_id, "completed", {})
    captions = {d.cache_key: d.caption for d in ws.drafts(status="done")}
    units, _ = human_units(ws.review_responses(), ws.review_items(), captions)
    return {frozenset((captions[u.left], captions[u.right])): captions[u.left if u.human == 1 else u.right]
            for u in units}  # fmt: skip


@pytest.fixture
def evaluated(tmp_path) -> tuple[Path, dict[frozenset[str], str]]:
    """``make demo``'s evaluation stage: a reviewed workspace with two systems' captions and their eval report."""
    from eval.cli import main as eval_main
    from tests.eval.builders import build_workspace, predictions, write_jsonl

    with build_workspace(tmp_path / "ws") as ws:
        better = add_reviews(ws)
    preds = write_jsonl(tmp_path / "preds.jsonl", predictions())
    assert eval_main(["--workspace", str(tmp_path / "ws"), "--predictions", str(preds), "--split", "all",
                      "--name", "nb"]) == 0  # fmt: skip
    return tmp_path / "ws", better


EVAL_PROBE = (
    '{"overall": sorted(overall), "worst": [r["scores"][metric] for r in cases["worst"]], '
    '"best": [r["scores"][metric] for r in cases["best"]], "chart": bool(chart), "calibration": calibration, '
    '"trust": trust_label(ws.calibrated_judge())}'
)


def test_evaluation_with_judge_calibration(evaluated, tmp_path, monkeypatch, kernels):
    from data_tools.cli import main as mirada
    from tests.eval.judge.conftest import API_KEY
    from tests.eval.judge.scripted import ScriptedJudge
    from tests.fakes.cohere_server import FakeCohereServer

    ws, better = evaluated
    replacements = {WORKSPACE: f'Path("{ws}")', 'EVAL = "test"': 'EVAL = "nb"'}
    (tmp_path / "before").mkdir()
    seen, images = run_notebook("05_evaluation.ipynb", replacements, tmp_path / "before", EVAL_PROBE, kernels)
    assert seen["calibration"] is None and "mirada judge calibrate" in seen["trust"]  # says how to get one
    assert seen["overall"] == ["aligned", "base"]
    assert seen["worst"] and seen["best"] and seen["worst"][0] <= seen["best"][0]
    assert seen["chart"] and (tmp_path / "before" / "per_country.png").stat().st_size > 1000
    assert len(images) == 1 + len(seen["worst"]) + len(seen["best"]) and all(map(is_png, images))

    with FakeCohereServer(
        api_key=API_KEY, responder=ScriptedJudge(better, agreement=0.8, bias=0.2)
    ) as server:
        monkeypatch.setenv("CO_API_KEY", API_KEY)
        monkeypatch.setenv("CO_API_URL", server.url)
        assert mirada(["judge", "calibrate", "-w", str(ws), "--judge-prompt", "v1", "--limit", "6",
                       "--set", "limits.backoff_s=0.01", "--set", "bootstrap_resamples=100"]) == 0  # fmt: skip
        assert server.count() > 0
    seen, after = run_notebook("05_evaluation.ipynb", replacements, tmp_path, EVAL_PROBE, kernels)
    calibration = json.loads((ws / "exports/eval/judge-calibration/calibration.json").read_text())
    assert seen["calibration"] == calibration and calibration["chosen"] == "v1"
    assert seen["trust"].startswith(
        "judge prompt v1"
    )  # the workspace's calibrated judge, as reports state it
    assert (
        len(after) == len(images) + 1 and after[-1] not in images and is_png(after[-1])
    )  # + calibration chart
