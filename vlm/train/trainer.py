"""Library code behind ``mirada train``: QLoRA SFT/DPO/KTO of a VLM through TRL's own trainers.

The CLI parses three dataclasses and calls :func:`run_training`; tests call the pieces directly.
What this module adds around TRL, and why:

- **One validation pass** (:func:`validate`) before anything heavy is loaded, with actionable
  messages ("4-bit needs LoRA"), for every trap that TRL reports late, obscurely or never: vision KTO's
  batch size and unpaired format, ``max_length`` truncating image tokens, PaliGemma with preference
  methods, a push without ``HF_TOKEN``, checkpoints that would be overwritten.
- **Model loading by registry** (:mod:`vlm.registry`): nf4 + double quantisation + bf16 compute with the
  family's skip regexes (vision tower, projector and ``lm_head`` stay unquantised and frozen), LoRA on
  the language model only, an image-token budget applied to the processor.
- **Callbacks** for the measured traps and the hackathon's duties: the bitsandbytes CPU repack guard
  (DESIGN §6.3: after an eval-mode forward, 4-bit weights are repacked and LoRA silently stops
  learning), dropping the input-gradient hook transformers puts on the frozen vision tower (it makes
  autograd track and back-propagate through the whole ViT for nothing), and CodeCarbon's *offline*
  tracker (``report_to="codecarbon"`` uses the online one and the wrong country).
- **Outputs**: the adapter and processor, curves PNG, metrics, emissions.csv, the Model Card, an
  optional merge into an unquantised base, and the push, all written by the main process only, so the
  same code runs on one GPU or under ``accelerate launch`` (DDP, FSDP, DeepSpeed).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from data_tools.config import ConfigError
from data_tools.secrets import register_secret
from data_tools.stage_args import UserError
from vlm.registry import (
    BudgetError,
    ModelSpec,
    get_spec,
    is_skipped,
    spec_for_model_type,
    sync_model_to_processor,
    template_path,
)
from vlm.train.data import DataFormatError, DataSummary, check_format, describe, filter_overlong, load_splits
from vlm.train.model_config import MiradaModelConfig
from vlm.train.script_args import TrainScriptArguments

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import (
        BitsAndBytesConfig,
        PretrainedConfig,
        PreTrainedModel,
        ProcessorMixin,
        TrainingArguments,
    )

    from vlm.train.collators import PrefixLMCollator

log = logging.getLogger("vlm.train")

__all__ = [
    "TRAINERS",
    "CpuRepackGuard",
    "EmissionsCallback",
    "FrozenVisionInputs",
    "TrainResult",
    "build_lora_config",
    "build_quantization_config",
    "disable_cpu_repack",
    "load_model",
    "load_processor",
    "load_trained",
    "merge_adapter",
    "resolve_spec",
    "run_training",
    "save_curves",
    "validate",
]

TRAINERS: dict[str, str] = {"sft": "SFTTrainer", "dpo": "DPOTrainer", "kto": "KTOTrainer"}
"""Method → TRL trainer class name (imported lazily from ``trl``)."""

METHOD_METRICS: dict[str, tuple[str, ...]] = {
    "dpo": ("rewards/accuracies", "rewards/margins"),
    "kto": ("rewards/chosen", "rewards/rejected", "kl"),
    "sft": ("mean_token_accuracy",),
}
"""Per-method metrics worth a curve and a row in the card, besides the loss."""

CURVES_FILE = "training_curves.png"
SESSIONS_FILE = "mirada_sessions.jsonl"
CONFIG_FILE = "mirada_train_config.json"
HF_TOKEN_ENV = "HF_TOKEN"


# =============================================================================================
# Validation: every cross-field check in one place, before loading anything heavy (DESIGN §4b.5)
# =============================================================================================


def _read_model_type(model_args: MiradaModelConfig, trust_remote_code: bool) -> tuple[str, PretrainedConfig]:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            model_args.model_name_or_path,
            revision=model_args.model_revision,
            trust_remote_code=trust_remote_code,
        )
    except OSError as exc:
        raise UserError(
            f"cannot read the config of {model_args.model_name_or_path!r}: {str(exc).splitlines()[0]}"
        ) from None
    return config.model_type, config


def resolve_spec(model_args: MiradaModelConfig, trust_remote_code: bool = False) -> ModelSpec:
    """The registry family: ``family`` when set, else the checkpoint's ``model_type`` (reads config.json)."""
    try:
        if model_args.family:
            return get_spec(model_args.family)
        model_type, _ = _read_model_type(model_args, trust_remote_code)
        return spec_for_model_type(model_type)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _is_hub_id(name: str) -> bool:
    return not Path(name).expanduser().exists() and not name.startswith((".", "/", "~"))


