"""Which registry family serves a checkpoint, read from its ``config.json`` (or a run folder's base)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from data_tools.errors import one_line
from vlm.models.errors import ModelLoadError
from vlm.registry import ModelSpec, get_spec, spec_for_model_type

if TYPE_CHECKING:
    from transformers import PretrainedConfig

__all__ = [
    "ADAPTER_CONFIG",
    "RUN_CONFIG",
    "adapter_base",
    "image_token_id",
    "is_adapter_dir",
    "is_hub_id",
    "missing_local_path",
    "read_config",
    "resolve_spec",
]

ADAPTER_CONFIG = "adapter_config.json"
RUN_CONFIG = "mirada_train_config.json"
"""The resolved settings ``mirada train`` writes beside the adapter (read back to restore a run)."""


def is_hub_id(name: str | Path) -> bool:
    """Whether ``name`` names a Hub repository (``name`` or ``owner/name``) rather than a local folder."""
    text = str(name)
    if Path(text).expanduser().exists() or text.startswith((".", "/", "~")):
        return False
    return text.count("/") <= 1


def missing_local_path(name: str | Path) -> str | None:
    """A one-line reason when ``name`` is a local path that does not exist (``None`` otherwise)."""
    if is_hub_id(name) or Path(name).expanduser().exists():
        return None
    relative = (
        "" if Path(name).expanduser().is_absolute() else f" (relative paths are read from {Path.cwd()})"
    )
    return f"{name} does not exist{relative}"


def is_adapter_dir(path: str | Path) -> bool:
    """Whether ``path`` is a local LoRA adapter folder (a ``mirada train`` run, or any PEFT save)."""
    return (Path(path).expanduser() / ADAPTER_CONFIG).is_file()


def adapter_base(adapter_dir: str | Path) -> str:
    """The ``base_model_name_or_path`` an adapter folder records."""
    path = Path(adapter_dir).expanduser() / ADAPTER_CONFIG
    try:
        base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {one_line(exc)}") from None
    if not base:
        raise ModelLoadError(f"{path} records no base_model_name_or_path; pass the base model explicitly")
    return str(base)


def read_config(
    model: str | Path, *, revision: str | None = None, trust_remote_code: bool = False
) -> PretrainedConfig:
    """The checkpoint's config (a small file); an adapter folder answers with its base's config."""
    from transformers import AutoConfig

    source = adapter_base(model) if is_adapter_dir(model) else str(model)
    missing = missing_local_path(source)
    if missing:
        raise ModelLoadError(f"cannot read the model config: {missing}")
    try:
        return AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the config of {source!r}: {one_line(exc)}") from None


def resolve_spec(
    model: str | Path,
    family: str | None = None,
    *,
    config: PretrainedConfig | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> ModelSpec:
    """The registry family: ``family`` when given, else the checkpoint's ``model_type``."""
    try:
        if family:
            return get_spec(family)
        config = config or read_config(model, revision=revision, trust_remote_code=trust_remote_code)
        return spec_for_model_type(config.model_type)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None


def image_token_id(config: PretrainedConfig) -> int:
    """The token the model fills with image features (Gemma 3: the soft token, not ``<start_of_image>``)."""
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    raise ModelLoadError(f"{type(config).__name__} names no image token id; is this a vision-language model?")
