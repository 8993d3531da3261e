"""Loading a VLM: a base, a base + one or several LoRA adapters, or a merged run; and merging one.

Why one home: training, drafting, generation, evaluation and the demo must see the model exactly as
training did: the same family facts, image budget, grid settings and quantisation guards. Each
used to load it its own way, and each way drifted (no image budget, no template fallback, no
repack guard). Everything that loads a VLM goes through :func:`load_model` and
:func:`load_for_inference`.

    >>> loaded = load_for_inference("Qwen/Qwen2.5-VL-7B-Instruct", adapters=["runs/sft", "runs/dpo"])  # doctest: +SKIP
    >>> loaded.model.set_adapter("dpo")                                                         # doctest: +SKIP
    >>> with loaded.model.disable_adapter(): ...                                                # the base  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_tools.errors import one_line
from data_tools.secrets import redact
from vlm.models.errors import ModelLoadError
from vlm.models.family import (
    ADAPTER_CONFIG,
    adapter_base,
    is_adapter_dir,
    is_hub_id,
    read_config,
    resolve_spec,
)
from vlm.models.guards import disable_cpu_repack
from vlm.models.processor import image_settings, prepare_processor, run_config
from vlm.models.quantization import (
    build_quantization_config,
    check_quantized_layout,
    resolve_dtype,
    training_device_map,
)
from vlm.registry import ModelSpec, sync_model_to_processor

if TYPE_CHECKING:
    from transformers import BitsAndBytesConfig, PretrainedConfig, PreTrainedModel, ProcessorMixin

log = logging.getLogger("vlm.models")

__all__ = ["LoadedModel", "load_for_inference", "load_model", "merge_adapter", "resolve_adapter"]

_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


@dataclass
class LoadedModel:
    """A model ready to generate, with everything needed to feed it as training did.

    ``model`` is a ``PeftModel`` when adapters were given, each adapter loaded under its name
    (``model.set_adapter(name)``; ``with model.disable_adapter():`` for the base), else the base.
    ``processor`` is the first adapter's saved processor (its image budget and grids), else the
    base's. ``processors`` maps each adapter name, and ``None`` for the base, to the processor that
    system's inputs should be built with (they differ only when runs chose different budgets).
    """

    model: Any
    processor: ProcessorMixin
    spec: ModelSpec
    base_id: str
    adapters: dict[str, Path] = field(default_factory=dict)
    run_settings: dict[str, Any] = field(default_factory=dict)
    processors: dict[str | None, ProcessorMixin] = field(default_factory=dict)

    def processor_for(self, adapter: str | None) -> ProcessorMixin:
        """The processor for one system: an adapter's name, or ``None`` for the base."""
        return self.processors.get(adapter, self.processor)


def load_model(
    model: str | Path,
    *,
    quantization: str = "none",
    dtype: str = "auto",
    for_training: bool = False,
    device_map: str | dict | None = None,
    family: str | None = None,
    spec: ModelSpec | None = None,
    config: PretrainedConfig | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    quantization_config: BitsAndBytesConfig | None = None,
) -> PreTrainedModel:
    """Load a base (or merged) VLM, quantised when asked, guarded against the bitsandbytes CPU repack.

    ``quantization_config`` overrides ``quantization`` (training builds it from its own settings).
    With ``for_training`` the 4-bit weights go to each process's own GPU (DDP) or are left for
    FSDP/DeepSpeed to place; for inference the model goes to the GPU when there is one, in eval mode.
    A 4/8-bit model whose vision side or ``lm_head`` got quantised is refused.
    """
    import torch
    from transformers import AutoModelForImageTextToText

    if is_adapter_dir(model):
        raise ModelLoadError(
            f"{model} is a LoRA adapter (trained on {adapter_base(model)}), not a model: load it as an adapter "
            "on that base (load_for_inference(base, adapters=[run]))"
        )
    config = config or read_config(model, revision=revision, trust_remote_code=trust_remote_code)
    spec = spec or resolve_spec(model, family, config=config)
    if quantization_config is None:
        quantization_config = build_quantization_config(quantization, spec)
    kwargs: dict[str, Any] = {
        "dtype": resolve_dtype(dtype),
        "revision": revision,
        "trust_remote_code": trust_remote_code,
    }
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is None and for_training:
        device_map = training_device_map(quantization_config is not None)
    elif device_map is None and torch.cuda.is_available():
        device_map = {"": torch.cuda.current_device()}
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        loaded = AutoModelForImageTextToText.from_pretrained(str(model), **kwargs)
    except (
        OSError,
        ValueError,
        RuntimeError,
    ) as exc:  # RuntimeError: weights that do not fit the config, OOM
        raise ModelLoadError(f"cannot load the model {str(model)!r}: {one_line(exc)}") from None
    if loaded.config.model_type not in spec.model_types:
        log.warning(
            "family %s is set, but the checkpoint's model_type is %s", spec.name, loaded.config.model_type
        )
    disable_cpu_repack(loaded)
    if quantization_config is not None:
        check_quantized_layout(loaded, spec, list(quantization_config.llm_int8_skip_modules or []))
    if not for_training:
        loaded.eval()
    return loaded


