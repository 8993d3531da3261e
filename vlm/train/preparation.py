"""Data preparation for a run: load the splits, check the method's format, cap sizes, drop over-long rows.

Row lengths are measured with the collator training will use, so a row dropped here is exactly a
row that would have been truncated (and broken its image tokens) in training. The counts go to
:class:`vlm.train.data.DataSummary` and from there to the Model Card.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from data_tools.stage_args import UserError
from vlm.registry import ModelSpec
from vlm.train.data import DataFormatError, DataSummary, check_format, describe, filter_overlong, load_splits
from vlm.train.script_args import TrainScriptArguments

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import ProcessorMixin, TrainingArguments

    from vlm.train.collators import PrefixLMCollator

log = logging.getLogger("vlm.train")

__all__ = ["prepare_data", "sft_collator"]


def sft_collator(spec: ModelSpec, method: str, processor: ProcessorMixin) -> PrefixLMCollator | None:
    """The collator a family needs instead of TRL's (prefix-LM SFT), or ``None`` for TRL's own."""
    if not (spec.prefix_lm and method == "sft"):
        return None
    from vlm.train.collators import PrefixLMCollator

    return PrefixLMCollator(processor)


def prepare_data(
    script: TrainScriptArguments,
    args: TrainingArguments,
    processor: ProcessorMixin,
    collator: Callable[[list[dict]], Any] | None = None,
) -> tuple[Dataset, Dataset | None, DataSummary]:
    """Load the splits, check the format, cap sizes, drop over-long rows; record counts for the card.

    ``collator`` is the one training uses when it is not TRL's; row lengths are measured with it.
    """
    from datasets import DatasetDict

    method = script.method
    try:
        splits: DatasetDict = load_splits(script.dataset_name, script.dataset_config)
    except DataFormatError as exc:
        raise UserError(str(exc)) from None
    want_eval = args.eval_strategy != "no"
    if script.dataset_train_split not in splits:
        raise UserError(
            f"{script.dataset_name} has no split {script.dataset_train_split!r} (it has {sorted(splits)}); "
            "set dataset_train_split"
        )
    if want_eval and script.dataset_test_split not in splits:
        raise UserError(
            f"{script.dataset_name} has no split {script.dataset_test_split!r} to evaluate on (it has "
            f"{sorted(splits)}); set dataset_test_split, or eval_strategy=no"
        )
    summary = DataSummary()
    prepared: dict[str, Dataset] = {}
    wanted = [(script.dataset_train_split, script.max_train_samples)]
    if want_eval:
        wanted.append((script.dataset_test_split, script.max_eval_samples))
    for split, limit in wanted:
        dataset = splits[split]
        try:
            columns = check_format(dataset, method, split)
        except DataFormatError as exc:
            raise UserError(str(exc)) from None
        if limit is not None:
            dataset = dataset.select(range(min(limit, len(dataset))))
        try:
            dataset, dropped, longest = filter_overlong(
                dataset, method, processor, script.max_tokens, split, collator
            )
        except DataFormatError as exc:
            raise UserError(str(exc)) from None
        if split == script.dataset_train_split:
            describe(dataset, summary)
        summary.rows[split] = len(dataset)
        summary.dropped_overlong[split] = dropped
        summary.longest[split] = longest
        # Only the method's columns go to TRL: metadata columns (country, language…) stay in the card.
        prepared[split] = dataset.select_columns(list(columns))
    if method == "sft" and collator is not None:
        args.assistant_only_loss = False  # the family's collator builds the labels itself
    elif method == "sft":
        resolve_sft_loss(args, prepared[script.dataset_train_split], processor)
    train = prepared[script.dataset_train_split]
    if method == "kto" and len(train) < args.per_device_train_batch_size:
        raise UserError(
            f"KTO needs at least {args.per_device_train_batch_size} training rows; got {len(train)}"
        )
    return train, prepared.get(script.dataset_test_split) if want_eval else None, summary


def resolve_sft_loss(args: TrainingArguments, dataset: Dataset, processor: ProcessorMixin) -> None:
    """``assistant_only_loss=None`` → on for ``messages`` data when TRL can mark the template's assistant turns."""
    if not getattr(args, "assistant_only_loss_auto", False):
        return
    if "messages" not in dataset.column_names:
        args.assistant_only_loss = False
        return
    from trl.chat_template_utils import get_training_chat_template

    try:
        get_training_chat_template(processor)
        args.assistant_only_loss = True
    except (ValueError, KeyError, NotImplementedError) as exc:
        log.info("assistant_only_loss off: TRL cannot mark this chat template's assistant turns (%s)", exc)
        args.assistant_only_loss = False
