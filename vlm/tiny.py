"""Tiny, randomly initialised vision-language models built fully offline.

Why this exists: the tests, the CI and ``make demo`` must exercise the real loading and processing
path of each model family (``AutoModelForImageTextToText`` + ``AutoProcessor``, the family's chat
template, image-placeholder expansion, TRL's collators) without the Hugging Face Hub and in a few
seconds on two CPU cores. Real checkpoints are gigabytes and need the network; hand-written mocks
drift from what transformers really does. So we build *real-format* models that are merely tiny:
a byte-level BPE tokenizer trained on a few dozen Spanish/Portuguese sentences, the family's own
special tokens and chat template, a config with a 64-wide, 2-layer text model and a small vision
tower, random weights, written with ``save_pretrained``. The trade-off: their outputs are noise,
so tests can check shapes, token counts, finiteness and that training steps run, never quality.

Per-family facts (special tokens, chat template) live in the registry (:mod:`vlm.registry`,
``ModelSpec.tokenizer``); this module adds one builder per family (its tiny config and processor).

    >>> path = build_tiny_vlm("qwen2_5_vl", tmp_path / "qwen")        # doctest: +SKIP
    >>> model, processor = load_tiny_vlm(path)                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlm.registry import TokenizerFacts, get_spec, known_models, template_path

if TYPE_CHECKING:  # heavy imports stay lazy so importing ``vlm`` costs nothing
    from transformers import PreTrainedModel, ProcessorMixin, TokenizersBackend

__all__ = ["FAMILIES", "TINY_TAG", "build_tiny_vlm", "is_tiny_random", "load_tiny_vlm"]

TINY_TAG = "random-weights"
"""Tag in a tiny model's README: its weights are random, so what it outputs is noise."""

# A few dozen sentences so the BPE learns merges that cover accents, ñ, ç, tildes and the words our
# prompts use; the exact text matters only in that tokenisation of test prompts stays short.
_CORPUS: tuple[str, ...] = (
    "Describe la imagen con su contexto cultural.",
    "Describa a imagem com o seu contexto cultural.",
    "Una mujer vende tamales en un mercado de Oaxaca.",
    "Las calaveras de azúcar adornan el altar del Día de Muertos.",
    "El niño come churros con chocolate en Madrid.",
    "La señora teje un poncho de lana de alpaca en Cusco.",
    "Los danzantes bailan la diablada en el carnaval de Oruro.",
    "Un plato de ceviche con cebolla morada y choclo peruano.",
    "La catedral gótica se levanta sobre la plaza mayor.",
    "Pintan alebrijes de colores brillantes en San Martín Tilcajete.",
    "El mate se comparte en ronda entre amigos en Montevideo.",
    "Las fallas de Valencia arden la noche de San José.",
    "Una pareja baila tango en una milonga de Buenos Aires.",
    "El cóndor vuela sobre el cañón del Colca.",
    "Un mariachi toca la guitarra y el guitarrón en la plaza.",
    "La piñata tiene forma de estrella con siete picos.",
    "Las mujeres tejen hamacas de algodón en Yucatán.",
    "El azulejo pintado a mano decora la fachada de la iglesia.",
    "Uma baiana vende acarajé numa rua de Salvador.",
    "O maracatu desfila no carnaval do Recife com tambores.",
    "A feijoada é servida com couve, farofa e laranja.",
    "Os azulejos portugueses cobrem a estação de São Bento.",
    "Uma roda de capoeira acontece na praça da cidade.",
    "O pão de queijo sai quente do forno em Minas Gerais.",
    "As rendeiras fazem renda de bilro no Ceará.",
    "O fado ecoa numa tasca do bairro de Alfama, em Lisboa.",
    "A festa junina tem quadrilha, fogueira e canjica.",
    "Crianças brincam com pipas coloridas na laje.",
    "O açaí é colhido nas palmeiras da Amazônia.",
    "Um pescador puxa a rede de pesca na praia de Nazaré.",
    "¿Qué muestra la fotografía? ¡Una celebración!",
    "O que mostra a fotografia? Uma celebração!",
    "Tradición, artesanía, gastronomía, arquitectura y paisaje.",
    "Tradição, artesanato, gastronomia, arquitetura e paisagem.",
    "En la imagen se ve un mercado lleno de frutas tropicales.",
    "Na imagem vê-se um mercado cheio de frutas tropicais.",
    "La cerámica de talavera es azul y blanca.",
    "El pañuelo bordado lleva flores rojas, verdes y amarillas.",
)
_VOCAB_SIZE = 400  # 256 byte symbols + special tokens + ~100 merges: ~0.1 MB of embeddings at width 64
_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
_TEXT_HEADS = {"num_attention_heads": 4, "num_key_value_heads": 2}
_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
_VOCAB_MULTIPLE = 64
_MAX_POSITIONS = 2048


