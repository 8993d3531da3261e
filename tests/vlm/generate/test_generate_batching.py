"""Batched generation: prompts formatted as in training, and padding that changes nothing.

Batched greedy output equal to one-at-a-time output token for token is what proves the padding
side and the attention masks are right: with right padding (or a missing mask) the rows that were
padded continue from pad tokens and their next-token logits change (checked here too, so the
comparison is known to be able to fail).
"""

from __future__ import annotations

import pytest

from tests.helpers import draw_image
from vlm.generate.config import Decoding
from vlm.generate.hf import encode, generate_batch, prompt_text, user_turn
from vlm.tiny import FAMILIES

INSTRUCTIONS = [
    "Describe esta imagen teniendo en cuenta su contexto cultural.",
    "Descreva esta imagem.",
    "Describí esta imagen.",
    "Deskribatu irudi hau bere testuinguru kulturala kontuan hartuta.",
]
GREEDY = Decoding(max_new_tokens=10)


def _images() -> list:
    # different sizes: families with dynamic resolution get different numbers of image tokens per row
    return [draw_image(seed, (40 + 12 * seed, 36 + 4 * seed)) for seed in range(len(INSTRUCTIONS))]


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_greedy_equals_one_at_a_time(loaded_tiny, family):
    loaded = loaded_tiny(family)
    model, processor, spec = loaded.model, loaded.processor, loaded.spec
    images = _images()
    batched = generate_batch(model, processor, spec, INSTRUCTIONS, images, GREEDY)
    single = [
        generate_batch(model, processor, spec, [t], [i], GREEDY)[0]
        for t, i in zip(INSTRUCTIONS, images, strict=True)
    ]
    assert batched == single
    assert all(out.tokens > 0 for out in batched)
    lengths = {int(m.sum()) for m in encode(processor, [prompt_text(processor, spec, t) for t in INSTRUCTIONS],
                                               images)["attention_mask"]}  # fmt: skip
    assert len(lengths) > 1, "the prompts must differ in length, or padding is never exercised"


@pytest.mark.parametrize("family", FAMILIES)
def test_next_token_logits_do_not_depend_on_batch_mates_and_right_padding_would(loaded_tiny, family):
    """Stronger than equal captions (random tiny models can repeat one token whatever they see): the
    next-token logits of each left-padded row equal its one-at-a-time logits, and right padding, the
    usual mistake, changes them. Holds for PaliGemma's prefix-LM too."""
    import torch

    loaded = loaded_tiny(family)
    model, processor, spec = loaded.model, loaded.processor, loaded.spec
    texts = [prompt_text(processor, spec, text) for text in INSTRUCTIONS]
    images = _images()
    with torch.inference_mode():
        batched = model(**encode(processor, texts, images)).logits[:, -1]
        single = torch.cat(
            [model(**encode(processor, [t], [i])).logits[:, -1] for t, i in zip(texts, images, strict=True)]
        )
        tokenizer, side = processor.tokenizer, processor.tokenizer.padding_side
        tokenizer.padding_side = "right"
        try:
            right = processor(text=texts, images=[[i] for i in images], padding=True, return_tensors="pt")
        finally:
            tokenizer.padding_side = side
        right_logits = model(**right).logits[:, -1]
    assert torch.allclose(batched, single, atol=1e-5)
    assert (right_logits - single).abs().max() > 1e-2


def test_prompt_is_the_one_trl_trains_on(loaded_tiny):
    """TRL turns a preference row's string prompt into this user turn and renders it with the chat template."""
    from trl.data_utils import prepare_multimodal_messages

    loaded = loaded_tiny("qwen2_5_vl")
    image = draw_image(0, (48, 40))
    trl_turn = prepare_multimodal_messages([{"role": "user", "content": INSTRUCTIONS[0]}], images=[image])
    ours = user_turn(INSTRUCTIONS[0])
    assert [
        {**part, "image": None} if part["type"] == "image" else part for part in trl_turn[0]["content"]
    ] == [{**part, "image": None} if part["type"] == "image" else part for part in ours[0]["content"]]
    processor = loaded.processor
    expected = processor.apply_chat_template(trl_turn, add_generation_prompt=True)
    assert prompt_text(processor, loaded.spec, INSTRUCTIONS[0]) == expected


def test_prefix_lm_prompt_is_the_training_prefix(loaded_tiny):
    loaded = loaded_tiny("paligemma")
    text = prompt_text(loaded.processor, loaded.spec, INSTRUCTIONS[1])
    assert text == loaded.processor.image_token + INSTRUCTIONS[1]


def test_sampling_and_beam_search_run_batched(loaded_tiny):
    loaded = loaded_tiny("qwen2_5_vl")
    images = _images()[:2]
    sampled = Decoding(max_new_tokens=6, do_sample=True, temperature=0.9, top_p=0.9, seed=3)
    first = generate_batch(loaded.model, loaded.processor, loaded.spec, INSTRUCTIONS[:2], images, sampled)
    again = generate_batch(loaded.model, loaded.processor, loaded.spec, INSTRUCTIONS[:2], images, sampled)
    assert first == again  # same seed, same batch: same sample
    beams = Decoding(max_new_tokens=6, num_beams=3)
    out = generate_batch(loaded.model, loaded.processor, loaded.spec, INSTRUCTIONS[:2], images, beams)
    assert len(out) == 2 and all(o.tokens > 0 for o in out)
