"""Per-family facts about vision-language models, in one registry.

Why this exists: each VLM family differs in where its language model lives (``language_model`` vs
``text_model``), which modules must stay unquantised (vision tower, projector, ``lm_head``), how its
processor limits the image-token count, which extra packages its processor imports, and which TRL
trainers can drive it. Spreading those facts as ``if model_type == …`` branches across the training,
generation and evaluation code is how they drift apart (LLaMA-Factory moved from such chains to a
registry for this reason, DESIGN §4b.4). Here a family is one :func:`register_model` call; everything
else asks :func:`get_spec` or :func:`spec_for_model_type`, and an unknown name fails with the list of
known ones.

The trade-off: the registry holds *facts and small strategies* (regexes, a pixel-budget function), not
model-loading code, so it stays importable without torch and its regexes are unit-tested against the
module names of the offline tiny models (``vlm.tiny``), which share the real models' module layout.

    >>> spec = get_spec("qwen2_5_vl")
    >>> spec.hub_id
    'Qwen/Qwen2.5-VL-7B-Instruct'
    >>> is_skipped("model.visual.blocks.0.attn.qkv", spec.skip_modules)
    True
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch/transformers stay lazy: the CLI's --help and config validation need neither
    from PIL import Image
    from transformers import ProcessorMixin

__all__ = [
    "LM_LORA_TARGETS",
    "METHODS",
    "BudgetError",
    "ModelSpec",
    "TokenizerFacts",
    "count_image_tokens",
    "get_spec",
    "is_skipped",
    "known_models",
    "max_image_tokens",
    "register_model",
    "spec_for_model_type",
    "sync_model_to_processor",
    "template_path",
]

METHODS: tuple[str, ...] = ("sft", "dpo", "kto")

LM_LORA_TARGETS = r".*(language_model|text_model).*\.(q|k|v|o|gate|up|down)_proj"
"""LoRA on the language model's attention and MLP projections only (PEFT full-matches a string target).

