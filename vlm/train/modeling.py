"""How ``mirada train``'s model settings become a bitsandbytes config and a LoRA config.

The configs themselves are built by the loading layer (:mod:`vlm.models`) and PEFT; this maps
TRL's ``ModelConfig`` field names (``load_in_4bit``, ``lora_r``…) onto them, plus the one
training-only rule: under FSDP/DeepSpeed the 4-bit weights must be stored in a float dtype to shard.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vlm.models import build_quantization_config as quantization_config
from vlm.models.quantization import sharded_launch
from vlm.registry import ModelSpec
from vlm.train.model_config import MiradaModelConfig

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig

log = logging.getLogger("vlm.train")

__all__ = ["build_lora_config", "build_quantization_config"]


def build_quantization_config(model_args: MiradaModelConfig, spec: ModelSpec) -> BitsAndBytesConfig | None:
    """nf4 + double quantisation + ``bnb_4bit_compute_dtype`` from the settings, skipping the family's vision side."""
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return None
    storage = model_args.bnb_4bit_quant_storage
    if model_args.load_in_4bit and storage is None and sharded_launch():
        storage = model_args.dtype if model_args.dtype not in (None, "auto") else "bfloat16"
        log.info("FSDP/DeepSpeed launch: storing 4-bit weights as %s so they can be sharded", storage)
    return quantization_config(
        "8bit" if model_args.load_in_8bit else "4bit",
        spec,
        skip_modules=model_args.skip_modules,
        compute_dtype=model_args.bnb_4bit_compute_dtype,
        quant_type=model_args.bnb_4bit_quant_type,
        double_quant=model_args.use_bnb_nested_quant,
        quant_storage=storage,
    )


def build_lora_config(model_args: MiradaModelConfig, spec: ModelSpec) -> LoraConfig | None:
    """LoRA on the family's language-model projections unless ``lora_target_modules`` says otherwise."""
    if not model_args.use_peft or model_args.adapter_name_or_path:
        return None
    from peft import LoraConfig

    targets = model_args.lora_target_modules or spec.lora_targets
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=targets,
        modules_to_save=model_args.lora_modules_to_save,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        task_type=model_args.lora_task_type,
        bias="none",
    )
