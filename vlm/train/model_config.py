"""Model, LoRA and 4-bit settings for ``mirada train``: TRL's ``ModelConfig`` with QLoRA defaults.

Subclassing TRL's own dataclass keeps its field names (``lora_r``, ``load_in_4bit``…), so a command
line or YAML written for ``trl dpo`` means the same here, and TrlParser parses it with no glue. We
change defaults to the recipe Mirada trains with (QLoRA: nf4, double quantisation, bf16 compute, LoRA
on the language model only) and add what a VLM needs that TRL leaves to the caller: the registry
family, modules kept out of quantisation, an image-token budget and a starting adapter.

Each field's ``metadata["help"]`` is the only place its default is documented (DESIGN §4b.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig


@dataclass
class MiradaModelConfig(ModelConfig):
    """Which model to train and how: base checkpoint, family, LoRA, 4-bit quantisation, image budget."""

    model_name_or_path: str | None = field(
        default="Qwen/Qwen2.5-VL-7B-Instruct",
        metadata={
            "help": "Base model: a Hub id or a local folder (e.g. a tiny model from `python -m vlm.tiny`)."
        },
    )
    family: str | None = field(
        default=None,
        metadata={
            "help": "Registry family (vlm/registry.py: qwen2_5_vl, qwen2_vl, idefics3, smolvlm, llava_next, llava, "
            "gemma3, paligemma). Default: the `model_type` in the checkpoint's config.json."
        },
    )
    dtype: str | None = field(
        default="bfloat16",
        metadata={
            "help": "dtype of the unquantised weights (vision tower, projector, embeddings, lm_head).",
            "choices": ["auto", "bfloat16", "float16", "float32"],
        },
    )
    use_peft: bool = field(
        default=True,
        metadata={
            "help": "Train a LoRA adapter (required with 4-bit; the reference model is the adapter-disabled base)."
        },
    )
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "LoRA target modules (names or one regex). Default: the family's language-model regex, so the "
            "vision tower and projector stay frozen."
        },
    )
    load_in_4bit: bool = field(
        default=True,
        metadata={
            "help": "QLoRA: load the language model in 4 bit (vision tower, projector and lm_head stay unquantised)."
        },
    )
    use_bnb_nested_quant: bool = field(
        default=True,
        metadata={"help": "Double quantisation: also quantise the 4-bit scales (~0.4 bit/parameter saved)."},
    )
    bnb_4bit_compute_dtype: str = field(
        default="bfloat16",
        metadata={
            "help": "dtype the 4-bit weights are dequantised to for each matmul.",
            "choices": ["bfloat16", "float16", "float32"],
        },
    )
    skip_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Modules kept out of 4-bit, as transformers-5 regexes matched from the start of the module name "
            "(use '.*visual', not 'visual'). Default: the family's vision tower, projector and lm_head."
        },
    )
    max_image_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Cap on image tokens per image (Qwen: pixel budget; Idefics3/SmolVLM: tile grid; LLaVA-NeXT: anyres "
            "grids, floor 1176). It never raises "
            "the processor's own limit. Default: the family's (Qwen 1024)."
        },
    )
    adapter_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Start from this LoRA adapter (e.g. an SFT run's folder) instead of a fresh one; its r/alpha/targets "
            "win over the lora_* settings. For DPO/KTO the reference model is then this adapter, frozen."
        },
    )
