"""Guards for two measured traps, tested on the mechanism itself (not only through a training run).

1. bitsandbytes' CPU repack (DESIGN §6.3). On CPUs with AVX512-BF16 an eval-mode forward repacks
   4-bit weights for a fast kernel, after which LoRA silently gets no gradients. CI machines may lack
   the instruction set, so the repack is produced here with bitsandbytes' own packing function and the
   guard must undo it exactly; the callback must re-apply the guard after every evaluation.
2. transformers' ``enable_input_require_grads`` also hooks the frozen vision tower's embeddings, so
   autograd tracks the whole ViT; the guard removes that hook and only that one.
"""

from __future__ import annotations

import pytest

bnb = pytest.importorskip("bitsandbytes")
torch = pytest.importorskip("torch")

from vlm.models.guards import disable_cpu_repack, remove_vision_input_grad_hooks  # noqa: E402
from vlm.registry import get_spec  # noqa: E402
from vlm.train.callbacks import CpuRepackGuard  # noqa: E402


def _quantised_layer(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    dense = torch.nn.Linear(64, 128)
    layer = bnb.nn.Linear4bit(
        64, 128, compute_dtype=torch.float32, quant_type="nf4", compress_statistics=True
    )
    layer.load_state_dict(dense.state_dict())
    return layer.to("cpu")


def test_guard_undoes_a_repack_and_gradients_flow_again():
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    layer = _quantised_layer()
    x = torch.randn(3, 64)
    expected = layer(x).detach()

    # What an eval-mode forward does on an AVX512-BF16 CPU:
    layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu(
        layer.weight.data, layer.weight.quant_state
    )
    layer.support_avx512bf16_for_cpu = True
    assert layer.weight.quant_state.packing_format_for_cpu

    model = torch.nn.Sequential(layer)
    assert disable_cpu_repack(model) == 1
    assert layer.support_avx512bf16_for_cpu is False
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)

    x_grad = x.clone().requires_grad_(True)
    out = layer(x_grad)
    # The repack rounds the 4-bit block scales to bf16 and bitsandbytes' inverse cannot undo that, so
    # the layer comes back within bf16 rounding of itself (prevention, at load time, is the real fix).
    torch.testing.assert_close(out.detach(), expected, atol=1e-2, rtol=1e-2)
    out.sum().backward()
    assert x_grad.grad is not None and x_grad.grad.abs().sum() > 0


def test_callback_reapplies_the_guard_after_evaluation():
    model = torch.nn.Sequential(_quantised_layer(0), _quantised_layer(1))
    guard = CpuRepackGuard()
    guard.on_train_begin(None, None, None, model=model)
    for layer in model:
        layer.support_avx512bf16_for_cpu = True  # as a freshly created layer on such a CPU
    guard.on_evaluate(None, None, None, model=model)
    assert all(layer.support_avx512bf16_for_cpu is False for layer in model)
    model[0].support_avx512bf16_for_cpu = True
    guard.on_step_begin(None, None, None, model=model)
    assert model[0].support_avx512bf16_for_cpu is False


def test_load_model_applies_the_guard(tiny_model):
    from vlm.models import load_model

    model = load_model(tiny_model("qwen2_5_vl"), quantization="4bit", dtype="float32")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.support_avx512bf16_for_cpu is False for m in layers)


def test_vision_input_grad_hook_is_removed_and_the_language_one_kept(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tests.helpers import draw_image

    path = tiny_model("qwen2_5_vl")
    spec = get_spec("qwen2_5_vl")
    model = get_peft_model(
        AutoModelForImageTextToText.from_pretrained(path),
        LoraConfig(r=2, lora_alpha=4, target_modules=spec.lora_targets),
    )
    model.enable_input_require_grads()
    processor = AutoProcessor.from_pretrained(path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hola"}]}]
    inputs = processor(
        text=[processor.apply_chat_template(messages, add_generation_prompt=True)],
        images=[[draw_image(1, (48, 40))]],
        return_tensors="pt",
    )
    seen: dict[str, bool] = {}
    base = model.base_model.model.model
    base.visual.blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("vision", o.requires_grad))
    base.language_model.embed_tokens.register_forward_hook(
        lambda m, i, o: seen.__setitem__("text", o.requires_grad)
    )

    model(**inputs)
    assert seen == {"vision": True, "text": True}, "transformers no longer hooks the vision tower?"
    assert remove_vision_input_grad_hooks(model, spec) >= 1
    model(**inputs)
    assert seen == {"vision": False, "text": True}


def test_vision_hook_is_kept_when_the_vision_tower_trains(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    spec = get_spec("qwen2_5_vl")
    model = get_peft_model(
        AutoModelForImageTextToText.from_pretrained(tiny_model("qwen2_5_vl")),
        LoraConfig(r=2, lora_alpha=4, target_modules=r".*visual.*\.qkv"),
    )
    model.enable_input_require_grads()
    assert remove_vision_input_grad_hooks(model, spec) == 0