def _iso3(code: str) -> str:
    """ISO 3166 alpha-3 for CodeCarbon from an alpha-2 or alpha-3 code (``"ES"`` → ``"ESP"``)."""
    import pycountry

    country = pycountry.countries.get(alpha_2=code.upper()) if len(code) == 2 else None
    country = country or (pycountry.countries.get(alpha_3=code.upper()) if len(code) == 3 else None)
    if country is None:
        raise ConfigError(
            f"emissions_country {code!r} is not an ISO 3166 alpha-2 or alpha-3 code (e.g. ESP, USA)"
        )
    return country.alpha_3


def _need(module: str, feature: str, extra: str = "train") -> None:
    import importlib.util

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
        _need("bitsandbytes", "4-bit/8-bit loading")
    if model_args.use_peft:
        _need("peft", "LoRA")
    if script.emissions:
        _need("codecarbon", "emissions tracking (or set emissions=false)")
        _iso3(script.emissions_country)
    if model_args.adapter_name_or_path:
        adapter = Path(model_args.adapter_name_or_path).expanduser()
        if adapter.exists() and not (adapter / "adapter_config.json").is_file():
            raise ConfigError(
                f"adapter_name_or_path {adapter} has no adapter_config.json (is it a LoRA run folder?)"
            )
    return spec


def _resume_checkpoint(script: TrainScriptArguments, args: TrainingArguments) -> str | None:
    """Which checkpoint to resume from; refuses to silently overwrite an earlier run's checkpoints."""
    from transformers.trainer_utils import get_last_checkpoint

    if args.resume_from_checkpoint:
        if not Path(args.resume_from_checkpoint).is_dir():
            raise UserError(
                f"resume_from_checkpoint {args.resume_from_checkpoint} is not a checkpoint folder"
            )
        return str(args.resume_from_checkpoint)
    output = Path(args.output_dir)
    last = get_last_checkpoint(str(output)) if output.is_dir() else None
    if script.resume:
        if last is None:
            log.warning("--resume: no checkpoint in %s yet; starting from step 0", output)
        else:
            log.info("resuming from %s", last)
        return last
    if last is not None:
        raise UserError(
            f"{output} already holds checkpoints (newest: {Path(last).name}); pass --resume to continue that run, "
            "or choose another output_dir"
        )
    return None


# =============================================================================================
# Processor, model, LoRA
# =============================================================================================


def _dtype(name: str | None) -> torch.dtype | str:
    import torch

    return "auto" if name in (None, "auto") else getattr(torch, name)


def build_quantization_config(model_args: MiradaModelConfig, spec: ModelSpec) -> BitsAndBytesConfig | None:
    """nf4 + double quantisation + ``bnb_4bit_compute_dtype``, skipping the family's vision side and lm_head.

    Passing ``llm_int8_skip_modules`` replaces transformers' automatic ``lm_head`` skip, so the
    registry lists ``lm_head`` explicitly.
    """
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return None
    from transformers import BitsAndBytesConfig

    skip = list(model_args.skip_modules or spec.skip_modules)
    if model_args.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    storage = model_args.bnb_4bit_quant_storage
    if storage is None and _sharded_launch():
        storage = model_args.dtype if model_args.dtype not in (None, "auto") else "bfloat16"
        log.info("FSDP/DeepSpeed launch: storing 4-bit weights as %s so they can be sharded", storage)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=model_args.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant,
        bnb_4bit_compute_dtype=_dtype(model_args.bnb_4bit_compute_dtype),
        bnb_4bit_quant_storage=_dtype(storage) if storage else None,
        llm_int8_skip_modules=skip,
    )


