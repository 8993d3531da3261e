"""The workspace cache: reruns cost nothing, killed runs resume, changed adapters are captioned again.

Runs go through the stage's own pieces (``resolve_systems``, ``generate``, the CLI's backend factory and
hence the shared loading layer); a wrapper only counts how often the model is loaded and how many
images reach ``generate``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from vlm.generate.cli import backend_factory
from vlm.generate.config import GenerateConfig
from vlm.generate.runner import generate, resolve_systems

REPO = Path(__file__).resolve().parents[3]


def counted(model: str, config: GenerateConfig) -> tuple[object, dict[str, int]]:
    """The CLI's backend factory, counting model loads and images captioned."""
    calls = {"loads": 0, "images": 0}
    real = backend_factory(model, config)

    def make(systems):
        calls["loads"] += 1
        backend = real(systems)
        caption = backend.caption

        def counting(system, items, images):
            calls["images"] += len(items)
            return caption(system, items, images)

        backend.caption = counting
        return backend

    return make, calls


def run(ws, model, adapters=(), names=(), **settings):
    config = GenerateConfig(**{"batch_size": 3, "decoding": {"max_new_tokens": 8}, **settings})
    systems = resolve_systems(str(model), [str(a) for a in adapters], names)
    make, calls = counted(str(model), config)
    return generate(ws, str(model), systems, config, make), calls


def test_second_run_loads_no_model_and_runs_no_forward_pass(gen_ws, tiny_model):
    model = tiny_model("qwen2_5_vl")
    first, calls = run(gen_ws, model)
    assert calls == {"loads": 1, "images": 4} and first.systems["qwen2_5_vl"]["generated"] == 4
    second, calls = run(gen_ws, model, batch_size=2)  # batch size is a run-time knob, not part of the key
    assert calls == {"loads": 0, "images": 0}
    assert second.systems["qwen2_5_vl"]["cached"] == 4 and not second.model_loaded
    rows = gen_ws.generations()
    assert len(rows) == 4 and {r["image_id"] for r in rows} == {
        i for i, s in gen_ws.image_splits().items() if s == "test"
    }
    assert all(r["language"] and r["country"] and r["tokens"] > 0 and r["seconds"] > 0 for r in rows)


def test_decoding_settings_and_precision_are_part_of_the_key(gen_ws, tiny_model):
    model = tiny_model("qwen2_5_vl")
    run(gen_ws, model)
    _, calls = run(gen_ws, model, decoding={"max_new_tokens": 8, "num_beams": 2})
    assert calls["images"] == 4
    _, calls = run(gen_ws, model, dtype="bfloat16")
    assert calls["images"] == 4
    assert {r["settings"]["dtype"] for r in gen_ws.generations()} == {"bfloat16"}
    _, calls = run(gen_ws, model)  # back to float32 greedy: everything is still cached
    assert calls == {"loads": 0, "images": 0}
    assert {r["settings"]["dtype"] for r in gen_ws.generations()} == {"float32"}


def test_adapter_captions_differ_from_base_and_a_changed_adapter_is_captioned_again(
    gen_ws, tiny_model, qwen_adapter, tmp_path
):
    from safetensors.torch import load_file, save_file

    model = tiny_model("qwen2_5_vl")
    adapter = shutil.copytree(qwen_adapter, tmp_path / "qwen-sft")
    _, calls = run(gen_ws, model, [adapter])
    assert calls == {"loads": 1, "images": 8}
    by_system: dict[str, dict[str, str]] = {}
    for row in gen_ws.generations():
        by_system.setdefault(row["system"], {})[row["image_id"]] = row["caption"]
    assert set(by_system) == {"qwen2_5_vl", "qwen-sft"}
    assert by_system["qwen2_5_vl"] != by_system["qwen-sft"]

    # a card re-rendered beside the adapter changes nothing that generates: still cached
    (adapter / "README.md").write_text("# another card\n")
    _, calls = run(gen_ws, model, [adapter])
    assert calls == {"loads": 0, "images": 0}

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    save_file({k: v * 3 for k, v in weights.items()}, str(adapter / "adapter_model.safetensors"))
    again, calls = run(gen_ws, model, [adapter])
    assert calls == {"loads": 1, "images": 4}  # only the adapter's captions; the base's are cached
    assert again.systems["qwen2_5_vl"]["cached"] == 4 and again.systems["qwen-sft"]["generated"] == 4
    latest = {r["image_id"]: r for r in gen_ws.generations(["qwen-sft"])}
    assert len(latest) == 4 and all(r["key"] in again.keys for r in latest.values())


def test_a_renamed_system_reuses_its_captions(gen_ws, tiny_model, qwen_adapter):
    model = tiny_model("qwen2_5_vl")
    run(gen_ws, model, [qwen_adapter])
    summary, calls = run(gen_ws, model, [qwen_adapter], ["dpo-v1"])
    assert calls["loads"] == 0 and summary.systems["dpo-v1"]["cached"] == 4
    assert gen_ws.systems() == ["dpo-v1", "qwen-sft", "qwen2_5_vl"]


def test_kill_9_mid_run_then_rerun_captions_only_the_rest(gen_ws, tiny_model):
    model = tiny_model("qwen2_5_vl")
    db = gen_ws.root / "mirada.db"
    argv = [sys.executable, "-m", "vlm.generate", "-w", str(gen_ws.root), "--model", str(model), "--split", "all",
            "--batch-size", "1", "--set", "decoding.max_new_tokens=16", "--quiet"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done_before = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with sqlite3.connect(db) as conn:
            done_before = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
        if done_before >= 2:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    with sqlite3.connect(db) as conn:
        done_before = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    assert 2 <= done_before < 11
    summary, calls = run(gen_ws, model, split="all", decoding={"max_new_tokens": 16}, batch_size=4)
    assert calls["images"] == 11 - done_before
    assert summary.systems["qwen2_5_vl"]["cached"] == done_before
    assert len(gen_ws.generations()) == 11
