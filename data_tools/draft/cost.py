"""Token estimates and cost: what a request can cost at most, and what it is expected to cost.

Image tokens follow Cohere's published rule (DESIGN 6.5): ``low`` detail is 256 tokens; ``high`` is
256 per 512-px tile after fitting the longest side into 2048, plus a 256-token preview; ``auto`` is
``high`` when a side exceeds 768 px. Text is estimated from its bytes: the *upper* bound assumes 2
bytes per token (Spanish averages nearer 4), so a budget check with it never under-reserves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from data_tools.draft.config import Price

EXPECTED_BYTES_PER_TOKEN = 3.5
UPPER_BYTES_PER_TOKEN = 2.0
EXPECTED_OUTPUT_TOKENS = 120


def image_tokens(width: int, height: int, detail: str) -> int:
    """``image_tokens(1024, 768, 'high') == 256 * 4 + 256``; ``image_tokens(4000, 3000, 'low') == 256``."""
    if detail == "auto":
        detail = "high" if max(width, height) > 768 else "low"
    if detail == "low":
        return 256
    scale = min(1.0, 2048 / max(width, height))
    tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    return 256 * tiles + 256


@dataclass(frozen=True)
class TokenEstimate:
    input_expected: int
    input_upper: int
    output_expected: int
    output_upper: int

    def cost(self, price: Price, *, upper: bool) -> float:
        inputs = self.input_upper if upper else self.input_expected
        outputs = self.output_upper if upper else self.output_expected
        return cost_usd(price, inputs, outputs)


def estimate(text: str, width: int, height: int, detail: str, max_tokens: int) -> TokenEstimate:
    size = len(text.encode("utf-8"))
    image = image_tokens(width, height, detail)
    return TokenEstimate(
        input_expected=image + math.ceil(size / EXPECTED_BYTES_PER_TOKEN),
        input_upper=image + math.ceil(size / UPPER_BYTES_PER_TOKEN) + 64,  # + chat-template overhead
        output_expected=min(EXPECTED_OUTPUT_TOKENS, max_tokens),
        output_upper=max_tokens,
    )


def cost_usd(price: Price, input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000
