"""Data and settings shared by the train-stage tests (imported by conftest.py and test modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import draw_image

PROMPT = "Describe la imagen con su contexto cultural."
GOOD = "Una mujer vende tamales en un mercado de Oaxaca."
BAD = "Comida."
COUNTRIES = ("MX", "MX", "PE", "BR")
LANGUAGES = ("es-MX", "es-MX", "es-PE", "pt-BR")

# Fast CPU settings for every training test: one tiny step with an evaluation before it (so its
# grad_norm is the "after an evaluation" check) and after it; nothing written that is not needed.
FAST = [
    "max_steps=1",
    "eval_on_start=true",
    "per_device_train_batch_size=2",
    "gradient_accumulation_steps=1",
    "per_device_eval_batch_size=2",
    "learning_rate=1e-3",
    "warmup_steps=0",
    "lr_scheduler_type=constant",
    "eval_steps=1",
    "logging_steps=1",
    "save_strategy=no",
    "lora_r=4",
    "lora_alpha=8",
    "dtype=float32",
    "bnb_4bit_compute_dtype=float32",
    "emissions=false",
    "model_card=false",
    "curves=false",
    "dataloader_num_workers=0",
]


def _rows(kind: str, n: int, offset: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        meta = {"country": COUNTRIES[i % 4], "language": LANGUAGES[i % 4]}
        image = [draw_image(offset + i, (48, 40))]
        prompt = [{"role": "user", "content": PROMPT}]
        if kind == "dpo":
            body = {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": GOOD}],
                "rejected": [{"role": "assistant", "content": BAD}],
            }
        elif kind == "kto":
            text = GOOD if i % 2 == 0 else BAD
            body = {
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": text}],
                "label": i % 2 == 0,
            }
        elif kind == "sft":
            body = {"messages": [*prompt, {"role": "assistant", "content": GOOD}]}
        else:  # sft in the prompt/completion layout
            body = {"prompt": prompt, "completion": [{"role": "assistant", "content": GOOD}]}
        rows.append({"images": image, **body, **meta})
    return rows


def write_dataset(kind: str, path: Path, train: int = 4, test: int = 2) -> Path:
    from datasets import Dataset, DatasetDict

    splits = {"train": Dataset.from_list(_rows(kind, train, 0))}
    if test:
        splits["test"] = Dataset.from_list(_rows(kind, test, 100))
    DatasetDict(splits).save_to_disk(str(path))
    return path
