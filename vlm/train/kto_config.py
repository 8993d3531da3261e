"""KTO settings: TRL's ``KTOConfig`` with Mirada's vision/LoRA defaults (DESIGN §4b.1).

Vision KTO has three constraints TRL enforces late or not at all; Mirada validates them before loading
the model (``vlm.train.validation.validate``): unpaired data only (``completion`` + ``label``), a batch of
at least 2 per device (the KL term pairs each completion with a neighbour's prompt), and no
precomputed reference log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import KTOConfig as TRLKTOConfig

from vlm.train.vision_defaults import VisionTrainingDefaults


@dataclass
class KTOConfig(VisionTrainingDefaults, TRLKTOConfig):
    """Kahneman-Tversky Optimisation on unpaired ``{images, prompt, completion, label}`` rows."""

    learning_rate: float = field(
        default=5e-6, metadata={"help": "Peak learning rate of the LoRA weights (AdamW)."}
    )
    per_device_train_batch_size: int = field(
        default=2,
        metadata={
            "help": "Rows per device per step; must be > 1 (the KL estimate pairs rows within a batch)."
        },
    )
    gradient_accumulation_steps: int = field(
        default=8,
        metadata={"help": "Steps whose gradients are summed before an update (effective batch = 16)."},
    )

    def __post_init__(self) -> None:
        self._resolve_hardware_defaults()
        super().__post_init__()
