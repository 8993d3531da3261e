"""Train stage: align a vision-language model with QLoRA SFT, DPO or KTO through TRL.

    mirada train --config configs/train/qwen2_5_vl-7b-dpo.yaml dataset_name=ws/exports/prefs/comida_image_dpo
    mirada train --config configs/train/qwen2_5_vl-7b-kto.yaml dataset_name=ws/exports/prefs/comida_image_kto
    mirada train --config configs/train/smolvlm-sft.yaml dataset_name=ws/exports/prefs/comida_image_sft
    mirada train --config configs/train/smolvlm-dpo.yaml dataset_name=ws/exports/prefs/comida_image_dpo \
        adapter_name_or_path=runs/smolvlm-sft          # DPO from the SFT adapter
    python -m vlm.tiny qwen2_5_vl demo/models/tiny-qwen2_5_vl   # from the repository root: a tiny offline model
    mirada train --config configs/train/tiny-qwen2_5_vl-dpo.yaml dataset_name=ws/exports/prefs/comida_image_dpo \
        --set max_steps=4 --set output_dir=runs/tiny
    mirada train --config … --resume                    # continue from the newest checkpoint
    mirada train --config … --overwrite                 # replace the finished run in output_dir
    HF_TOKEN=… mirada train --config … --push_to_hub --hub_model_id org/name
    accelerate launch --config_file configs/accelerate/ddp.yaml -m vlm.train --config …   # several GPUs
    python -m vlm.train --config …

Settings: TRL's own dataclasses (SFTConfig / DPOConfig / KTOConfig, and ModelConfig) with Mirada's
defaults, plus the run options in vlm/train/script_args.py. Precedence: defaults < YAML (--config) <
command line, as `--set key=value` (as every stage), `key=value`, `--key value` or `--key=value`. Unknown
keys are an error, with a "did you mean". `--help` shows Mirada's settings and the most-used training ones
with their defaults (add `method=kto` for KTO's); `--help-all` lists all of TRL's and transformers'.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from data_tools.config import ConfigError, did_you_mean, read_yaml_mapping
from data_tools.errors import UserError
from data_tools.logs import setup_logging

__all__ = ["METHOD_CONFIGS", "main", "parse_args"]

METHOD_CONFIGS: dict[str, str] = {
    "sft": "vlm.train.sft_config:SFTConfig",
    "dpo": "vlm.train.dpo_config:DPOConfig",
    "kto": "vlm.train.kto_config:KTOConfig",
}
DEFAULT_METHOD = "dpo"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option list, and the docstring's commands kept as written."""


def _config_class(method: str) -> type:
    import importlib

    module, name = METHOD_CONFIGS[method].split(":")
    return getattr(importlib.import_module(module), name)


def _config_path(argv: Sequence[str]) -> str | None:
    for i, token in enumerate(argv):
        if token == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith("--config="):
            return token.split("=", 1)[1]
    return None


def _peek_method(argv: Sequence[str], yaml_data: dict[str, Any]) -> str:
    """The method decides which config class parses the rest: command line > YAML > default."""
    method = yaml_data.get("method", DEFAULT_METHOD)
    for i, token in enumerate(argv):
        if token in ("--method", "method") and i + 1 < len(argv):
            method = argv[i + 1]
        elif token.startswith(("--method=", "method=")):
            method = token.split("=", 1)[1]
    if method not in METHOD_CONFIGS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHOD_CONFIGS)}")
    return method


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {action.dest for action in parser._actions if action.dest not in ("help", argparse.SUPPRESS)}


def _unknown(keys: Sequence[str], known: set[str], where: str) -> ConfigError:
    lines = [f"unknown setting(s) {where}:"]
    for key in keys:
        lines.append(f"  {key}{did_you_mean(key, known, cutoff=0.7)}")
    lines.append(
        "  `--help` lists every setting; keys are TRL's (SFTConfig/DPOConfig/KTOConfig, ModelConfig) + Mirada's"
    )
    return ConfigError("\n".join(lines))


