"""Settings: TRL's dataclasses, defaults < YAML < command line, unknown keys rejected, validation messages.

Nothing here trains; validation reads at most a tiny model's config.json.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from data_tools.config import ConfigError
from data_tools.stage_args import UserError
from vlm.train.cli import METHOD_CONFIGS, _config_class, main, parse_args
from vlm.train.model_config import MiradaModelConfig
from vlm.train.script_args import TrainScriptArguments
from vlm.train.validation import validate

ROOT = Path(__file__).resolve().parents[3]
PRESETS = sorted((ROOT / "configs" / "train").glob("*.yaml"))
REQUIRED_PRESETS = {
    "qwen2_5_vl-7b-dpo",
    "qwen2_5_vl-7b-kto",
    "idefics3-8b-dpo",
    "llava_next-mistral-7b-dpo",
    "gemma3-4b-dpo",
    "smolvlm-sft",
    "smolvlm-dpo",
    "tiny-qwen2_5_vl-dpo",
    "tiny-qwen2_5_vl-kto",
    "tiny-qwen2_5_vl-sft",
}


@pytest.mark.parametrize("method", list(METHOD_CONFIGS))
def test_config_classes_subclass_trl_and_do_not_collide(method):
    import trl

    cls = _config_class(method)
    assert issubclass(cls, getattr(trl, f"{method.upper()}Config"))
    assert issubclass(MiradaModelConfig, trl.ModelConfig)
    names = [{f.name for f in dataclasses.fields(c)} for c in (TrainScriptArguments, cls, MiradaModelConfig)]
    assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]
    for c in (TrainScriptArguments, cls, MiradaModelConfig):
        undocumented = [f.name for f in dataclasses.fields(c) if not f.metadata.get("help") and f.init]
        assert not undocumented or c is cls, undocumented  # TRL/transformers document their own fields


def test_mirada_defaults_are_the_vision_qlora_recipe():
    script, args, model = parse_args(["dataset_name=x"])
    assert script.method == "dpo" and model.model_name_or_path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert args.max_length is None and args.activation_checkpointing is True
    assert model.load_in_4bit and model.use_bnb_nested_quant and model.bnb_4bit_quant_type == "nf4"
    assert model.bnb_4bit_compute_dtype == "bfloat16" and model.use_peft
    assert args.eval_strategy == "steps" and args.seed == 42
    _, kto_args, _ = parse_args(["method=kto", "dataset_name=x"])
    assert type(kto_args).__name__ == "KTOConfig" and kto_args.per_device_train_batch_size == 2


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_parses_and_validates(preset, tiny_model):
    script, args, model = parse_args(["--config", str(preset), "dataset_name=somosnlp/t_image_dpo"])
    assert model.family, "presets name their family, so validation needs no network"
    if preset.stem.startswith("tiny-"):  # their model is built locally first (see the preset's comment)
        script, args, model = parse_args(
            [
                "--config",
                str(preset),
                "dataset_name=somosnlp/t_image_dpo",
                f"model_name_or_path={tiny_model(model.family)}",
            ]
        )
    from vlm.registry import get_spec

    missing = get_spec(model.family).missing_requirements()
    if missing:  # optional processor dependencies are checked only when used, with an install hint
        with pytest.raises(ConfigError, match=f"pip install {' '.join(missing)}"):
            validate(script, args, model)
    else:
        validate(script, args, model)


def test_required_presets_exist():
    assert {p.stem for p in PRESETS} >= REQUIRED_PRESETS


def test_precedence_defaults_yaml_command_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("method: kto\nlearning_rate: 1.0e-4\nlora_r: 8\nbeta: 0.2\n")
    script, args, model = parse_args(["--config", str(config), "learning_rate=3e-4", "--beta", "0.3"])
    assert script.method == "kto"
    assert args.learning_rate == pytest.approx(3e-4)  # command line beats YAML
    assert args.beta == pytest.approx(0.3)
    assert model.lora_r == 8  # YAML beats default
    assert model.lora_alpha == 32  # default
    _, args2, _ = parse_args([f"--config={config}", "--learning_rate=5e-4"])
    assert args2.learning_rate == pytest.approx(5e-4)


def test_unknown_yaml_key_is_an_error_with_a_hint(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("learnig_rate: 1.0e-4\n")
    with pytest.raises(ConfigError, match=r"learnig_rate.*did you mean 'learning_rate'"):
        parse_args(["--config", str(config)])


def test_set_overrides_like_every_other_stage(tmp_path):
    """`--set key=value` (the other stages' syntax) works in train too, beside `key=value`."""
    config = tmp_path / "c.yaml"
    config.write_text("method: kto\nlearning_rate: 1.0e-4\n")
    script, args, model = parse_args(
        ["--config", str(config), "--set", "learning_rate=3e-4", "--set=lora_r=4", "--set", "method=sft"]
    )
    assert script.method == "sft"
    assert args.learning_rate == pytest.approx(3e-4)
    assert model.lora_r == 4
    with pytest.raises(ConfigError, match="--set needs KEY=VALUE"):
        parse_args(["--set", "learning_rate"])


@pytest.mark.parametrize(
    "argv", [["lora_alpah=8"], ["--lora_alpah", "8"], ["--lora_alpah=8"], ["--set", "lora_alpah=8"]]
)
def test_unknown_command_line_key_is_an_error(argv):
    with pytest.raises(ConfigError, match=r"lora_alpah.*did you mean 'lora_alpha'"):
        parse_args(argv)


def test_unknown_method_is_an_error():
    with pytest.raises(ConfigError, match="unknown method 'orpo'"):
        parse_args(["method=orpo"])


def _validate(tiny_model, *extra):
    script, args, model = parse_args(
        [f"model_name_or_path={tiny_model('qwen2_5_vl')}", "dataset_name=x", "output_dir=/tmp/unused", *extra]
    )
    return validate(script, args, model)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["use_peft=false"], "4-bit/8-bit needs LoRA"),
        (["max_length=512"], "would truncate image tokens"),
        (["method=kto", "per_device_train_batch_size=1"], "KTO needs per_device_train_batch_size >= 2"),
        (["method=kto", "precompute_ref_log_probs=true"], "precompute_ref_log_probs is not supported"),
        (["merge=true", "use_peft=false", "load_in_4bit=false"], "merge needs a LoRA adapter"),
        (["family=paligemma"], "PaliGemma 2 cannot be trained with DPO"),
        (["family=qwen3_vl"], "unknown model family 'qwen3_vl'"),
        (["emissions_country=XX"], "not an ISO 3166"),
        (["method=sft", "packing=true"], "packing and padding_free"),
    ],
)
def test_validation_messages(tiny_model, extra, message):
    with pytest.raises(ConfigError, match=message):
        _validate(tiny_model, *extra)