def build_lora_config(model_args: MiradaModelConfig, spec: ModelSpec) -> LoraConfig | None:
    """LoRA on the family's language-model projections unless ``lora_target_modules`` says otherwise."""
    if not model_args.use_peft or model_args.adapter_name_or_path:
        return None
    from peft import LoraConfig

    targets = model_args.lora_target_modules or spec.lora_targets
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=targets,
        modules_to_save=model_args.lora_modules_to_save,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        task_type=model_args.lora_task_type,
        bias="none",
    )


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


def _sharded_launch() -> bool:
    """Whether ``accelerate launch`` asked for FSDP or DeepSpeed (the model must then load without a device map)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" or (
        os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    )


def _device_map(quantized: bool) -> dict[str, int] | None:
    """4-bit weights are placed at load time: each DDP process gets its own GPU; FSDP/DeepSpeed place them."""
    import torch

    if not quantized or not torch.cuda.is_available() or _sharded_launch():
        return None
    from accelerate import PartialState

    return {"": PartialState().local_process_index}


def image_token_id(config: PretrainedConfig) -> int:
    """The token the model fills with image features (Gemma 3: the soft token, not ``<start_of_image>``)."""
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    raise ConfigError(f"{type(config).__name__} names no image token id; is this a vision-language model?")


def load_processor(
    model_args: MiradaModelConfig, spec: ModelSpec, config: PretrainedConfig, trust_remote_code: bool = False
) -> tuple[ProcessorMixin, int]:
    """The checkpoint's processor with the image-token budget applied; returns it and the worst case.

    ``AutoProcessor`` silently falls back to a bare tokenizer when it cannot build the processor
    (DESIGN 6.2), and TRL then calls the model "not a VLM"; that is caught here with the reason.
    """
    from transformers import AutoProcessor, ProcessorMixin

    processor = AutoProcessor.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision, trust_remote_code=trust_remote_code
    )
    if not isinstance(processor, ProcessorMixin):
        raise UserError(
            f"AutoProcessor loaded a {type(processor).__name__} for {model_args.model_name_or_path}, not a multimodal "
            "processor: check processor_config.json there, and that torchvision is installed (Qwen and SmolVLM "
            "processors need it)"
        )
    missing = [name for name in spec.extra_special_tokens if not getattr(processor.tokenizer, name, None)]
    if missing:
        raise UserError(
            f"{spec.display_name}'s tokenizer lacks the special tokens {missing}; use the checkpoint's own "
            "tokenizer (transformers >= 5 reads them from extra_special_tokens)"
        )
    if spec.chat_template and not processor.chat_template:
        processor.chat_template = template_path(spec.chat_template).read_text(encoding="utf-8")
        log.info(
            "%s ships no chat template; using Mirada's %s.jinja",
            model_args.model_name_or_path,
            spec.chat_template,
        )
    budget = model_args.max_image_tokens or spec.default_max_image_tokens
    try:
        worst = spec.apply_budget(processor, budget, image_token_id(config))
    except BudgetError as exc:
        raise ConfigError(str(exc)) from None
    log.info("%s: at most %d image tokens per image (budget %d)", spec.display_name, worst, budget)
    return processor, worst


def load_model(
    model_args: MiradaModelConfig,
    spec: ModelSpec,
    *,
    trust_remote_code: bool = False,
    quantization_config: BitsAndBytesConfig | None = None,
) -> PreTrainedModel:
    """Load the base model (4-bit when configured) and guard it against the bitsandbytes CPU repack."""
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {
        "dtype": _dtype(model_args.dtype),
        "revision": model_args.model_revision,
        "trust_remote_code": trust_remote_code,
    }
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        device_map = _device_map(True)
        if device_map is not None:
            kwargs["device_map"] = device_map
    model = AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **kwargs)
    if model.config.model_type not in spec.model_types and model_args.family:
        log.warning(
            "family %s is set, but the checkpoint's model_type is %s", spec.name, model.config.model_type
        )
    disable_cpu_repack(model)
    if quantization_config is not None:
        check_quantized_layout(model, spec, list(quantization_config.llm_int8_skip_modules or []))
    return model


def check_quantized_layout(model: torch.nn.Module, spec: ModelSpec, skip_modules: Sequence[str]) -> int:
    """Refuse a 4/8-bit model whose vision side or ``lm_head`` got quantised, or where nothing did.

    User-supplied ``skip_modules`` replace the registry's; transformers matches them from the start
    of a module name, so a bare ``visual`` silently quantises Qwen's ViT (DESIGN §6.3). The layout is
    checked on the loaded model against the family's own patterns. Returns the quantised layer count.
    """
    import bitsandbytes as bnb

    quantized = [
        name
        for name, module in model.named_modules()
        if isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))
    ]
    wrong = [name for name in quantized if is_skipped(name, spec.skip_modules)]
    if wrong:
        raise ConfigError(
            f"skip_modules {list(skip_modules)} leave {len(wrong)} vision/projector/lm_head layers quantised "
            f"(e.g. {wrong[0]}); transformers matches an entry from the start of the module name, so write "
            f"regexes like {list(spec.skip_modules)} (the {spec.display_name} default)"
        )
    if not quantized:
        raise ConfigError(
            f"4/8-bit loading is set but no layer was quantised: skip_modules {list(skip_modules)} match the "
            "language model too; drop them or use the family default"
        )
    return len(quantized)


# =============================================================================================
# Trap guards and callbacks
# =============================================================================================


def _linear4bit_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    try:
        import bitsandbytes as bnb
    except ImportError:  # no bitsandbytes: nothing can be 4-bit
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def disable_cpu_repack(model: torch.nn.Module, modules: Sequence[torch.nn.Module] | None = None) -> int:
    """Keep bitsandbytes from repacking 4-bit weights for its AVX512-BF16 CPU kernel; undo any repack.

    On CPUs with AVX512-BF16, any eval-mode no-grad forward (``generate``, evaluation) repacks the
    4-bit weights in place; afterwards LoRA gets no gradients (``grad_norm=0.0``, silently) or an
    in-place error (DESIGN §6.3). Setting ``support_avx512bf16_for_cpu = False`` prevents it; weights
    already repacked are converted back with bitsandbytes' own inverse, which cannot undo the repack's
    rounding of the block scales to bf16 (so prevention, at load time, is the real fix and this the
    backstop). Returns the layers visited.
    """
    modules = _linear4bit_modules(model) if modules is None else modules
    for module in modules:
        module.support_avx512bf16_for_cpu = False
        weight = module.weight
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
    return len(modules)


class CpuRepackGuard(TrainerCallback):
    """Re-applies :func:`disable_cpu_repack` before training, before every step and after every evaluation."""

    def __init__(self) -> None:
        self._modules: list[torch.nn.Module] | None = None

    def _guard(self, model: torch.nn.Module | None) -> None:
        if model is None:
            return
        if self._modules is None:
            self._modules = _linear4bit_modules(model)
        if self._modules:
            disable_cpu_repack(model, self._modules)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._guard(model)

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._guard(model)

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._guard(model)


class FrozenVisionInputs(TrainerCallback):
    """Stops autograd from tracking the frozen vision tower.

    With LoRA + activation checkpointing, transformers 5 calls ``enable_input_require_grads()``, which
    hooks *every* input embedding, the vision tower's patch embedding included; the ViT's activations
    then require grad, so it is recorded, recomputed and back-propagated through although none of its
    weights train. Removing that one hook (only when nothing under the vision modules is trainable)
    saves that compute and memory; the language model's hook stays. Runs at ``on_train_begin``, after
    the Trainer has enabled checkpointing.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.removed = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is not None:
            self.removed = remove_vision_input_grad_hooks(model, self.spec)
            if self.removed:
                log.info("vision tower frozen: removed %d input-gradient hook(s) from it", self.removed)


