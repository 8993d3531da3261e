"""Run-level settings of ``mirada train``: the method, the data, and what to do around training.

TRL's method configs (``DPOConfig``…) own everything the trainer reads, including ``output_dir``,
``seed``, ``push_to_hub`` and ``hub_model_id``; TRL's ``MiradaModelConfig`` owns the model. This
dataclass holds only what neither has: which method, where the data is and how to filter it,
emissions tracking, merging, and facts for the Model Card. Field names must not collide with those
two (TrlParser builds one flat namespace); ``tests/vlm/train/test_train_config.py`` checks that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TrainScriptArguments:
    """Method, data and run options (the third dataclass beside the method and model configs)."""

    method: Literal["sft", "dpo", "kto"] = field(
        default="dpo",
        metadata={
            "help": "Training method; picks the config class (SFTConfig, DPOConfig or KTOConfig) and trainer."
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Training data: a `datasets.save_to_disk` folder (e.g. ws/exports/prefs/<name>_image_dpo) or a Hub id. "
            "Rows follow DESIGN §3 (DPO: images/prompt/chosen/rejected; KTO: images/prompt/completion/label; "
            "SFT: images/messages or images/prompt/completion)."
        },
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Configuration name of a Hub dataset (`load_dataset(name=…)`)."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(
        default="test", metadata={"help": "Split evaluated during training (ignored when eval_strategy=no)."}
    )
    dataset_hub_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub id where the local dataset is published, so the Model Card links to it. Default: "
            "dataset_name when it is a Hub id."
        },
    )
    max_tokens: int | None = field(
        default=2048,
        metadata={
            "help": "Drop rows whose longest sequence (prompt + completion, image tokens included) is longer than this, "
            "and report how many; None keeps all. Replaces truncation, which would cut image tokens."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training rows (quick runs); None: all."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N test rows; None: all."}
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Continue from the newest checkpoint in output_dir (or from resume_from_checkpoint when set). "
            "Without it, an output_dir that already holds checkpoints is an error, never silently overwritten."
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "Replace the run in output_dir (its folder is deleted first). Without it, an output_dir holding "
            "a finished run is an error."
        },
    )
    merge: bool = field(
        default=False,
        metadata={
            "help": "Also write output_dir/merged: the adapter merged into a fresh unquantised base (merge_dtype)."
        },
    )
    merge_dtype: Literal["bfloat16", "float16", "float32"] = field(
        default="bfloat16",
        metadata={"help": "dtype of the base the adapter is merged into (never the 4-bit one)."},
    )
    emissions: bool = field(
        default=True,
        metadata={
            "help": "Track energy and CO2 with CodeCarbon's offline tracker; writes output_dir/emissions.csv."
        },
    )
    emissions_country: str = field(
        default="USA",
        metadata={
            "help": "ISO 3166 code (alpha-3 or alpha-2) of the country where training runs; sets the grid's carbon "
            "intensity (Hugging Face Spaces GPUs: USA)."
        },
    )
    curves: bool = field(
        default=True,
        metadata={
            "help": "Plot loss, gradient norm and the method's metrics to output_dir/training_curves.png."
        },
    )
    model_card: bool = field(
        default=True,
        metadata={"help": "Write output_dir/README.md, the Model Card (pushed with --push_to_hub)."},
    )
    license: str | None = field(
        default=None,
        metadata={
            "help": "Licence of the adapter in the card. Default: the base model's (adapters are derivatives)."
        },
    )
    languages: list[str] | None = field(
        default=None,
        metadata={
            "help": "Language codes for the card. Default: the data's `language` column, else es and pt."
        },
    )
    code_url: str | None = field(
        default=None, metadata={"help": "Link to the code that trained the model, shown in the card."}
    )
    verbose: bool = field(default=False, metadata={"help": "Debug logs and full tracebacks."})
