"""Benchmark QLoRA DPO steps of Mirada's train stage against TRL's own dpo_vlm.py settings, same run.

    .venv/bin/python tests/benchmarks/bench_train.py              # GPU: real Qwen2.5-VL-7B architecture
    .venv/bin/python tests/benchmarks/bench_train.py --tiny       # CPU: tiny Qwen2.5-VL, same code path
    .venv/bin/python tests/benchmarks/bench_train.py --steps 20 --image-tokens 1024 --ours-batches 1,2

The model is built offline from the published Qwen2.5-VL-7B-Instruct config values
(configs/models/qwen2_5_vl_7b.json: 8.29 B parameters) with random weights, saved once under
--workdir and loaded back through ``from_pretrained``, so 4-bit quantisation happens exactly as for
the real checkpoint. The tokenizer is the tiny offline one (vlm.tiny) with the real image processor
settings (14 px patches, 2x2 merge), so sequence lengths are controlled: every image is exactly
--image-tokens tokens and every prompt/completion a fixed number of tokens. No Hub access.

Each configuration runs in its own process (clean peak-memory counters):

* ``ours``: ``vlm.train.trainer.run_training`` with configs/train/qwen2_5_vl-7b-dpo.yaml (--tiny:
  tiny-qwen2_5_vl-dpo.yaml): nf4 + double quantisation + bf16 compute, LoRA r=16 on the language model
  only, vision tower/projector/lm_head unquantised and frozen (no input-gradient hook on the ViT),
  image budget --image-tokens, activation checkpointing; at each batch size of --ours-batches.
* ``trl``: the settings of TRL's examples/scripts/dpo_vlm.py (not shipped in the installed trl
  1.16 wheel; taken from its documented command: ``--dtype bfloat16 --gradient_checkpointing
  --use_peft --lora_target_modules all-linear --per_device_train_batch_size 2``, ModelConfig's LoRA
  defaults r=16, alpha=32, dropout=0.05, no quantisation, the processor's default pixel limits),
  run through TRL's DPOTrainer directly. One deviation, required: ``max_length=None``. TRL's default
  1024 truncates these ~1100-token rows inside the image and the model then raises "Image features
  and image tokens do not match".

Measured over --steps optimiser steps after --warmup: samples/s (preference pairs), tokens/s (prompt +
chosen + prompt + rejected, image tokens included) and peak memory (GPU: torch.cuda.max_memory_allocated
since before loading; CPU: the process's peak RSS). Goals (GPU, full size): peak <= 24 GiB at batch 1
with a 1024-token image budget, and ours >= 1.2x the TRL-settings baseline in samples/s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODEL_CONFIG = ROOT / "configs" / "models" / "qwen2_5_vl_7b.json"
PRESET = ROOT / "configs" / "train" / "qwen2_5_vl-7b-dpo.yaml"
TINY_PRESET = ROOT / "configs" / "train" / "tiny-qwen2_5_vl-dpo.yaml"
SENTENCE = "Una mujer vende tamales en un mercado de Oaxaca. "
GOAL_MEMORY_GIB = 24.0
GOAL_SPEEDUP = 1.2


# ---------------------------------------------------------------------------------------------
# Model, processor and data (parent process)
# ---------------------------------------------------------------------------------------------


def _tiny_processor(workdir: Path) -> Any:
    from transformers import AutoProcessor

    from vlm.tiny import build_tiny_vlm

    path = workdir / "tiny-qwen2_5_vl"
    if not (path / "config.json").exists():
        build_tiny_vlm("qwen2_5_vl", path)
    return path, AutoProcessor.from_pretrained(path)


def build_full_model(workdir: Path) -> Path:
    """Random Qwen2.5-VL-7B (published architecture) + offline processor, saved once and reused."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForImageTextToText,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    out = workdir / "qwen2_5_vl_7b-random"
    if (out / "model.safetensors.index.json").exists() or (out / "model.safetensors").exists():
        return out
    _, tiny = _tiny_processor(workdir)
    tok = tiny.tokenizer
    values = json.loads(MODEL_CONFIG.read_text())
    values.pop("_comment", None)
    ids = {
        name: tok.convert_tokens_to_ids(token)
        for name, token in (
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    values.update(
        ids, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"building a random {MODEL_CONFIG.name} model on {device} (once; cached in {out}) ...", flush=True)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    del model
    kwargs = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**kwargs),  # the real defaults: 4..16384 image tokens
        video_processor=Qwen2VLVideoProcessor(**kwargs),
        tokenizer=tok,
        chat_template=tiny.chat_template,
    )
    processor.save_pretrained(out)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def _text_of(tokenizer: Any, tokens: int) -> str:
    """A Spanish text of exactly ``tokens`` tokens for this tokenizer."""
    ids = tokenizer(SENTENCE * (tokens // 4 + 8), add_special_tokens=False)["input_ids"][:tokens]
    return tokenizer.decode(ids)


def write_data(
    path: Path, processor: Any, rows: int, side: int, prompt_tokens: int, completion_tokens: int
) -> None:
    """DPO rows (DESIGN §3 format) with noise images of ``side`` x ``side`` pixels."""
    import numpy as np
    from datasets import Dataset, DatasetDict
    from PIL import Image

    tok = processor.tokenizer
    rng = np.random.default_rng(0)
    prompt = [{"role": "user", "content": _text_of(tok, prompt_tokens)}]
    chosen = [{"role": "assistant", "content": _text_of(tok, completion_tokens)}]
    rejected = [{"role": "assistant", "content": _text_of(tok, completion_tokens // 2)}]
    data = [
        {
            "images": [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))],
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
        }
        for _ in range(rows)
    ]
    DatasetDict({"train": Dataset.from_list(data)}).save_to_disk(str(path))


def tokens_per_sample(processor: Any, data: Path, image_tokens: int) -> tuple[int, int]:
    """(tokens in prompt+chosen + prompt+rejected, image tokens per image), measured with TRL's collator."""
    from datasets import load_from_disk
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    row = load_from_disk(str(data))["train"][0]
    batch = DataCollatorForVisionPreference(processor=processor)([dict(row)])
    image_token = processor.image_token_id
    per_image = int((batch["input_ids"][0] == image_token).sum())
    return int(batch["attention_mask"].sum()), per_image


# ---------------------------------------------------------------------------------------------
# One measured configuration (child process)
# ---------------------------------------------------------------------------------------------


class _Timer:
    """Per-step wall time with device synchronisation, as a TrainerCallback."""

    def __init__(self) -> None:
        self.steps: list[float] = []

    def callback(self) -> Any:
        import torch
        from transformers import TrainerCallback

        outer = self

        def sync() -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                sync()
                outer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                sync()
                outer.steps.append(time.perf_counter() - outer._start)

        return Callback()


def _peak_memory_gib() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30, "GPU max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "CPU peak RSS"


def run_ours(opts: argparse.Namespace, out: Path) -> _Timer:
    from vlm.train.cli import parse_args
    from vlm.train.trainer import run_training

    timer = _Timer()
    preset = TINY_PRESET if opts.tiny else PRESET
    argv = [
        "--config",
        str(preset),
        f"model_name_or_path={opts.model}",
        f"dataset_name={opts.data}",
        f"output_dir={out}",
        f"max_steps={opts.warmup + opts.steps}",
        f"per_device_train_batch_size={opts.batch}",
        "gradient_accumulation_steps=1",
        "eval_strategy=no",
        "save_strategy=no",
        "logging_steps=1",
        "emissions=false",
        "model_card=false",
        "curves=false",
        f"max_image_tokens={opts.image_tokens}",
        "max_tokens=null",
        "lr_scheduler_type=constant",
        "warmup_steps=0",
    ]
    script, args, model_args = parse_args(argv)
    run_training(script, args, model_args, callbacks=[timer.callback()])
    return timer


def run_trl(opts: argparse.Namespace, out: Path) -> _Timer:
    """TRL's examples/scripts/dpo_vlm.py settings, through TRL's own classes."""
    import torch
    from datasets import load_from_disk
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer, ModelConfig

    timer = _Timer()
    defaults = ModelConfig()  # TRL's LoRA defaults: r=16, alpha=32, dropout=0.05
    dtype = torch.float32 if opts.tiny else torch.bfloat16
    model = AutoModelForImageTextToText.from_pretrained(opts.model, dtype=dtype)
    processor = AutoProcessor.from_pretrained(opts.model)
    peft_config = LoraConfig(
        r=defaults.lora_r,
        lora_alpha=defaults.lora_alpha,
        lora_dropout=defaults.lora_dropout,
        target_modules="all-linear",
        task_type=defaults.lora_task_type,
    )
    args = DPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=opts.batch,
        gradient_accumulation_steps=1,
        gradient_checkpointing=True,
        bf16=torch.cuda.is_available() and not opts.tiny,
        max_length=None,  # the one deviation: TRL's 1024 truncates image tokens of these rows (see docstring)
        max_steps=opts.warmup + opts.steps,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        lr_scheduler_type="constant",
        learning_rate=1e-5,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=load_from_disk(str(opts.data))["train"],
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[timer.callback()],
    )
    trainer.train()
    return timer


def child(opts: argparse.Namespace) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        timer = (run_ours if opts.child == "ours" else run_trl)(opts, Path(tmp) / "run")
    measured = timer.steps[opts.warmup :]
    peak, kind = _peak_memory_gib()
    print(
        "RESULT "
        + json.dumps(
            {
                "config": opts.child,
                "batch": opts.batch,
                "step_s": measured,
                "peak_gib": peak,
                "memory_kind": kind,
            }
        )
    )


# ---------------------------------------------------------------------------------------------
# Orchestration (parent process)
# ---------------------------------------------------------------------------------------------


def _spawn(opts: argparse.Namespace, config: str, batch: int, model: Path, data: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        config,
        "--batch",
        str(batch),
        "--model",
        str(model),
        "--data",
        str(data),
        "--steps",
        str(opts.steps),
        "--warmup",
        str(opts.warmup),
        "--image-tokens",
        str(opts.image_tokens),
    ] + (["--tiny"] if opts.tiny else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stdout + proc.stderr)[-4000:]
        return {"config": config, "batch": batch, "error": tail, "wall_s": time.time() - started}
    result = json.loads(lines[-1][len("RESULT ") :])
    result["wall_s"] = time.time() - started
    return result


def _summarise(result: dict[str, Any], tokens: int) -> dict[str, Any]:
    if "error" in result:
        return result
    total = sum(result["step_s"])
    samples = result["batch"] * len(result["step_s"])
    result["samples_per_s"] = samples / total if total else math.nan
    result["tokens_per_s"] = result["samples_per_s"] * tokens
    result["median_step_s"] = sorted(result["step_s"])[len(result["step_s"]) // 2]
    return result


def static_memory(lora_r: int = 16) -> dict[str, float]:
    """GiB the QLoRA layout holds before any activation, computed from the real 7B module tree.

    Built on the meta device (no weights, no GPU). Counts what the registry quantises (nf4: half a
    byte per weight, plus double-quantised block scales: one byte per 64 weights and an fp32 per 256
    blocks), what stays bf16 (vision tower, projector, embeddings, lm_head, norms), and LoRA on the
    language model's projections in fp32 with its gradients and two AdamW moments. A floor, not a
    measurement: activations, the CUDA context and allocator slack come on top (the GPU run says).
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from vlm.registry import get_spec, is_skipped

    values = json.loads(MODEL_CONFIG.read_text())
    values.pop("_comment", None)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    spec = get_spec("qwen2_5_vl")
    quantised = lora = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not is_skipped(name, spec.skip_modules):
            quantised += module.weight.numel()
            if re.fullmatch(spec.lora_targets, name):
                lora += lora_r * (module.in_features + module.out_features)
    total = sum(p.numel() for p in model.parameters())
    gib = 1024**3
    nf4 = quantised * 0.5 + quantised / 64 + quantised / 64 / 256 * 4
    return {
        "parameters_b": total / 1e9,
        "quantised_b": quantised / 1e9,
        "nf4_gib": nf4 / gib,
        "bf16_gib": (total - quantised) * 2 / gib,
        "lora_m": lora / 1e6,
        "lora_train_gib": lora * 4 * 4 / gib,  # fp32 weights + gradients + 2 AdamW moments
        "floor_gib": (nf4 + (total - quantised) * 2 + lora * 16) / gib,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny Qwen2.5-VL on CPU (exercises the code path)"
    )
    parser.add_argument("--steps", type=int, default=None, help="measured steps (default 10; --tiny 3)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps first")
    parser.add_argument(
        "--image-tokens", type=int, default=None, help="image tokens per image (1024; --tiny 16)"
    )
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--completion-tokens", type=int, default=96)
    parser.add_argument("--ours-batches", default="1,2", help="batch sizes for Mirada's settings")
    parser.add_argument(
        "--baseline-batch", type=int, default=2, help="TRL dpo_vlm.py's documented batch size"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="cache for the random model (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--cpu-full",
        action="store_true",
        help="allow the full-size architecture without a GPU: a smoke test of the real-size path (needs ~20 GiB "
        "RAM; use with --image-tokens 64 --steps 1 --warmup 0 --ours-batches 1 --skip-baseline)",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="measure Mirada's settings only")
    parser.add_argument(
        "--static",
        action="store_true",
        help="only print the QLoRA layout's weight-memory floor for the real 7B architecture (no GPU needed)",
    )
    # child-process options
    parser.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    opts.steps = opts.steps or (3 if opts.tiny else 10)
    opts.image_tokens = opts.image_tokens or (16 if opts.tiny else 1024)
    if opts.child:
        child(opts)
        return 0
    if opts.static:
        floor = static_memory()
        print(
            f"Qwen2.5-VL-7B architecture: {floor['parameters_b']:.2f} B parameters, {floor['quantised_b']:.2f} B in nf4 "
            f"({floor['nf4_gib']:.2f} GiB), the rest bf16 ({floor['bf16_gib']:.2f} GiB); LoRA r=16 on the language "
            f"model: {floor['lora_m']:.1f} M parameters ({floor['lora_train_gib']:.2f} GiB with fp32 gradients and "
            f"AdamW moments)\nweight-memory floor: {floor['floor_gib']:.2f} GiB of the {GOAL_MEMORY_GIB:.0f} GiB goal "
            "(computed, not measured: activations and the CUDA context come on top)"
        )
        return 0

    import torch

    if not opts.tiny and not torch.cuda.is_available() and not opts.cpu_full:
        print(
            "no CUDA GPU: the full-size benchmark needs one (about 20 GiB); run with --tiny on CPU",
            file=sys.stderr,
        )
        return 2
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="bench_train_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if opts.tiny:
        model, processor = _tiny_processor(workdir)
    else:
        from transformers import AutoProcessor

        model = build_full_model(workdir)
        processor = AutoProcessor.from_pretrained(model)
    ip = processor.image_processor
    factor = ip.patch_size * ip.merge_size
    side = round(math.sqrt(opts.image_tokens)) * factor
    batches = [int(b) for b in opts.ours_batches.split(",") if b]
    rows = (opts.warmup + opts.steps) * max([*batches, opts.baseline_batch])
    data = workdir / f"dpo_{side}px"
    if not data.exists():
        write_data(data, processor, rows, side, opts.prompt_tokens, opts.completion_tokens)
    tokens, per_image = tokens_per_sample(processor, data, opts.image_tokens)

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(
        f"device: {device}; model: {'tiny Qwen2.5-VL' if opts.tiny else 'Qwen2.5-VL-7B architecture, random'}"
    )
    print(
        f"rows: {side}x{side} px images = {per_image} image tokens; {tokens} tokens per preference pair "
        f"(prompt+chosen + prompt+rejected); {opts.warmup} warm-up + {opts.steps} measured steps"
    )
    results = []
    runs = [] if opts.skip_baseline else [("trl", opts.baseline_batch)]
    for config, batch in [*runs, *[("ours", b) for b in batches]]:
        print(f"  running {config} batch {batch} ...", flush=True)
        results.append(_summarise(_spawn(opts, config, batch, model, data), tokens))

    base = next((r for r in results if r["config"] == "trl" and "error" not in r), None)
    print()
    header = f"{'config':<34} {'batch':>5} {'step s':>8} {'samples/s':>10} {'tokens/s':>10} {'peak GiB':>9} {'vs TRL':>7}"
    print(header)
    print("-" * len(header))
    for r in results:
        name = "TRL dpo_vlm.py settings" if r["config"] == "trl" else "Mirada (train preset)"
        if "error" in r:
            print(f"{name:<34} {r['batch']:>5}  FAILED:\n{r['error']}")
            continue
        ratio = r["samples_per_s"] / base["samples_per_s"] if base else math.nan
        print(
            f"{name[:34]:<34} {r['batch']:>5} {r['median_step_s']:>8.3f} {r['samples_per_s']:>10.3f} "
            f"{r['tokens_per_s']:>10.1f} {r['peak_gib']:>9.2f} {ratio:>6.2f}x"
        )
    memory_kind = next((r["memory_kind"] for r in results if "memory_kind" in r), "")
    print(f"(peak memory = {memory_kind}; samples = preference pairs)")

    ours1 = next((r for r in results if r["config"] == "ours" and r["batch"] == 1 and "error" not in r), None)
    best = max(
        (r for r in results if r["config"] == "ours" and "error" not in r),
        key=lambda r: r["samples_per_s"],
        default=None,
    )
    if opts.tiny:
        print("goals apply to the full-size GPU run; --tiny only exercises the code path")
    else:
        if ours1 and opts.image_tokens == 1024:
            ok = ours1["peak_gib"] <= GOAL_MEMORY_GIB
            print(
                f"goal peak <= {GOAL_MEMORY_GIB:.0f} GiB at batch 1, 1024 image tokens: "
                f"{ours1['peak_gib']:.2f} GiB -> {'MET' if ok else 'NOT MET'}"
            )
        if best and base:
            speedup = best["samples_per_s"] / base["samples_per_s"]
            print(
                f"goal throughput >= {GOAL_SPEEDUP}x TRL settings: {speedup:.2f}x (ours at batch {best['batch']}) "
                f"-> {'MET' if speedup >= GOAL_SPEEDUP else 'NOT MET'}"
            )
    if opts.json:
        opts.json.write_text(
            json.dumps({"tokens_per_pair": tokens, "image_tokens": per_image, "results": results}, indent=2)
        )
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
