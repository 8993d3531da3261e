"""Defaults shared by Mirada's SFT, DPO and KTO configs (a dataclass mixin placed before TRL's class).

Why a mixin: the three method configs subclass three different TRL classes (DESIGN §4b.1), but the
vision-specific recipe is the same for all of them; writing it once keeps the defaults from drifting.
A dataclass field defined here replaces TRL's field of the same name in every subclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class VisionTrainingDefaults:
    """What changes from TRL's defaults when training a VLM with LoRA on one GPU (or several)."""

    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Truncate sequences to this many tokens. None: never, because truncation cuts image tokens "
            "('Image features and image tokens do not match'); over-long rows are dropped before training instead "
            "(see max_tokens)."
        },
    )
    activation_checkpointing: bool | None = field(
        default=None,
        metadata={
            "help": "Recompute activations in the backward pass to save memory. None: on (TRL's default), unless the "
            "deprecated gradient_checkpointing says otherwise. Tune with activation_checkpointing_kwargs, e.g. "
            "{every_n_layers: 2}."
        },
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Deprecated alias of activation_checkpointing (transformers 5)."},
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the training split."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_steps: float = field(
        default=0.05, metadata={"help": "Warm-up steps; a value below 1 is a fraction of the total steps."}
    )
    eval_strategy: str = field(
        default="steps",
        metadata={"help": "When to evaluate on the test split: 'no', 'steps' (every eval_steps) or 'epoch'."},
    )
    eval_steps: float | None = field(
        default=50, metadata={"help": "Evaluate every this many optimiser steps."}
    )
    save_strategy: str = field(
        default="steps", metadata={"help": "When to write a checkpoint: 'no', 'steps', 'epoch' or 'best'."}
    )
    save_steps: float = field(default=50, metadata={"help": "Write a checkpoint every this many steps."})
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep at most this many checkpoints (the newest ones)."}
    )
    logging_steps: float = field(default=5, metadata={"help": "Log loss and metrics every this many steps."})
    logging_first_step: bool = field(
        default=True, metadata={"help": "Also log the first step (curves start at 1)."}
    )
    per_device_eval_batch_size: int = field(default=2, metadata={"help": "Evaluation batch size per device."})
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 mixed precision. None: on where the accelerator supports it (Ampere or newer GPUs), "
            "off on CPU-only machines, where transformers would refuse it."
        },
    )

    dataloader_pin_memory: bool | None = field(
        default=None,
        metadata={
            "help": "Pin host memory for faster transfers to the GPU. None: on when a CUDA GPU is present."
        },
    )

    def _resolve_hardware_defaults(self) -> None:
        """Resolve the ``None`` defaults above before TRL's and transformers' ``__post_init__`` run.

        Activation checkpointing defaults on without tripping transformers' deprecation of the old
        name; bf16 follows the hardware, so one preset runs on a GPU box and in CPU tests alike.
        """
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            self.activation_checkpointing = True
        if self.dataloader_pin_memory is None:
            import torch

            self.dataloader_pin_memory = torch.cuda.is_available()
        if self.bf16 is None and not getattr(self, "fp16", False):
            self.bf16 = _accelerator_supports_bf16(bool(getattr(self, "use_cpu", False)))


def _accelerator_supports_bf16(use_cpu: bool) -> bool:
    """Whether the device the Trainer will pick can run bf16 autocast."""
    import torch

    if use_cpu:
        return True  # transformers allows CPU bf16 autocast when asked for explicitly
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(getattr(torch, "xpu", None) and torch.xpu.is_available())
