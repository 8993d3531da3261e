"""DPO settings: TRL's ``DPOConfig`` with Mirada's vision/LoRA defaults (DESIGN §4b.1).

TRL's class is the source of truth for every DPO field (``beta``, ``loss_type``…); this subclass only
changes defaults, so ``trl dpo`` YAML keys mean the same here and unknown keys are still rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig as TRLDPOConfig

from vlm.train.vision_defaults import VisionTrainingDefaults


@dataclass
class DPOConfig(VisionTrainingDefaults, TRLDPOConfig):
    """Direct Preference Optimisation on ``{images, prompt, chosen, rejected}`` rows."""

    learning_rate: float = field(
        default=5e-6, metadata={"help": "Peak learning rate of the LoRA weights (AdamW)."}
    )
    per_device_train_batch_size: int = field(
        default=1, metadata={"help": "Preference pairs per device per step (each pair is two sequences)."}
    )
    gradient_accumulation_steps: int = field(
        default=16,
        metadata={"help": "Steps whose gradients are summed before an update (effective batch = 16)."},
    )

    def __post_init__(self) -> None:
        self._resolve_hardware_defaults()
        super().__post_init__()
