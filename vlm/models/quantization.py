"""4-bit/8-bit loading: the bitsandbytes config a family needs, and the check that it did what we meant.

Why here and not in training: inference on a QLoRA run must quantise the same modules the run was
trained with, so both paths build the config from the same registry facts (DESIGN §6.3).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vlm.models.errors import ModelLoadError
from vlm.registry import ModelSpec, is_skipped

if TYPE_CHECKING:
    import torch
    from transformers import BitsAndBytesConfig

log = logging.getLogger("vlm.models")

__all__ = [
    "QUANTIZATIONS",
    "build_quantization_config",
    "check_quantized_layout",
    "resolve_dtype",
    "sharded_launch",
    "training_device_map",
]

QUANTIZATIONS: tuple[str, ...] = ("none", "4bit", "8bit")


def resolve_dtype(name: str | None) -> torch.dtype | str:
    """``"bfloat16"`` → ``torch.bfloat16``; ``None``/``"auto"`` → ``"auto"`` (the checkpoint's own)."""
    import torch

    if name in (None, "auto"):
        return "auto"
    value = getattr(torch, str(name), None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"unknown dtype {name!r}; choose auto, bfloat16, float16 or float32")
    return value


def sharded_launch() -> bool:
    """Whether ``accelerate launch`` asked for FSDP or DeepSpeed (the model must then load without a device map)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" or (
        os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    )


def training_device_map(quantized: bool) -> dict[str, int] | None:
    """4-bit weights are placed at load time: each DDP process gets its own GPU; FSDP/DeepSpeed place them."""
    import torch

    if not quantized or not torch.cuda.is_available() or sharded_launch():
        return None
    from accelerate import PartialState

    return {"": PartialState().local_process_index}


def build_quantization_config(
    quantization: str,
    spec: ModelSpec,
    *,
    skip_modules: Sequence[str] | None = None,
    compute_dtype: str = "bfloat16",
    quant_type: str = "nf4",
    double_quant: bool = True,
    quant_storage: str | None = None,
) -> BitsAndBytesConfig | None:
    """nf4 + double quantisation + ``compute_dtype``, skipping the family's vision side and ``lm_head``.

    Passing ``llm_int8_skip_modules`` replaces transformers' automatic ``lm_head`` skip, so the
    registry lists ``lm_head`` explicitly. ``"none"`` → ``None``.
    """
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"unknown quantization {quantization!r}; choose {', '.join(QUANTIZATIONS)}")
    if quantization == "none":
        return None
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(f"{quantization} loading needs bitsandbytes: pip install 'mirada[train]'")
    from transformers import BitsAndBytesConfig

    skip = list(skip_modules or spec.skip_modules)
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=resolve_dtype(compute_dtype),
        bnb_4bit_quant_storage=resolve_dtype(quant_storage) if quant_storage else None,
        llm_int8_skip_modules=skip,
    )


def check_quantized_layout(model: torch.nn.Module, spec: ModelSpec, skip_modules: Sequence[str]) -> int:
    """Refuse a 4/8-bit model whose vision side or ``lm_head`` got quantised, or where nothing did.

    User-supplied ``skip_modules`` replace the registry's; transformers matches them from the start
    of a module name, so a bare ``visual`` silently quantises Qwen's ViT (DESIGN §6.3). The layout is
    checked on the loaded model against the family's own patterns. Returns the quantised layer count.
    """
    import bitsandbytes as bnb

    quantized = [
        name
        for name, module in model.named_modules()
        if isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))
    ]
    wrong = [name for name in quantized if is_skipped(name, spec.skip_modules)]
    if wrong:
        raise ModelLoadError(
            f"skip_modules {list(skip_modules)} leave {len(wrong)} vision/projector/lm_head layers quantised "
            f"(e.g. {wrong[0]}); transformers matches an entry from the start of the module name, so write "
            f"regexes like {list(spec.skip_modules)} (the {spec.display_name} default)"
        )
    if not quantized:
        raise ModelLoadError(
            f"4/8-bit loading is set but no layer was quantised: skip_modules {list(skip_modules)} match the "
            "language model too; drop them or use the family default"
        )
    return len(quantized)


def quantization_of(config: Any) -> str:
    """``"4bit"``/``"8bit"``/``"none"`` for a ``BitsAndBytesConfig`` (or ``None``)."""
    if config is None:
        return "none"
    if getattr(config, "load_in_4bit", False):
        return "4bit"
    return "8bit" if getattr(config, "load_in_8bit", False) else "none"
