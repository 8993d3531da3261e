"""The processor of a base model or a trained run, with the image budget training used.

Why one function: the image-token budget, the chat-template fallback for checkpoints that ship
none (PaliGemma pt) and the check that ``AutoProcessor`` did not silently return a bare tokenizer
(DESIGN 6.2) must be the same when training, generating and evaluating, or what is evaluated is not
what was trained.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_tools.errors import one_line
from vlm.models.errors import ModelLoadError
from vlm.models.family import RUN_CONFIG, image_token_id, is_adapter_dir, read_config, resolve_spec
from vlm.registry import BudgetError, ModelSpec, template_path

if TYPE_CHECKING:
    from transformers import PretrainedConfig, ProcessorMixin

log = logging.getLogger("vlm.models")

__all__ = ["PADDING_SIDES", "image_settings", "load_processor", "prepare_processor", "run_config"]

PADDING_SIDES = ("left", "right")

_IMAGE_KEYS = ("size", "max_image_size", "do_image_splitting", "image_grid_pinpoints", "crop_size")
"""Image-processor settings an image budget changes (see vlm.registry's budget functions)."""


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved settings a ``mirada train`` run saved (``{}`` for an adapter from elsewhere)."""
    path = Path(run_dir).expanduser() / RUN_CONFIG
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {one_line(exc)}") from None


def image_settings(processor: ProcessorMixin) -> dict[str, Any]:
    """The budget-relevant image-processor settings, JSON-safe (to record, restore and compare them)."""
    ip = getattr(processor, "image_processor", None)
    settings: dict[str, Any] = {}
    for key in _IMAGE_KEYS:
        value = getattr(ip, key, None)
        if value is None:
            continue
        if not isinstance(value, (bool, int, float, str, list, tuple, dict)):
            value = (
                {k: v for k, v in vars(value).items() if v is not None}
                if hasattr(value, "__dict__")
                else str(value)
            )
        settings[key] = json.loads(json.dumps(value, default=str))
    return settings


def _check_multimodal(processor: Any, source: str) -> None:
    from transformers import ProcessorMixin

    if not isinstance(processor, ProcessorMixin):
        raise ModelLoadError(
            f"AutoProcessor loaded a {type(processor).__name__} for {source}, not a multimodal processor: check "
            "processor_config.json there (processor_class, image_processor), and that torchvision is installed "
            "(Qwen and SmolVLM processors need it)"
        )


def prepare_processor(
    model: str | Path,
    *,
    max_image_tokens: int | None = None,
    padding_side: str | None = None,
    family: str | None = None,
    spec: ModelSpec | None = None,
    config: PretrainedConfig | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    processor_kwargs: Mapping[str, Any] | None = None,
) -> tuple[ProcessorMixin, int]:
    """:func:`load_processor`, also returning the worst-case image tokens per image after the budget.

    ``model`` may be a base checkpoint, a merged run or a trained run folder (then its saved
    processor is used, which already carries the run's budget and grid settings, and the budget
    defaults to the one the run recorded).
    """
    from transformers import AutoProcessor

    source = str(model)
    run = is_adapter_dir(model)
    try:
        processor = AutoProcessor.from_pretrained(
            source,
            revision=None if run else revision,
            trust_remote_code=trust_remote_code,
            **(processor_kwargs or {}),
        )
    except (OSError, ValueError, ImportError) as exc:
        raise ModelLoadError(f"cannot load the processor of {source!r}: {one_line(exc)}") from None
    _check_multimodal(processor, source)
    config = config or read_config(model, revision=revision, trust_remote_code=trust_remote_code)
    spec = spec or resolve_spec(model, family, config=config)
    missing = [name for name in spec.extra_special_tokens if not getattr(processor.tokenizer, name, None)]
    if missing:
        raise ModelLoadError(
            f"{spec.display_name}'s tokenizer lacks the special tokens {missing}; use the checkpoint's own "
            "tokenizer (transformers >= 5 reads them from extra_special_tokens)"
        )
    if spec.chat_template and not processor.chat_template:
        processor.chat_template = template_path(spec.chat_template).read_text(encoding="utf-8")
        log.info("%s ships no chat template; using Mirada's %s.jinja", source, spec.chat_template)
    if max_image_tokens is None and run:
        max_image_tokens = run_config(model).get("model", {}).get("max_image_tokens")
    budget = max_image_tokens or spec.default_max_image_tokens
    try:
        worst = spec.apply_budget(processor, budget, image_token_id(config))
    except BudgetError as exc:
        raise ModelLoadError(str(exc)) from None
    log.info("%s: at most %d image tokens per image (budget %d)", spec.display_name, worst, budget)
    if padding_side is not None:
        if padding_side not in PADDING_SIDES:
            raise ModelLoadError(f"padding_side must be left or right, not {padding_side!r}")
        processor.tokenizer.padding_side = padding_side
    return processor, worst


def load_processor(
    model: str | Path,
    *,
    max_image_tokens: int | None = None,
    padding_side: str | None = None,
    family: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    processor_kwargs: Mapping[str, Any] | None = None,
) -> ProcessorMixin:
    """The processor of ``model`` (a base, a merged run or a run folder) with the family's image budget.

    Registry lookup, image budget (``max_image_tokens``, default the run's or the family's), the
    chat-template fallback and the bare-tokenizer check; any failure is one :class:`ModelLoadError`.
    """
    processor, _ = prepare_processor(
        model,
        max_image_tokens=max_image_tokens,
        padding_side=padding_side,
        family=family,
        revision=revision,
        trust_remote_code=trust_remote_code,
        processor_kwargs=processor_kwargs,
    )
    return processor
