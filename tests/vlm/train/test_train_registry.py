"""The model registry: families, method support, regexes checked against real module names, budgets.

The regexes are tested against the module names of the offline tiny models, which are built by
transformers from the real architectures (same module tree as the 7B checkpoints), and the skip-module
semantics against transformers' own matcher, so a change upstream fails here first.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from vlm.registry import (
    LM_LORA_TARGETS,
    BudgetError,
    count_image_tokens,
    get_spec,
    is_skipped,
    known_models,
    max_image_tokens,
    spec_for_model_type,
    sync_model_to_processor,
)
from vlm.tiny import FAMILIES as TINY_FAMILIES

DESIGN_FAMILIES = {"qwen2_5_vl", "qwen2_vl", "idefics3", "llava_next", "gemma3", "smolvlm", "paligemma"}


def test_design_families_are_registered_with_hub_ids():
    assert set(known_models()) >= DESIGN_FAMILIES
    assert known_models()[0] == "qwen2_5_vl"  # the default
    assert get_spec("qwen2_5_vl").hub_id == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert get_spec("idefics3").hub_id == "HuggingFaceM4/Idefics3-8B-Llama3"
    assert get_spec("llava_next").hub_id == "llava-hf/llava-v1.6-mistral-7b-hf"
    assert get_spec("gemma3").hub_id.startswith("google/gemma-3-")
    assert all("/" in get_spec(name).hub_id for name in known_models())


def test_paligemma_refuses_preference_methods_with_the_reason():
    spec = get_spec("paligemma")
    spec.check_method("sft")
    for method in ("dpo", "kto"):
        with pytest.raises(
            ValueError, match=r"PaliGemma 2 cannot be trained with .*processor without images.*SFT"
        ):
            spec.check_method(method)
    for name in DESIGN_FAMILIES - {"paligemma"}:
        for method in ("sft", "dpo", "kto"):
            get_spec(name).check_method(method)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known families: qwen2_5_vl, qwen2_vl, idefics3"):
        get_spec("qwen3_vl")
    with pytest.raises(ValueError, match="known model types"):
        spec_for_model_type("blip_2")
    assert spec_for_model_type("smolvlm").name == "smolvlm"


def test_missing_processor_requirements_are_reported():
    spec = dataclasses.replace(get_spec("smolvlm"), requires=("torchvision", "surely_not_installed_pkg"))
    assert spec.missing_requirements() == ["surely_not_installed_pkg"]


@pytest.mark.parametrize(
    ("name", "patterns"),
    [
        ("model.visual.blocks.0.attn.qkv", ["visual"]),
        ("model.visual.blocks.0.attn.qkv", [r".*visual"]),
        ("model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj", [r".*vision_tower"]),
        ("model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj", ["vision_tower"]),
        ("model.connector.modality_projection.proj", [r".*connector"]),
        ("lm_head", ["lm_head"]),
        ("model.language_model.layers.1.mlp.gate_proj", [r".*visual", "lm_head"]),
        ("model.language_model.layers.11.mlp", ["model.language_model.layers.1"]),
    ],
)
def test_skip_semantics_match_transformers(name, patterns):
    from transformers.quantizers.quantizers_utils import should_convert_module

    assert is_skipped(name, patterns) == (not should_convert_module(name, patterns))


def test_bare_substring_does_not_skip_the_vision_tower():
    """The measured trap (DESIGN 6.3): 'visual' quantises Qwen's ViT; '.*visual' keeps it unquantised."""
    assert not is_skipped("model.visual.blocks.0.attn.qkv", ["visual"])
    assert is_skipped("model.visual.blocks.0.attn.qkv", get_spec("qwen2_5_vl").skip_modules)


@pytest.fixture(scope="module", params=TINY_FAMILIES)
def tiny_linears(request, tiny_model):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(tiny_model(request.param))
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    return request.param, config.model_type, names


def test_tiny_model_types_resolve_to_their_family(tiny_linears):
    family, model_type, _ = tiny_linears
    assert spec_for_model_type(model_type).name == family


def test_lora_targets_exactly_the_language_model_projections(tiny_linears):
    family, _, names = tiny_linears
    spec = get_spec(family)
    targeted = {n for n in names if re.fullmatch(spec.lora_targets, n)}
    lm_projections = {
        n
        for n in names
        if ("language_model" in n or "text_model" in n) and re.search(r"\.(q|k|v|o|gate|up|down)_proj$", n)
    }
    assert targeted == lm_projections and targeted
    assert not [n for n in targeted if is_skipped(n, spec.vision_modules)]


def test_skip_modules_cover_vision_side_and_lm_head_only(tiny_linears):
    family, _, names = tiny_linears
    spec = get_spec(family)
    skipped = {n for n in names if is_skipped(n, spec.skip_modules)}
    language = {n for n in names if "language_model" in n or "text_model" in n}
    assert "lm_head" in skipped
    assert not skipped & language, "a language-model layer would stay unquantised"
    assert skipped | language == set(names), f"quantised outside the LM: {set(names) - skipped - language}"


def test_lora_regex_is_the_design_one():
    assert LM_LORA_TARGETS == r".*(language_model|text_model).*\.(q|k|v|o|gate|up|down)_proj"


# --- image-token budgets ---------------------------------------------------------------------


def _processor(tiny_model, family):
    from transformers import AutoConfig, AutoProcessor

    path = tiny_model(family)
    config = AutoConfig.from_pretrained(path)
    token = getattr(config, "image_token_id", None) or config.image_token_index
    return AutoProcessor.from_pretrained(path), token


