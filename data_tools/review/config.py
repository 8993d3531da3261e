"""Settings of the review stage. Field descriptions are the documentation of every default."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from data_tools.config import StageConfig
from data_tools.draft.config import REPO_ROOT


class AggregationPolicy(StageConfig):
    """How several annotators' answers become one decision per record."""

    correction: Literal["wins", "ignore"] = Field(
        "wins",
        description="'wins': a human correction beats every candidate; 'ignore': corrections are kept but not used",
    )
    rank: Literal["mean", "median", "borda"] = Field(
        "mean", description="how ranks from several annotators combine"
    )
    acceptable: Literal["majority", "unanimous", "any"] = Field(
        "majority", description="votes needed for a candidate to count as culturally appropriate and accurate"
    )
    min_submitted: int = Field(
        1, ge=1, description="submitted responses a record needs before it gets a decision"
    )


class ReviewConfig(StageConfig):
    """Settings of the review stage."""

    api_url: str | None = Field(
        None,
        description="Argilla URL; default: $ARGILLA_API_URL (the key is only read from $ARGILLA_API_KEY)",
    )
    argilla_workspace: str = Field("mirada", description="Argilla workspace that holds the datasets")
    dataset_prefix: str | None = Field(
        None,
        description="dataset name prefix; default: 'mirada-' + the first 8 digits of the workspace's stable id "
        "(stored in its database, so renaming or copying the folder keeps the same datasets)",
    )
    datasets: Literal["language", "variety"] = Field(
        "language",
        description="'language': one dataset per language (es, pt, ca…), the variety (es-MX…) is a metadata "
        "filter; 'variety': one dataset per variety",
    )
    annotators: list[str] = Field(
        default_factory=list,
        description="Argilla usernames that push gives access to the workspace (they must exist; "
        "`mirada review users add NAME…` creates missing ones)",
    )
    prefill_correction: bool = Field(
        True,
        description="pre-fill the correction box with the most confident cultural candidate; an answer that "
        "leaves it unchanged counts as accepting that candidate, never as a correction",
    )
    min_submitted: int = Field(
        2, ge=1, description="annotators per record (TaskDistribution); >1 gives overlap for agreement"
    )
    image_max_side: int = Field(
        1280, ge=64, description="longest side of the image sent to Argilla (the UI scales it to fit)"
    )
    ui_dir: Path = Field(
        REPO_ROOT / "configs" / "review",
        description="folder with UI texts and annotation guidelines per language",
    )
    shuffle_seed: int = Field(
        0, description="seed of the per-record candidate shuffle (fixed: reruns show the same order)"
    )
    include_drafts: bool = Field(
        False, description="also pull responses annotators saved as draft (not yet submitted)"
    )
    aggregation: AggregationPolicy = Field(
        default_factory=AggregationPolicy, description="aggregation policy"
    )