def _token_id(tokenizer: TokenizersBackend, token: str) -> int:
    """Id of a token that must be a single entry of the vocabulary (fails loudly otherwise)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise RuntimeError(f"tiny tokenizer has no single token for {token!r}")
    return int(token_id)


def _common_ids(tokenizer: TokenizersBackend) -> dict[str, Any]:
    """Vocabulary size and bos/eos/pad ids for a text config, so model and tokenizer agree.

    The embedding is padded to a multiple of :data:`_VOCAB_MULTIPLE` beyond ``len(tokenizer)``, as
    real checkpoints do (Qwen2.5-VL: 152064 rows for 151665 tokens), so code that confuses
    ``logits.shape[-1]`` with ``len(tokenizer)`` fails here rather than on a real model.
    """
    vocab_size = -(-len(tokenizer) // _VOCAB_MULTIPLE) * _VOCAB_MULTIPLE
    if vocab_size == len(tokenizer):
        vocab_size += _VOCAB_MULTIPLE
    return {
        "vocab_size": vocab_size,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "max_position_embeddings": _MAX_POSITIONS,
    }


# ---------------------------------------------------------------------------------------------
# Family builders: each returns (config, processor). Image sizes are tiny so a test image becomes
# a handful of image tokens. Image processors are built from the PIL back-end classes, which work
# without torchvision; Qwen's processor also holds a video processor that exists only for
# torchvision (DESIGN 6.2). The back-end is not saved: loading picks torchvision when importable.
# ---------------------------------------------------------------------------------------------


_QWEN_PATCH, _QWEN_MERGE, _QWEN_TEMPORAL = 4, 2, 2


def _qwen_processor(
    tokenizer: TokenizersBackend, chat_template: str, processor_class: type[ProcessorMixin]
) -> ProcessorMixin:
    """Qwen2-VL / Qwen2.5-VL processor with a small pixel budget.

    ``size`` is a pixel budget (min_pixels, max_pixels), not edges: at 8x8 px per merged token an
    image becomes at most 16 image tokens. The video processor exists only for torchvision.
    """
    from transformers import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    factor = _QWEN_PATCH * _QWEN_MERGE
    kwargs = {
        "patch_size": _QWEN_PATCH,
        "merge_size": _QWEN_MERGE,
        "temporal_patch_size": _QWEN_TEMPORAL,
        "size": {"shortest_edge": factor**2, "longest_edge": (4 * factor) ** 2},
    }
    return processor_class(
        image_processor=Qwen2VLImageProcessorPil(**kwargs),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**kwargs),
        chat_template=chat_template,
    )


def _qwen_config_kwargs(tokenizer: TokenizersBackend) -> dict[str, Any]:
    """Text config and vision-token ids shared by Qwen2-VL and Qwen2.5-VL."""
    head_dim = _TEXT["hidden_size"] // _TEXT_HEADS["num_attention_heads"]
    # Multimodal RoPE splits the head_dim/2 rotary frequencies across (time, height, width).
    rope = {"rope_type": "default", "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8]}
    return {
        "text_config": {**_TEXT, **_TEXT_HEADS, **_common_ids(tokenizer), "rope_parameters": rope},
        "image_token_id": _token_id(tokenizer, "<|image_pad|>"),
        "video_token_id": _token_id(tokenizer, "<|video_pad|>"),
        "vision_start_token_id": _token_id(tokenizer, "<|vision_start|>"),
        "vision_end_token_id": _token_id(tokenizer, "<|vision_end|>"),
    }


def _build_qwen2_5_vl(tokenizer: TokenizersBackend, chat_template: str) -> tuple[Any, ProcessorMixin]:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor

    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": _VISION["num_hidden_layers"],
            "hidden_size": _VISION["hidden_size"],
            "intermediate_size": _VISION["intermediate_size"],
            "num_heads": _VISION["num_attention_heads"],
            "patch_size": _QWEN_PATCH,
            "spatial_merge_size": _QWEN_MERGE,
            "temporal_patch_size": _QWEN_TEMPORAL,
            "window_size": 2 * _QWEN_PATCH * _QWEN_MERGE,  # 2x2 merged tokens per attention window
            "fullatt_block_indexes": [_VISION["num_hidden_layers"] - 1],
            "out_hidden_size": _TEXT["hidden_size"],
        },
        **_qwen_config_kwargs(tokenizer),
    )
    return config, _qwen_processor(tokenizer, chat_template, Qwen2_5_VLProcessor)


def _build_qwen2_vl(tokenizer: TokenizersBackend, chat_template: str) -> tuple[Any, ProcessorMixin]:
    from transformers import Qwen2VLConfig, Qwen2VLProcessor

    config = Qwen2VLConfig(
        vision_config={
            "depth": _VISION["num_hidden_layers"],
            "embed_dim": _VISION["hidden_size"],
            "mlp_ratio": _VISION["intermediate_size"] // _VISION["hidden_size"],
            "num_heads": _VISION["num_attention_heads"],
            "patch_size": _QWEN_PATCH,
            "spatial_merge_size": _QWEN_MERGE,
            "temporal_patch_size": _QWEN_TEMPORAL,
            "hidden_size": _TEXT["hidden_size"],  # Qwen2-VL's name for the merger's output width
        },
        **_qwen_config_kwargs(tokenizer),
    )
    return config, _qwen_processor(tokenizer, chat_template, Qwen2VLProcessor)


_TILE, _TILE_PATCH, _TILE_SCALE = 32, 8, 2
_TILE_SIZES = {"size": {"longest_edge": 2 * _TILE}, "max_image_size": {"longest_edge": _TILE}}


def _tiled_config(config_class: type, tokenizer: TokenizersBackend) -> Any:
    """Idefics3 and SmolVLM share the layout: a Llama text model and a pixel-shuffle connector."""
    return config_class(
        text_config={**_TEXT, **_TEXT_HEADS, **_common_ids(tokenizer), "model_type": "llama"},
        vision_config={**_VISION, "image_size": _TILE, "patch_size": _TILE_PATCH},
        scale_factor=_TILE_SCALE,
        image_token_id=_token_id(tokenizer, "<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )


def _build_idefics3(tokenizer: TokenizersBackend, chat_template: str) -> tuple[Any, ProcessorMixin]:
    from transformers import Idefics3Config, Idefics3ImageProcessorPil, Idefics3Processor

    # Image splitting stays on, as in the real model: an image up to 2x2 tiles plus the global view,
    # each tile (32/8)^2 / 2^2 = 4 image tokens.
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(**_TILE_SIZES, do_image_splitting=True),
        tokenizer=tokenizer,
        image_seq_len=(_TILE // _TILE_PATCH) ** 2 // _TILE_SCALE**2,
        chat_template=chat_template,
    )
    return _tiled_config(Idefics3Config, tokenizer), processor


def _build_smolvlm(tokenizer: TokenizersBackend, chat_template: str) -> tuple[Any, ProcessorMixin]:
    """SmolVLM(2): Idefics3's layout with its own processor, which imports num2words and holds a
    torchvision-only video processor."""
    from transformers import SmolVLMConfig, SmolVLMImageProcessorPil, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessorPil(**_TILE_SIZES, do_image_splitting=True),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(
            size={"longest_edge": _TILE}, max_image_size={"longest_edge": _TILE}
        ),
        image_seq_len=(_TILE // _TILE_PATCH) ** 2 // _TILE_SCALE**2,
        chat_template=chat_template,
    )
    return _tiled_config(SmolVLMConfig, tokenizer), processor


def _clip_vision(image_size: int, patch: int) -> dict[str, Any]:
    """The CLIP vision tower both LLaVA families use."""
    return {
        **_VISION,
        "model_type": "clip_vision_model",
        "image_size": image_size,
        "patch_size": patch,
        "projection_dim": _VISION["hidden_size"],
    }


def _clip_processor_kwargs(patch: int) -> dict[str, Any]:
    # CLIP adds a CLS token; strategy "default" drops it again => (image_size/patch)^2 image tokens.
    return {
        "patch_size": patch,
        "vision_feature_select_strategy": "default",
        "num_additional_image_tokens": 1,
    }


def _build_llava(tokenizer: TokenizersBackend, chat_template: str) -> tuple[Any, ProcessorMixin]:
    from transformers import LlavaConfig, LlavaImageProcessorPil, LlavaProcessor

    image_size, patch = 32, 8
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    # CLIP adds a CLS token; strategy "default" drops it again => (32/8)^2 = 16 image tokens.
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template,
        **_clip_processor_kwargs(patch),
    )
    config = LlavaConfig(
        vision_config=_clip_vision(image_size, patch),
        text_config={**_TEXT, **_TEXT_HEADS, **_common_ids(tokenizer), "model_type": "llama"},
        image_token_index=_token_id(tokenizer, "<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        pad_token_id=tokenizer.pad_token_id,
    )
    return config, processor


def _build_llava_next(tokenizer: TokenizersBackend, chat_template: str) -> tuple[Any, ProcessorMixin]:
    from transformers import LlavaNextConfig, LlavaNextImageProcessorPil, LlavaNextProcessor

    image_size, patch = 32, 8
    # "anyres": the image is also tiled on the best of these grids, so the image-token count depends
    # on the image's aspect ratio (16 base tokens + tiles + one newline token per row).
    pinpoints = [[image_size, 2 * image_size], [2 * image_size, image_size], [2 * image_size, 2 * image_size]]
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template,
        **_clip_processor_kwargs(patch),
    )
    config = LlavaNextConfig(
        vision_config=_clip_vision(image_size, patch),
        text_config={**_TEXT, **_TEXT_HEADS, **_common_ids(tokenizer), "model_type": "mistral"},
        image_token_index=_token_id(tokenizer, "<image>"),
        image_grid_pinpoints=pinpoints,
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        pad_token_id=tokenizer.pad_token_id,
    )
    return config, processor


def _build_gemma3(tokenizer: TokenizersBackend, chat_template: str) -> tuple[Any, ProcessorMixin]:
    from transformers import Gemma3Config, Gemma3ImageProcessorPil, Gemma3Processor

    image_size, patch, tokens_per_image = 32, 4, 16  # 8x8 patches average-pooled to 4x4 = 16 tokens
    image_processor = Gemma3ImageProcessorPil(size={"height": image_size, "width": image_size})
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=tokens_per_image,
        chat_template=chat_template,
    )
    head_dim = _TEXT["hidden_size"] // _TEXT_HEADS["num_attention_heads"]
    config = Gemma3Config(
        text_config={
            **_TEXT,
            **_TEXT_HEADS,
            **_common_ids(tokenizer),
            "head_dim": head_dim,
            "query_pre_attn_scalar": head_dim,
            "sliding_window": 32,  # one local and one global layer, like Gemma 3's 5:1 pattern
            "layer_types": ["sliding_attention", "full_attention"],
        },
        vision_config={
            **_VISION,
            "model_type": "siglip_vision_model",
            "image_size": image_size,
            "patch_size": patch,
            "vision_use_head": False,
        },
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=_token_id(tokenizer, "<start_of_image>"),
        eoi_token_index=_token_id(tokenizer, "<end_of_image>"),
        image_token_index=_token_id(tokenizer, "<image_soft_token>"),
    )
    return config, processor


def _build_paligemma(tokenizer: TokenizersBackend, chat_template: str) -> tuple[Any, ProcessorMixin]:
    from transformers import PaliGemmaConfig, PaliGemmaProcessor, SiglipImageProcessorPil

    image_size, patch = 32, 8  # SigLIP at 32 px: (32/8)^2 = 16 image tokens, fixed
    tokens = (image_size // patch) ** 2
    image_processor = SiglipImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_seq_length=tokens
    )
    processor = PaliGemmaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template
    )
    head_dim = _TEXT["hidden_size"] // _TEXT_HEADS["num_attention_heads"]
    config = PaliGemmaConfig(
        text_config={
            **_TEXT,
            **_TEXT_HEADS,
            **_common_ids(tokenizer),
            "model_type": "gemma2",  # PaliGemma 2's language model
            "head_dim": head_dim,
            "query_pre_attn_scalar": head_dim,
            "num_image_tokens": tokens,
        },
        vision_config={
            **_VISION,
            "model_type": "siglip_vision_model",
            "image_size": image_size,
            "patch_size": patch,
            "projection_dim": _TEXT["hidden_size"],
        },
        image_token_index=_token_id(tokenizer, "<image>"),
        projection_dim=_TEXT["hidden_size"],
    )
    return config, processor


_BUILDERS: dict[str, Callable[[TokenizersBackend, str], tuple[Any, ProcessorMixin]]] = {
    "qwen2_5_vl": _build_qwen2_5_vl,
    "qwen2_vl": _build_qwen2_vl,
    "idefics3": _build_idefics3,
    "smolvlm": _build_smolvlm,
    "llava": _build_llava,
    "llava_next": _build_llava_next,
    "paligemma": _build_paligemma,
    "gemma3": _build_gemma3,
}
"""Family name → builder of (model config, processor). The tokenizer facts are the registry's."""