def test_qwen_budget_caps_pixels_and_survives_save(tiny_model, tmp_path):
    from PIL import Image
    from transformers import AutoProcessor

    processor, token = _processor(tiny_model, "qwen2_5_vl")
    spec = get_spec("qwen2_5_vl")
    assert max_image_tokens(processor, token) == 16  # the tiny processor's own limit
    assert spec.apply_budget(processor, 1024, token) == 16  # a budget never raises the limit
    assert spec.apply_budget(processor, 4, token) == 4
    assert count_image_tokens(processor, Image.new("RGB", (640, 480)), token) <= 4
    processor.save_pretrained(tmp_path)
    assert max_image_tokens(AutoProcessor.from_pretrained(tmp_path), token) == 4


def test_idefics3_budget_shrinks_the_tile_grid(tiny_model):
    processor, token = _processor(tiny_model, "idefics3")
    spec = get_spec("idefics3")
    before = max_image_tokens(processor, token)
    assert before == 20  # 2x2 tiles + a global view, 4 tokens each
    assert spec.apply_budget(processor, 8, token) <= 8
    assert processor.image_processor.size["longest_edge"] == 32  # one tile: the global view alone
    with pytest.raises(BudgetError, match="at least 4"):
        spec.apply_budget(processor, 2, token)


def test_fixed_size_family_fails_with_the_number_it_needs(tiny_model):
    processor, token = _processor(tiny_model, "gemma3")
    with pytest.raises(BudgetError, match="set max_image_tokens to at least 16"):
        get_spec("gemma3").apply_budget(processor, 8, token)
    assert get_spec("gemma3").apply_budget(processor, 256, token) == 16


def test_llava_next_budget_prunes_the_largest_anyres_grids(tiny_model, tmp_path):
    from transformers import AutoConfig, AutoProcessor

    processor, token = _processor(tiny_model, "llava_next")
    spec = get_spec("llava_next")
    grids = [list(g) for g in processor.image_processor.image_grid_pinpoints]
    assert max_image_tokens(processor, token) == 88  # the 64x64 grid: 16 base + 4 tiles + newlines
    assert spec.apply_budget(processor, 1000, token) == 88  # a budget never changes what already fits
    assert [list(g) for g in processor.image_processor.image_grid_pinpoints] == grids

    assert spec.apply_budget(processor, 60, token) <= 60
    kept = [list(g) for g in processor.image_processor.image_grid_pinpoints]
    assert [64, 64] not in kept and kept and all(g in grids for g in kept)

    assert spec.apply_budget(processor, 40, token) == 36  # the floor: one base-sized tile
    assert [list(g) for g in processor.image_processor.image_grid_pinpoints] == [[32, 32]]
    with pytest.raises(BudgetError, match="at least 36"):
        spec.apply_budget(processor, 30, token)

    # The model reads the same grid list from its config; the saved processor keeps the pruned one.
    config = AutoConfig.from_pretrained(tiny_model("llava_next"))
    model = type("M", (), {"config": config})()
    assert sync_model_to_processor(model, processor) == ["image_grid_pinpoints"]
    assert config.image_grid_pinpoints == [[32, 32]]
    assert sync_model_to_processor(model, processor) == []  # already in step
    processor.save_pretrained(tmp_path)
    assert AutoProcessor.from_pretrained(tmp_path).image_processor.image_grid_pinpoints == [[32, 32]]


def test_regexes_hold_on_the_real_qwen2_5_vl_7b_module_tree():
    """The published 7B architecture (configs/models/, built on the meta device: no weights, no Hub)."""
    import json
    from pathlib import Path

    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    values = json.loads((Path(__file__).parents[3] / "configs" / "models" / "qwen2_5_vl_7b.json").read_text())
    values.pop("_comment")
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(8.29, abs=0.01)
    spec = get_spec("qwen2_5_vl")
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    targeted = [n for n in names if re.fullmatch(spec.lora_targets, n)]
    assert len(targeted) == 28 * 7  # q, k, v, o, gate, up, down in each of the 28 decoder layers
    skipped = [n for n in names if is_skipped(n, spec.skip_modules)]
    assert set(skipped) | set(targeted) == set(names) and not set(skipped) & set(targeted)
    assert "lm_head" in skipped
    assert sum(".visual.blocks." in n for n in skipped) == 32 * 5  # qkv, proj, gate, up, down per ViT block


def test_llava_next_budget_is_a_real_cap_with_the_published_grids(tiny_model):
    """llava-v1.6-mistral's grids (336 px tiles, patch 14): once 672x672 goes, the 3:1 grids are the worst
    case, which only a probe of their own aspect ratio finds."""
    from PIL import Image
    from transformers import LlavaNextImageProcessorPil, LlavaNextProcessor

    tiny, token = _processor(tiny_model, "llava_next")
    grids = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, image_grid_pinpoints=grids
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tiny.tokenizer, chat_template=tiny.chat_template,
        patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )  # fmt: skip
    worst = get_spec("llava_next").apply_budget(processor, 2400, token)
    assert worst == 2376 and [672, 672] not in processor.image_processor.image_grid_pinpoints
    real = [(3000, 1000), (1000, 3000), (2000, 1000), (1500, 1500), (4000, 1000), (1200, 900)]
    assert max(count_image_tokens(processor, Image.new("RGB", size), token) for size in real) == worst
