"""``mirada publish``: dry-run listing, and a real push through huggingface_hub/datasets to the local Hub stand-in."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, ModelCard, SpaceCard

from data_tools.export import main as export_main
from data_tools.prefs.cli import main as prefs_main
from data_tools.workspace import Workspace
from tests.data_tools.prefs.test_prefs_card import fill
from tests.fakes.hub_server import FakeHub, point_libraries_at
from vlm.publish.cli import main

TOKEN = "hf_publish_secret_987"


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model):
    """A workspace with prefs exports and an eval report, a real LoRA run folder and a notebooks folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    root = tmp_path_factory.mktemp("project")
    with Workspace.open(root / "ws") as workspace:
        fill(workspace)
    assert (
        prefs_main(["--workspace", str(root / "ws"), "--name", "fotos", "--set", "splits.test_size=0.25"])
        == 0
    )
    assert export_main(["--workspace", str(root / "ws")]) == 0
    report = root / "ws" / "exports" / "eval" / "test"
    report.mkdir(parents=True)
    (report / "report.json").write_text(json.dumps({"systems": {"base": {"bleu": 1.0}}}))
    (report / "report.md").write_text("# Eval\n")
    (report / "per_country.png").write_bytes(b"\x89PNG fake chart")
    base = tiny_model("qwen2_5_vl")
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=r".*language_model.*\.(q|v)_proj"))
    run = root / "runs" / "qwen-dpo"
    lora.save_pretrained(run)
    (run / "README.md").write_text(
        "---\nlicense: apache-2.0\nlibrary_name: peft\n---\n\n# qwen-dpo\n\nA card.\n"
    )
    (run / "mirada_train_config.json").write_text(json.dumps(
        {"script": {"method": "dpo", "dataset_name": str(root / "ws/exports/prefs/fotos_image_dpo")},
         "training": {"output_dir": str(run), "max_steps": 2}, "model": {"model_name_or_path": str(base)}}))  # fmt: skip
    (run / "checkpoint-2").mkdir()
    (run / "checkpoint-2" / "optimizer.pt").write_bytes(b"x")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    (notebooks / "01_explore.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5}))
    return root


def args(project, *extra):
    return ["--workspace", str(project / "ws"), "--run", str(project / "runs" / "qwen-dpo"),
            "--notebooks", str(project / "notebooks"), "--base-model-id", "org/tiny-base", *extra]  # fmt: skip


def test_dry_run_lists_every_repo_and_file_and_warns_first(project, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(args(project, "--dry-run", "--merged")) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    first_repo = next(i for i, line in enumerate(lines) if line.startswith(("dataset", "model", "space")))
    warnings = lines[:first_repo]
    assert any("no Hub owner" in w for w in warnings) and any("no code URL" in w for w in warnings)
    for repo in ("dataset  OWNER/fotos_image_dpo", "dataset  OWNER/fotos_image_kto", "dataset  OWNER/fotos_image_sft",
                 "model    OWNER/qwen-dpo", "space    OWNER/fotos_demo"):  # fmt: skip
        assert repo in out
    for name in ("data/train-*.parquet", "notebooks/01_explore.ipynb", "reproduce.md", "eval/report.json",
                 "eval/per_country.png", "adapter_model.safetensors", "app.py", "requirements.txt"):  # fmt: skip
        assert name in out
    assert "model    OWNER/qwen-dpo_merged  (merged weights)" in out and "model.safetensors" in out
    assert "checkpoint-2" not in out and "optimizer.pt" not in out
    assert "nothing pushed" in out


def test_push_to_hub_stand_in_lands_every_file_with_linked_cards(project, capsys, monkeypatch):
    with FakeHub(token=TOKEN) as hub:
        point_libraries_at(hub, monkeypatch)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        with Workspace.open(project / "ws", create=False) as workspace:  # owner and code URL from the project
            workspace.set_project(owner="somosnlp-hackathon-2026", code_url="https://github.com/o/mirada")
        code = main(args(project, "--images"))
        assert code == 0, capsys.readouterr().err
        owner = "somosnlp-hackathon-2026"
        assert hub.unknown == []
        dpo = hub.files(f"{owner}/fotos_image_dpo", "dataset")
        shard = next(name for name in dpo if name.startswith("data/train-"))
        with Workspace.open(project / "ws", create=False) as workspace:
            local = json.loads(
                (workspace.exports_dir / "prefs" / "fotos_image_dpo" / "train" / "state.json").read_text()
            )
            runs = workspace.runs("publish")
        rows = pq.read_table(io.BytesIO(dpo[shard])).num_rows
        assert rows > 0 and local["_data_files"]
        assert {"notebooks/01_explore.ipynb", "reproduce.md", "charts/countries.png"} <= set(dpo)
        assert any(name.startswith("configs/") and name.endswith("_prefs.yaml") for name in dpo)
        card = DatasetCard(dpo["README.md"].decode())
        assert f'load_dataset("{owner}/fotos_image_dpo")' in card.text and "load_from_disk" not in card.text
        assert card.data.configs[0]["data_files"][0]["path"].startswith("data/")
        assert f"https://huggingface.co/{owner}/qwen-dpo" in card.text
        assert f"https://huggingface.co/spaces/{owner}/fotos_demo" in card.text
        assert "https://github.com/o/mirada" in card.text
        model = hub.files(f"{owner}/qwen-dpo")
        assert {"adapter_model.safetensors", "adapter_config.json", "eval/report.json", "eval/report.md",
                "notebooks/01_explore.ipynb", "reproduce.md", "configs/train_qwen-dpo.yaml"} <= set(model)  # fmt: skip
        assert not any(name.startswith("checkpoint-") for name in model)
        model_card = ModelCard(model["README.md"].decode())
        assert model_card.data.datasets == [f"{owner}/fotos_image_dpo", f"{owner}/fotos_image_kto",
                                            f"{owner}/fotos_image_sft"]  # fmt: skip
        assert model_card.data.base_model == "org/tiny-base"
        assert f"https://huggingface.co/spaces/{owner}/fotos_demo" in model_card.text
        assert "[`eval/report.md`](eval/report.md)" in model_card.text
        space = hub.files(f"{owner}/fotos_demo", "space")
        header = SpaceCard(space["README.md"].decode()).data.to_dict()
        assert header["models"] == ["org/tiny-base", f"{owner}/qwen-dpo"] and header["sdk"] == "gradio"
        assert any(name.startswith("examples/") and not name.endswith(".jsonl") for name in space)
        images = hub.files(f"{owner}/fotos_images", "dataset")
        assert (
            pq.read_table(io.BytesIO(images[next(n for n in images if n.startswith("data/train-"))])).num_rows
            == 9
        )
        images_card = DatasetCard(images["README.md"].decode())
        assert images_card.data.license == "other" and "| CC0-1.0 | " in images_card.text
        assert f'load_dataset("{owner}/fotos_images"' in images_card.text and "qwen-dpo" in images_card.text
        reproduce = model["reproduce.md"].decode()
        assert "mirada prefs --workspace" in reproduce and "--config configs/" in reproduce
        everything = b"".join(b"".join(files.values()) for files in hub.repos.values())
        assert TOKEN.encode() not in everything and str(project).encode() not in everything, _where(
            hub, str(project).encode()
        )
        assert TOKEN not in json.dumps(runs) and runs[-1]["status"] == "completed"
        assert set(runs[-1]["summary"]["pushed"]) == {
            f"{owner}/fotos_image_{f}" for f in ("dpo", "kto", "sft")
        } | {f"{owner}/qwen-dpo", f"{owner}/fotos_demo", f"{owner}/fotos_images"}


def test_errors_are_one_line_and_push_nothing(project, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(args(project, "--owner", "o")) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub(token=TOKEN) as hub:
        point_libraries_at(hub, monkeypatch)
        with Workspace.open(project / "ws", create=False) as workspace:
            workspace.set_project(owner=None, code_url=None)
        assert main(args(project)) == 2  # no owner: warned, then refused before any request
        assert "--owner" in capsys.readouterr().err and hub.requests == []
        assert main(args(project, "--owner", "o", "--eval", "nope")) == 2
        assert "no eval report nope" in capsys.readouterr().err and hub.requests == []
    with FakeHub(token="another") as hub:  # the Hub refuses the token: one line, token not shown
        point_libraries_at(hub, monkeypatch)
        assert main(args(project, "--owner", "o")) == 2
        err = capsys.readouterr().err
        assert "pushing failed" in err and TOKEN not in err and len(err.strip().splitlines()) == 1


def _where(hub, needle: bytes):
    return [(key, name) for key, files in hub.repos.items() for name, data in files.items() if needle in data]


def test_published_model_card_loads_the_run_and_base_from_the_hub():
    """The train card's snippet names the run by a placeholder and a local base by its folder: publish fills both."""
    from vlm.publish.plan import _model_card_links

    text = (
        "---\nlibrary_name: peft\n---\n\n- **Base model:** `tiny-base` (a local checkpoint, not on the Hub)\n\n"
        'base = AutoModelForImageTextToText.from_pretrained("tiny-base", dtype=torch.bfloat16)\n'
        'model = PeftModel.from_pretrained(base, "path/to/this/run")\n'
    )
    card = ModelCard(_model_card_links(text, ["o/d"], "org/tiny-base", "o/qwen-dpo", "/tmp/x/tiny-base"))
    assert (
        'from_pretrained("org/tiny-base"' in card.text and 'from_pretrained(base, "o/qwen-dpo")' in card.text
    )
    assert (
        "path/to/this/run" not in card.text
        and "[org/tiny-base](https://huggingface.co/org/tiny-base)" in card.text
    )
    assert card.data.base_model == "org/tiny-base" and card.data.datasets == ["o/d"]
