"""The shared loading layer (vlm.models): what training saw is what inference gets.

Two short SFT runs of the tiny Qwen2.5-VL (fp32 LoRA, one step each) are the fixtures: loading a run
through ``load_for_inference`` must reproduce the logits the training-time model computed at the end
of training, several adapters must load on one base under their names (and ``disable_adapter`` must
give the base's logits), and each wrong input must be one ``ModelLoadError`` line.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from transformers import TrainerCallback  # noqa: E402

from data_tools.errors import UserError  # noqa: E402
from tests.helpers import draw_image  # noqa: E402
from tests.vlm.train.train_helpers import FAST, write_dataset  # noqa: E402
from vlm.models import ModelLoadError, load_for_inference, load_model, load_processor  # noqa: E402

PROMPT = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe la imagen."}]}]


def _inputs(processor: Any) -> dict[str, Any]:
    text = processor.apply_chat_template(PROMPT, add_generation_prompt=True)
    return processor(text=[text], images=[[draw_image(11, (48, 40))]], return_tensors="pt")


class _LogitsAtEnd(TrainerCallback):
    """Records the training-time model's logits on fixed inputs when training ends."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        self.inputs = inputs
        self.logits: Any = None

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            self.logits = model(**self.inputs).logits.detach().clone()
        model.train(was_training)


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory) -> dict[str, Any]:
    """Two SFT runs on one tiny base (different seeds), with the training-time logits of each."""
    from vlm.train.cli import parse_args
    from vlm.train.trainer import run_training

    base = tiny_model("qwen2_5_vl")
    root = tmp_path_factory.mktemp("runs")
    data = write_dataset("sft", root / "data")
    inputs = _inputs(load_processor(base))
    result: dict[str, Any] = {"base": base, "inputs": inputs}
    for name, seed in (("sft-a", 1), ("sft-b", 2)):
        script, args, model_args = parse_args(
            [
                "method=sft",
                f"model_name_or_path={base}",
                f"dataset_name={data}",
                f"output_dir={root / name}",
                *FAST,
                "load_in_4bit=false",
                "eval_on_start=false",
                "eval_strategy=no",
                "lora_dropout=0.0",
                f"seed={seed}",
            ]
        )
        probe = _LogitsAtEnd(inputs)
        run_training(script, args, model_args, callbacks=[probe])
        assert probe.logits is not None
        result[name] = (root / name, probe.logits)
    return result


def test_a_loaded_run_reproduces_the_training_time_logits(runs):
    run_dir, trained = runs["sft-a"]
    loaded = load_for_inference(run_dir, dtype="float32")
    assert loaded.adapters == {"sft-a": run_dir}
    assert loaded.base_id == str(runs["base"])
    assert loaded.spec.name == "qwen2_5_vl"
    assert loaded.processor.tokenizer.padding_side == "left"
    with torch.no_grad():
        logits = loaded.model(**_inputs(loaded.processor)).logits
        with loaded.model.disable_adapter():
            base = loaded.model(**_inputs(loaded.processor)).logits
    assert (logits - trained).abs().max().item() < 1e-5
    assert (
        logits - base
    ).abs().max().item() > 1e-6  # the adapter changed something, so the check above bites


def test_several_adapters_load_under_their_names_on_one_base(runs):
    (dir_a, logits_a), (dir_b, logits_b) = runs["sft-a"], runs["sft-b"]
    loaded = load_for_inference(
        runs["base"], adapters=[dir_a, dir_b], adapter_names=["A", "B"], dtype="float32"
    )
    assert set(loaded.adapters) == {"A", "B"}
    assert loaded.run_settings["runs"]["A"]["method"] == "sft"
    inputs = _inputs(loaded.processor)
    model = loaded.model
    with torch.no_grad():
        model.set_adapter("B")
        got_b = model(**inputs).logits
        model.set_adapter("A")
        got_a = model(**inputs).logits
        with model.disable_adapter():
            got_base = model(**inputs).logits
    plain = load_model(runs["base"], dtype="float32")
    with torch.no_grad():
        expected_base = plain(**inputs).logits
    assert (got_a - logits_a).abs().max().item() < 1e-5
    assert (got_b - logits_b).abs().max().item() < 1e-5
    assert (got_a - got_b).abs().max().item() > 1e-6
    assert (got_base - expected_base).abs().max().item() < 1e-5


def test_default_adapter_names_come_from_the_run_folders(runs):
    loaded = load_for_inference(runs["base"], adapters=[runs["sft-a"][0], runs["sft-b"][0]], dtype="float32")
    assert list(loaded.adapters) == ["sft-a", "sft-b"]