def remove_vision_input_grad_hooks(model: torch.nn.Module, spec: ModelSpec) -> int:
    """Remove transformers' ``enable_input_require_grads`` hooks from the vision side of ``model``.

    Identified by the hook function's qualified name (transformers registers a local function of
    ``enable_input_require_grads``); the test suite checks the vision tower's output no longer
    requires grad, so a rename upstream shows up as a failing test, not as silent slowness.
    Does nothing when a parameter under the vision modules trains (LoRA on the ViT needs them).
    """
    from vlm.registry import is_skipped

    vision = spec.vision_modules
    named = [(_strip_peft(n), m) for n, m in model.named_modules()]
    if any(p.requires_grad and is_skipped(_strip_peft(n), vision) for n, p in model.named_parameters()):
        return 0
    removed = 0
    for name, module in named:
        hooks = getattr(module, "_forward_hooks", None)
        if not hooks or not is_skipped(name, vision):
            continue
        for key, hook in list(hooks.items()):
            if "enable_input_require_grads" in getattr(hook, "__qualname__", ""):
                del hooks[key]
                removed += 1
    return removed


def _strip_peft(name: str) -> str:
    """``base_model.model.model.visual.x`` → ``model.visual.x``: the names the registry's regexes expect."""
    return name.removeprefix("base_model.model.")