FAMILIES: tuple[str, ...] = tuple(n for n in known_models() if n in _BUILDERS and get_spec(n).tokenizer)
"""Names accepted by :func:`build_tiny_vlm` (transformers ``model_type`` spelling)."""


def _chat_template(source: str) -> str:
    """Resolve ``trl:<name>`` to the template file TRL ships, so TRL recognises it by identity, and
    ``mirada:<name>`` to ours (``vlm/templates/``) for checkpoints that ship none.

    The file is located without importing ``trl`` (which costs about a second).
    """
    if source.startswith("mirada:"):
        return template_path(source.removeprefix("mirada:")).read_text(encoding="utf-8")
    if not source.startswith("trl:"):
        return source
    name = source.removeprefix("trl:")
    spec = importlib.util.find_spec("trl")
    if spec is None or spec.origin is None:
        raise ImportError(
            f"the tiny model needs TRL's chat template {name}.jinja: pip install 'mirada[train]'"
        )
    return (Path(spec.origin).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


def _train_tokenizer(spec: TokenizerFacts) -> TokenizersBackend:
    """Byte-level BPE trained on :data:`_CORPUS`, wrapped with the family's special tokens.

    Special tokens are given to the BPE trainer so they get the lowest ids and are never split;
    named ones beyond the standard set become transformers 5 ``extra_special_tokens`` attributes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys([*spec.special_tokens.values(), *spec.other_tokens]))
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer=trainer)

    standard = PreTrainedTokenizerFast.SPECIAL_TOKENS_ATTRIBUTES
    named = {k: v for k, v in spec.special_tokens.items() if k in standard}
    extra = {k: v for k, v in spec.special_tokens.items() if k not in standard}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, **named, extra_special_tokens=extra, add_bos_token=spec.add_bos_token
    )
    if spec.other_tokens:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": list(spec.other_tokens)}, replace_extra_special_tokens=False
        )
    return tokenizer


def build_tiny_vlm(family: str, out_dir: str | Path, *, seed: int = 0) -> Path:
    """Build a tiny random VLM of ``family`` and save model + processor to ``out_dir``.

    Deterministic for a given ``seed``. Returns ``out_dir`` so the result can be passed to anything
    that takes a Hub id or a local path (``from_pretrained``, TRL trainers' ``model=``).

        >>> build_tiny_vlm("gemma3", "/tmp/tiny-gemma3")                 # doctest: +SKIP
        PosixPath('/tmp/tiny-gemma3')
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny VLM family {family!r}; known families: {', '.join(FAMILIES)}")
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    spec = get_spec(family).tokenizer
    assert spec is not None  # FAMILIES holds only families with tokenizer facts
    out = Path(out_dir)
    tokenizer = _train_tokenizer(spec)
    config, processor = _BUILDERS[family](tokenizer, _chat_template(spec.chat_template))
    if len(processor.tokenizer) > config.get_text_config().vocab_size:  # a processor added tokens
        raise RuntimeError(f"{family}: processor tokenizer grew to {len(processor.tokenizer)} tokens")

    torch.manual_seed(seed)
    model: PreTrainedModel = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    eos = [tokenizer.eos_token_id, *(_token_id(tokenizer, t) for t in spec.eos_tokens)]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos if len(eos) > 1 else eos[0],
        pad_token_id=tokenizer.pad_token_id,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "README.md").write_text(
        f"---\ntags:\n- {TINY_TAG}\n- mirada-tiny\n---\n\n# Tiny random {family} model\n\nBuilt offline by "
        f"`python -m vlm.tiny {family}` (seed {seed}): the real {family} format with random weights. Its outputs "
        "are noise; it exists to test and demonstrate the pipeline.\n",
        encoding="utf-8",
    )
    return out


def is_tiny_random(model: str | Path) -> bool:
    """Whether ``model`` is a folder built by :func:`build_tiny_vlm` (its README carries :data:`TINY_TAG`).

    Cards use it to say, at the top, that a run's base model has random weights.
    """
    readme = Path(model).expanduser() / "README.md"
    if not readme.is_file():
        return False
    from huggingface_hub import ModelCard

    try:
        return TINY_TAG in (ModelCard.load(readme).data.tags or [])
    except (OSError, ValueError):
        return False


def load_tiny_vlm(path: str | Path, **processor_kwargs: Any) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load a model built by :func:`build_tiny_vlm` exactly as a Hub checkpoint would be loaded.

    Goes through the shared loading layer (:mod:`vlm.models`), so the tiny models exercise the same
    family lookup, image budget and bare-tokenizer check as real ones. ``processor_kwargs`` go to
    ``AutoProcessor.from_pretrained`` (e.g. ``backend="pil"``: the saved ``image_processor_type``
    carries no back-end, and transformers picks torchvision when it is importable, as it would for a
    real checkpoint). Raises :class:`vlm.models.ModelLoadError` when ``AutoProcessor`` falls back to a
    bare tokenizer, which it does silently when it cannot resolve the processor class (DESIGN 6.2).
    """
    from vlm.models import load_model, load_processor

    processor = load_processor(path, processor_kwargs=processor_kwargs)
    return load_model(path), processor


def main(argv: list[str] | None = None) -> int:
    """``python -m vlm.tiny FAMILY OUT_DIR``: build a tiny model (used by ``make demo``)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m vlm.tiny", description="Build a tiny random VLM offline."
    )
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if (args.out_dir / "config.json").exists():
        print(f"{args.out_dir} already holds a model; leaving it")
        return 0
    print(f"built {build_tiny_vlm(args.family, args.out_dir, seed=args.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