def test_an_adapter_trained_on_another_base_is_one_line(runs, tiny_model, tmp_path):
    other = tiny_model("llava")
    with pytest.raises(ModelLoadError, match=r"was trained on .*qwen2_5_vl, not on .*llava") as info:
        load_for_inference(other, adapters=[runs["sft-a"][0]])
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UserError)


def test_an_adapter_whose_shapes_do_not_fit_is_one_line(runs, tmp_path):
    """A base with a wider MLP than the run's (the name check is switched off to reach the shapes)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    base = runs["base"]
    config = AutoConfig.from_pretrained(base)
    config.text_config.intermediate_size *= 2
    wide = tmp_path / "wide"
    AutoModelForImageTextToText.from_config(config).save_pretrained(wide)
    load_processor(base).save_pretrained(wide)
    with pytest.raises(ModelLoadError, match=r"does not fit the base .*size mismatch") as info:
        load_for_inference(wide, adapters=[runs["sft-a"][0]], check_base=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "nowhere", "does not exist"),
        (lambda tmp: tmp, "has no adapter_config.json"),
    ],
)
def test_a_missing_or_wrong_adapter_folder_is_one_line(runs, tmp_path, make, message):
    with pytest.raises(ModelLoadError, match=message):
        load_for_inference(runs["base"], adapters=[make(tmp_path)])


def test_load_model_refuses_a_run_folder_and_names_its_base(runs):
    with pytest.raises(ModelLoadError, match=r"is a LoRA adapter \(trained on .*qwen2_5_vl\)"):
        load_model(runs["sft-a"][0])


def test_mismatched_adapter_names_are_refused(runs):
    with pytest.raises(ModelLoadError, match="2 adapters but 1 adapter names"):
        load_for_inference(runs["base"], adapters=[runs["sft-a"][0], runs["sft-b"][0]], adapter_names=["x"])


def test_processor_applies_the_image_budget_and_padding_side(tiny_model):
    """The budget caps the worst case (Qwen's pixel budget); the default leaves the tiny processor alone."""
    base = tiny_model("qwen2_5_vl")
    default = load_processor(base)
    capped = load_processor(base, max_image_tokens=4, padding_side="left")
    assert capped.image_processor.size["longest_edge"] < default.image_processor.size["longest_edge"]
    assert capped.tokenizer.padding_side == "left"
    with pytest.raises(ModelLoadError, match="padding_side"):
        load_processor(base, padding_side="middle")


def test_unreadable_model_is_one_line(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot"):
        load_model(tmp_path / "missing-model")


def test_llava_next_runs_restore_their_grids_and_clashing_grids_are_refused(tiny_model, tmp_path):
    """A run trained with a lowered budget prunes LLaVA-NeXT's anyres grids; loading restores them on the
    processor and on the model config (for the base too), and two runs with different grids are refused."""
    from vlm.train.cli import parse_args
    from vlm.train.trainer import run_training

    base = tiny_model("llava_next")
    data = write_dataset("sft", tmp_path / "data")
    script, args, model_args = parse_args(
        [
            "method=sft",
            f"model_name_or_path={base}",
            f"dataset_name={data}",
            f"output_dir={tmp_path / 'pruned'}",
            *FAST,
            "load_in_4bit=false",
            "eval_strategy=no",
            "eval_on_start=false",
            "max_image_tokens=40",
        ]
    )
    run = run_training(script, args, model_args).output_dir
    full = load_processor(base).image_processor.image_grid_pinpoints
    loaded = load_for_inference(run, dtype="float32")
    pruned = loaded.processor.image_processor.image_grid_pinpoints
    assert len(pruned) < len(full)
    assert loaded.model.config.image_grid_pinpoints == pruned
    assert (
        loaded.processor_for(None).image_processor.image_grid_pinpoints == pruned
    )  # the base follows the model
    with torch.no_grad():
        loaded.model(**_inputs(loaded.processor))  # features and placeholders agree

    other = tmp_path / "full-grids"
    shutil.copytree(run, other)
    config = json.loads((other / "mirada_train_config.json").read_text())
    config["model"]["max_image_tokens"] = None
    (other / "mirada_train_config.json").write_text(json.dumps(config))
    load_processor(base).save_pretrained(
        other
    )  # the unpruned processor, as a run at the default budget saves
    with pytest.raises(ModelLoadError, match=r"different image grids"):
        load_for_inference(base, adapters=[run, other])
