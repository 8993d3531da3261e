"""Local folders of images with Hugging Face ``imagefolder`` sidecar metadata.

The same folder loads with ``load_dataset("imagefolder", data_dir=…)``: metadata lives in
``metadata.jsonl`` or ``metadata.csv`` files whose ``file_name`` column is a path relative to the
metadata file's own directory. Paths are resolved and must stay inside the source folder, so a
crafted ``file_name`` (``../../etc/passwd``) or a symlink out of the tree is reported, not read.

Sidecars are read as people export them: a UTF-8 BOM, ``;``-separated CSV from a Spanish-locale
Excel, Latin-1/Windows-1252 text (read with a warning) and headers in Spanish or Portuguese
(``archivo``, ``país``, ``licencia``…; see ``COLUMN_ALIASES``). A line that cannot be read (invalid
UTF-8 in JSONL, a huge number, deep nesting, ``NaN``, an oversized CSV field) is rejected on its own;
every other line is still collected. Only regular files are read, and their size is checked with
``stat`` before reading, so a FIFO named ``.jpg`` or a 6 GiB sparse file cannot stall collect.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from data_tools.records import METADATA_FIELDS
from data_tools.sources.base import (
    SourceConfig,
    SourceError,
    SourceItem,
    column_for,
    fingerprint_of,
    map_columns,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif", ".mpo"}
# Image formats people have that collect does not read: reported per file, never silently ignored.
UNREAD_IMAGE_SUFFIXES = {
    ".avif": "AVIF", ".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".svg": "SVG", ".psd": "Photoshop",
    ".dng": "camera RAW", ".cr2": "camera RAW", ".cr3": "camera RAW", ".nef": "camera RAW", ".arw": "camera RAW",
    ".orf": "camera RAW", ".raf": "camera RAW", ".rw2": "camera RAW",
}  # fmt: skip
METADATA_NAMES = ("metadata.jsonl", "metadata.csv")
MAX_SIDECAR_BYTES = 200_000_000
Warn = Callable[[str], None]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (write a string or leave the field out)")


def _decode_error_detail(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1})"


def _read_jsonl(path: Path, raw: bytes) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        origin = f"line {number}"
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield origin, None, _decode_error_detail(exc) + "; save the file as UTF-8"
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            yield origin, None, f"not valid JSON: {exc}"
            continue
        except RecursionError:
            yield origin, None, "not valid JSON: nested too deeply"
            continue
        except ValueError as exc:  # a number over Python's digit limit, NaN/Infinity
            yield origin, None, f"not valid JSON: {exc}"
            continue
        if not isinstance(row, dict):
            yield origin, None, "each line must be a JSON object"
            continue
        yield origin, row, None


def _decode_text(path: Path, raw: bytes, warn: Warn) -> str:
    """UTF-8 (BOM or not); otherwise Windows-1252/Latin-1, as Excel writes CSV, with a warning."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        encoding = "cp1252"
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            encoding = "latin-1"
            text = raw.decode(encoding)
        shown = {"cp1252": "Windows-1252 (Latin-1, as Excel saves CSV)", "latin-1": "Latin-1"}[encoding]
        warn(
            f"{path.name} is not UTF-8 (first bad byte on line {line}); read it as {shown}: check accented "
            "letters, or save it as 'CSV UTF-8'"
        )
        return text


def _sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_csv(path: Path, raw: bytes, warn: Warn) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    text = _decode_text(path, raw, warn)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text))
    last_line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): this row only
            last_line += 1
            yield f"line {last_line}", None, f"unreadable CSV row: {exc}"
            continue
        last_line = reader.line_num
        extra = row.pop(None, None)  # type: ignore[call-overload]
        if extra:
            yield f"line {last_line}", None, f"{len(extra)} more values than the header has columns"
            continue
        yield f"line {last_line}", dict(row), None


def _read_metadata(path: Path, warn: Warn) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """Yield ``(origin, row, error)`` for each line/row of a sidecar file; never raises for content."""
    raw = path.read_bytes()
    if path.suffix == ".jsonl":
        yield from _read_jsonl(path, raw)
    else:
        yield from _read_csv(path, raw, warn)


def _file_fingerprint(status: os.stat_result, metadata: dict[str, Any], config_sig: str) -> str:
    return fingerprint_of(status.st_size, status.st_mtime_ns, metadata, config_sig)


