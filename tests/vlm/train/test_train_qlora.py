"""SFT, DPO and KTO train with LoRA and with 4-bit QLoRA on two tiny families, on CPU.

Each run is two optimiser steps with an evaluation on the test split after the first, through
``run_training`` (the CLI's library path). The assertions are the ones that catch real failures:
finite losses; a non-zero gradient norm on the step *after* an evaluation (the bitsandbytes CPU
repack silently zeroes LoRA gradients there, DESIGN §6.3); the 4-bit model really is 4-bit in the
language model and only there; and LoRA adapters exist only on language-model projections.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vlm.models import ModelLoadError, load_for_inference
from vlm.registry import get_spec, is_skipped
from vlm.train.trainer import run_training

FAMILIES = ("qwen2_5_vl", "idefics3")
METHODS = ("sft", "dpo", "kto")


class _Inspect:
    """A callback that records what the trainer's model looks like once training has started."""

    def __init__(self) -> None:
        self.linear4bit: list[str] = []
        self.lora: list[str] = []
        self.vision_requires_grad: bool | None = None

    def as_callback(self):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                import bitsandbytes as bnb

                names = dict(model.named_modules())
                outer.linear4bit = [n for n, m in names.items() if isinstance(m, bnb.nn.Linear4bit)]
                outer.lora = sorted(
                    {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A" in n}
                )

        return Callback()


def _strip(name: str) -> str:
    return name.removeprefix("base_model.model.")


@pytest.mark.parametrize("quant", ["lora", "qlora"])
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHODS)
def test_trains_with_finite_loss_and_gradients_after_evaluation(settings, method, family, quant):
    # QLoRA runs keep the production default (activation checkpointing on); LoRA runs turn it off for speed.
    extra = (
        ["load_in_4bit=true"]
        if quant == "qlora"
        else ["load_in_4bit=false", "activation_checkpointing=false"]
    )
    script, args, model_args = settings(method, family, *extra)
    inspect = _Inspect()
    result = run_training(script, args, model_args, callbacks=[inspect.as_callback()])

    assert result.global_step == 1
    train_logs = [h for h in result.log_history if "loss" in h and "eval_loss" not in h]
    eval_logs = [h for h in result.log_history if "eval_loss" in h]
    assert [h["step"] for h in train_logs] == [1]
    assert [h["step"] for h in eval_logs] == [0, 1], "expected evaluations before and after the step"
    assert all(math.isfinite(h["loss"]) for h in train_logs + [{"loss": h["eval_loss"]} for h in eval_logs])
    after_eval = [h for h in train_logs if h["step"] > eval_logs[0]["step"]]
    assert after_eval and all(h["grad_norm"] > 0 for h in after_eval), train_logs

    spec = get_spec(family)
    assert inspect.lora, "no LoRA adapters were created"
    assert all("language_model" in n or "text_model" in n for n in inspect.lora), inspect.lora
    if quant == "qlora":
        assert inspect.linear4bit, "nothing was quantised"
        assert not [n for n in inspect.linear4bit if is_skipped(_strip(n), spec.skip_modules)]
        assert all("language_model" in n or "text_model" in n for n in inspect.linear4bit)
    else:
        assert not inspect.linear4bit
    assert (result.output_dir / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("family", ["gemma3", "llava_next"])
def test_other_families_train_dpo_with_qlora(settings, family):
    """The registry's regexes also hold for the tower-style families (vision_tower + multi_modal_projector)."""
    script, args, model_args = settings("dpo", family, "eval_strategy=no", "eval_on_start=false")
    result = run_training(script, args, model_args)
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert losses and all(math.isfinite(v) for v in losses)
    assert all(h["grad_norm"] > 0 for h in result.log_history if "grad_norm" in h)


def test_sft_prompt_completion_layout_trains_on_the_completion(settings):
    """The prefs stage's other SFT layout: completion-only loss, assistant_only_loss resolved off."""
    script, args, model_args = settings("sft", "qwen2_5_vl", "load_in_4bit=false", data="sft_pc")
    result = run_training(script, args, model_args)
    assert args.assistant_only_loss is False and args.completion_only_loss in (None, True)
    assert all(h["grad_norm"] > 0 for h in result.log_history if "grad_norm" in h)


def test_llava_next_with_a_lowered_budget_trains_and_reloads(settings, tmp_path, monkeypatch):
    """Pruned anyres grids reach the model config too; otherwise the feature count mismatches the placeholders."""
    import re

    from tests.helpers import draw_image

    script, args, model_args = settings(
        "dpo",
        "llava_next",
        "max_image_tokens=40",
        "eval_strategy=no",
        "eval_on_start=false",
        "model_card=true",
    )
    result = run_training(script, args, model_args)
    card = (result.output_dir / "README.md").read_text()
    snippet = re.search(r"## How to use\n\n```python\n(.*?)```", card, re.S).group(1)
    assert "image_grid_pinpoints" in snippet
    monkeypatch.chdir(tmp_path)
    draw_image(5, (96, 48)).save("foto.jpg")
    base = model_args.model_name_or_path  # the card names a local base by its folder; the reader substitutes
    assert f'"{Path(base).name}"' in snippet and base not in snippet
    snippet = snippet.replace(f'"{Path(base).name}"', f'"{base}"').replace(
        "path/to/this/run", str(result.output_dir)
    )
    snippet = snippet.replace("max_new_tokens=200", "max_new_tokens=2")
    exec(compile(snippet, "model-card-snippet", "exec"), {})  # a published adapter works as its card says
    assert result.image_tokens == 36
    assert all(h["grad_norm"] > 0 for h in result.log_history if "grad_norm" in h)

    from PIL import Image

    loaded = load_for_inference(result.output_dir)
    model, processor = loaded.model, loaded.processor
    assert processor.image_processor.image_grid_pinpoints == [[32, 32]]
    assert model.config.image_grid_pinpoints == [[32, 32]]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[[Image.new("RGB", (96, 48))]], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]  # the forward with pruned grids ran (noise out)


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ("visual", r"leave \d+ vision/projector/lm_head layers quantised \(e\.g\. (model\.visual|lm_head)"),
        (".*", "no layer was quantised"),
    ],
)
def test_wrong_skip_modules_are_refused_before_training(settings, patterns, message):
    """A bare 'visual' would quantise Qwen's ViT and lm_head silently (DESIGN §6.3); '.*' quantises nothing."""
    script, args, model_args = settings("dpo", "qwen2_5_vl", f"skip_modules={patterns}")
    with pytest.raises(ModelLoadError, match=message):
        run_training(script, args, model_args)
