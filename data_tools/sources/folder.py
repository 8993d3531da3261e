"""Local folders of images with Hugging Face ``imagefolder`` sidecar metadata.

The same folder loads with ``load_dataset("imagefolder", data_dir=…)``: metadata lives in
``metadata.jsonl`` or ``metadata.csv`` files whose ``file_name`` column is a path relative to the
metadata file's own directory. Paths are resolved and must stay inside the source folder, so a
crafted ``file_name`` (``../../etc/passwd``) or a symlink out of the tree is reported, not read.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_tools.records import METADATA_FIELDS
from data_tools.sources.base import SourceConfig, SourceError, SourceItem, fingerprint_of, map_columns

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif", ".mpo"}
METADATA_NAMES = ("metadata.jsonl", "metadata.csv")


def _read_metadata(path: Path) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """Yield ``(origin, row, error)`` for each line/row of a sidecar file."""
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                origin = f"{path.name} line {number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield origin, None, f"not valid JSON: {exc}"
                    continue
                if not isinstance(row, dict):
                    yield origin, None, "each line must be a JSON object"
                    continue
                yield origin, row, None
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield f"{path.name} row {number}", dict(row), None


def _file_fingerprint(path: Path, metadata: dict[str, Any], config_sig: str) -> str:
    stat = path.stat()
    return fingerprint_of(stat.st_size, stat.st_mtime_ns, metadata, config_sig)


def _reader(path: Path) -> bytes:
    return path.read_bytes()


def iter_folder(
    root: Path,
    config: SourceConfig,
    config_sig: str,
    metadata_file: Path | None = None,
) -> Iterator[SourceItem]:
    """Every image file under ``root`` (sorted, recursive), joined with its sidecar metadata."""
    root = root.resolve()
    source = f"folder:{root}"
    file_column = config.columns.get("file_name", "file_name")
    metadata: dict[Path, tuple[str, dict[str, Any]]] = {}
    problems: list[SourceItem] = []
    sidecars = [(metadata_file.resolve(), root)] if metadata_file else []
    if metadata_file is None:
        for dirpath, _, filenames in os.walk(root):
            for name in METADATA_NAMES:
                if name in filenames:
                    sidecars.append((Path(dirpath) / name, Path(dirpath)))
    for sidecar, base in sorted(sidecars):
        for origin, row, error in _read_metadata(sidecar):
            label = f"{sidecar.relative_to(root) if sidecar.is_relative_to(root) else sidecar}: {origin}"
            key = f"{source}#{label}"
            if error or row is None:
                problems.append(_problem(key, source, label, "invalid_metadata", error or "unreadable"))
                continue
            relative = row.get(file_column)
            if not isinstance(relative, str) or not relative.strip():
                problems.append(_problem(key, source, label, "invalid_metadata", f"no {file_column!r} value"))
                continue
            target = (base / relative).resolve()
            if not target.is_relative_to(root):
                problems.append(
                    _problem(key, source, label, "path_escapes_source", f"{relative!r} points outside {root}")
                )
                continue
            if not target.is_file():
                problems.append(_problem(key, source, label, "missing_file", f"{relative!r} does not exist"))
                continue
            metadata[target] = (label, map_columns(row, config, METADATA_FIELDS))
    yield from problems
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            relative = path.relative_to(root).as_posix()
            key = f"{source}/{relative}"
            resolved = path.resolve()
            if not resolved.is_relative_to(root):
                yield _problem(
                    key, source, relative, "path_escapes_source", f"symlink to {resolved} outside {root}"
                )
                continue
            origin, row = metadata.get(resolved, ("", map_columns({}, config, METADATA_FIELDS)))
            try:
                fingerprint = _file_fingerprint(resolved, row, config_sig)
            except OSError as exc:
                yield _problem(key, source, relative, "unreadable", str(exc))
                continue
            yield SourceItem(
                input_key=key,
                source=source,
                display=relative,
                fingerprint=fingerprint,
                fetch=lambda p=resolved: _reader(p),
                metadata=row,
                origin=origin,
            )


def _problem(key: str, source: str, display: str, reason: str, detail: str) -> SourceItem:
    return SourceItem(
        input_key=key,
        source=source,
        display=display,
        fingerprint=fingerprint_of(reason, detail),
        fetch=None,
        error=SourceError(reason, detail),
    )