def _expand_set(argv: Sequence[str]) -> list[str]:
    """``--set key=value`` and ``--set=key=value`` (every stage's override syntax) → ``key=value``."""
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--set" or token.startswith("--set="):
            item = token.split("=", 1)[1] if token.startswith("--set=") else next(tokens, "")
            if "=" not in item or item.startswith("-"):
                raise ConfigError(f"--set needs KEY=VALUE (e.g. --set max_steps=10), got {item!r}")
            out.append(item)
        else:
            out.append(token)
    return out


def _normalise(argv: Sequence[str], known: set[str]) -> list[str]:
    """``key=value`` → ``--key value`` for known keys; unknown ``key=value`` tokens are reported."""
    out: list[str] = []
    unknown: list[str] = []
    for token in argv:
        if token.startswith("--config="):  # TrlParser only understands `--config PATH`
            out += ["--config", token.split("=", 1)[1]]
            continue
        if not token.startswith("-") and "=" in token and out[-1:] != ["--config"]:
            key, value = token.split("=", 1)
            if key.replace("-", "_") in known:
                out += [f"--{key.replace('-', '_')}", value]
                continue
            if key.isidentifier():
                unknown.append(key)
                continue
        out.append(token)
    if unknown:
        raise _unknown(unknown, known, "on the command line")
    return out


def build_parser(method: str, prog: str) -> Any:
    """TRL's parser over (run options, the method's config, the model config)."""
    from trl import TrlParser

    from vlm.train.model_config import MiradaModelConfig
    from vlm.train.script_args import TrainScriptArguments

    return TrlParser(
        (TrainScriptArguments, _config_class(method), MiradaModelConfig),
        prog=prog,
        description="Align a vision-language model with QLoRA SFT/DPO/KTO through TRL (Mirada's train stage).",
        epilog=__doc__,
        formatter_class=_HelpFormatter,
    )


# The settings `--help` shows, Mirada's first; `--help-all` prints TRL's and transformers' ~1,000 lines.
_HELP_MODEL = (
    "model_name_or_path",
    "family",
    "dtype",
    "use_peft",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "load_in_4bit",
    "use_bnb_nested_quant",
    "bnb_4bit_compute_dtype",
    "skip_modules",
    "max_image_tokens",
    "adapter_name_or_path",
)
_HELP_TRAINING = (
    "output_dir",
    "max_steps",
    "num_train_epochs",
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "per_device_eval_batch_size",
    "lr_scheduler_type",
    "warmup_steps",
    "eval_strategy",
    "eval_steps",
    "save_strategy",
    "save_steps",
    "seed",
    "push_to_hub",
    "hub_model_id",
)
_HELP_METHOD = {
    "sft": ("assistant_only_loss",),
    "dpo": ("beta", "loss_type"),
    "kto": ("beta", "loss_type", "desirable_weight", "undesirable_weight"),
}


def short_help(method: str, prog: str) -> str:
    """``--help``: Mirada's run options, then the model and the most-used training settings, then examples."""
    from dataclasses import fields

    from vlm.train.script_args import TrainScriptArguments

    parser = build_parser(method, prog)
    by_dest: dict[str, argparse.Action] = {}
    for action in parser._actions:  # the first action per setting (`--emissions`, not `--no_emissions`)
        by_dest.setdefault(action.dest, action)
    formatter = parser._get_formatter()
    formatter.add_usage(
        f"{prog} [--config YAML] [--set key=value ...] [key=value ...] [--resume | --overwrite]", None, []
    )
    formatter.add_text(
        "Align a vision-language model with QLoRA SFT/DPO/KTO through TRL (Mirada's train stage). "
        f"Showing {method.upper()} settings (add method=sft|dpo|kto for another method's)."
    )
    sections = (
        ("Mirada's run options", [f.name for f in fields(TrainScriptArguments)]),
        ("Model, LoRA and 4-bit", list(_HELP_MODEL)),
        (
            f"Training ({method.upper()}, most-used; Mirada's defaults)",
            [*_HELP_TRAINING, *_HELP_METHOD[method]],
        ),
    )
    for title, names in sections:
        formatter.start_section(title)
        formatter.add_arguments([by_dest[name] for name in names if name in by_dest])
        formatter.end_section()
    formatter.add_text(
        "`--help-all` lists every setting (TRL's and transformers' full TrainingArguments, ~1,000 lines); "
        "any of them is accepted here too."
    )
    formatter.add_text(__doc__)
    return formatter.format_help()


