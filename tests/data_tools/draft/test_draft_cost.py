from __future__ import annotations

import asyncio
import time

import pytest

from data_tools.draft.config import DraftConfig, Price
from data_tools.draft.cost import cost_usd, estimate, image_tokens
from data_tools.draft.ratelimit import RateLimiter


@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [((4000, 3000), "low", 256), ((1024, 768), "high", 256 * 4 + 256), ((4096, 4096), "high", 256 * 16 + 256),
     ((700, 500), "auto", 256), ((1000, 500), "auto", 256 * 2 + 256), ((512, 512), "high", 512)],
)  # fmt: skip
def test_image_tokens_follow_cohere_rule(size, detail, tokens):
    assert image_tokens(*size, detail) == tokens


def test_estimate_upper_bound_is_above_expected():
    est = estimate("Describe la imagen " * 20, 800, 600, "low", 300)
    assert est.input_upper > est.input_expected > 256
    assert est.output_upper == 300 and est.output_expected <= 300
    price = Price(input=2.5, output=10)
    assert est.cost(price, upper=True) > est.cost(price, upper=False)


def test_cost_formula_and_price_table():
    assert cost_usd(Price(input=2.5, output=10), 1_000_000, 100_000) == pytest.approx(3.5)
    assert DraftConfig().price().input == 2.5
    with pytest.raises(ValueError, match="no price for model 'mystery'"):
        DraftConfig(cohere={"model": "mystery"}).price()
    assert DraftConfig(backend="local").price().input == 0


def test_rate_limiter_holds_requests_per_minute():
    async def go() -> float:
        limiter = RateLimiter(requests_per_minute=1200)  # one every 50 ms
        start = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(21)))
        return time.monotonic() - start

    elapsed = asyncio.run(go())
    assert elapsed == pytest.approx(1.0, rel=0.05)


def test_rate_limiter_tokens_and_pause():
    async def go() -> tuple[float, float]:
        limiter = RateLimiter(tokens_per_minute=60_000)  # 1000 tokens per second
        start = time.monotonic()
        for _ in range(3):
            await limiter.acquire(250)
        tokens_elapsed = time.monotonic() - start
        limiter.pause(0.3)
        start = time.monotonic()
        await limiter.acquire(0)
        return tokens_elapsed, time.monotonic() - start

    tokens_elapsed, paused = asyncio.run(go())
    assert tokens_elapsed == pytest.approx(0.5, abs=0.06)
    assert paused >= 0.29
