"""Every cross-field check of ``mirada train`` in one place, before anything heavy is loaded (DESIGN §4b.5).

Why a separate pass: TRL reports many of these traps late (after minutes of loading), obscurely
("Image features and image tokens do not match") or never (a KTO batch of one silently trains on a
zero KL estimate). Reading only small files here means a typo costs a second, not a model load.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_tools.config import ConfigError
from data_tools.stage_args import UserError
from vlm.models import ModelLoadError
from vlm.models import resolve_spec as resolve_family
from vlm.models.family import missing_local_path
from vlm.registry import ModelSpec
from vlm.train.model_config import MiradaModelConfig
from vlm.train.script_args import TrainScriptArguments

if TYPE_CHECKING:
    from transformers import TrainingArguments

log = logging.getLogger("vlm.train")

__all__ = [
    "HF_TOKEN_ENV",
    "check_process_group",
    "clear_output_dir",
    "finished_run",
    "iso3",
    "resolve_spec",
    "resume_checkpoint",
    "validate",
]

HF_TOKEN_ENV = "HF_TOKEN"


def resolve_spec(model_args: MiradaModelConfig, trust_remote_code: bool = False) -> ModelSpec:
    """The registry family: ``family`` when set, else the checkpoint's ``model_type`` (reads config.json)."""
    try:
        return resolve_family(
            model_args.model_name_or_path,
            model_args.family,
            revision=model_args.model_revision,
            trust_remote_code=trust_remote_code,
        )
    except ModelLoadError as exc:
        raise ConfigError(str(exc)) from None


def iso3(code: str) -> str:
    """ISO 3166 alpha-3 for CodeCarbon from an alpha-2 or alpha-3 code (``"ES"`` → ``"ESP"``)."""
    import pycountry

    country = pycountry.countries.get(alpha_2=code.upper()) if len(code) == 2 else None
    country = country or (pycountry.countries.get(alpha_3=code.upper()) if len(code) == 3 else None)
    if country is None:
        raise ConfigError(
            f"emissions_country {code!r} is not an ISO 3166 alpha-2 or alpha-3 code (e.g. ESP, USA)"
        )
    return country.alpha_3