Vision towers have ``q_proj``/``gate_proj`` too (SigLIP, Qwen's ViT); they never contain
``language_model``/``text_model`` in their names, so they stay frozen."""


class BudgetError(ValueError):
    """The processor cannot keep images within the requested image-token budget."""


# ---------------------------------------------------------------------------------------------
# Skip-module semantics. transformers 5 matches ``llm_int8_skip_modules`` entries against a Linear's
# full name from the *start*, up to a module boundary, as a regex, or as a suffix
# (``transformers.quantizers.quantizers_utils.should_convert_module``). A bare ``"visual"`` therefore
# does NOT skip ``model.visual.blocks.0.attn.qkv``: the vision tower gets quantised silently. Every
# entry below is a regex anchored with ``.*`` so it matches at any depth (DESIGN §6.3).
# ---------------------------------------------------------------------------------------------

_BOUNDARY = r"(?:(?<=\.)|(?=\.|$))"


def is_skipped(module_name: str, patterns: Iterable[str]) -> bool:
    """Whether transformers 5 leaves ``module_name`` unquantised for these skip ``patterns``.

    Same rule as ``should_convert_module`` (kept here so tests can pin the semantics we rely on):

        >>> is_skipped("model.visual.blocks.0.attn.qkv", ["visual"])     # bare substring: quantised!
        False
        >>> is_skipped("model.visual.blocks.0.attn.qkv", [r".*visual"])
        True
    """
    return any(
        re.match(rf"(?:{pattern}){_BOUNDARY}", module_name) or module_name.endswith(pattern)
        for pattern in patterns
    )


# ---------------------------------------------------------------------------------------------
# Image-token budgets. A budget caps the number of image tokens one image may become; it never raises
# what the processor already allows (a tiny test processor stays tiny). Families whose token count is
# fixed by architecture (LLaVA, Gemma 3, PaliGemma) are checked, not changed, and fail with the number
# they need. LLaVA-NeXT's anyres grid list is pruned, and the model config must then follow it.
# ---------------------------------------------------------------------------------------------

_PROBE_SHAPES: tuple[tuple[int, int], ...] = ((1, 1), (2, 1), (1, 2), (4, 3))
_PROBE_SIDE = 2048


def _probe_images(
    side: int = _PROBE_SIDE, shapes: Iterable[tuple[int, int]] = _PROBE_SHAPES
) -> list[Image.Image]:
    """Large images of several aspect ratios (``(w, h)``): together they hit a processor's worst case."""
    from PIL import Image

    images = []
    for w, h in dict.fromkeys(shapes):
        scale = side / max(w, h)
        images.append(Image.new("RGB", (max(1, round(w * scale)), max(1, round(h * scale))), (128, 96, 64)))
    return images


def count_image_tokens(processor: ProcessorMixin, image: Image.Image, image_token_id: int) -> int:
    """How many ``image_token_id`` tokens ``processor`` emits for one ``image`` in a chat prompt.

    Goes through the processor's own chat template and expansion, so it is exact for every family
    (Idefics3 tiling, LLaVA-NeXT anyres, Qwen's dynamic resolution) without re-deriving their maths.
    """
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    encoded = processor(text=[text], images=[[image]], return_tensors="pt")
    return int((encoded["input_ids"] == image_token_id).sum())


def max_image_tokens(
    processor: ProcessorMixin, image_token_id: int, shapes: Iterable[tuple[int, int]] = ()
) -> int:
    """The most image tokens one image can become with ``processor`` (probed, not computed).

    ``shapes`` adds aspect ratios ``(w, h)`` to the standard probes (e.g. each anyres grid's own).
    """
    shapes = (*_PROBE_SHAPES, *shapes)
    return max(count_image_tokens(processor, image, image_token_id) for image in _probe_images(shapes=shapes))


def _size_get(size: Any, key: str) -> Any:
    """Read a key from a transformers 5 ``SizeDict`` or a plain dict."""
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _budget_qwen(processor: ProcessorMixin, budget: int, image_token_id: int) -> int:
    """Qwen2/2.5-VL: ``size={"shortest_edge", "longest_edge"}`` are *pixel counts*; one image token
    covers ``(patch_size * merge_size)²`` pixels. Caps ``longest_edge`` at ``budget`` tokens."""
    ip = processor.image_processor
    per_token = (ip.patch_size * ip.merge_size) ** 2
    longest = min(int(_size_get(ip.size, "longest_edge")), budget * per_token)
    shortest = min(int(_size_get(ip.size, "shortest_edge")), longest)
    ip.size = {"shortest_edge": shortest, "longest_edge": longest}
    return max_image_tokens(processor, image_token_id)


def _budget_idefics3(processor: ProcessorMixin, budget: int, image_token_id: int) -> int:
    """Idefics3/SmolVLM: images are resized to ``size.longest_edge`` and split into square tiles of
    ``max_image_size.longest_edge`` plus one global view, ``image_seq_len`` tokens each. Shrinks the
    tile grid until the worst case fits; a single global view is the floor."""
    ip = processor.image_processor
    tile = int(_size_get(ip.max_image_size, "longest_edge"))
    tiles_per_side = math.ceil(int(_size_get(ip.size, "longest_edge")) / tile) if ip.do_image_splitting else 0
    while True:
        worst = max_image_tokens(processor, image_token_id)
        if worst <= budget or tiles_per_side <= 0:
            return worst
        tiles_per_side -= 1
        if tiles_per_side >= 1:
            ip.size = {"longest_edge": tiles_per_side * tile}
        else:
            ip.do_image_splitting = False
            ip.size = {"longest_edge": tile}


def _budget_llava_next(processor: ProcessorMixin, budget: int, image_token_id: int) -> int:
    """LLaVA-NeXT: "anyres" tiles each image onto the best of ``image_grid_pinpoints`` (plus a base
    view), so the largest grids set the worst case. Drops the largest-area grids until the worst case
    fits; a single base-sized tile is the floor. The model reads the same list from its config to
    unpad the features, so :func:`sync_model_to_processor` must copy it over before any forward."""
    ip = processor.image_processor
    grids = [list(g) for g in ip.image_grid_pinpoints]
    # Every grid's own aspect ratio is probed too: after the square grid goes, a 3:1 grid is the worst.
    shapes = [(w, h) for h, w in grids] + [(h, w) for h, w in grids]
    worst = max_image_tokens(processor, image_token_id, shapes)
    if worst <= budget:
        return worst

    def cost(grid: list[int]) -> int:  # the worst case with this grid alone
        ip.image_grid_pinpoints = [grid]
        return max_image_tokens(processor, image_token_id, shapes)

    costs = {tuple(g): cost(g) for g in grids}
    grids.sort(key=lambda g: costs[tuple(g)])
    while worst > budget and len(grids) > 1:
        grids.pop()  # the costliest grid left
        ip.image_grid_pinpoints = [list(g) for g in grids]
        worst = max_image_tokens(processor, image_token_id, shapes)
    crop = _size_get(ip.crop_size, "height"), _size_get(ip.crop_size, "width")
    if worst > budget and None not in crop and grids != [list(crop)]:
        ip.image_grid_pinpoints = [list(crop)]
        worst = max_image_tokens(processor, image_token_id, shapes)
    ip.image_grid_pinpoints = [list(g) for g in ip.image_grid_pinpoints]
    return worst


def sync_model_to_processor(model: Any, processor: ProcessorMixin) -> list[str]:
    """Copy processor-side settings the model also reads (LLaVA-NeXT's ``image_grid_pinpoints``).

    A budget that prunes the processor's anyres grids without telling the model makes the model
    compute a different number of image features than the processor inserted placeholders for, and
    the forward fails with a shape error (or, worse, silently mis-unpads). Returns the keys copied.
    """
    copied = []
    ip = getattr(processor, "image_processor", None)
    pinpoints = getattr(ip, "image_grid_pinpoints", None)
    current = getattr(model.config, "image_grid_pinpoints", None)
    if (
        pinpoints is not None
        and current is not None
        and [list(g) for g in current] != [list(g) for g in pinpoints]
    ):
        model.config.image_grid_pinpoints = [list(g) for g in pinpoints]
        copied.append("image_grid_pinpoints")
    return copied


def _budget_fixed(processor: ProcessorMixin, budget: int, image_token_id: int) -> int:
    """Families whose image-token count is fixed by the checkpoint: nothing to adjust, only to check."""
    return max_image_tokens(processor, image_token_id)


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------

BudgetFn = Callable[["ProcessorMixin", int, int], int]


@dataclass(frozen=True)
class TokenizerFacts:
    """What the family's real tokenizer holds, so the offline tiny models (:mod:`vlm.tiny`) match it.

    ``special_tokens`` are the named ones (``bos_token`` ... ``image_token``, ``boi_token``); named
    tokens outside the standard set are transformers 5 ``extra_special_tokens``, which makes them
    attributes (``tok.image_token``). ``other_tokens`` are special (never split) without a name.
    ``eos_tokens`` are extra stop tokens the real ``generation_config`` lists. ``chat_template`` is
    the template the real checkpoints ship: ``trl:<name>`` (TRL's bundled copy, so TRL recognises it
    by identity), ``mirada:<name>`` (``vlm/templates/``, for checkpoints that ship none) or the text.
    """

    special_tokens: dict[str, str]
    chat_template: str
    other_tokens: tuple[str, ...] = ()
    eos_tokens: tuple[str, ...] = ()
    add_bos_token: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """Everything Mirada needs to know about one VLM family.

    ``skip_modules`` are transformers-5 skip regexes (vision tower, projector, ``lm_head``): those
    modules stay unquantised and, without LoRA, frozen. ``budget`` caps a processor's image tokens
    and returns the worst case after capping. ``requires`` are import names the processor needs
    (checked only when the family is used). ``refusals`` maps a method to why TRL cannot train it.
    ``chat_template`` names a template in ``vlm/templates/`` for checkpoints that ship none.
    ``prefix_lm`` families attend bidirectionally over the prompt, so SFT batches must come from the
    processor's prefix/suffix API (:mod:`vlm.train.collators`), not from TRL's chat-template collator.
    ``syncs_image_grids`` families read the processor's image grids from the model config too, so a
    budget that prunes them must be copied to the model (:func:`sync_model_to_processor`).
    ``tokenizer`` describes the real tokenizer (special tokens, template) for the tiny models.
    ``vllm_lora`` families have a vLLM model class that serves LoRA adapters on the language model
    (the only part Mirada's adapters touch), so ``mirada generate --backend vllm`` can serve them
    (checked against vLLM 0.33's supported-models docs).
    """

    name: str
    model_types: tuple[str, ...]
    hub_id: str
    display_name: str
    license: str
    skip_modules: tuple[str, ...]
    default_max_image_tokens: int
    budget: BudgetFn = _budget_fixed
    lora_targets: str = LM_LORA_TARGETS
    methods: frozenset[str] = frozenset(METHODS)
    refusals: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    extra_special_tokens: tuple[str, ...] = ()
    chat_template: str | None = None
    prefix_lm: bool = False
    syncs_image_grids: bool = False
    tokenizer: TokenizerFacts | None = None
    vllm_lora: bool = False
    notes: str = ""

    @property
    def vision_modules(self) -> tuple[str, ...]:
        """Skip patterns that name the vision side (tower + projector), i.e. all but ``lm_head``."""
        return tuple(p for p in self.skip_modules if p != "lm_head")

    def check_method(self, method: str) -> None:
        """Raise ``ValueError`` with TRL's reason when this family cannot be trained with ``method``."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        if method not in self.methods:
            reason = self.refusals.get(method, "TRL does not support it for this family")
            supported = ", ".join(m for m in METHODS if m in self.methods)
            raise ValueError(
                f"{self.display_name} cannot be trained with {method.upper()}: {reason}. "
                f"Supported here: {supported}."
            )

    def missing_requirements(self) -> list[str]:
        """Import names this family's processor needs that are not installed."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    def apply_budget(self, processor: ProcessorMixin, max_tokens: int, image_token_id: int) -> int:
        """Cap ``processor`` at ``max_tokens`` image tokens per image; return the worst case after.

        Raises :class:`BudgetError` when the family cannot go that low (fixed-size encoders).
        """
        worst = self.budget(processor, max_tokens, image_token_id)
        if worst > max_tokens:
            raise BudgetError(
                f"{self.display_name} turns one image into up to {worst} image tokens and its processor cannot "
                f"be capped lower; set max_image_tokens to at least {worst}"
            )
        return worst


def template_path(name: str) -> Path:
    """A chat template shipped with Mirada (``vlm/templates/<name>.jinja``)."""
    return Path(__file__).parent / "templates" / f"{name}.jinja"


_REGISTRY: dict[str, ModelSpec] = {}
_BY_MODEL_TYPE: dict[str, ModelSpec] = {}


def register_model(**kwargs: Any) -> ModelSpec:
    """Add a family (``register_model(name=…, model_types=…, skip_modules=…, …)``); returns its spec.

    The first family registered for a ``model_type`` is the one :func:`spec_for_model_type` returns
    (SmolVLM v1 checkpoints declare ``idefics3`` and are served by the Idefics3 entry).
    """
    spec = ModelSpec(**kwargs)
    if spec.name in _REGISTRY:
        raise ValueError(f"model family {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    for model_type in spec.model_types:
        _BY_MODEL_TYPE.setdefault(model_type, spec)
    return spec


def known_models() -> tuple[str, ...]:
    """Registered family names, in registration order (the first is the default)."""
    return tuple(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The family called ``name`` (or whose transformers ``model_type`` is ``name``)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[name]
    raise ValueError(f"unknown model family {name!r}; known families: {', '.join(known_models())}")


def spec_for_model_type(model_type: str) -> ModelSpec:
    """The family serving a checkpoint whose ``config.json`` says ``model_type``."""
    if model_type not in _BY_MODEL_TYPE:
        known = ", ".join(sorted(_BY_MODEL_TYPE))
        raise ValueError(
            f"no registered family handles model_type {model_type!r} (known model types: {known}); "
            "register it in vlm/registry.py"
        )
    return _BY_MODEL_TYPE[model_type]


_QWEN_SKIP = (r".*visual", "lm_head")
_IDEFICS_SKIP = (r".*vision_model", r".*connector", "lm_head")
_TOWER_SKIP = (r".*vision_tower", r".*multi_modal_projector", "lm_head")
_PALIGEMMA_REFUSAL = (
    "TRL's vision preference collators call the processor without images for the completions and "
    "PaliGemma's processor raises ValueError on that; train it with SFT, or pick another family"
)

# Tokenizer facts of the real checkpoints (the tiny models reproduce them).
# llava-hf/llava-1.5-7b-hf's template (TRL bundles no llava-1.5 one); it already carries the
# {% generation %} markers that assistant-only loss needs.
_LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != "
    "'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
# Qwen2-VL and Qwen2.5-VL share tokenizer and template (TRL notes the templates are byte-identical).
_QWEN_TOKENIZER = TokenizerFacts(
    special_tokens={
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "image_token": "<|image_pad|>",
        "video_token": "<|video_pad|>",
        "vision_bos_token": "<|vision_start|>",
        "vision_eos_token": "<|vision_end|>",
    },
    other_tokens=("<|im_start|>",),
    eos_tokens=("<|endoftext|>",),
    chat_template="trl:qwen2_5_vl",
)
_TILE_TOKENS = tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))
# LLaVA 1.5 (Vicuna) and LLaVA-NeXT (Mistral) both use Llama-style sentencepiece specials.
_LLAMA_SPECIALS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "image_token": "<image>",
}
_GEMMA_SPECIALS = {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"}

register_model(
    name="qwen2_5_vl",
    vllm_lora=True,
    model_types=("qwen2_5_vl",),
    hub_id="Qwen/Qwen2.5-VL-7B-Instruct",
    display_name="Qwen2.5-VL",
    license="apache-2.0",
    skip_modules=_QWEN_SKIP,
    default_max_image_tokens=1024,
    budget=_budget_qwen,
    requires=("torchvision",),
    notes="the processor holds a video processor, which needs torchvision; budget via size=pixel counts",
    tokenizer=_QWEN_TOKENIZER,
)
register_model(
    name="qwen2_vl",
    vllm_lora=True,
    model_types=("qwen2_vl",),
    hub_id="Qwen/Qwen2-VL-7B-Instruct",
    display_name="Qwen2-VL",
    license="apache-2.0",
    skip_modules=_QWEN_SKIP,
    default_max_image_tokens=1024,
    budget=_budget_qwen,
    requires=("torchvision",),
    notes="as Qwen2.5-VL",
    tokenizer=_QWEN_TOKENIZER,
)
register_model(
    name="idefics3",
    vllm_lora=True,
    model_types=("idefics3",),
    hub_id="HuggingFaceM4/Idefics3-8B-Llama3",
    display_name="Idefics3",
    license="apache-2.0",
    skip_modules=_IDEFICS_SKIP,
    default_max_image_tokens=1024,
    budget=_budget_idefics3,
    notes="language model at model.text_model; image splitting multiplies image tokens",
    tokenizer=TokenizerFacts(
        special_tokens={
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<end_of_utterance>",
            "pad_token": "<|finetune_right_pad_id|>",
            "image_token": "<image>",
        },
        other_tokens=("<|end_of_text|>", "<fake_token_around_image>", "<global-img>", *_TILE_TOKENS),
        eos_tokens=("<|end_of_text|>",),
        add_bos_token=True,
        chat_template="trl:idefics3",
    ),
)
register_model(
    name="smolvlm",
    model_types=("smolvlm",),
    hub_id="HuggingFaceTB/SmolVLM2-2.2B-Instruct",
    display_name="SmolVLM",
    license="apache-2.0",
    skip_modules=_IDEFICS_SKIP,
    default_max_image_tokens=1024,
    budget=_budget_idefics3,
    requires=("torchvision", "num2words"),
    notes="small, for quick real runs; the processor imports num2words and has a video processor",
    tokenizer=TokenizerFacts(
        special_tokens={
            "bos_token": "<|im_start|>",
            "eos_token": "<end_of_utterance>",
            "pad_token": "<|im_end|>",
            "image_token": "<image>",
        },
        other_tokens=("<fake_token_around_image>", "<global-img>", "<video>", *_TILE_TOKENS),
        chat_template="trl:smolvlm",
    ),
)
register_model(
    name="llava_next",
    vllm_lora=True,
    model_types=("llava_next",),
    hub_id="llava-hf/llava-v1.6-mistral-7b-hf",
    display_name="LLaVA-NeXT",
    license="apache-2.0",
    skip_modules=_TOWER_SKIP,
    default_max_image_tokens=2928,
    budget=_budget_llava_next,
    syncs_image_grids=True,
    notes="anyres tiling: the image-token count depends on the aspect ratio; a budget prunes the largest grids",
    tokenizer=TokenizerFacts(
        special_tokens=_LLAMA_SPECIALS, add_bos_token=True, chat_template="trl:llava_next"
    ),
)
register_model(
    name="llava",
    vllm_lora=True,
    model_types=("llava",),
    hub_id="llava-hf/llava-1.5-7b-hf",
    display_name="LLaVA-1.5",
    license="llama2",
    skip_modules=_TOWER_SKIP,
    default_max_image_tokens=576,
    tokenizer=TokenizerFacts(
        special_tokens=_LLAMA_SPECIALS, add_bos_token=True, chat_template=_LLAVA_TEMPLATE
    ),
)
register_model(
    name="gemma3",
    vllm_lora=True,
    model_types=("gemma3",),
    hub_id="google/gemma-3-4b-it",
    display_name="Gemma 3",
    license="gemma",
    skip_modules=_TOWER_SKIP,
    default_max_image_tokens=256,
    extra_special_tokens=("boi_token", "eoi_token", "image_token"),
    notes="tokenizer needs boi/eoi/image extra special tokens; returns token_type_ids",
    tokenizer=TokenizerFacts(
        special_tokens={
            **_GEMMA_SPECIALS,
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
        other_tokens=("<start_of_turn>", "<end_of_turn>"),
        eos_tokens=("<end_of_turn>",),
        add_bos_token=True,
        chat_template="trl:gemma3",
    ),
)
register_model(
    name="paligemma",
    model_types=("paligemma",),
    hub_id="google/paligemma2-3b-pt-224",
    display_name="PaliGemma 2",
    license="gemma",
    skip_modules=_TOWER_SKIP,
    default_max_image_tokens=256,
    methods=frozenset({"sft"}),
    refusals={"dpo": _PALIGEMMA_REFUSAL, "kto": _PALIGEMMA_REFUSAL},
    chat_template="paligemma",
    prefix_lm=True,
    notes="prefix-LM: SFT batches come from processor(text, images, suffix=caption); pt checkpoints ship no template",
    tokenizer=TokenizerFacts(
        special_tokens={**_GEMMA_SPECIALS, "image_token": "<image>"},
        add_bos_token=True,
        chat_template="mirada:paligemma",  # the checkpoints ship none; see vlm/templates/
    ),
)
