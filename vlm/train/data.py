"""Training data for ``mirada train``: load, check the format, drop over-long rows, count what was kept.

Datasets arrive as ``datasets.save_to_disk`` folders written by ``mirada prefs`` (``<name>_image_dpo``,
``<name>_image_kto``, ``<name>_image_sft``, each with train/test splits) or as Hub ids, in the formats of
DESIGN §3. Two things are checked here, before any model is loaded, because TRL finds them late or
never:

- the columns match the method (KTO with images accepts only the unpaired format; a paired file gets
  an error that names the export to use instead);
- no row is longer than ``max_tokens``. TRL's ``max_length`` must stay ``None`` for vision, since
  truncation cuts image tokens and the model then fails with "Image features and image tokens do not
  match". Rows are measured with TRL's own collator for the method (chat template, image expansion and
  all), so the count is exact for every family; the trade-off is one processor call per row.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from transformers import ProcessorMixin

log = logging.getLogger("vlm.train")

__all__ = [
    "FORMATS",
    "DataFormatError",
    "DataSummary",
    "check_format",
    "filter_overlong",
    "load_splits",
    "row_lengths",
]

FORMATS: dict[str, tuple[tuple[str, ...], ...]] = {
    "dpo": (("images", "prompt", "chosen", "rejected"),),
    "kto": (("images", "prompt", "completion", "label"),),
    "sft": (("images", "messages"), ("images", "prompt", "completion")),
}
"""Accepted column sets per method (any one set must be present); DESIGN §3."""

_EXAMPLES = {
    "dpo": '{"images": [PIL.Image], "prompt": [{"role": "user", "content": "…"}], '
    '"chosen": [{"role": "assistant", "content": "…"}], "rejected": [{"role": "assistant", "content": "…"}]}',
    "kto": '{"images": [PIL.Image], "prompt": [...], "completion": [{"role": "assistant", "content": "…"}], '
    '"label": true}',
    "sft": '{"images": [PIL.Image], "messages": [{"role": "user", …}, {"role": "assistant", …}]}',
}


class DataFormatError(ValueError):
    """The dataset cannot be used for the method; the message says what to change."""


@dataclass
class DataSummary:
    """What happened to each split, for the log and the Model Card."""

    rows: dict[str, int] = field(default_factory=dict)
    dropped_overlong: dict[str, int] = field(default_factory=dict)
    longest: dict[str, int] = field(default_factory=dict)
    countries: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)


def load_splits(name: str, config: str | None = None) -> DatasetDict:
    """A ``DatasetDict`` from a ``save_to_disk`` folder (a lone ``Dataset`` becomes its ``train`` split)
    or, when ``name`` is not a local folder, from the Hub."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataFormatError(f"{name} is a file; pass the folder written by `Dataset.save_to_disk`")
        try:
            loaded = load_from_disk(str(path))
        except FileNotFoundError as exc:
            raise DataFormatError(
                f"{name} is not a `datasets.save_to_disk` folder ({exc}); pass the export folder, "
                "e.g. ws/exports/prefs/<name>_image_dpo"
            ) from None
        return DatasetDict({"train": loaded}) if isinstance(loaded, Dataset) else loaded
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise DataFormatError(f"dataset folder not found: {name}")
    return load_dataset(name, name=config)


def check_format(dataset: Dataset, method: str, split: str) -> tuple[str, ...]:
    """Raise :class:`DataFormatError` unless ``dataset`` has the columns ``method`` needs; return them."""
    columns = set(dataset.column_names)
    for required in FORMATS[method]:
        if set(required) <= columns:
            if method == "kto" and {"chosen", "rejected"} & columns:
                break  # paired columns next to unpaired ones: TRL refuses vision KTO on them
            return required
    hint = ""
    if method == "kto" and {"chosen", "rejected"} <= columns:
        hint = (
            " Vision KTO needs the unpaired format (TRL refuses to unpair image datasets): use the "
            "<name>_image_kto export of `mirada prefs`, or `trl.data_utils.unpair_preference_dataset`."
        )
    elif method == "dpo" and {"completion", "label"} <= columns:
        hint = " This looks like a KTO dataset: use method=kto, or the <name>_image_dpo export."
    if "images" not in columns and "image" not in columns:
        hint += " There is no `images` column: these trainers are for image+text data."
    wanted = " or ".join("{" + ", ".join(cols) + "}" for cols in FORMATS[method])
    raise DataFormatError(
        f"{method.upper()} needs columns {wanted}; split {split!r} has {sorted(columns)}.{hint}\n"
        f"  expected row: {_EXAMPLES[method]}"
    )


