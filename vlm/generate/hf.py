"""Batched caption generation with transformers, formatted exactly as training formatted the prompt.

    loaded = load_for_inference("Qwen/Qwen2.5-VL-7B-Instruct", adapters=["runs/dpo"])
    outs = generate_batch(loaded.model, loaded.processor, loaded.spec, ["Describe…"] * 2, [img1, img2], Decoding())
    outs[0].text, outs[0].tokens

Why these choices:

* **Prompt = the training prompt.** Preference rows hold ``prompt=[{"role": "user", "content": text}]``
  and ``images=[image]``; TRL turns that into one user turn with the image placeholder *before* the
  text (``trl.data_utils.prepare_multimodal_messages``) and renders it with the processor's chat
  template. :func:`user_turn` builds the same structure (a test compares it with TRL's function),
  and generation adds the assistant header. Prefix-LM families (PaliGemma) were trained through the
  processor's prefix API, so they get ``<image>`` + the instruction as the prefix here too.
* **Left padding.** Decoder-only generation appends new tokens at the right end of every row, so
  padding must be on the left, and the attention mask must hide it; Qwen2.5-VL refuses right padding
  outright with FlashAttention-2. The tokenizer's side is forced to left for each batch; the proof
  is a test that batched greedy output equals one-at-a-time output token for token, per family.
* **Our own GenerationConfig.** Checkpoints ship their own sampling defaults (Qwen's samples with
  ``top_k=1`` and a repetition penalty); captions must depend only on the settings recorded in their
  cache key, so every decoding knob is set here and only the stop/pad tokens come from the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlm.generate.config import Decoding

if TYPE_CHECKING:
    from PIL import Image
    from transformers import GenerationConfig, PreTrainedModel, ProcessorMixin

    from vlm.registry import ModelSpec

__all__ = ["Output", "encode", "generate_batch", "generation_config", "prompt_text", "user_turn"]


@dataclass(frozen=True)
class Output:
    """One generated caption, its length in tokens (up to and including the stop token) and its prompt's."""

    text: str
    tokens: int
    prompt_tokens: int = 0


def user_turn(instruction: str) -> list[dict[str, Any]]:
    """The single user turn a preference row's prompt becomes in training: image placeholder, then text."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]


def prompt_text(processor: ProcessorMixin, spec: ModelSpec, instruction: str) -> str:
    """The text fed to the processor for one image: chat template + assistant header, or a prefix-LM prefix."""
    if spec.prefix_lm:  # PaliGemma: the processor inserts <bos> after the images and "\n" after the prefix
        return processor.image_token + instruction
    return processor.apply_chat_template(user_turn(instruction), add_generation_prompt=True)


def encode(processor: ProcessorMixin, texts: list[str], images: list[Image.Image]) -> Any:
    """A left-padded batch of prompts with one image each (the processor may raise on a bad image)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        return processor(text=texts, images=[[image] for image in images], padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side


def generation_config(model: PreTrainedModel, decoding: Decoding) -> GenerationConfig:
    """Every decoding knob from ``decoding``; only stop and padding tokens from the checkpoint."""
    from transformers import GenerationConfig

    own = model.generation_config
    eos = own.eos_token_id if own.eos_token_id is not None else model.config.get_text_config().eos_token_id
    pad = own.pad_token_id if own.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
    kwargs: dict[str, Any] = {
        "max_new_tokens": decoding.max_new_tokens,
        "do_sample": decoding.do_sample,
        "num_beams": decoding.num_beams,
        "repetition_penalty": decoding.repetition_penalty,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "bos_token_id": own.bos_token_id,
    }
    if decoding.do_sample:
        kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=decoding.top_k or None)
    else:  # explicit neutral values, so the checkpoint's sampling defaults cannot leak in (or warn)
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return GenerationConfig(**kwargs)


def _stop_ids(config: GenerationConfig) -> set[int]:
    eos = config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def generate_batch(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    spec: ModelSpec,
    instructions: list[str],
    images: list[Image.Image],
    decoding: Decoding,
    *,
    texts: list[str] | None = None,
) -> list[Output]:
    """Caption ``images`` (one instruction each) in one ``generate`` call.

    ``texts`` replaces the formatted prompts (the draft backend folds a system text into the turn).
    """
    import torch

    texts = texts if texts is not None else [prompt_text(processor, spec, text) for text in instructions]
    inputs = encode(processor, texts, images)
    inputs = inputs.to(model.device, dtype=model.dtype)
    config = generation_config(model, decoding)
    if decoding.do_sample:
        torch.manual_seed(decoding.seed)
    with torch.inference_mode():
        output = model.generate(**inputs, generation_config=config)
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    stops = _stop_ids(config)
    prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
    results = []
    for row, prompt_length in zip(new_tokens.tolist(), prompt_lengths, strict=True):
        length = next((i + 1 for i, token in enumerate(row) if token in stops), len(row))
        text = processor.decode(row[:length], skip_special_tokens=True).strip()
        results.append(Output(text, length, int(prompt_length)))
    return results