def require_package(module: str, feature: str, extra: str = "train") -> None:
    """Refuse, with the install line, a setting whose package is missing."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{feature} needs the `{module}` package: pip install 'mirada[{extra}]'")


def validate(
    script: TrainScriptArguments, args: TrainingArguments, model_args: MiradaModelConfig
) -> ModelSpec:
    """Check every cross-field rule; return the family. Raises ``ConfigError``/``UserError``.

    Reads only small files (the checkpoint's config.json when ``family`` is unset).
    """
    method = script.method
    problems: list[str] = []
    if not script.dataset_name:
        problems.append("dataset_name is required: a `mirada prefs` export folder or a Hub dataset id")
    if not model_args.model_name_or_path:
        problems.append("model_name_or_path is required")
    elif missing := missing_local_path(model_args.model_name_or_path):
        name = str(model_args.model_name_or_path)
        hint = (
            f"; build the tiny offline model first: python -m vlm.tiny {model_args.family or 'FAMILY'} {name}"
            if "tiny" in Path(name).name
            else ""
        )
        problems.append(f"model_name_or_path {missing}{hint}")
    if (model_args.load_in_4bit or model_args.load_in_8bit) and not model_args.use_peft:
        problems.append(
            "4-bit/8-bit needs LoRA: set use_peft=true, or load_in_4bit=false for full fine-tuning"
        )
    if model_args.adapter_name_or_path and not model_args.use_peft:
        problems.append("adapter_name_or_path continues a LoRA adapter: set use_peft=true")
    if script.merge and not model_args.use_peft:
        problems.append("merge needs a LoRA adapter to merge: set use_peft=true or merge=false")
    if args.max_length is not None:
        problems.append(
            f"max_length={args.max_length} would truncate image tokens ('Image features and image tokens do not "
            "match'); leave it None and drop over-long rows with max_tokens instead"
        )
    if getattr(args, "precompute_ref_log_probs", False):
        problems.append("precompute_ref_log_probs is not supported for image data by TRL; set it to false")
    if getattr(args, "sync_ref_model", False) and model_args.use_peft:
        problems.append("sync_ref_model does not work with LoRA (the reference is the adapter-disabled base)")
    if method == "kto" and args.loss_type != "apo_zero_unpaired" and args.per_device_train_batch_size < 2:
        problems.append(
            "KTO needs per_device_train_batch_size >= 2: its KL estimate pairs each completion with another row's "
            "prompt in the same batch (use gradient_accumulation_steps for a larger effective batch)"
        )
    if method == "sft" and (args.packing or args.padding_free):
        problems.append("packing and padding_free are not supported for image data by TRL; set both to false")
    if args.push_to_hub:
        if not args.hub_model_id:
            problems.append(
                "push_to_hub needs hub_model_id (e.g. somosnlp-hackathon-2026/mirada-qwen2.5-vl-dpo)"
            )
        if args.hub_token:
            problems.append(
                f"do not pass hub_token on the command line or in YAML; export {HF_TOKEN_ENV} instead"
            )
        elif not os.environ.get(HF_TOKEN_ENV):
            problems.append(
                f"push_to_hub needs a Hugging Face token with write access in the {HF_TOKEN_ENV} environment variable"
            )
    if script.max_tokens is not None and script.max_tokens <= 0:
        problems.append("max_tokens must be positive (or null to keep every row)")
    if args.max_steps == 0 or args.max_steps < -1:
        problems.append(
            f"max_steps={args.max_steps}: it must be at least 1 (or -1 to train num_train_epochs)"
        )
    if args.output_dir and Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        problems.append(f"output_dir {args.output_dir} is a file; choose a folder")
    if script.resume and script.overwrite:
        problems.append("resume and overwrite exclude each other: continue the run, or replace it")
    if len(problems) == 1:
        raise ConfigError(f"cannot train with these settings: {problems[0]}")
    if problems:
        raise ConfigError("cannot train with these settings:\n  - " + "\n  - ".join(problems))

    spec = resolve_spec(model_args, args.trust_remote_code)
    try:
        spec.check_method(method)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    missing = spec.missing_requirements()
    if missing:
        raise ConfigError(
            f"{spec.display_name}'s processor needs {', '.join(missing)}: pip install {' '.join(missing)} "
            "(torchvision must match torch, see DESIGN 6.2: pip install 'mirada[vlm]')"
        )
    if model_args.load_in_4bit or model_args.load_in_8bit:
        require_package("bitsandbytes", "4-bit/8-bit loading")
    if model_args.use_peft:
        require_package("peft", "LoRA")
    if script.emissions:
        require_package("codecarbon", "emissions tracking (or set emissions=false)")
        iso3(script.emissions_country)
    if model_args.adapter_name_or_path:
        adapter = Path(model_args.adapter_name_or_path).expanduser()
        if adapter.exists() and not (adapter / "adapter_config.json").is_file():
            raise ConfigError(
                f"adapter_name_or_path {adapter} has no adapter_config.json (is it a LoRA run folder?)"
            )
    return spec


RUN_MARKERS = ("mirada_train_config.json", "trainer_state.json")
"""Files every finished ``mirada train`` run leaves in its output_dir (the resolved config, TRL's state)."""


def finished_run(output_dir: str | Path) -> dict[str, Any] | None:
    """What a finished run in ``output_dir`` recorded (``global_step``, ``max_steps``, ``method``), or ``None``."""
    output = Path(output_dir)
    if not all((output / name).is_file() for name in RUN_MARKERS):
        return None
    try:
        state = json.loads((output / "trainer_state.json").read_text(encoding="utf-8"))
        config = json.loads((output / "mirada_train_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {
        "global_step": int(state.get("global_step") or 0),
        "max_steps": int(state.get("max_steps") or 0),
        "method": config.get("script", {}).get("method", "?"),
    }


def resume_checkpoint(script: TrainScriptArguments, args: TrainingArguments) -> str | None:
    """Which checkpoint to resume from; refuses to silently overwrite or extend a run by accident.

    A finished run is replaced only with ``--overwrite`` (the caller deletes it); ``--resume`` on a
    finished run with no steps left says so instead of training past ``max_steps``.
    """
    from transformers.trainer_utils import get_last_checkpoint

    if args.resume_from_checkpoint:
        if not Path(args.resume_from_checkpoint).is_dir():
            raise UserError(
                f"resume_from_checkpoint {args.resume_from_checkpoint} is not a checkpoint folder"
            )
        return str(args.resume_from_checkpoint)
    output = Path(args.output_dir)
    if script.overwrite:
        return None
    last = get_last_checkpoint(str(output)) if output.is_dir() else None
    done = finished_run(output)
    if done and not script.resume:
        raise UserError(
            f"{output} holds a finished run ({done['method'].upper()}, {done['global_step']} steps); pass --overwrite "
            "to replace it, --resume with a higher max_steps to continue it, or choose another output_dir"
        )
    target = (
        args.max_steps if args.max_steps > 0 else done["max_steps"] if done else 0
    )  # -1: the epochs' steps
    if done and target and done["global_step"] >= target:
        raise UserError(
            f"{output} is already finished: {done['global_step']} of max_steps={target} steps trained; "
            "raise max_steps to train further, or pass --overwrite to start again"
        )
    if done and last is None:
        raise UserError(
            f"{output} holds a finished run with no checkpoint to continue from (save_strategy was 'no'); "
            "pass --overwrite to start again, or choose another output_dir"
        )
    if script.resume:
        if last is None:
            log.warning("--resume: no checkpoint in %s yet; starting from step 0", output)
        else:
            log.info("resuming from %s", last)
        return last
    if last is not None:
        raise UserError(
            f"{output} already holds checkpoints (newest: {Path(last).name}); pass --resume to continue that run, "
            "--overwrite to replace it, or choose another output_dir"
        )
    return None


def clear_output_dir(script: TrainScriptArguments, args: TrainingArguments) -> bool:
    """With ``--overwrite``, delete the run in output_dir (only a folder a run wrote: markers or checkpoints)."""
    import shutil

    output = Path(args.output_dir)
    if not (script.overwrite and output.is_dir()):
        return False
    is_run = any((output / name).is_file() for name in (*RUN_MARKERS, "adapter_config.json"))
    if not is_run and not any(output.glob("checkpoint-*")):
        return False
    log.info("--overwrite: removing the previous run in %s", output)
    shutil.rmtree(output)
    return True


def check_process_group(num_processes: int) -> None:
    """Refuse N launched processes that did not join one process group.

    ``accelerate launch`` with an FSDP or DeepSpeed config on a machine without GPUs starts every
    process with ``WORLD_SIZE=N`` but each one finds ``DistributedType.NO`` (measured with accelerate
    1.x on CPU): N independent runs then train the same model and race on one output folder.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 and num_processes == 1:
        raise UserError(
            f"launched as one of {world} processes, but no process group connects them (accelerate found no "
            "distributed backend: FSDP and DeepSpeed configs need GPUs; on CPU use `accelerate launch --cpu` "
            "with the DDP config); refusing to train independent copies into one output folder"
        )
