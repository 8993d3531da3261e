"""SFT settings: TRL's ``SFTConfig`` with Mirada's vision/LoRA defaults (DESIGN §4b.1).

Supervised fine-tuning on accepted captions, typically before DPO/KTO (pass the SFT run folder as
``adapter_name_or_path`` to the preference run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig as TRLSFTConfig

from vlm.train.vision_defaults import VisionTrainingDefaults


@dataclass
class SFTConfig(VisionTrainingDefaults, TRLSFTConfig):
    """Supervised fine-tuning on ``{images, messages}`` or ``{images, prompt, completion}`` rows."""

    learning_rate: float = field(
        default=1e-4, metadata={"help": "Peak learning rate of the LoRA weights (AdamW)."}
    )
    per_device_train_batch_size: int = field(default=2, metadata={"help": "Rows per device per step."})
    gradient_accumulation_steps: int = field(
        default=8,
        metadata={"help": "Steps whose gradients are summed before an update (effective batch = 16)."},
    )
    assistant_only_loss: bool | None = field(
        default=None,
        metadata={
            "help": "Train only on assistant turns of `messages` rows. None: on for `messages` data whose chat "
            "template TRL can mark, off for prompt/completion rows (those train on the completion only)."
        },
    )

    def __post_init__(self) -> None:
        self._resolve_hardware_defaults()
        # TRL reads a bool; Mirada resolves None once it has seen the data (vlm.train.preparation).
        if self.assistant_only_loss is None:
            self.assistant_only_loss = False
            self.assistant_only_loss_auto = True
        else:
            self.assistant_only_loss_auto = False
        super().__post_init__()