class EmissionsCallback(TrainerCallback):
    """CodeCarbon's offline tracker around training; ``emissions.csv`` lands in the run folder.

    Offline, because ``report_to="codecarbon"`` starts the online tracker, which needs the network
    and records the wrong country (DESIGN §6.6). Only the node's main process tracks (CodeCarbon
    measures the whole machine). ``stop()`` is idempotent so a crash still closes the record.
    """

    def __init__(self, output_dir: str | Path, country_iso3: str, project_name: str = "mirada-train") -> None:
        self.output_dir = Path(output_dir)
        self.country = country_iso3
        self.project_name = project_name
        self.tracker: Any = None
        self.emissions_kg: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_local_process_zero or self.tracker is not None:
            return
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.output_methods.base_output import OutputMethod

        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after the import, which sets its own level
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.tracker = OfflineEmissionsTracker(
            country_iso_code=self.country,
            output_dir=str(self.output_dir),
            project_name=self.project_name,
            log_level="error",
            output_methods=[OutputMethod.CSV],
        )
        self.tracker.start()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.tracker is not None:
            self.emissions_kg = self.tracker.stop()
            self.tracker = None


# =============================================================================================
# Curves, emissions totals, hardware
# =============================================================================================


def save_curves(log_history: list[dict[str, Any]], path: str | Path, method: str) -> Path | None:
    """Loss, gradient norm and the method's own metrics against the step, train and eval, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss", "loss"), ("grad_norm", "gradient norm")]
    panels += [(key, key) for key in METHOD_METRICS.get(method, ())]

    def series(key: str) -> tuple[list[float], list[float]]:
        points = [(h["step"], h[key]) for h in log_history if key in h and "step" in h and _finite(h[key])]
        return [p[0] for p in points], [p[1] for p in points]

    present = [(k, t) for k, t in panels if series(k)[0] or series(f"eval_{k}")[0]]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], present, strict=True):
        for prefix, style, label in (("", "-", "train"), ("eval_", "o--", "eval (test split)")):
            xs, ys = series(prefix + key)
            if xs:
                ax.plot(xs, ys, style, label=label, markersize=4)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass
class EmissionsSummary:
    """Totals over every session recorded in a run's emissions.csv (a resumed run has several rows)."""

    emissions_kg: float
    energy_kwh: float
    duration_s: float
    country: str
    sessions: int
    hardware: str