def test_family_is_read_from_the_checkpoint(tiny_model):
    assert _validate(tiny_model).name == "qwen2_5_vl"


def test_push_without_token_is_a_clear_error(tiny_model, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    code = main(
        [
            f"model_name_or_path={tiny_model('qwen2_5_vl')}",
            "dataset_name=x",
            "--push_to_hub",
            "hub_model_id=org/m",
        ],
        prog="mirada train",
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "mirada train: error:" in err and "HF_TOKEN" in err and "Traceback" not in err


def test_token_on_the_command_line_is_refused(tiny_model, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    with pytest.raises(ConfigError, match="do not pass hub_token"):
        _validate(tiny_model, "push_to_hub=true", "hub_model_id=org/m", "hub_token=hf_y")


def test_missing_dataset_is_reported_before_loading_the_model(tiny_model, capsys):
    code = main(
        [
            f"model_name_or_path={tiny_model('qwen2_5_vl')}",
            "dataset_name=/nonexistent/t_image_dpo",
            "emissions=false",
        ]
    )
    assert code == 2 and "dataset folder not found" in capsys.readouterr().err


def test_mirada_train_help_shows_miradas_settings_first_and_points_to_help_all(capsys):
    from data_tools.cli import main as mirada

    assert mirada(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: mirada train" in out and "--max_tokens" in out and "--beta" in out and "--lora_r" in out
    assert (
        out.index("Mirada's run options")
        < out.index("--max_tokens")
        < out.index("--lora_r")
        < out.index("--beta")
    )
    assert "--help-all" in out and "--adam_beta1" not in out  # TRL's full list is behind --help-all
    assert "ws/exports/prefs/" in out and "ws/exports/comida" not in out  # the paths `mirada prefs` writes
    assert len(out.splitlines()) < 300
    with pytest.raises(SystemExit) as exit_info:
        mirada(["train", "--help-all"])
    assert exit_info.value.code == 0
    assert "--adam_beta1" in capsys.readouterr().out


def test_adapter_folder_without_adapter_config_is_an_error(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match=r"no adapter_config\.json"):
        _validate(tiny_model, f"adapter_name_or_path={tmp_path}")


def test_user_error_type_is_shared_with_data_tools():
    assert issubclass(UserError, RuntimeError)


def test_a_tiny_presets_missing_model_says_how_to_build_it(tmp_path, monkeypatch):
    """The tiny presets name `demo/models/tiny-…`, relative to where the command runs."""
    root = Path(__file__).resolve().parents[3]
    monkeypatch.chdir(tmp_path)
    script, args, model = parse_args(["--config", str(root / "configs/train/tiny-qwen2_5_vl-dpo.yaml")])
    with pytest.raises(
        ConfigError,
        match=r"does not exist \(relative paths are read from .*python -m vlm\.tiny qwen2_5_vl demo/models/",
    ):
        validate(script, args, model)
