"""PaliGemma (a prefix-LM) trains SFT through the processor's prefix/suffix API, not TRL's chat collator.

The first test pins the upstream trap that makes the custom collator necessary; if TRL or transformers
fix it, it fails and the workaround can be reconsidered. The others check what the collator must get
right (labels on the caption alone, causal attention over the caption) and that a QLoRA SFT run on
both dataset layouts trains with real gradients.
"""

from __future__ import annotations

import math

import pytest

from tests.vlm.train.train_helpers import GOOD, PROMPT
from vlm.registry import get_spec
from vlm.train.collators import PrefixLMCollator, split_prefix_suffix
from vlm.train.trainer import run_training


@pytest.fixture(scope="module")
def paligemma(tiny_model):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = tiny_model("paligemma")
    return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)


def _row(caption: str = GOOD) -> dict:
    from tests.helpers import draw_image

    return {
        "images": [draw_image(3, (48, 40))],
        "messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": caption}],
    }


def _caption_ids(processor, caption: str) -> list[int]:
    return processor.tokenizer(caption + processor.tokenizer.eos_token, add_special_tokens=False)["input_ids"]


def test_trl_vision_collator_marks_the_caption_as_bidirectional_prefix(paligemma):
    """Why the custom collator exists: TRL 1.16 gives PaliGemma token_type_ids of 0 everywhere (the whole
    conversation is prefix, so captions see their own future) and labels shifted by the inserted <bos>."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    _, processor = paligemma
    batch = DataCollatorForVisionLanguageModeling(processor, max_length=None, assistant_only_loss=True)(
        [_row()]
    )
    assert int(batch["token_type_ids"].sum()) == 0
    labelled = [
        t
        for t, lab in zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist(), strict=True)
        if lab != -100
    ]
    assert labelled != _caption_ids(processor, GOOD)


def test_collator_labels_exactly_the_caption_and_marks_it_suffix(paligemma):
    _, processor = paligemma
    rows = [_row(), _row("Comida.")]
    batch = PrefixLMCollator(processor)(rows)
    for i, caption in enumerate((GOOD, "Comida.")):
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        types, mask = batch["token_type_ids"][i].tolist(), batch["attention_mask"][i].tolist()
        labelled = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
        assert labelled == _caption_ids(processor, caption)
        assert [t for t, ty, m in zip(ids, types, mask, strict=True) if ty == 1 and m] == labelled
        assert ids.count(processor.image_token_id) == processor.image_seq_length
    assert batch["pixel_values"].shape[0] == 2


def test_caption_attention_is_causal_with_the_collator(paligemma):
    """Changing a late caption token must not change any earlier position's logits (it does with TRL's batch)."""
    import torch

    model, processor = paligemma
    batch = PrefixLMCollator(processor)([_row()])
    model.train()
    ids = batch["input_ids"].clone()
    last = int(batch["attention_mask"][0].sum()) - 2  # the caption's last word, before <eos>
    changed = ids.clone()
    changed[0, last] = (changed[0, last] + 7) % processor.tokenizer.vocab_size
    inputs = {k: v for k, v in batch.items() if k not in ("input_ids", "labels")}
    with torch.no_grad():
        a = model(input_ids=ids, **inputs).logits[0, :last]
        b = model(input_ids=changed, **inputs).logits[0, :last]
        leaked = model(input_ids=changed, **{**inputs, "token_type_ids": torch.zeros_like(ids)}).logits[
            0, :last
        ]
        base = model(input_ids=ids, **{**inputs, "token_type_ids": torch.zeros_like(ids)}).logits[0, :last]
    assert torch.equal(a, b)
    assert not torch.allclose(leaked, base)  # the probe can see a leak when there is one


def test_split_prefix_suffix_layouts_and_refusals():
    assert split_prefix_suffix(_row()) == (PROMPT, GOOD)
    pc = {
        "prompt": [{"role": "user", "content": PROMPT}],
        "completion": [{"role": "assistant", "content": GOOD}],
    }
    assert split_prefix_suffix(pc) == (PROMPT, GOOD)
    chat = {"messages": [*_row()["messages"], {"role": "user", "content": "¿Y?"}]}
    with pytest.raises(ValueError, match="must end with the assistant"):
        split_prefix_suffix(chat)
    multi = {"messages": [*_row()["messages"], *_row()["messages"]]}
    with pytest.raises(ValueError, match="one prompt and one caption"):
        split_prefix_suffix(multi)
    with pytest.raises(KeyError):
        split_prefix_suffix({"text": "x"})


@pytest.mark.parametrize("layout", ["sft", "sft_pc"])
def test_paligemma_sft_trains_with_qlora_on_both_layouts(settings, layout):
    script, args, model_args = settings("sft", "paligemma", "max_tokens=64", data=layout)
    result = run_training(script, args, model_args)
    train_logs = [h for h in result.log_history if "loss" in h and "eval_loss" not in h]
    assert train_logs and all(math.isfinite(h["loss"]) and h["grad_norm"] > 0 for h in train_logs)
    assert result.data.rows["train"] == 4
    assert (result.output_dir / "adapter_model.safetensors").is_file()


def test_paligemma_still_refuses_preference_methods(settings):
    script, args, model_args = settings("dpo", "paligemma")
    with pytest.raises(Exception, match="cannot be trained with DPO"):
        run_training(script, args, model_args)
    assert get_spec("paligemma").prefix_lm


def test_inference_template_renders_the_prefix_the_collator_trains_on(paligemma):
    _, processor = paligemma
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Eres experto."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]},
    ]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prefix, _ = split_prefix_suffix({"messages": [*messages, {"role": "assistant", "content": GOOD}]})
    assert rendered == processor.image_token + prefix == f"<image>Eres experto.\n{PROMPT}"
