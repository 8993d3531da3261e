"""Trainer callbacks for the measured traps and the hackathon's duties.

- :class:`CpuRepackGuard`: re-applies the bitsandbytes CPU-repack guard (:mod:`vlm.models.guards`)
  around every step and evaluation, because an eval-mode forward repacks 4-bit weights and LoRA
  then silently stops learning (DESIGN §6.3).
- :class:`FrozenVisionInputs`: drops the input-gradient hook transformers puts on the frozen vision
  tower (it makes autograd track and back-propagate through the whole ViT for nothing).
- :class:`EmissionsCallback`: CodeCarbon's *offline* tracker (``report_to="codecarbon"`` uses the
  online one and the wrong country).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from vlm.models.guards import disable_cpu_repack, linear4bit_modules, remove_vision_input_grad_hooks
from vlm.registry import ModelSpec

if TYPE_CHECKING:
    import torch

log = logging.getLogger("vlm.train")

__all__ = ["CpuRepackGuard", "EmissionsCallback", "FrozenVisionInputs"]


class CpuRepackGuard(TrainerCallback):
    """Re-applies :func:`disable_cpu_repack` before training, before every step and after every evaluation."""

    def __init__(self) -> None:
        self._modules: list[torch.nn.Module] | None = None

    def _guard(self, model: torch.nn.Module | None) -> None:
        if model is None:
            return
        if self._modules is None:
            self._modules = linear4bit_modules(model)
        if self._modules:
            disable_cpu_repack(model, self._modules)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._guard(model)

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._guard(model)

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._guard(model)


class FrozenVisionInputs(TrainerCallback):
    """Stops autograd from tracking the frozen vision tower.

    With LoRA + activation checkpointing, transformers 5 calls ``enable_input_require_grads()``, which
    hooks *every* input embedding, the vision tower's patch embedding included; the ViT's activations
    then require grad, so it is recorded, recomputed and back-propagated through although none of its
    weights train. Removing that one hook (only when nothing under the vision modules is trainable)
    saves that compute and memory; the language model's hook stays. Runs at ``on_train_begin``, after
    the Trainer has enabled checkpointing.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.removed = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is not None:
            self.removed = remove_vision_input_grad_hooks(model, self.spec)
            if self.removed:
                log.info("vision tower frozen: removed %d input-gradient hook(s) from it", self.removed)


class EmissionsCallback(TrainerCallback):
    """CodeCarbon's offline tracker around training; ``emissions.csv`` lands in the run folder.

    Offline, because ``report_to="codecarbon"`` starts the online tracker, which needs the network
    and records the wrong country (DESIGN §6.6). Only the node's main process tracks (CodeCarbon
    measures the whole machine). ``stop()`` is idempotent so a crash still closes the record.
    """

    def __init__(self, output_dir: str | Path, country_iso3: str, project_name: str = "mirada-train") -> None:
        self.output_dir = Path(output_dir)
        self.country = country_iso3
        self.project_name = project_name
        self.tracker: Any = None
        self.emissions_kg: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_local_process_zero or self.tracker is not None:
            return
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.output_methods.base_output import OutputMethod

        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after the import, which sets its own level
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.tracker = OfflineEmissionsTracker(
            country_iso_code=self.country,
            output_dir=str(self.output_dir),
            project_name=self.project_name,
            log_level="error",
            output_methods=[OutputMethod.CSV],
        )
        self.tracker.start()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.tracker is not None:
            self.emissions_kg = self.tracker.stop()
            self.tracker = None
