"""``mirada generate`` end to end, its exports, the prefs export as a split source, and bad inputs.

Every bad input must end in one line on stderr naming the problem (exit status 2, no traceback),
with every caption made before it kept.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vlm.generate.conftest import DATASET
from vlm.generate.cli import main

REPO = Path(__file__).resolve().parents[3]


def generate_cli(ws, model, *args, capsys=None) -> tuple[int, str, str]:
    if capsys:
        capsys.readouterr()  # drop what building the tiny model printed
    status = main(
        ["-w", str(ws.root), "--model", str(model), "--set", "decoding.max_new_tokens=6", "--quiet", *args]
    )
    out, err = capsys.readouterr() if capsys else ("", "")
    return status, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_base_and_adapter_in_one_command_with_exports(gen_ws, tiny_model, qwen_adapter, tmp_path, capsys):
    import datasets

    out = tmp_path / "preds.jsonl"
    status, _, err = generate_cli(gen_ws, tiny_model("qwen2_5_vl"), "--adapter", str(qwen_adapter),
                                       "--name", "sft-v1.0", "--base-name", "base", "--out", str(out), capsys=capsys)  # fmt: skip
    assert status == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8 and {r["system"] for r in rows} == {"base", "sft-v1.0"}
    assert set(rows[0]) == {"image_id", "system", "caption", "language", "country", "seconds", "tokens"}
    exported = datasets.load_from_disk(str(gen_ws.exports_dir / "generations"))
    assert sorted(exported["system"]) == sorted(r["system"] for r in rows)
    runs = gen_ws.runs("generate")
    assert runs[-1]["status"] == "completed" and runs[-1]["summary"]["systems"]["sft-v1.0"]["generated"] == 4


def test_split_and_prompt_come_from_a_prefs_export(gen_ws, tiny_model, tmp_path, capsys):
    """With --dataset FOLDER the export's own split and user prompt are used, not the instruction table."""
    from datasets import Dataset, DatasetDict

    images = gen_ws.images()
    prompt = "Describe esta foto con cuidado."
    rows = [{"image_id": image.id, "language": image.language, "country": image.country,
             "prompt": [{"role": "user", "content": prompt}]} for image in images[:3]]  # fmt: skip
    DatasetDict({"train": Dataset.from_list(rows[:1]), "test": Dataset.from_list(rows[1:] * 2)}).save_to_disk(
        str(tmp_path / "x_image_dpo")
    )
    status, _, err = generate_cli(gen_ws, tiny_model("qwen2_5_vl"), "--dataset", str(tmp_path / "x_image_dpo"),
                                  capsys=capsys)  # fmt: skip
    assert status == 0, err
    captioned = gen_ws.generations()
    assert {r["image_id"] for r in captioned} == {images[1].id, images[2].id}  # test split, deduplicated


def test_generate_captions_the_test_split_prefs_recorded(workspace, tiny_model, capsys):
    """prefs -> generate end to end: the captioned images are exactly the export's test split, same prompts."""
    import datasets

    from data_tools.prefs.cli import main as prefs_main
    from tests.data_tools.prefs.test_prefs_card import fill

    fill(workspace)
    assert prefs_main(["--workspace", str(workspace.root), "--format", "sft", "--name", "fotos",
                       "--set", "splits.test_size=0.3", "--quiet"]) == 0  # fmt: skip
    recorded = workspace.image_splits("fotos")
    assert recorded and workspace.image_splits() == recorded
    export = datasets.load_from_disk(str(workspace.exports_dir / "prefs" / "fotos_image_sft"))
    assert {r: s for s in export for r in export[s]["image_id"]} == recorded
    status, _, err = generate_cli(workspace, tiny_model("qwen2_5_vl"), capsys=capsys)
    assert status == 0, err
    rows = workspace.generations()
    assert {r["image_id"] for r in rows} == set(export["test"]["image_id"])
    prompts = {row["image_id"]: row["messages"][0]["content"] for row in export["test"]}
    keys_of = {r["image_id"]: r["key"] for r in rows}
    # the same images through the export folder: same prompts, hence the same cache keys, nothing recomputed
    status, out, err = generate_cli(workspace, tiny_model("qwen2_5_vl"), "--dataset",
                                    str(workspace.exports_dir / "prefs" / "fotos_image_sft"), capsys=capsys)  # fmt: skip
    assert status == 0, err
    assert {r["image_id"]: r["key"] for r in workspace.generations()} == keys_of
    assert "generated now" in out and len(prompts) == len(rows)


