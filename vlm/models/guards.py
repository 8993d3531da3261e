"""Guards against two measured traps of training a quantised VLM (DESIGN §6.3), applied at load time.

- **CPU repack**: on CPUs with AVX512-BF16, any eval-mode no-grad forward (``generate``, evaluation)
  makes bitsandbytes repack 4-bit weights in place; afterwards LoRA gets no gradients (silently) or
  an in-place error. Every model the loading layer returns is guarded, so a model used for
  ``generate`` can still be trained afterwards.
- **Frozen ViT**: with LoRA + activation checkpointing, transformers hooks *every* input embedding
  to require grad, the vision tower's included, so the frozen ViT is recorded and back-propagated
  through for nothing. :func:`remove_vision_input_grad_hooks` removes that one hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from vlm.registry import ModelSpec, is_skipped

if TYPE_CHECKING:
    import torch

__all__ = ["disable_cpu_repack", "linear4bit_modules", "remove_vision_input_grad_hooks", "strip_peft_prefix"]


def linear4bit_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's bitsandbytes 4-bit layers (none when bitsandbytes is not installed)."""
    try:
        import bitsandbytes as bnb
    except ImportError:  # no bitsandbytes: nothing can be 4-bit
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def disable_cpu_repack(model: torch.nn.Module, modules: Sequence[torch.nn.Module] | None = None) -> int:
    """Keep bitsandbytes from repacking 4-bit weights for its AVX512-BF16 CPU kernel; undo any repack.

    Setting ``support_avx512bf16_for_cpu = False`` prevents the repack; weights already repacked are
    converted back with bitsandbytes' own inverse, which cannot undo the repack's rounding of the
    block scales to bf16 (so prevention, at load time, is the real fix and this the backstop).
    Returns the layers visited.
    """
    modules = linear4bit_modules(model) if modules is None else modules
    for module in modules:
        module.support_avx512bf16_for_cpu = False
        weight = module.weight
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
    return len(modules)


def strip_peft_prefix(name: str) -> str:
    """``base_model.model.model.visual.x`` → ``model.visual.x``: the names the registry's regexes expect."""
    return name.removeprefix("base_model.model.")


def remove_vision_input_grad_hooks(model: torch.nn.Module, spec: ModelSpec) -> int:
    """Remove transformers' ``enable_input_require_grads`` hooks from the vision side of ``model``.

    Identified by the hook function's qualified name (transformers registers a local function of
    ``enable_input_require_grads``); the test suite checks the vision tower's output no longer
    requires grad, so a rename upstream shows up as a failing test, not as silent slowness.
    Does nothing when a parameter under the vision modules trains (LoRA on the ViT needs them).
    """
    vision = spec.vision_modules
    if any(p.requires_grad and is_skipped(strip_peft_prefix(n), vision) for n, p in model.named_parameters()):
        return 0
    removed = 0
    for name, module in model.named_modules():
        hooks = getattr(module, "_forward_hooks", None)
        if not hooks or not is_skipped(strip_peft_prefix(name), vision):
            continue
        for key, hook in list(hooks.items()):
            if "enable_input_require_grads" in getattr(hook, "__qualname__", ""):
                del hooks[key]
                removed += 1
    return removed