def read_emissions(path: str | Path) -> EmissionsSummary | None:
    """Sum CodeCarbon's ``emissions.csv`` rows; ``None`` when the file is absent."""
    import csv

    path = Path(path)
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    last = rows[-1]
    gpu = f"{last.get('gpu_count') or 0} × {last.get('gpu_model')}" if last.get("gpu_model") else ""
    return EmissionsSummary(
        emissions_kg=sum(float(r["emissions"]) for r in rows),
        energy_kwh=sum(float(r["energy_consumed"]) for r in rows),
        duration_s=sum(float(r["duration"]) for r in rows),
        country=last.get("country_name") or last.get("country_iso_code", ""),
        sessions=len(rows),
        hardware=gpu or f"{last.get('cpu_count')} × {last.get('cpu_model')} (CPU)",
    )


def describe_hardware() -> str:
    """What trained the model, for the card: GPU model × count and memory, else the CPU."""
    import platform

    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"{torch.cuda.device_count()} × {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    cpu = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, no GPU"


# =============================================================================================
# Data preparation
# =============================================================================================


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
        _resolve_sft_loss(args, prepared[script.dataset_train_split], processor)
    train = prepared[script.dataset_train_split]
    if method == "kto" and len(train) < args.per_device_train_batch_size:
        raise UserError(
            f"KTO needs at least {args.per_device_train_batch_size} training rows; got {len(train)}"
        )
    return train, prepared.get(script.dataset_test_split) if want_eval else None, summary


def _resolve_sft_loss(args: TrainingArguments, dataset: Dataset, processor: ProcessorMixin) -> None:
    """``assistant_only_loss=None`` → on for ``messages`` data when TRL can mark the template's assistant turns."""
    if not getattr(args, "_assistant_only_loss_auto", False):
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


# =============================================================================================
# The run
# =============================================================================================


@dataclass
class TrainResult:
    """What a run produced; every number in the Model Card comes from here."""

    output_dir: Path
    method: str
    family: str
    global_step: int
    train_metrics: dict[str, float]
    eval_metrics: dict[str, float] | None
    log_history: list[dict[str, Any]]
    data: DataSummary
    image_tokens: int
    hardware: str
    train_seconds: float
    resumed_from: str | None = None
    emissions: EmissionsSummary | None = None
    curves: Path | None = None
    card: Path | None = None
    merged: Path | None = None
    pushed_to: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


def resolved_config(
    script: TrainScriptArguments, args: TrainingArguments, model_args: MiradaModelConfig
) -> dict[str, Any]:
    """The full resolved configuration, JSON-safe and with every ``*_token`` field removed."""
    training = {k: v for k, v in args.to_dict().items() if not k.endswith("_token")}
    return {
        "script": asdict(script),
        "training": json.loads(json.dumps(training, default=str)),
        "model": json.loads(json.dumps(asdict(model_args), default=str)),
    }


