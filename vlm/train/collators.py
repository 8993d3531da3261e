"""A prefix-LM collator for families TRL's vision collator trains wrongly (PaliGemma).

Why this exists: PaliGemma attends *bidirectionally* over every token whose ``token_type_ids`` is 0
(the prefix) and causally over the suffix. TRL 1.16's ``DataCollatorForVisionLanguageModeling``
renders the whole conversation through the chat template, so the processor marks prompt *and* caption
as prefix: each caption token can see the tokens it must predict, and the loss falls without the
model learning anything. Its assistant mask is also computed before the processor inserts ``<bos>``
after the images, so the loss lands one token early (both measured with the tiny PaliGemma,
``tests/vlm/train/test_train_prefix_lm.py``). The prompt-completion path fails outright, because it
calls the processor on completions without images.

PaliGemma's processor has its own training API: ``processor(text=prefix, images=…, suffix=caption)``
returns ``token_type_ids`` (1 on the suffix) and ``labels`` (-100 on the prefix and padding). This
collator feeds it from the same datasets the TRL collator takes (``messages`` or ``prompt`` +
``completion``, with ``images``), so the rest of the SFT path (TRL's trainer, its loss and logging)
stays TRL's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import ProcessorMixin

__all__ = ["PrefixLMCollator", "split_prefix_suffix"]


def _text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content if part.get("type") == "text")


def _turns(messages: list[dict[str, Any]], roles: set[str]) -> list[str]:
    return [_text(m["content"]) for m in messages if m["role"] in roles]


def split_prefix_suffix(example: dict[str, Any]) -> tuple[str, str]:
    """(prompt, caption) of one SFT row in either layout: the user turns before the last assistant turn,
    and that turn. A prefix-LM is not a chat model, so earlier assistant turns are refused."""
    if "messages" in example:
        messages = example["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError("a prefix-LM SFT row must end with the assistant's caption")
        if len(_turns(messages[:-1], {"assistant"})) > 0:
            raise ValueError(
                "a prefix-LM (PaliGemma) trains on one prompt and one caption, not a multi-turn chat"
            )
        return "\n".join(_turns(messages[:-1], {"system", "user"})), _text(messages[-1]["content"])
    if "prompt" in example and "completion" in example:
        prompt, completion = example["prompt"], example["completion"]
        if isinstance(prompt, list):
            prompt = "\n".join(_turns(prompt, {"system", "user"}))
        if isinstance(completion, list):
            completion = "\n".join(_turns(completion, {"assistant"}))
        return prompt, completion
    raise KeyError("SFT rows need 'messages', or 'prompt' and 'completion'")


@dataclass
class PrefixLMCollator:
    """Batches SFT rows through the processor's prefix/suffix API (``suffix=`` → labels, token types).

    ``max_length`` is refused rather than applied: truncating the sequence could cut image tokens or
    the caption, and rows are already filtered by length before training (``filter_overlong``).
    """

    processor: ProcessorMixin
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.max_length is not None:
            raise ValueError(
                "PrefixLMCollator never truncates; filter over-long rows instead (max_length=None)"
            )
        self.image_token: str = self.processor.image_token

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        prefixes, suffixes, images = [], [], []
        for example in examples:
            prefix, suffix = split_prefix_suffix(example)
            row_images = example.get("images") or (
                [example["image"]] if example.get("image") is not None else []
            )
            if not row_images:
                raise ValueError("PaliGemma needs an image in every row")
            # The processor inserts <bos> after the last <image> and "\n" after the prefix itself.
            prefixes.append(self.image_token * len(row_images) + prefix)
            suffixes.append(suffix)
            images.append([image.convert("RGB") for image in row_images])
        from transformers import BatchFeature

        # Tensors are made afterwards: the processor builds its labels with np.array(), which warns on tensors.
        batch = self.processor(text=prefixes, images=images, suffix=suffixes, padding="longest")
        return dict(BatchFeature(dict(batch), tensor_type="pt"))
