"""Collect sources: local folders, Hugging Face datasets and URL lists, behind one iterator.

A source spec may name its kind (``folder:photos/``, ``hf:org/name``, ``urls:list.csv``) or leave it
to detection: a folder holding ``dataset_info.json``/``dataset_dict.json`` or parquet files is a
Hugging Face dataset, any other folder is an image folder, a ``.csv``/``.jsonl`` file is a URL list,
a ``.parquet`` file is a dataset, and anything else that looks like ``owner/name`` is a Hub id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from data_tools.sources.base import SourceConfig, SourceError, SourceItem
from data_tools.sources.folder import iter_folder
from data_tools.sources.hf import iter_hf
from data_tools.sources.urls import DownloadConfig, iter_url_list

KINDS = ("folder", "hf", "urls")


def detect_kind(spec: str) -> tuple[str, str]:
    """``(kind, location)`` of a source spec: ``detect_kind('urls:x.csv') == ('urls', 'x.csv')``."""
    for kind in KINDS:
        if spec.startswith(kind + ":"):
            return kind, spec[len(kind) + 1 :]
    path = Path(spec)
    if path.is_dir():
        markers = ("dataset_info.json", "dataset_dict.json")
        if any((path / m).exists() for m in markers) or any(path.glob("*.parquet")):
            return "hf", spec
        return "folder", spec
    if path.is_file():
        if path.suffix == ".parquet":
            return "hf", spec
        if path.suffix in (".csv", ".jsonl", ".ndjson"):
            return "urls", spec
        raise SourceError(
            "unknown_source", f"{spec}: a file source must be a .csv/.jsonl URL list or .parquet"
        )
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return "hf", spec
    raise SourceError("unknown_source", f"{spec}: no such folder or file, and not a Hugging Face Hub id")


def iter_source(
    spec: str,
    config: SourceConfig,
    config_sig: str,
    *,
    metadata_file: Path | None = None,
    client: httpx.Client | None = None,
    download_config: DownloadConfig | None = None,
    max_file_bytes: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> Iterator[SourceItem]:
    """Items of one source spec; raises :class:`SourceError` if the source as a whole is unusable.

    ``warn`` hears problems that do not reject an input (a Latin-1 sidecar, skipped non-image files).
    """
    kind, location = detect_kind(spec)
    if kind == "folder":
        yield from iter_folder(
            Path(location), config, config_sig, metadata_file, max_file_bytes=max_file_bytes, warn=warn
        )
    elif kind == "hf":
        yield from iter_hf(location, config, config_sig)
    else:
        if client is None or download_config is None:
            raise ValueError("URL sources need an HTTP client and a download configuration")
        yield from iter_url_list(Path(location), config, config_sig, client, download_config)


__all__ = ["DownloadConfig", "SourceConfig", "SourceError", "SourceItem", "detect_kind", "iter_source"]
