"""Settings of the generate stage. Field descriptions are the documentation of every default.

Everything here that changes a caption (decoding, dtype, quantisation, image budget, backend) goes
into each caption's cache key; ``batch_size``, ``concurrency`` and the export paths do not
(DESIGN §4b.7), so a rerun with another batch size finds its captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from data_tools.config import StageConfig
from data_tools.draft.config import REPO_ROOT

BACKENDS = ("hf", "vllm", "openai")
SPLIT_CHOICES = ("test", "validation", "train", "all")


def device_dtype(dtype: str) -> str:
    """``auto`` made concrete for this machine: bfloat16 on a CUDA GPU, float32 on CPU (else unchanged).

    The loader's own ``auto`` means "the checkpoint's dtype" (bf16 for the real 7B checkpoints, also on
    a CPU); generation resolves it here so that what runs and what the cache key records agree.
    """
    if dtype != "auto":
        return dtype
    import torch

    return "bfloat16" if torch.cuda.is_available() else "float32"


class Decoding(StageConfig):
    """How tokens are chosen. Greedy by default: captions for evaluation should be reproducible."""

    max_new_tokens: int = Field(128, ge=1, description="longest caption, in generated tokens")
    do_sample: bool = Field(False, description="sample instead of greedy/beam search")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (only with do_sample)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass (only with do_sample)")
    top_k: int = Field(0, ge=0, description="sample among the k likeliest tokens; 0 turns it off")
    num_beams: int = Field(1, ge=1, description="beam search width; 1 = no beam search")
    repetition_penalty: float = Field(
        1.0, gt=0, description="1.0 = none (Qwen2.5-VL's own generation_config uses 1.05)"
    )
    seed: int = Field(0, description="random seed for sampling (part of the cache key)")

    @model_validator(mode="after")
    def _check(self) -> Decoding:
        if self.do_sample and self.num_beams > 1:
            raise ValueError("choose sampling (do_sample=true) or beam search (num_beams>1), not both")
        return self

    def key_fields(self) -> dict[str, Any]:
        """The settings that change the output; sampling knobs only count when sampling."""
        fields = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                  "num_beams": self.num_beams, "repetition_penalty": self.repetition_penalty}  # fmt: skip
        if self.do_sample:
            fields.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=self.seed)
        return fields


class OpenAISettings(StageConfig):
    base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="OpenAI-compatible base URL, e.g. `vllm serve --enable-lora`"
    )
    model: str | None = Field(
        None, description="model name the server serves for the base (default: --model as given)"
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="environment variable holding the key (may be unset for local servers)"
    )
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight at once")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout in seconds")
    max_attempts: int = Field(4, ge=1, description="attempts per image on 429/5xx/timeouts")


class VLLMSettings(StageConfig):
    max_lora_rank: int = Field(
        64, ge=1, description="largest LoRA rank among the adapters (vLLM's max_lora_rank)"
    )
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="share of GPU memory vLLM may take")
    max_model_len: int | None = Field(8192, ge=256, description="context length vLLM reserves for")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs to shard the model over")


class GenerateConfig(StageConfig):
    """Settings of the generate stage."""

    split: Literal["test", "validation", "train", "all"] = Field(
        "test",
        description="which images: the split prefs assigned (test images were never trained on), or all",
    )
    dataset: str | None = Field(
        None,
        description="prefs export folder (or dataset base name) whose split to use; default: the latest prefs build",
    )
    instructions: Path = Field(
        REPO_ROOT / "configs" / "prompts" / "prefs" / "instructions.yaml",
        description="the prefs instruction table; used when the images do not come from a prefs export",
    )
    backend: Literal["hf", "vllm", "openai"] = Field("hf", description="hf (transformers), vllm or openai")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="weights dtype; auto = bfloat16 on a GPU, float32 on CPU"
    )
    quantization: Literal["none", "4bit", "8bit"] = Field(
        "none", description="bitsandbytes quantisation (hf)"
    )
    max_image_tokens: int | None = Field(
        None,
        ge=1,
        description="image-token cap per image; default: the run's saved budget, else the family's",
    )
    batch_size: int = Field(8, ge=1, description="images per forward pass (hf); not part of the cache key")
    limit: int | None = Field(None, ge=1, description="caption only the first N images (quick checks)")
    decoding: Decoding = Field(default_factory=Decoding, description="decoding settings")
    openai: OpenAISettings = Field(default_factory=OpenAISettings, description="openai backend")
    vllm: VLLMSettings = Field(default_factory=VLLMSettings, description="vllm backend")
    export: bool = Field(
        True, description="save this run's captions as a datasets folder under exports/generations/"
    )

    @model_validator(mode="after")
    def _check(self) -> GenerateConfig:
        if self.quantization != "none" and self.backend != "hf":
            raise ValueError(f"quantization={self.quantization} works with the hf backend only")
        if self.backend == "openai" and self.decoding.num_beams > 1:
            raise ValueError("the openai backend has no beam search; use num_beams=1")
        return self
