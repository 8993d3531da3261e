"""One full ``mirada train`` run through the CLI, then everything it promises about its outputs.

A 4-bit DPO run of the tiny Qwen2.5-VL with emissions, curves, a merge and the Model Card: the card
parses with ``huggingface_hub.ModelCard`` and its numbers equal the run's own files
(trainer_state.json, eval_results.json, emissions.csv); its how-to-use snippet runs; the adapter
reloads and generates; the merged model reproduces the adapter model's logits; and a token in the
environment appears in no file and no output line.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from data_tools.cli import main as mirada
from vlm.train.card import fmt

ROOT = Path(__file__).resolve().parents[3]
FAKE_TOKEN = "hf_FAKEtoken0123456789abcdefSECRET"


@pytest.fixture(scope="module")
def run(tiny_model, pref_data, tmp_path_factory):
    """The CLI run, shared by the checks below (it is the expensive part)."""
    out = tmp_path_factory.mktemp("card") / "tiny-qwen-dpo"
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_TOKEN", FAKE_TOKEN)
    import io
    from contextlib import redirect_stderr, redirect_stdout

    stdout, stderr = io.StringIO(), io.StringIO()
    argv = [
        "train",
        "--config",
        str(ROOT / "configs" / "train" / "tiny-qwen2_5_vl-dpo.yaml"),
        f"model_name_or_path={tiny_model('qwen2_5_vl')}",
        f"dataset_name={pref_data('dpo')}",
        "dataset_hub_id=somosnlp-hackathon-2026/t_image_dpo",
        f"--output_dir={out}",
        "max_steps=2",
        "eval_steps=1",
        "save_strategy=no",
        "merge=true",
        "merge_dtype=float32",
        "emissions_country=ES",
        "code_url=https://github.com/example/mirada",
    ]
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            code = mirada(argv)
    finally:
        mp.undo()
    assert code == 0, stderr.getvalue()[-3000:]
    return out, stdout.getvalue() + stderr.getvalue()


def _card(out: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(out / "README.md")


def test_card_parses_and_its_numbers_match_the_run(run):
    out, _ = run
    card = _card(out)
    data = card.data
    state = json.loads((out / "trainer_state.json").read_text())
    evals = json.loads((out / "eval_results.json").read_text())
    with (out / "emissions.csv").open() as handle:
        rows = list(csv.DictReader(handle))

    assert data.library_name == "peft" and data.pipeline_tag == "image-text-to-text"
    assert data.base_model is None  # a local checkpoint is named in the text, never as a fake Hub id
    assert data.datasets == ["somosnlp-hackathon-2026/t_image_dpo"]
    assert data.license == "apache-2.0"
    assert set(data.language) == {"es", "pt"}
    assert data.co2_eq_emissions["emissions"] == pytest.approx(
        1000 * sum(float(r["emissions"]) for r in rows)
    )
    assert data.co2_eq_emissions["geographical_location"] == "Spain"
    metrics = (
        {m["type"]: m["value"] for m in data.eval_results_as_dict()}
        if hasattr(data, "eval_results_as_dict")
        else {r.metric_type: r.metric_value for r in data.eval_results}
    )
    assert metrics["loss"] == pytest.approx(evals["eval_loss"])
    assert metrics["rewards/accuracies"] == pytest.approx(evals["eval_rewards/accuracies"])

    text = card.text
    final_loss = [h["loss"] for h in state["log_history"] if "loss" in h][-1]
    assert f"**Final training loss:** {fmt(final_loss)}" in text
    assert f"**Optimiser steps:** {state['global_step']}" in text
    assert f"| loss | {fmt(evals['eval_loss'])} |" in text
    assert f"{fmt(sum(float(r['emissions']) for r in rows))} kg CO2eq" in text
    assert (
        "[somosnlp-hackathon-2026/t_image_dpo](https://huggingface.co/datasets/somosnlp-hackathon-2026/t_image_dpo)"
        in text
    )
    assert "https://github.com/example/mirada" in text
    assert "![Training curves](training_curves.png)" in text
    assert "MX 2 (50%)" in text  # countries of the 4 training rows
    for section in (
        "## Intended use",
        "## Bias, risks and limitations",
        "## Environmental impact",
        "## Evaluation",
        "## How to use",
        "### Hardware and time",
        "## Libraries and tests",
    ):
        assert section in text
    assert not re.search(r"\b(TODO|TBD|\[More Information Needed\]|XXX)\b", text)
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


LOCAL_PATH = re.compile(r"(?<![\w:/.])/(?:tmp|home|Users|var|private|root|work)/|[A-Za-z]:\\")


def test_card_carries_no_local_path(run, tiny_model, pref_data):
    """Base model, data, command line, config and usage all came from /tmp paths; none reaches the card."""
    out, _ = run
    text = (out / "README.md").read_text()
    for local in (out, out.parent, tiny_model("qwen2_5_vl"), pref_data("dpo")):
        assert str(local) not in text
    assert not LOCAL_PATH.search(text), LOCAL_PATH.search(text)
    assert f"`{Path(tiny_model('qwen2_5_vl')).name}` (a local checkpoint, not on the Hub)" in text
    assert f"model_name_or_path={Path(tiny_model('qwen2_5_vl')).name}" in text  # the command, shortened


def test_no_secret_in_files_or_output(run):
    out, output = run
    assert FAKE_TOKEN not in output
    for path in out.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_adapter_reloads_and_generates(run, tiny_model):
    import torch

    from tests.helpers import draw_image
    from vlm.models import load_for_inference

    out, _ = run
    loaded = load_for_inference(out, quantization="4bit", dtype="float32")
    model, processor = loaded.model, loaded.processor
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": draw_image(7, (48, 40))},
                {"type": "text", "text": "Describe la imagen."},
            ],
        }
    ]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


def test_merged_model_reproduces_the_adapter_models_logits(run):
    import torch

    from tests.helpers import draw_image
    from vlm.models import load_for_inference

    out, _ = run
    loaded = load_for_inference(out, dtype="float32")
    adapted, processor = loaded.model, loaded.processor
    merged = load_for_inference(out / "merged", dtype="float32").model  # a merged run loads as a base
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe la imagen."}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[[draw_image(3, (48, 40))]], return_tensors="pt")
    with torch.no_grad():
        a = adapted(**inputs).logits
        b = merged(**inputs).logits
    assert (a - b).abs().max().item() < 1e-4
    # and the adapter really changed the model (otherwise the check above proves nothing)
    with torch.no_grad(), adapted.disable_adapter():
        base = adapted(**inputs).logits
    assert (a - base).abs().max().item() > 1e-6


def test_how_to_use_snippet_runs(run, tmp_path, monkeypatch, capsys):
    from tests.helpers import draw_image

    out, _ = run
    snippet = re.search(r"## How to use\n\n```python\n(.*?)```", _card(out).text, re.S).group(1)
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    # A local base is named by its folder (a card never carries a local path) and the run by a placeholder;
    # the reader substitutes where they keep them, as this test does.
    assert f'"{Path(base).name}"' in snippet and '"path/to/this/run"' in snippet and base not in snippet
    monkeypatch.chdir(tmp_path)
    draw_image(11, (64, 48)).save("foto.jpg")
    snippet = snippet.replace(f'"{Path(base).name}"', f'"{base}"').replace("path/to/this/run", str(out))
    snippet = snippet.replace("max_new_tokens=200", "max_new_tokens=3")
    exec(compile(snippet, "model-card-snippet", "exec"), {})
    assert capsys.readouterr().out is not None


def test_summary_and_run_files(run):
    out, output = run
    assert "trained DPO (qwen2_5_vl) for 2 steps" in output
    assert (out / "merged" / "config.json").is_file()
    sessions = (out / "mirada_sessions.jsonl").read_text().splitlines()
    assert len(sessions) == 1 and json.loads(sessions[0])["final_step"] == 2
    config = json.loads((out / "mirada_train_config.json").read_text())
    assert config["script"]["method"] == "dpo" and config["model"]["load_in_4bit"] is True
    assert not any(k.endswith("_token") for k in config["training"])