def test_prefs_records_the_split_generate_uses(workspace):
    workspace.record_splits("a", {"img1": "train", "img2": "test"}, None)
    workspace.record_splits("b", {"img1": "test"}, None)
    assert workspace.image_splits() == {"img1": "test"}
    assert workspace.image_splits("a") == {"img1": "train", "img2": "test"}
    assert workspace.image_splits("nope") == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adapter", "/no/such/run"], "adapter /no/such/run does not exist"),
        (["--dataset", "nope"], "no prefs split recorded for dataset 'nope'"),
        (["--name", "x"], "1 --name values for 0 --adapter values"),
        (["--backend", "vllm"], "pip install vllm"),
    ],
)
def test_bad_arguments_give_one_line(gen_ws, tiny_model, capsys, args, message):
    status, _, err = generate_cli(gen_ws, tiny_model("qwen2_5_vl"), *args, capsys=capsys)
    assert status == 2
    assert message in one_line_error(err)


def test_contradictory_decoding_settings_are_refused(gen_ws, tiny_model, capsys):
    status, _, err = generate_cli(gen_ws, tiny_model("qwen2_5_vl"), "--set", "decoding.do_sample=true",
                                  "--set", "decoding.num_beams=2", capsys=capsys)  # fmt: skip
    assert status == 2 and "not both" in err and "Traceback" not in err


def test_a_run_folder_as_model_points_to_its_base(gen_ws, tiny_model, qwen_adapter, capsys):
    status, _, err = generate_cli(gen_ws, qwen_adapter, capsys=capsys)
    line = one_line_error(err)
    assert status == 2 and f"--model {tiny_model('qwen2_5_vl')} --adapter {qwen_adapter}" in line


def test_folder_without_adapter_config_is_refused(gen_ws, tiny_model, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    status, _, err = generate_cli(
        gen_ws, tiny_model("qwen2_5_vl"), "--adapter", str(tmp_path / "run"), capsys=capsys
    )
    assert status == 2 and "no adapter_config.json" in one_line_error(err)


def test_adapter_trained_on_another_base_is_refused(gen_ws, tiny_model, qwen_adapter, capsys):
    status, _, err = generate_cli(gen_ws, tiny_model("gemma3"), "--adapter", str(qwen_adapter), capsys=capsys)
    assert status == 2
    line = one_line_error(err)
    assert "qwen" in line.lower() or "base" in line.lower()
    assert gen_ws.generations() == []


def test_no_recorded_split_says_to_run_prefs(tmp_path, tiny_model, capsys):
    from data_tools.workspace import Workspace

    with Workspace.open(tmp_path / "empty") as ws:
        status, _, err = generate_cli(ws, tiny_model("qwen2_5_vl"), capsys=capsys)
    assert status == 2 and "mirada prefs" in one_line_error(err)


def test_a_family_the_backend_cannot_serve_is_refused(gen_ws, tiny_model, capsys):
    status, _, err = generate_cli(gen_ws, tiny_model("paligemma"), "--backend", "openai", capsys=capsys)
    assert status == 2 and "prefix-LM" in one_line_error(err)


def test_an_unreadable_image_is_named_and_the_rest_are_kept(gen_ws, tiny_model, capsys):
    test_ids = [i for i, s in gen_ws.image_splits(DATASET).items() if s == "test"]
    broken = gen_ws.get_image(test_ids[0])
    gen_ws.image_path(broken).write_bytes(b"not an image at all")
    status, _, err = generate_cli(gen_ws, tiny_model("qwen2_5_vl"), capsys=capsys)
    assert status == 2
    line = [line for line in err.splitlines() if "error:" in line]
    assert len(line) == 1 and broken.id[:12] in line[0] and "cannot read the image" in line[0]
    assert "Traceback" not in err
    assert {r["image_id"] for r in gen_ws.generations()} == set(test_ids[1:])
    assert gen_ws.runs("generate")[-1]["status"] == "partial"


def test_an_image_the_processor_refuses_is_named(gen_ws, tiny_model, capsys):
    from PIL import Image

    test_ids = [i for i, s in gen_ws.image_splits(DATASET).items() if s == "test"]
    tiny = gen_ws.get_image(test_ids[1])
    # Qwen2.5-VL refuses an aspect ratio above 200:1
    Image.new("RGB", (900, 3), (200, 10, 10)).save(gen_ws.image_path(tiny), format="JPEG")
    status, _, err = generate_cli(gen_ws, tiny_model("qwen2_5_vl"), capsys=capsys)
    assert status == 2
    line = [line for line in err.splitlines() if "error:" in line]
    assert len(line) == 1 and tiny.id[:12] in line[0] and "refused" in line[0]
    assert len(gen_ws.generations()) == 3


def test_mirada_generate_subcommand_and_module_help():
    result = subprocess.run([sys.executable, "-m", "data_tools.cli", "generate", "--help"], capture_output=True,
                            text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert result.returncode == 0 and "--adapter" in result.stdout and "--split" in result.stdout
