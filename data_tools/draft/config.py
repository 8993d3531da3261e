"""Settings of the draft stage. Field descriptions are the documentation of every default."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from data_tools.config import StageConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


class Price(StageConfig):
    """USD per million tokens."""

    input: float = Field(ge=0, description="USD per million input tokens")
    output: float = Field(ge=0, description="USD per million output tokens")


class StrategyCounts(StageConfig):
    """How many candidates of each strategy to draft per image."""

    cultural: int = Field(2, ge=0, description="culturally grounded captions using all metadata")
    generic: int = Field(
        1, ge=0, description="plausible but flat captions without cultural context (natural 'rejected')"
    )
    perturbed: int = Field(
        1, ge=0, description="captions with a controlled flaw (wrong country, stereotype, wrong variety)"
    )


class CohereSettings(StageConfig):
    model: str = Field("command-a-vision-07-2025", description="Cohere vision model")
    base_url: str | None = Field(
        None, description="API base URL; default: $CO_API_URL, else Cohere's production API"
    )
    api_key_env: str = Field(
        "CO_API_KEY", description="environment variable holding the API key (never put keys in YAML)"
    )
    json_mode: bool = Field(
        False,
        description="send response_format=json_object (Command A Vision is not listed as structured-output capable)",
    )


class OpenAISettings(StageConfig):
    model: str = Field(
        "Qwen/Qwen2.5-VL-7B-Instruct", description="model name the OpenAI-compatible server serves"
    )
    base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="OpenAI-compatible base URL, e.g. a vLLM server"
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="environment variable holding the key (may be unset for local servers)"
    )


class LocalSettings(StageConfig):
    model: str = Field(
        "Qwen/Qwen2.5-VL-7B-Instruct", description="Hub id or local path of an AutoModelForImageTextToText"
    )
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu' or 'cuda'")
    dtype: str = Field("auto", description="torch dtype name, or 'auto' (bfloat16 on GPU, float32 on CPU)")
    adapter: str | None = Field(
        None,
        description="LoRA adapter to draft with: a `mirada train` output folder or Hub id (part of the cache key)",
    )
    quantization: Literal["none", "4bit", "8bit"] = Field(
        "none", description="bitsandbytes quantisation of the model"
    )
    batch_size: int = Field(
        8, ge=1, description="requests generated together; keep limits.concurrency at least this high"
    )


class Limits(StageConfig):
    """Client-side limits; set them to your Cohere plan's limits."""

    concurrency: int = Field(8, ge=1, le=256, description="requests in flight at once")
    requests_per_minute: float = Field(0, ge=0, description="client-side request rate limit; 0 turns it off")
    tokens_per_minute: float = Field(
        0, ge=0, description="client-side token rate limit (estimated input+output); 0 turns it off"
    )
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout in seconds")
    max_attempts: int = Field(
        4,
        ge=1,
        description="HTTP attempts per candidate on 429/5xx/timeouts/dropped connections (the SDK's own retries are off)",
    )
    max_invalid_outputs: int = Field(
        2, ge=0, description="re-asks per candidate when the answer is not the JSON asked for"
    )
    backoff_s: float = Field(
        1.0, ge=0, description="first retry delay without a Retry-After header; doubles each attempt"
    )
    max_backoff_s: float = Field(60.0, ge=0, description="longest wait between attempts")
    claim_ttl_s: float = Field(
        120.0,
        gt=0,
        description=(
            "a claim or reservation of another process whose heartbeat is older than this is treated as dead "
            "(a dead process on this machine is noticed at once)"
        ),
    )


def _default_prices() -> dict[str, Price]:
    # Cohere list prices in USD per million tokens (check cohere.com/pricing; override in your config).
    return {
        "command-a-vision-07-2025": Price(input=2.5, output=10.0),
        "command-a-plus-05-2026": Price(input=2.5, output=10.0),
        "c4ai-aya-vision-32b": Price(input=0.5, output=1.5),
        "c4ai-aya-vision-8b": Price(input=0.5, output=1.5),
    }


class DraftConfig(StageConfig):
    """Settings of the draft stage."""

    backend: Literal["cohere", "local", "openai"] = Field(
        "cohere", description="which model drafts: cohere, local or openai"
    )
    strategies: StrategyCounts = Field(
        default_factory=StrategyCounts, description="candidates per image and strategy"
    )
    perturbations: list[Literal["wrong_country", "stereotype", "wrong_variety"]] = Field(
        default_factory=lambda: ["wrong_country", "stereotype", "wrong_variety"],
        description="flaws the perturbed strategy may use (chosen per image, deterministically)",
    )
    prompts_dir: Path = Field(
        REPO_ROOT / "configs" / "prompts" / "draft", description="folder of versioned prompt templates"
    )
    prompt_version: str = Field("v1", description="prompt template version (part of the cache key)")
    output: Literal["json", "text"] = Field(
        "json", description="ask for the JSON object, or for plain caption text"
    )
    temperature: float = Field(0.7, ge=0, le=2, description="sampling temperature")
    max_tokens: int = Field(
        400, ge=1, description="maximum output tokens per candidate (also the budget's upper bound)"
    )
    detail: Literal["low", "high", "auto"] = Field(
        "low", description="image detail: low = 256 tokens; high = 512px tiles"
    )
    include_near_duplicates: bool = Field(False, description="also draft images set aside as near-duplicates")
    budget_usd: float | None = Field(
        None, ge=0, description="hard cap on the workspace's total API spend, in USD"
    )
    prices: dict[str, Price] = Field(default_factory=_default_prices, description="price table per model")
    limits: Limits = Field(default_factory=Limits, description="concurrency, rate limits, retries, timeouts")
    cohere: CohereSettings = Field(default_factory=CohereSettings, description="Cohere backend")
    openai: OpenAISettings = Field(default_factory=OpenAISettings, description="OpenAI-compatible backend")
    local: LocalSettings = Field(default_factory=LocalSettings, description="local transformers backend")

    @property
    def model(self) -> str:
        local = self.local.model + (f"+{self.local.adapter}" if self.local.adapter else "")
        return {"cohere": self.cohere.model, "openai": self.openai.model, "local": local}[self.backend]

    def price(self) -> Price:
        """The price of the configured model; local models cost nothing, unknown paid models are an error."""
        if self.backend == "local":
            return Price(input=0.0, output=0.0)
        if self.model in self.prices:
            return self.prices[self.model]
        if self.backend == "openai":
            return Price(input=0.0, output=0.0)
        raise ValueError(
            f"no price for model {self.model!r}: add it with --set prices.{self.model}.input=… "
            f"--set prices.{self.model}.output=… (USD per million tokens)"
        )