def _sessions(output_dir: Path) -> list[dict[str, Any]]:
    path = output_dir / SESSIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_training(
    script: TrainScriptArguments,
    args: TrainingArguments,
    model_args: MiradaModelConfig,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    command: str | None = None,
) -> TrainResult:
    """Validate, load, train, evaluate, save, plot, merge, write the card and push. Same code on 1 or N GPUs.

    ``command`` is the command line to quote in the card (the CLI passes it; secrets never appear in
    it because tokens are only read from the environment).
    """
    import torch
    import trl
    from accelerate import PartialState
    from transformers import set_seed

    spec = validate(script, args, model_args)
    state = PartialState()
    check_process_group(state.num_processes)
    if not state.is_local_main_process:
        logging.getLogger("vlm").setLevel(logging.WARNING)  # one copy of the progress logs per machine
    token = os.environ.get(HF_TOKEN_ENV)
    register_secret(token)
    push, args.push_to_hub = args.push_to_hub, False  # Mirada pushes itself, adapter and card together
    resume_from = _resume_checkpoint(script, args)
    output_dir = Path(args.output_dir)
    set_seed(args.seed)

    _, config = _read_model_type(model_args, args.trust_remote_code)
    processor, image_tokens = load_processor(model_args, spec, config, args.trust_remote_code)
    data_collator = sft_collator(spec, script.method, processor)
    train_ds, eval_ds, data = prepare_data(script, args, processor, data_collator)
    log.info(
        "%s %s on %s: %s",
        script.method.upper(),
        spec.display_name,
        script.dataset_name,
        ", ".join(f"{k}={v} rows" for k, v in data.rows.items()),
    )

    model = load_model(
        model_args,
        spec,
        trust_remote_code=args.trust_remote_code,
        quantization_config=build_quantization_config(model_args, spec),
    )
    for key in sync_model_to_processor(model, processor):
        log.info("model config %s follows the processor's image budget", key)
    peft_config = build_lora_config(model_args, spec)
    if model_args.adapter_name_or_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, model_args.adapter_name_or_path, is_trainable=True)
        log.info("continuing adapter %s (its LoRA settings win over lora_*)", model_args.adapter_name_or_path)

    emissions = EmissionsCallback(output_dir, _iso3(script.emissions_country)) if script.emissions else None
    all_callbacks: list[TrainerCallback] = [CpuRepackGuard(), FrozenVisionInputs(spec)]
    all_callbacks += [emissions] if emissions else []
    all_callbacks += list(callbacks)
    trainer_cls = getattr(trl, TRAINERS[script.method])
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=all_callbacks,
        **({"data_collator": data_collator} if data_collator is not None else {}),
    )
    started = time.time()
    try:
        train_output = trainer.train(resume_from_checkpoint=resume_from)
    finally:
        if emissions:
            emissions.stop()
    train_seconds = time.time() - started
    train_metrics = {k: float(v) for k, v in train_output.metrics.items() if _finite(v)}

    eval_metrics = None
    if eval_ds is not None:
        last_eval = [h for h in trainer.state.log_history if "eval_loss" in h]
        if last_eval and last_eval[-1].get("step") == trainer.state.global_step:
            eval_metrics = {
                k: float(v) for k, v in last_eval[-1].items() if _finite(v) and k.startswith("eval_")
            }
        else:
            eval_metrics = {k: float(v) for k, v in trainer.evaluate().items() if _finite(v)}
        disable_cpu_repack(trainer.model)

    trainer.save_model(str(output_dir))
    trainer.save_state()  # trainer_state.json: the log history the card and curves are built from
    result = TrainResult(
        output_dir=output_dir,
        method=script.method,
        family=spec.name,
        global_step=trainer.state.global_step,
        train_metrics=train_metrics,
        eval_metrics=eval_metrics,
        log_history=list(trainer.state.log_history),
        data=data,
        image_tokens=image_tokens,
        hardware=describe_hardware(),
        train_seconds=train_seconds,
        resumed_from=resume_from,
        config=resolved_config(script, args, model_args),
    )
    result.config["training"]["push_to_hub"] = push  # as asked, though the Trainer itself never pushes
    if state.is_main_process:
        processor.save_pretrained(str(output_dir))
        _write_run_files(result, started)
        if script.curves:
            result.curves = save_curves(result.log_history, output_dir / CURVES_FILE, script.method)
        result.emissions = read_emissions(output_dir / "emissions.csv")
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if state.is_main_process:
        if script.merge:
            result.merged = merge_adapter(
                output_dir,
                model_args.model_name_or_path,
                output_dir / "merged",
                dtype=script.merge_dtype,
                trust_remote_code=args.trust_remote_code,
            )
        if script.model_card:
            from vlm.train.card import card_facts, write_card

            repo_id = args.hub_model_id if push else None
            facts = card_facts(result, script, args, model_args, spec, repo_id, command)
            result.card = write_card(facts, output_dir)
        if push:
            result.pushed_to = push_run(
                output_dir, args.hub_model_id, token, private=bool(args.hub_private_repo)
            )
    state.wait_for_everyone()
    return result


