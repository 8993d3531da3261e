"""What every collect source yields: items that can be skipped cheaply and fetched lazily.

A source never decodes images and never raises for one bad input: it yields an item carrying the
problem (``error``), so collect reports it and moves on. ``fingerprint`` is computed without
fetching (file size and mtime, URL, dataset fingerprint, plus the metadata), so a rerun skips done
inputs without reading or downloading anything again.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping
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


# Column headers people write in Spanish, Portuguese, Catalan, Galician and Basque spreadsheets,
# folded like ``header_key`` does (lower case, no accents, spaces for ``_``/``-``). Documented in the
# README; an explicit ``source.columns.<field>`` mapping always wins over these.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "file_name": ("file_name", "filename", "file", "archivo", "nombre de archivo", "nombre archivo",
                  "fichero", "arquivo", "nome do arquivo", "nome arquivo", "fitxer", "ficheiro"),
    "country": ("country", "pais", "pays", "herrialdea"),
    "language": ("language", "idioma", "lengua", "lingua", "llengua", "hizkuntza"),
    "region": ("region", "regiao", "regio", "comunidad", "estado", "eskualdea"),
    "category": ("category", "categoria", "kategoria"),
    "cultural_context": ("cultural_context", "contexto cultural", "contexto", "context cultural", "testuingurua"),
    "reference_captions": ("reference_captions", "descripcion", "descricao", "descripcio", "deskribapena"),
    "license": ("license", "licence", "licencia", "licenca", "llicencia", "lizentzia"),
    "author": ("author", "autor", "autora", "autoria", "egilea"),
    "source_id": ("source_id", "id"),
    "source_url": ("source_url", "url", "enlace", "link", "fuente", "fonte"),
}  # fmt: skip


def header_key(header: str) -> str:
    """A column header folded for alias lookup: ``header_key(' País ') == 'pais'``."""
    decomposed = unicodedata.normalize("NFKD", str(header).strip().casefold())
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(letters.replace("_", " ").replace("-", " ").split())


def column_for(name: str, headers: Iterable[str], config: SourceConfig) -> str | None:
    """The source column that holds our field ``name``: the configured mapping, else a known alias.

    For folder sidecars ``source.columns.image`` names the file column too, as it names the image
    column of a Hugging Face dataset, so one mapping works for both kinds of source.
    """
    headers = list(headers)
    by_key = {header_key(h): h for h in headers}
    mapped = config.columns.get(name) or (config.columns.get("image") if name == "file_name" else None)
    if mapped:  # as written, else the header it names up to case and accents ("pais" finds "País")
        return mapped if mapped in headers else by_key.get(header_key(mapped), mapped)
    if name in headers:
        return name
    for alias in COLUMN_ALIASES.get(name, (name,)):
        found = by_key.get(header_key(alias))
        if found is not None:
            return found
    return None


def map_columns(row: Mapping[str, Any], config: SourceConfig, fields: tuple[str, ...]) -> dict[str, Any]:
    """Pick our fields out of a source row through the column mapping, filling configured defaults."""
    result: dict[str, Any] = {}
    for name in fields:
        column = column_for(name, row.keys(), config)
        value = row.get(column) if column is not None else None
        if value in (None, "") and name in config.defaults:
            value = config.defaults[name]
        if value is not None:
            result[name] = value
    return result
