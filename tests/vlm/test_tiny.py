"""The tiny offline VLMs load and run through the same path as real Hub checkpoints.

Each family is built once per module (building is ~0.1 s, but the forward passes add up); every
check goes through public transformers entry points, so a broken special token, chat template or
image-token count shows up here rather than in a training run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image, ImageDraw  # noqa: E402
from transformers import PreTrainedModel, ProcessorMixin  # noqa: E402

from vlm.models import ModelLoadError  # noqa: E402
from vlm.tiny import FAMILIES, build_tiny_vlm, load_tiny_vlm  # noqa: E402

# Keys a processor returns for the text side; everything else feeds the vision tower.
TEXT_KEYS = {"input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids"}


@dataclass
class Tiny:
    family: str
    path: Path
    model: PreTrainedModel
    processor: ProcessorMixin


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    family = request.param
    path = build_tiny_vlm(family, tmp_path_factory.mktemp(family))
    model, processor = load_tiny_vlm(path)
    model.eval()
    return Tiny(family, path, model, processor)


def picture() -> Image.Image:
    """Not square, so Idefics3 splitting and LLaVA-NeXT anyres tiling actually happen."""
    image = Image.new("RGB", (48, 40), (240, 220, 180))
    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 6, 30, 30), fill=(200, 30, 40))
    draw.rectangle((28, 18, 44, 36), fill=(20, 90, 160))
    return image


def chat_inputs(processor: ProcessorMixin) -> dict:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": picture()},
                {"type": "text", "text": "Describe la imagen."},
            ],
        }
    ]
    return processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )


def test_saved_files_are_small_and_in_hub_format(tiny: Tiny):
    files = {p.name for p in tiny.path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= files
    size = sum(p.stat().st_size for p in tiny.path.rglob("*") if p.is_file())
    assert size < 2_000_000, f"{tiny.family}: {size} bytes"


def test_processor_is_multimodal_and_tokens_agree_with_config(tiny: Tiny):
    processor, config = tiny.processor, tiny.model.config
    assert isinstance(processor, ProcessorMixin)
    assert processor.chat_template
    tokenizer = processor.tokenizer
    assert tokenizer.pad_token_id is not None
    assert config.get_text_config().vocab_size >= len(tokenizer)
    # tokenizer.image_token is the placeholder the model scatters image features into.
    assert tokenizer.image_token_id == config.image_token_id
    assert tokenizer.convert_ids_to_tokens(config.image_token_id) == tokenizer.image_token
    assert tiny.model.generation_config.pad_token_id == tokenizer.pad_token_id


def test_image_tokens_match_image_features(tiny: Tiny):
    inputs = chat_inputs(tiny.processor)
    vision_inputs = {k: v for k, v in inputs.items() if k not in TEXT_KEYS}
    with torch.no_grad():
        features = tiny.model.get_image_features(**vision_inputs).pooler_output
    hidden = tiny.model.config.get_text_config().hidden_size
    parts = features if isinstance(features, (list, tuple)) else [features]
    n_features = sum(part.numel() // hidden for part in parts)
    n_placeholders = int((inputs["input_ids"] == tiny.model.config.image_token_id).sum())
    assert n_placeholders == n_features > 0


def test_forward_gives_finite_logits(tiny: Tiny):
    inputs = chat_inputs(tiny.processor)
    with torch.no_grad():
        logits = tiny.model(**inputs).logits
    vocab = tiny.model.config.get_text_config().vocab_size
    assert logits.shape == (1, inputs["input_ids"].shape[1], vocab)
    assert torch.isfinite(logits).all()


def test_generate_decodes_to_text(tiny: Tiny):
    inputs = chat_inputs(tiny.processor)
    prompt_length = inputs["input_ids"].shape[1]
    with torch.no_grad():
        output = tiny.model.generate(**inputs, max_new_tokens=5, do_sample=False)
    new_tokens = output[0, prompt_length:]
    assert 1 <= len(new_tokens) <= 5
    assert isinstance(tiny.processor.decode(new_tokens, skip_special_tokens=True), str)


def test_build_is_deterministic(tmp_path: Path):
    first = build_tiny_vlm("llava", tmp_path / "a", seed=3)
    second = build_tiny_vlm("llava", tmp_path / "b", seed=3)
    other = build_tiny_vlm("llava", tmp_path / "c", seed=4)
    weights = [(p / "model.safetensors").read_bytes() for p in (first, second, other)]
    assert weights[0] == weights[1] != weights[2]


def test_unknown_family_names_the_known_ones(tmp_path: Path):
    with pytest.raises(ValueError, match="known families") as info:
        build_tiny_vlm("paligemma9", tmp_path)
    assert all(family in str(info.value) for family in FAMILIES)
    assert not any(tmp_path.iterdir())


def test_load_refuses_a_bare_tokenizer(tmp_path: Path):
    """A checkpoint whose processor class cannot be resolved makes AutoProcessor fall back, silently,
    to the tokenizer; load_tiny_vlm must say so instead of returning it."""
    path = build_tiny_vlm("gemma3", tmp_path / "gemma3")
    tokenizer_only = tmp_path / "tokenizer-only"
    tokenizer_only.mkdir()
    shutil.copy(path / "tokenizer.json", tokenizer_only)
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    del tokenizer_config["processor_class"]
    (tokenizer_only / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    with pytest.raises(ModelLoadError, match="not a multimodal processor"):
        load_tiny_vlm(tokenizer_only)
