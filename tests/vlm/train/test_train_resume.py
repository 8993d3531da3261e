"""Resuming, refusing to overwrite, starting a preference run from an SFT adapter, and fixed seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from data_tools.stage_args import UserError
from vlm.train.trainer import run_training


def _steps(result) -> list[int]:
    return [h["step"] for h in result.log_history if "loss" in h and "eval_loss" not in h]


def test_resume_continues_the_step_count(settings):
    common = [
        "eval_strategy=no",
        "eval_on_start=false",
        "save_strategy=steps",
        "save_steps=1",
        "load_in_4bit=false",
    ]
    first = run_training(*settings("dpo", "qwen2_5_vl", *common, "max_steps=2"))
    assert first.global_step == 2 and (first.output_dir / "checkpoint-2").is_dir()

    with pytest.raises(UserError, match=r"holds a finished run.*--resume"):
        run_training(*settings("dpo", "qwen2_5_vl", *common, "max_steps=3"))

    second = run_training(*settings("dpo", "qwen2_5_vl", *common, "max_steps=3", "--resume"))
    assert second.resumed_from.endswith("checkpoint-2")
    assert second.global_step == 3
    assert _steps(second) == [1, 2, 3]  # the history of the first session is kept, then step 3
    sessions = [
        json.loads(line) for line in (second.output_dir / "mirada_sessions.jsonl").read_text().splitlines()
    ]
    assert [s["final_step"] for s in sessions] == [2, 3] and sessions[1]["resumed_from"] == "checkpoint-2"


def test_resume_without_a_checkpoint_starts_from_zero(settings, caplog):
    result = run_training(
        *settings(
            "sft", "qwen2_5_vl", "eval_strategy=no", "eval_on_start=false", "load_in_4bit=false", "--resume"
        )
    )
    assert result.resumed_from is None and result.global_step == 1
    assert "no checkpoint" in caplog.text


def test_dpo_and_kto_start_from_an_sft_adapter(settings, tmp_path):
    from safetensors.torch import load_file

    off = ["eval_strategy=no", "eval_on_start=false"]
    sft = run_training(
        *settings("sft", "qwen2_5_vl", *off, "load_in_4bit=false", "output_dir=" + str(tmp_path / "sft"))
    )
    sft_weights = load_file(sft.output_dir / "adapter_model.safetensors")
    for method in ("dpo", "kto"):
        result = run_training(
            *settings(
                method,
                "qwen2_5_vl",
                *off,
                f"adapter_name_or_path={sft.output_dir}",
                "output_dir=" + str(tmp_path / method),
            )
        )
        logs = [h for h in result.log_history if "loss" in h]
        assert logs and all(math.isfinite(h["loss"]) and h["grad_norm"] > 0 for h in logs)
        weights = load_file(result.output_dir / "adapter_model.safetensors")
        assert weights.keys() == sft_weights.keys()
        assert any(not (weights[k] == sft_weights[k]).all() for k in weights), "the SFT adapter did not train"
        # DPO/KTO measure against the SFT model: TRL keeps a frozen "ref" copy of a pretrained adapter
        reference = load_file(result.output_dir / "ref" / "adapter_model.safetensors")
        assert reference.keys() == sft_weights.keys()
        assert all((reference[k] == sft_weights[k]).all() for k in reference)


def test_same_seed_same_result(settings, tmp_path):
    from safetensors.torch import load_file

    runs = [
        run_training(
            *settings(
                "dpo",
                "qwen2_5_vl",
                "eval_strategy=no",
                "eval_on_start=false",
                "load_in_4bit=false",
                f"output_dir={tmp_path / str(i)}",
            )
        )
        for i in range(2)
    ]
    assert [h["loss"] for h in runs[0].log_history if "loss" in h] == [
        h["loss"] for h in runs[1].log_history if "loss" in h
    ]
    a, b = (load_file(r.output_dir / "adapter_model.safetensors") for r in runs)
    assert all((a[k] == b[k]).all() for k in a)


def test_smolvlm_presets_chain_sft_then_dpo(tiny_model, pref_data, tmp_path):
    """The "quick real run" recipe as shipped (configs/train/smolvlm-{sft,dpo}.yaml), on a tiny SmolVLM."""
    from tests.vlm.train.train_helpers import FAST
    from vlm.train.cli import parse_args

    root = Path(__file__).resolve().parents[3] / "configs" / "train"
    common = [
        f"model_name_or_path={tiny_model('smolvlm')}",
        *FAST,
        "max_image_tokens=null",
        "max_tokens=null",
    ]
    sft = run_training(
        *parse_args(
            ["--config", str(root / "smolvlm-sft.yaml"), *common, f"dataset_name={pref_data('sft')}",
             f"output_dir={tmp_path / 'sft'}"]
        )
    )  # fmt: skip
    dpo = run_training(
        *parse_args(
            ["--config", str(root / "smolvlm-dpo.yaml"), *common, f"dataset_name={pref_data('dpo')}",
             f"adapter_name_or_path={sft.output_dir}", f"output_dir={tmp_path / 'dpo'}"]
        )
    )  # fmt: skip
    for result in (sft, dpo):
        assert result.family == "smolvlm" and result.image_tokens == 20
        assert all(
            math.isfinite(h["loss"]) and h["grad_norm"] > 0 for h in result.log_history if "grad_norm" in h
        )
