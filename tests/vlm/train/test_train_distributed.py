"""The same trainer code under ``accelerate launch``: 2-process DDP on CPU (gloo), 4-bit QLoRA DPO.

GPUs are not available to the tests; CPU DDP still exercises everything Mirada does differently with
several processes: per-process model loading, main-process-only outputs, one summary. FSDP and
DeepSpeed need GPUs; launched on CPU, accelerate connects no process group, which must be refused.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _launch(launcher: list[str], tiny_model, pref_data, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *launcher,
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "vlm.train",
        "--config",
        str(ROOT / "configs" / "train" / "tiny-qwen2_5_vl-dpo.yaml"),
        f"model_name_or_path={tiny_model('qwen2_5_vl')}",
        f"dataset_name={pref_data('dpo')}",
        f"output_dir={out}",
        "max_steps=2",
        "eval_steps=1",
        "save_strategy=no",
        "emissions=false",
    ]


@pytest.mark.slow
def test_accelerate_launch_two_processes(tiny_model, pref_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = _launch(["--cpu"], tiny_model, pref_data, out)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained DPO (qwen2_5_vl) for 2 steps") == 1  # one summary, not one per process
    assert (out / "adapter_model.safetensors").is_file() and (out / "README.md").is_file()
    assert (
        len((out / "mirada_sessions.jsonl").read_text().splitlines()) == 1
    )  # written by the main process only


@pytest.mark.slow
def test_fsdp_config_without_gpus_is_refused_not_trained_twice(tiny_model, pref_data, tmp_path):
    config = tmp_path / "fsdp_cpu.yaml"
    text = (ROOT / "configs" / "accelerate" / "fsdp.yaml").read_text()
    config.write_text(
        text.replace("use_cpu: false", "use_cpu: true").replace(
            "mixed_precision: bf16", "mixed_precision: 'no'"
        )
    )
    out = tmp_path / "fsdp"
    cmd = _launch(["--config_file", str(config)], tiny_model, pref_data, out)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0
    assert "no process group connects them" in proc.stderr + proc.stdout
    assert not (out / "adapter_model.safetensors").exists()
