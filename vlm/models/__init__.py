"""The one loading layer for vision-language models (see :mod:`vlm.models.loading` for why).

from vlm.models import load_processor, load_model, load_for_inference, LoadedModel, ModelLoadError
"""

from vlm.models.errors import ModelLoadError
from vlm.models.family import image_token_id, is_adapter_dir, read_config, resolve_spec
from vlm.models.guards import disable_cpu_repack, remove_vision_input_grad_hooks
from vlm.models.loading import LoadedModel, load_for_inference, load_model, merge_adapter, resolve_adapter
from vlm.models.processor import image_settings, load_processor, prepare_processor
from vlm.models.quantization import build_quantization_config, check_quantized_layout

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "build_quantization_config",
    "check_quantized_layout",
    "disable_cpu_repack",
    "image_settings",
    "image_token_id",
    "is_adapter_dir",
    "load_for_inference",
    "load_model",
    "load_processor",
    "merge_adapter",
    "prepare_processor",
    "read_config",
    "remove_vision_input_grad_hooks",
    "resolve_adapter",
    "resolve_spec",
]
