"""What every collect source yields: items that can be skipped cheaply and fetched lazily.

A source never decodes images and never raises for one bad input: it yields an item carrying the
problem (``error``), so collect reports it and moves on. ``fingerprint`` is computed without
fetching (file size and mtime, URL, dataset fingerprint, plus the metadata), so a rerun skips done
inputs without reading or downloading anything again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from data_tools.config import StageConfig
from data_tools.errors import UserError


class SourceError(UserError):
    """One input could not be fetched; ``reason`` is a short code for reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class SourceItem:
    input_key: str
    source: str
    display: str
    fingerprint: str
    fetch: Callable[[], bytes] | None
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    error: SourceError | None = None


class SourceConfig(StageConfig):
    """How source columns map onto Mirada's fields, and defaults for fields a source lacks."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="our field -> the source's column, e.g. {country: pais, image: foto}; unmapped fields use our names",
    )
    defaults: dict[str, str] = Field(
        default_factory=dict,
        description="values for fields a record leaves empty, e.g. {language: es-MX, license: CC-BY-4.0}",
    )
    hf_split: str = Field("train", description="split to read from a Hugging Face dataset or DatasetDict")


def fingerprint_of(*parts: object) -> str:
    """Stable short hash of JSON-serialisable parts: ``fingerprint_of('a', 1)`` → 16 hex digits."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def map_columns(row: Mapping[str, Any], config: SourceConfig, fields: tuple[str, ...]) -> dict[str, Any]:
    """Pick our fields out of a source row through the column mapping, filling configured defaults."""
    result: dict[str, Any] = {}
    for name in fields:
        value = row.get(config.columns.get(name, name))
        if value in (None, "") and name in config.defaults:
            value = config.defaults[name]
        if value is not None:
            result[name] = value
    return result
