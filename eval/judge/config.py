"""Settings of the judge. Backends, prices, limits and budget are the draft stage's own classes:
the judge spends from the same workspace budget through the same runner, so they must mean the
same thing. Field descriptions are the documentation of every default."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from data_tools.config import StageConfig
from data_tools.draft.config import (
    CohereSettings,
    DraftConfig,
    Limits,
    LocalSettings,
    OpenAISettings,
    Price,
    _default_prices,
)
from eval.judge.prompts import DEFAULT_DIR


class JudgeConfig(StageConfig):
    """Settings of ``mirada judge`` and ``mirada judge calibrate``."""

    backend: Literal["cohere", "local", "openai"] = Field("cohere", description="which model judges")
    prompts_dir: Path = Field(DEFAULT_DIR, description="folder of judge prompts (<version>.yaml)")
    prompt_version: str | None = Field(
        None, description="judge prompt for `mirada judge`; default: the workspace's calibrated one, else v1"
    )
    calibrate_versions: list[str] = Field(
        default_factory=lambda: ["v1", "v2"], description="judge prompts `mirada judge calibrate` compares"
    )
    mode: Literal["pairwise", "rubric"] = Field(
        "pairwise", description="pairwise: which of two captions is better; rubric: 1-5 per criterion"
    )
    split: str | None = Field(
        "test", description="judge images of this prefs split (all images when prefs never recorded one)"
    )
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature (0: most repeatable)")
    max_tokens: int = Field(
        300, ge=16, description="maximum output tokens per verdict (also the budget's bound)"
    )
    detail: Literal["low", "high", "auto"] = Field("low", description="image detail sent to the judge")
    budget_usd: float | None = Field(
        None, ge=0, description="hard cap on the workspace's total API spend (drafting's included), in USD"
    )
    bootstrap_resamples: int = Field(1000, ge=0, description="bootstrap resamples (by image) for intervals")
    confidence: float = Field(0.95, gt=0, lt=1, description="confidence level of every interval")
    group_by: list[str] = Field(
        default_factory=lambda: ["country", "language", "category"], description="win rates per these fields"
    )
    prices: dict[str, Price] = Field(default_factory=_default_prices, description="price table per model")
    limits: Limits = Field(default_factory=Limits, description="concurrency, rate limits, retries, timeouts")
    cohere: CohereSettings = Field(default_factory=CohereSettings, description="Cohere backend")
    openai: OpenAISettings = Field(default_factory=OpenAISettings, description="OpenAI-compatible backend")
    local: LocalSettings = Field(default_factory=LocalSettings, description="local transformers backend")

    # The same model/price resolution as drafting (one definition, not a copy).
    model = DraftConfig.model
    price = DraftConfig.price
