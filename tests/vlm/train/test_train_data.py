"""Training data: formats per method, over-long rows dropped with a count, splits and columns."""

from __future__ import annotations

import logging

import pytest

from tests.vlm.train.train_helpers import GOOD, write_dataset
from vlm.train.data import DataFormatError, check_format, filter_overlong, load_splits, row_lengths


@pytest.fixture(scope="module")
def processor(tiny_model):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model("qwen2_5_vl"))


@pytest.mark.parametrize(
    ("method", "kind"), [("dpo", "dpo"), ("kto", "kto"), ("sft", "sft"), ("sft", "sft_pc")]
)
def test_accepted_formats(pref_data, method, kind):
    data = load_splits(str(pref_data(kind)))
    assert check_format(data["train"], method, "train")


def test_kto_on_paired_data_points_to_the_unpaired_export(pref_data):
    data = load_splits(str(pref_data("dpo")))
    with pytest.raises(DataFormatError, match=r"(?s)KTO needs columns.*<name>_image_kto.*expected row"):
        check_format(data["train"], "kto", "train")


def test_dpo_on_kto_data_suggests_method_kto(pref_data):
    data = load_splits(str(pref_data("kto")))
    with pytest.raises(DataFormatError, match="use method=kto"):
        check_format(data["train"], "dpo", "train")


def test_load_splits_accepts_a_lone_dataset_and_rejects_bad_paths(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"a": 1}]).save_to_disk(str(tmp_path / "lone"))
    assert list(load_splits(str(tmp_path / "lone"))) == ["train"]
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataFormatError, match="is a file"):
        load_splits(str(tmp_path / "file.txt"))
    with pytest.raises(DataFormatError, match="not found"):
        load_splits(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"not a `datasets\.save_to_disk` folder"):
        load_splits(str(tmp_path / "empty"))


def test_row_lengths_equal_what_the_trainer_collates(pref_data, processor):
    """Reference: the batch the DPO trainer's own collator builds from the same row."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    train = load_splits(str(pref_data("dpo")))["train"]
    lengths = row_lengths(train, "dpo", processor)
    batch = DataCollatorForVisionPreference(processor=processor)([dict(train[0])])
    assert lengths[0] == int(batch["attention_mask"].sum(-1).max())
    assert all(n > 16 for n in lengths)  # the image tokens are counted


def test_overlong_rows_are_dropped_and_counted(tmp_path, processor, caplog):
    from datasets import load_from_disk

    path = write_dataset("dpo", tmp_path / "d", train=4, test=0)
    data = load_from_disk(str(path))["train"]
    long = data.map(
        lambda row, i: {"chosen": [{"role": "assistant", "content": GOOD * (6 if i % 2 else 1)}]},
        with_indices=True,
    )
    lengths = row_lengths(long, "dpo", processor)
    limit = min(lengths) + 1
    with caplog.at_level(logging.WARNING, logger="vlm.train"):
        kept, dropped, longest = filter_overlong(long, "dpo", processor, limit, "train")
    assert (len(kept), dropped, longest) == (2, 2, max(lengths))
    assert f"dropped 2 of 4 rows longer than max_tokens={limit}" in caplog.text
    with pytest.raises(DataFormatError, match="every row of split 'train' is longer"):
        filter_overlong(long, "dpo", processor, 5, "train")
    assert filter_overlong(long, "dpo", processor, None, "train")[1] == 0


def test_prepare_data_keeps_method_columns_and_counts_metadata(settings):
    from vlm.train.preparation import prepare_data

    script, args, model = settings("dpo", "qwen2_5_vl", "max_train_samples=3")
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model.model_name_or_path)
    train, test, summary = prepare_data(script, args, processor)
    assert train.column_names == ["images", "prompt", "chosen", "rejected"]
    assert len(train) == 3 and len(test) == 2
    assert summary.rows == {"train": 3, "test": 2}
    assert summary.countries == {"MX": 2, "PE": 1}
    assert summary.languages["es-MX"] == 2


def test_missing_test_split_is_an_error_unless_evaluation_is_off(tmp_path, settings):
    from transformers import AutoProcessor

    from data_tools.stage_args import UserError
    from vlm.train.preparation import prepare_data

    path = write_dataset("dpo", tmp_path / "no_test", train=4, test=0)
    script, args, model = settings("dpo", "qwen2_5_vl", f"dataset_name={path}")
    processor = AutoProcessor.from_pretrained(model.model_name_or_path)
    with pytest.raises(UserError, match=r"no split 'test' to evaluate on.*eval_strategy=no"):
        prepare_data(script, args, processor)
    script, args, model = settings(
        "dpo", "qwen2_5_vl", f"dataset_name={path}", "eval_strategy=no", "eval_on_start=false"
    )
    assert prepare_data(script, args, processor)[1] is None