def _collator(method: str, processor: ProcessorMixin, sample: dict[str, Any]) -> Any:
    """TRL's own vision collator for ``method``, without truncation: the reference for row lengths."""
    if method == "dpo":
        from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

        return DataCollatorForVisionPreference(processor=processor, max_length=None)
    if method == "kto":
        from trl.trainer.kto_trainer import DataCollatorForVisionUnpairedPreference

        return DataCollatorForVisionUnpairedPreference(
            processor=processor, max_length=None, calculate_kl=False
        )
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    return DataCollatorForVisionLanguageModeling(
        processor=processor, max_length=None, completion_only_loss="messages" not in sample
    )


def row_lengths(
    dataset: Dataset,
    method: str,
    processor: ProcessorMixin,
    collator: Callable[[list[dict]], Any] | None = None,
) -> list[int]:
    """Tokens of each row's longest sequence as the trainer will see it (image tokens included).

    For DPO that is ``max(prompt+chosen, prompt+rejected)``. ``collator`` is the one training will use
    when it is not TRL's (a prefix-LM family's). The collator mutates its input, so each row is passed
    as a shallow copy.
    """
    if len(dataset) == 0:
        return []
    collator = collator or _collator(method, processor, dataset[0])
    lengths = []
    for row in dataset:
        batch = collator([dict(row)])
        lengths.append(int(batch["attention_mask"].sum(dim=-1).max()))
    return lengths


def filter_overlong(
    dataset: Dataset,
    method: str,
    processor: ProcessorMixin,
    max_tokens: int | None,
    split: str,
    collator: Callable[[list[dict]], Any] | None = None,
) -> tuple[Dataset, int, int]:
    """Drop rows longer than ``max_tokens``; return ``(kept, dropped, longest)`` and log the count.

    Raises :class:`DataFormatError` when nothing is left, naming the longest row, so a budget that is
    too small fails before training instead of training on nothing.
    """
    if max_tokens is None or len(dataset) == 0:
        return dataset, 0, 0
    lengths = row_lengths(dataset, method, processor, collator)
    keep = [i for i, n in enumerate(lengths) if n <= max_tokens]
    dropped = len(dataset) - len(keep)
    longest = max(lengths)
    if dropped:
        log.warning(
            "%s: dropped %d of %d rows longer than max_tokens=%d (longest: %d tokens); raise max_tokens or lower "
            "max_image_tokens to keep them",
            split,
            dropped,
            len(dataset),
            max_tokens,
            longest,
        )
    else:
        log.info(
            "%s: all %d rows fit in max_tokens=%d (longest: %d tokens)",
            split,
            len(dataset),
            max_tokens,
            longest,
        )
    if not keep:
        raise DataFormatError(
            f"every row of split {split!r} is longer than max_tokens={max_tokens} (shortest: {min(lengths)} tokens); "
            "raise max_tokens or lower max_image_tokens"
        )
    return (dataset.select(keep) if dropped else dataset), dropped, longest


def describe(dataset: Dataset, summary: DataSummary) -> None:
    """Add the split's country / language / label counts to ``summary`` (for the card's bias section)."""
    columns = set(dataset.column_names)
    for column, counter in (("country", summary.countries), ("language", summary.languages)):
        if column in columns:
            counter.update(str(v) for v in dataset[column] if v)
    if "label" in columns:
        summary.labels.update("desirable" if v else "undesirable" for v in dataset["label"])


def uses_messages(dataset: Dataset) -> bool:
    """Whether an SFT dataset is in the ``messages`` format (vs prompt/completion)."""
    return "messages" in dataset.column_names