def resolve_adapter(adapter: str | Path) -> Path:
    """A local adapter folder for a run folder or a Hub id (downloaded into the Hub cache)."""
    path = Path(adapter).expanduser()
    if path.exists():
        if not (path / ADAPTER_CONFIG).is_file():
            raise ModelLoadError(
                f"adapter {path} has no {ADAPTER_CONFIG} (is it a `mirada train` run folder?)"
            )
        return path
    if not is_hub_id(adapter):
        raise ModelLoadError(f"adapter {path} does not exist")
    from huggingface_hub import snapshot_download

    try:
        local = Path(snapshot_download(str(adapter)))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot download adapter {adapter!r} from the Hub: {redact(one_line(exc))}"
        ) from None
    if not (local / ADAPTER_CONFIG).is_file():
        raise ModelLoadError(
            f"Hub repository {adapter!r} holds no {ADAPTER_CONFIG}; it is not a LoRA adapter"
        )
    return local


def _same_model(a: str | Path, b: str | Path) -> bool:
    def norm(name: str | Path) -> str:
        path = Path(name).expanduser()
        return str(path.resolve()) if path.exists() else str(name).rstrip("/")

    return norm(a) == norm(b)


def _adapter_names(adapters: Sequence[str | Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(adapters):
            raise ModelLoadError(
                f"{len(adapters)} adapters but {len(names)} adapter names; give one name each"
            )
        if len(set(names)) != len(names) or not all(names):
            raise ModelLoadError(f"adapter names must be unique and non-empty: {names}")
        return names
    result: list[str] = []
    for adapter in adapters:
        stem = Path(str(adapter).rstrip("/")).name or "adapter"
        name, n = stem, 2
        while name in result:
            name, n = f"{stem}-{n}", n + 1
        result.append(name)
    return result


def _mismatch(adapter: Path, base: str, exc: BaseException) -> ModelLoadError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next(
        (line for line in lines if "size mismatch" in line), lines[0] if lines else type(exc).__name__
    )
    return ModelLoadError(f"adapter {adapter} does not fit the base {base}: {detail}")


def load_for_inference(
    model: str | Path,
    *,
    adapters: Sequence[str | Path] = (),
    adapter_names: Sequence[str] | None = None,
    quantization: str = "none",
    dtype: str = "auto",
    padding_side: str | None = "left",
    max_image_tokens: int | None = None,
    device_map: str | dict | None = None,
    family: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    check_base: bool = True,
) -> LoadedModel:
    """A base model, optionally with LoRA adapters (run folders or Hub ids), ready to generate.

    ``model`` may itself be a run folder: its recorded base is loaded with it as the only adapter.
    A run folder restores the image budget and grid settings the run saved. An adapter trained on
    another base (by ``base_model_name_or_path``, unless ``check_base=False``, or by weight shapes)
    is a :class:`ModelLoadError`. ``padding_side="left"`` is what batched decoder-only generation needs.
    """
    refs = list(adapters)
    if is_adapter_dir(model):
        refs.insert(0, model)
        model = adapter_base(model)
    base_id = str(model)
    dirs = [resolve_adapter(ref) for ref in refs]
    names = _adapter_names(refs, adapter_names)
    if check_base:
        for ref, path in zip(refs, dirs, strict=True):
            recorded = adapter_base(path)
            if not _same_model(recorded, base_id):
                raise ModelLoadError(
                    f"adapter {ref} was trained on {recorded}, not on {base_id}; load it on that base"
                )
    config = read_config(base_id, revision=revision, trust_remote_code=trust_remote_code)
    spec = resolve_spec(base_id, family, config=config)

    def processor_of(source: str | Path) -> tuple[ProcessorMixin, int]:
        return prepare_processor(
            source,
            max_image_tokens=max_image_tokens,
            padding_side=padding_side,
            spec=spec,
            config=config,
            revision=revision,
            trust_remote_code=trust_remote_code,
        )

    base_processor, base_worst = processor_of(base_id)
    processors: dict[str | None, ProcessorMixin] = {None: base_processor}
    worst: dict[str | None, int] = {None: base_worst}
    for name, path in zip(names, dirs, strict=True):
        if any((path / f).is_file() for f in _PROCESSOR_FILES):
            processors[name], worst[name] = processor_of(path)
        else:  # an adapter saved without its processor: the base's, with the same budget
            processors[name], worst[name] = base_processor, base_worst
    primary = names[0] if names else None
    processor = processors[primary]
    if spec.syncs_image_grids:  # one model config serves every system: their grids must agree
        grids = {name: image_settings(p).get("image_grid_pinpoints") for name, p in processors.items()}
        clash = [name for name in names if grids[name] != grids[primary]]
        if clash:
            raise ModelLoadError(
                f"adapters {primary} and {clash[0]} were trained with different image grids "
                "(image_grid_pinpoints); load them in separate calls"
            )
        processors[None] = processor  # the model's grids follow the runs'; the base must use them too

    loaded = load_model(
        base_id,
        quantization=quantization,
        dtype=dtype,
        device_map=device_map,
        spec=spec,
        config=config,
        revision=revision,
        trust_remote_code=trust_remote_code,
    )
    synced = sync_model_to_processor(loaded, processor)
    if dirs:
        loaded = _attach_adapters(loaded, names, dirs, base_id)
    settings: dict[str, Any] = {
        "image_tokens": worst[primary],
        "image_processor": image_settings(processor),
        "model_config_synced": synced,
        "runs": {
            name: {
                k: v
                for k, v in run_config(path).get("model", {}).items()
                if k in ("max_image_tokens", "family")
            }
            | {"method": run_config(path).get("script", {}).get("method")}
            for name, path in zip(names, dirs, strict=True)
        },
    }
    return LoadedModel(
        model=loaded,
        processor=processor,
        spec=spec,
        base_id=base_id,
        adapters=dict(zip(names, dirs, strict=True)),
        run_settings=settings,
        processors=processors,
    )


def _attach_adapters(model: PreTrainedModel, names: list[str], dirs: list[Path], base: str) -> Any:
    from peft import PeftModel

    current = dirs[0]
    try:
        peft_model = PeftModel.from_pretrained(model, str(current), adapter_name=names[0], is_trainable=False)
        for name, path in zip(names[1:], dirs[1:], strict=True):
            current = path
            peft_model.load_adapter(str(path), adapter_name=name, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise _mismatch(current, base, exc) from None
    peft_model.set_adapter(names[0])
    disable_cpu_repack(peft_model)
    peft_model.eval()
    return peft_model


def merge_adapter(
    adapter_dir: str | Path,
    base: str | None,
    out_dir: str | Path,
    *,
    dtype: str = "bfloat16",
    trust_remote_code: bool = False,
) -> Path:
    """Merge the adapter into a freshly loaded *unquantised* base and save model + processor.

    Never into the 4-bit training model: merging into quantised weights rounds the update away
    (DESIGN §6.3). Runs on CPU so the training GPU's memory is not needed. The saved processor is the
    run's (its budget), and the merged config carries the grids the run used.
    """
    out = Path(out_dir)
    loaded = load_for_inference(
        base or adapter_base(adapter_dir),
        adapters=[adapter_dir],
        dtype=dtype,
        padding_side=None,
        device_map={"": "cpu"},
        trust_remote_code=trust_remote_code,
        check_base=base is None,
    )
    merged = loaded.model.merge_and_unload()
    merged.save_pretrained(str(out))
    loaded.processor.save_pretrained(str(out))
    log.info("merged adapter into a %s base: %s", dtype, out)
    return out