def parse_args(argv: Sequence[str], prog: str = "python -m vlm.train") -> tuple[Any, Any, Any]:
    """``(script, training_args, model_args)`` from defaults < YAML < command line; unknown keys raise.

    Raises :class:`ConfigError` with "did you mean" hints for unknown keys, and for values that
    TRL/transformers reject when building the dataclasses.
    """
    argv = _expand_set(argv)
    config_path = _config_path(argv)
    yaml_data = read_yaml_mapping(config_path) if config_path else {}
    method = _peek_method(argv, yaml_data)
    parser = build_parser(method, prog)
    known = _dests(parser)
    unknown_yaml = [key for key in yaml_data if key not in known and key != "env"]
    if unknown_yaml:
        raise _unknown(unknown_yaml, known, f"in {config_path}")
    args = _normalise(argv, known)
    try:
        script, training, model, remaining = parser.parse_args_and_config(args, return_remaining_strings=True)
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None
    if remaining:
        keys = [
            token.lstrip("-").split("=", 1)[0] for token in remaining if token.startswith("-")
        ] or remaining
        raise _unknown(keys, known, "on the command line")
    return script, training, model


def _print_summary(result: Any) -> None:
    from vlm.train.card import fmt

    lines = [
        f"trained {result.method.upper()} ({result.family}) for {result.global_step} steps -> {result.output_dir}"
    ]
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    if losses:
        lines.append(f"  {'final training loss':<26} {fmt(losses[-1])}")
    for key in ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_mean_token_accuracy"):
        if result.eval_metrics and key in result.eval_metrics:
            lines.append(f"  {key:<26} {fmt(result.eval_metrics[key])}")
    lines.append(f"  {'rows':<26} {', '.join(f'{k}={v}' for k, v in result.data.rows.items())}")
    dropped = sum(result.data.dropped_overlong.values())
    if dropped:
        lines.append(f"  {'dropped (too long)':<26} {dropped}")
    lines.append(f"  {'training time':<26} {result.train_seconds:.1f} s")
    if result.emissions:
        lines.append(
            f"  {'emissions':<26} {fmt(result.emissions.emissions_kg * 1000)} g CO2eq "
            f"({fmt(result.emissions.energy_kwh)} kWh, {result.emissions.country})"
        )
    for label, path in (
        ("curves", result.curves),
        ("model card", result.card),
        ("merged model", result.merged),
    ):
        if path:
            lines.append(f"  {label:<26} {path}")
    if result.pushed_to:
        lines.append(f"  {'pushed to':<26} {result.pushed_to}")
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None, prog: str = "python -m vlm.train") -> int:
    """Parse, train, print a summary. Exit 0 on success, 2 on a settings/data error, 130 on Ctrl-C."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or "verbose=true" in argv
    setup_logging(verbose=verbose)
    logging.getLogger("transformers").setLevel(logging.DEBUG if verbose else logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # TRL 1.16 still calls transformers 5's deprecated gradient_checkpointing_* names on every step.
    warnings.filterwarnings(
        "ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning
    )
    try:
        if "--help-all" in argv:
            argv = ["--help" if token == "--help-all" else token for token in argv]
        elif "-h" in argv or "--help" in argv:
            config_path = _config_path(argv)
            print(short_help(_peek_method(argv, read_yaml_mapping(config_path) if config_path else {}), prog))
            return 0
        script, training, model = parse_args(argv, prog)
        from vlm.train.trainer import run_training

        command = " ".join([prog, *argv])
        result = run_training(script, training, model, command=command)
    except KeyboardInterrupt:
        print(
            "interrupted: checkpoints written so far are kept; rerun with --resume to continue",
            file=sys.stderr,
        )
        return 130
    except UserError as exc:  # ConfigError, ModelLoadError and every other user-fixable error
        if verbose:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    from accelerate import PartialState

    if PartialState().is_main_process:  # under `accelerate launch`, one summary, not one per GPU
        _print_summary(result)
    return 0