def _reader(path: Path, max_bytes: int | None) -> bytes:
    """The file's bytes, refusing non-regular files and reading at most ``max_bytes + 1``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise SourceError("not_a_regular_file", f"{path.name} is not a regular file")
        return handle.read() if max_bytes is None else handle.read(max_bytes + 1)


def _differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    return [
        f"{name} {first.get(name)!r} vs {second.get(name)!r}"
        for name in sorted(set(first) | set(second))
        if first.get(name) != second.get(name)
    ]


def iter_folder(
    root: Path,
    config: SourceConfig,
    config_sig: str,
    metadata_file: Path | None = None,
    *,
    max_file_bytes: int | None = None,
    warn: Warn | None = None,
) -> Iterator[SourceItem]:
    """Every image file under ``root`` (sorted, recursive), joined with its sidecar metadata.

    ``warn`` hears what is accepted but deserves a look (a Latin-1 sidecar, conflicting duplicate
    rows, files that are not images); ``max_file_bytes`` is checked with ``stat`` before any read.
    """
    warn = warn or (lambda message: None)
    root = root.resolve()
    source = f"folder:{root}"
    metadata: dict[Path, tuple[str, dict[str, Any]]] = {}
    problems: list[SourceItem] = []
    sidecars = [(metadata_file.resolve(), root)] if metadata_file else []
    if metadata_file is None:
        for dirpath, _, filenames in os.walk(root):
            for name in METADATA_NAMES:
                if name in filenames:
                    sidecars.append((Path(dirpath) / name, Path(dirpath)))
    for sidecar, base in sorted(sidecars):
        shown = sidecar.relative_to(root).as_posix() if sidecar.is_relative_to(root) else sidecar.name
        sidecar_key = f"{source}#{shown}"
        try:
            status = sidecar.stat()
            if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_SIDECAR_BYTES:
                raise OSError(f"not a regular file of at most {MAX_SIDECAR_BYTES} bytes")
            rows = list(_read_metadata(sidecar, warn))
        except OSError as exc:  # the images are still collected, without this file's metadata
            detail = f"{shown}: {exc.strerror or exc}"
            problems.append(_problem(sidecar_key, source, shown, "unreadable_metadata", detail))
            continue
        file_column: str | None = None
        for origin, row, error in rows:
            label = f"{shown} {origin}"
            key = f"{source}#{label}"
            if error or row is None:
                problems.append(_problem(key, source, label, "invalid_metadata", error or "unreadable"))
                continue
            column = file_column or column_for("file_name", row.keys(), config) or "file_name"
            file_column = file_column or (column if column in row else None)
            relative = row.get(column)
            if not isinstance(relative, str) or not relative.strip():
                headers = ", ".join(map(repr, list(row)[:8]))
                problems.append(
                    _problem(
                        key, source, label, "invalid_metadata",
                        f"no {column!r} value (columns: {headers}); map the file column with "
                        "--set source.columns.file_name=<column>",
                    )
                )  # fmt: skip
                continue
            target = (base / relative.strip()).resolve()
            if not target.is_relative_to(root):
                problems.append(
                    _problem(
                        key, source, label, "path_escapes_source", f"{relative!r} points outside the source"
                    )
                )
                continue
            if not target.is_file():
                problems.append(_problem(key, source, label, "missing_file", f"{relative!r} does not exist"))
                continue
            mapped = map_columns(row, config, METADATA_FIELDS)
            if target in metadata:
                first_label, first = metadata[target]
                changed = _differences(first, mapped)
                if changed:
                    warn(
                        f"{first_label} and {label} both describe {relative!r} with different metadata "
                        f"({'; '.join(changed)}); using {first_label}"
                    )
                continue
            metadata[target] = (label, mapped)
    yield from problems
    other: Counter[str] = Counter()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            suffix = path.suffix.lower()
            relative = path.relative_to(root).as_posix()
            key = f"{source}/{relative}"
            if suffix not in IMAGE_SUFFIXES:
                if name.startswith(".") or name in METADATA_NAMES:
                    continue
                if suffix in UNREAD_IMAGE_SUFFIXES or not suffix:
                    kind = UNREAD_IMAGE_SUFFIXES.get(suffix)
                    detail = (
                        f"{kind} images are not read; convert it to JPEG or PNG"
                        if kind
                        else "no file extension; if it is an image, rename it with .jpg or .png"
                    )
                    yield _problem(key, source, relative, "skipped_format", detail)
                else:
                    other[suffix] += 1
                continue
            resolved = path.resolve()
            if not resolved.is_relative_to(root):
                yield _problem(
                    key, source, relative, "path_escapes_source", "a symlink to outside the source"
                )
                continue
            origin, row = metadata.get(resolved, ("", map_columns({}, config, METADATA_FIELDS)))
            try:
                status = resolved.stat()
            except OSError as exc:
                yield _problem(key, source, relative, "unreadable", exc.strerror or str(exc))
                continue
            if not stat.S_ISREG(status.st_mode):
                yield _problem(
                    key, source, relative, "not_a_regular_file", "not a regular file (a pipe, device…)"
                )
                continue
            if max_file_bytes is not None and status.st_size > max_file_bytes:
                yield _problem(
                    key,
                    source,
                    relative,
                    "file_too_large",
                    f"{status.st_size} bytes, more than max_file_bytes={max_file_bytes}",
                    fingerprint=_file_fingerprint(status, row, config_sig),
                )
                continue
            yield SourceItem(
                input_key=key,
                source=source,
                display=relative,
                fingerprint=_file_fingerprint(status, row, config_sig),
                fetch=lambda p=resolved: _reader(p, max_file_bytes),
                metadata=row,
                origin=origin,
            )
    if other:
        listed = ", ".join(f"{count} {suffix}" for suffix, count in sorted(other.items()))
        warn(f"{root.name}: {sum(other.values())} files that are not images were skipped ({listed})")


def _problem(
    key: str, source: str, display: str, reason: str, detail: str, fingerprint: str | None = None
) -> SourceItem:
    return SourceItem(
        input_key=key,
        source=source,
        display=display,
        fingerprint=fingerprint or fingerprint_of(reason, detail),
        fetch=None,
        error=SourceError(reason, detail),
    )
