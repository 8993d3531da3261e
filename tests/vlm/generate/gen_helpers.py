"""Helpers shared by the generate tests and the draft local-backend tests: a quickly trained adapter."""

from __future__ import annotations

from pathlib import Path

from tests.vlm.train.train_helpers import FAST, write_dataset


def train_adapter(base: Path, out: Path, *, steps: int = 3, learning_rate: float = 0.05) -> Path:
    """A LoRA SFT run of ``steps`` steps on the tiny ``base`` through ``mirada train``'s own entry point.

    The learning rate is high on purpose: a few steps must move greedy captions away from the base's.
    """
    from vlm.train.cli import main

    data = write_dataset("sft", out.parent / f"{out.name}-data")
    overrides = {
        "max_steps": steps,
        "learning_rate": learning_rate,
        "eval_on_start": "false",
        "eval_strategy": "no",
    }
    fast = [arg for arg in FAST if arg.split("=")[0] not in overrides]
    argv = ["method=sft", f"model_name_or_path={base}", f"dataset_name={data}", f"output_dir={out}", *fast,
            *(f"{k}={v}" for k, v in overrides.items()), "load_in_4bit=false"]  # fmt: skip
    status = main(argv)
    if status != 0:
        raise RuntimeError(f"training the test adapter failed with status {status}")
    return out