def _write_run_files(result: TrainResult, started: float) -> None:
    """Metrics, the resolved config and this session's line in the sessions log, beside the adapter."""
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_results.json").write_text(json.dumps(result.train_metrics, indent=2), encoding="utf-8")
    if result.eval_metrics is not None:
        (out / "eval_results.json").write_text(json.dumps(result.eval_metrics, indent=2), encoding="utf-8")
    (out / CONFIG_FILE).write_text(json.dumps(result.config, indent=2, default=str), encoding="utf-8")
    session = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(result.train_seconds, 3),
        "resumed_from": Path(result.resumed_from).name if result.resumed_from else None,
        "final_step": result.global_step,
    }
    with (out / SESSIONS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(session) + "\n")
    result.train_seconds = sum(s["seconds"] for s in _sessions(out))


# =============================================================================================
# After training: reload, merge, push
# =============================================================================================


def load_trained(
    run_dir: str | Path,
    base: str | None = None,
    *,
    load_in_4bit: bool = False,
    dtype: str = "float32",
    spec: ModelSpec | None = None,
) -> tuple[Any, ProcessorMixin]:
    """Base model + the run's adapter, and the run's processor (with its image budget), for inference.

    ``base`` defaults to the adapter's recorded base model. 4-bit loading applies the CPU repack guard,
    so a model used for ``generate`` can still be trained afterwards.
    """
    from peft import PeftConfig, PeftModel
    from transformers import AutoProcessor

    run_dir = Path(run_dir)
    base = base or PeftConfig.from_pretrained(str(run_dir)).base_model_name_or_path
    model_args = MiradaModelConfig(model_name_or_path=base, dtype=dtype, load_in_4bit=load_in_4bit)
    spec = spec or resolve_spec(model_args)
    model = load_model(model_args, spec, quantization_config=build_quantization_config(model_args, spec))
    processor = AutoProcessor.from_pretrained(str(run_dir))
    sync_model_to_processor(model, processor)
    model = PeftModel.from_pretrained(model, str(run_dir))
    model.eval()
    return model, processor


def merge_adapter(
    adapter_dir: str | Path,
    base: str,
    out_dir: str | Path,
    *,
    dtype: str = "bfloat16",
    trust_remote_code: bool = False,
) -> Path:
    """Merge the adapter into a freshly loaded *unquantised* base and save model + processor.

    Never into the 4-bit training model: merging into quantised weights rounds the update away
    (DESIGN §6.3). Runs on CPU so the training GPU's memory is not needed.
    """
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = Path(out_dir)
    base_model = AutoModelForImageTextToText.from_pretrained(
        base, dtype=_dtype(dtype), trust_remote_code=trust_remote_code
    )
    processor = AutoProcessor.from_pretrained(str(adapter_dir))
    sync_model_to_processor(base_model, processor)  # the merged config must match the saved processor
    merged = PeftModel.from_pretrained(base_model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    log.info("merged adapter into a %s base: %s", dtype, out)
    return out


def push_run(output_dir: str | Path, repo_id: str, token: str | None, *, private: bool = False) -> str:
    """Upload adapter, processor, card, curves, metrics and emissions (not checkpoints) to ``repo_id``."""
    from huggingface_hub import HfApi

    if not token:
        raise UserError(f"push_to_hub needs {HF_TOKEN_ENV} in the environment")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "merged/**", "runs/**"],
        commit_message="mirada train: adapter, Model Card, curves and emissions",
    )
    url = f"https://huggingface.co/{repo_id}"
    log.info("pushed to %s", url)
    return url
