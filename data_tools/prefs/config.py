"""Settings of the prefs stage. Field descriptions are the documentation of every default."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from data_tools.config import StageConfig
from data_tools.draft.config import REPO_ROOT

FORMATS = ("dpo", "kto", "sft")
Format = Literal["dpo", "kto", "sft"]


class DPOSettings(StageConfig):
    """How preference pairs are drawn from one reviewed record."""

    pairing: Literal["best_vs_rest", "all_pairs", "top_vs_bottom"] = Field(
        "best_vs_rest",
        description="best_vs_rest: the best caption against each other one; all_pairs: every ordered pair; "
        "top_vs_bottom: the best against the worst only",
    )
    order: Literal["acceptability_then_rank", "rank", "consistent"] = Field(
        "acceptability_then_rank",
        description="how two candidates compare (a human correction always wins): acceptability_then_rank: "
        "acceptable beats unacceptable, the aggregated rank orders candidates within each group; rank: the "
        "aggregated rank alone; consistent: pair only when rank and acceptability do not contradict",
    )
    max_pairs_per_image: int = Field(
        4, ge=1, description="cap on pairs per image so no image dominates (largest contrasts are kept first)"
    )


class KTOSettings(StageConfig):
    """How unpaired desirable/undesirable rows are drawn from one reviewed record."""

    include_corrections: bool = Field(True, description="add each human correction as a desirable row")
    drop_disputed: bool = Field(
        False, description="leave out candidates whose acceptability vote was split between annotators"
    )


class SFTSettings(StageConfig):
    """How the one supervised caption per image is chosen."""

    require_acceptable: bool = Field(
        True,
        description="without a correction, use the best-ranked candidate voted acceptable; no such candidate "
        "means no SFT row (false: fall back to the best-ranked candidate)",
    )
    layout: Literal["messages", "prompt_completion"] = Field(
        "messages",
        description="messages: one user+assistant conversation (loss on every token); prompt_completion: "
        "separate columns (TRL trains on the completion only)",
    )


class Filters(StageConfig):
    """What keeps a record, a caption or a pair out of the datasets; every drop is counted in the report."""

    min_agreement: float = Field(
        0.5,
        ge=0,
        le=1,
        description="records whose acceptability agreement (mean pairwise agreement of annotators' votes over "
        "the candidates) is lower are left out",
    )
    max_rank_spread: float | None = Field(
        None,
        ge=0,
        description="records whose mean rank spread (population std of annotators' ranks per candidate) is "
        "higher are left out; null turns this off",
    )
    single_annotator: Literal["keep", "drop"] = Field(
        "keep", description="records answered by one annotator have no agreement figure: keep or drop them"
    )
    drop_unpublishable: bool = Field(
        True, description="leave out images without a recognised licence (they cannot be published)"
    )
    min_caption_chars: int = Field(
        1, ge=1, description="captions shorter than this after trimming count as empty and are left out"
    )
    max_caption_chars: int = Field(
        1000,
        ge=1,
        description="longer captions are left out (TRL runs vision models with max_length=None, so over-long "
        "rows must be filtered here)",
    )


class Splits(StageConfig):
    """Train/test(/validation) split, grouped by near-duplicate cluster and stratified by country and category."""

    test_size: float = Field(0.1, ge=0, lt=1, description="share of images in the test split")
    validation_size: float = Field(
        0.0, ge=0, lt=1, description="share of images in a validation split; 0 means no validation split"
    )
    seed: int = Field(0, description="seed of the split (the same seed always gives the same split)")

    @model_validator(mode="after")
    def _leave_room_for_train(self) -> Splits:
        if self.test_size + self.validation_size >= 1:
            raise ValueError(
                f"test_size + validation_size must be below 1 (got {self.test_size + self.validation_size})"
            )
        return self


class CardSettings(StageConfig):
    """What the Dataset Card says that the data cannot: licence, links, who annotated."""

    license: str = Field(
        "apache-2.0",
        description="licence of the dataset (captions, annotations); images keep their own, listed in the card",
    )
    license_reason: str | None = Field(
        None, description="why, if the licence is not apache-2.0 (the hackathon asks for a reason)"
    )
    pretty_name: str | None = Field(None, description="title of the card; default: from the dataset name")
    code_url: str | None = Field(None, description="link to the code and notebooks that built the dataset")
    guidelines_url: str | None = Field(
        None,
        description="link to the annotation guidelines; default: the guidelines are copied next to the card",
    )
    guidelines_dir: Path = Field(
        str(
            REPO_ROOT / "configs" / "review"
        ),  # a str default (validated to Path) keeps --help-config printable
        validate_default=True,
        description="folder with the review UI texts and guidelines",
    )
    annotations_creators: Literal["expert-generated", "crowdsourced", "machine-generated", "other"] = Field(
        "expert-generated",
        description="who annotated, for the card's YAML header (simulated answers always give machine-generated)",
    )
    motivation: str | None = Field(
        None, description="the team's own words on why this dataset exists (added to the card's introduction)"
    )
    tags: list[str] = Field(
        default_factory=lambda: ["mirada", "cultural-context", "image-captioning", "somosnlp-hackathon-2026"],
        description="extra Hub tags (the format, 'image' and 'preference' are always added)",
    )
    expected_countries: list[str] = Field(
        default_factory=lambda: [
            "AR", "BO", "BR", "CL", "CO", "CR", "CU", "DO", "EC", "ES", "GQ", "GT", "HN", "MX", "NI",
            "PA", "PE", "PR", "PT", "PY", "SV", "UY", "VE", "AD",
        ],
        description="countries the card checks for coverage (Latin America and the Iberian Peninsula)",
    )  # fmt: skip


class HubSettings(StageConfig):
    private: bool = Field(False, description="create private repositories when pushing")
    token_env: str = Field("HF_TOKEN", description="environment variable holding the Hub token")


class PrefsConfig(StageConfig):
    """Settings of the prefs stage."""

    name: str | None = Field(
        None,
        description="dataset base name; outputs are <name>_image_dpo, <name>_image_kto, <name>_image_sft "
        "(default: the workspace folder's name)",
    )
    formats: list[Format] = Field(
        default_factory=lambda: list(FORMATS), description="which datasets to build: dpo, kto, sft"
    )
    instructions: Path = Field(
        str(REPO_ROOT / "configs" / "prompts" / "prefs" / "instructions.yaml"),
        validate_default=True,
        description="YAML file of the user instruction per language variety (fallback es-PA -> es)",
    )
    dpo: DPOSettings = Field(default_factory=DPOSettings, description="DPO pairs")
    kto: KTOSettings = Field(default_factory=KTOSettings, description="KTO rows")
    sft: SFTSettings = Field(default_factory=SFTSettings, description="SFT rows")
    filters: Filters = Field(default_factory=Filters, description="filters, each counted in the report")
    splits: Splits = Field(default_factory=Splits, description="splits")
    card: CardSettings = Field(default_factory=CardSettings, description="Dataset Card")
    hub: HubSettings = Field(default_factory=HubSettings, description="pushing to the Hugging Face Hub")

    @field_validator("name")
    @classmethod
    def _hub_friendly(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}", value):
            raise ValueError(
                "use letters, digits, '_', '-' or '.' (a Hub dataset name), e.g. comida_mexicana"
            )
        return value

    @field_validator("formats")
    @classmethod
    def _some_format(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"choose at least one of {list(FORMATS)}")
        return sorted(set(value), key=FORMATS.index)

    @model_validator(mode="after")
    def _caption_bounds(self) -> PrefsConfig:
        if self.filters.min_caption_chars > self.filters.max_caption_chars:
            raise ValueError("filters.min_caption_chars must not exceed filters.max_caption_chars")
        return self


def dataset_name(base: str, fmt: str) -> str:
    """Hackathon naming: ``dataset_name('tacos', 'dpo') == 'tacos_image_dpo'``."""
    return f"{base}_image_{fmt}"


def default_base_name(workspace_root: Path) -> str:
    """A Hub-friendly base name from a folder name: ``'Mi Proyecto!'`` → ``'mi_proyecto'``."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", workspace_root.resolve().name.lower()).strip("_")
    return cleaned or "mirada"


def portable(value: Any) -> Any:
    """Local absolute paths made relative to the repository, or reduced to their last part, for publishing.

    ``portable({"model": "/work/main/configs/x.yaml"}) == {"model": "configs/x.yaml"}``; other values are
    returned as they are. Cards and published rows must not carry someone's home directory.
    """
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        path = Path(value)
        try:
            return str(path.resolve().relative_to(REPO_ROOT))
        except ValueError:
            return path.name
    return value
