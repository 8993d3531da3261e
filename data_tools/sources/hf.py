"""Hugging Face datasets as a collect source: a ``save_to_disk`` folder, parquet files, or a Hub id.

Images are read undecoded (``Image(decode=False)``) so collect sees the original bytes and can use
its fast JPEG path; ``datasets`` would otherwise decode every image at full size first. Rows are
keyed by split and index, and fingerprinted with the dataset's own ``_fingerprint``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_tools.records import METADATA_FIELDS
from data_tools.sources.base import SourceConfig, SourceError, SourceItem, fingerprint_of, map_columns


def _load(spec: str, split: str) -> Any:
    import datasets

    path = Path(spec)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
    elif path.is_file() and path.suffix == ".parquet":
        loaded = datasets.load_dataset("parquet", data_files=str(path))
    elif path.is_dir() and any(path.glob("*.parquet")):
        loaded = datasets.load_dataset("parquet", data_files=str(path / "*.parquet"))
    else:  # a Hub id for real users (needs the network); errors name the spec
        loaded = datasets.load_dataset(spec)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise SourceError("unknown_split", f"{spec} has splits {sorted(loaded)}, not {split!r}")
        loaded = loaded[split]
    return loaded


def iter_hf(spec: str, config: SourceConfig, config_sig: str) -> Iterator[SourceItem]:
    import datasets

    source = f"hf:{spec}"
    dataset = _load(spec, config.hf_split)
    image_column = config.columns.get("image", "image")
    if image_column not in dataset.column_names:
        raise SourceError(
            "missing_column",
            f"{spec} has no image column {image_column!r} (columns: {dataset.column_names}); "
            "map it with --set source.columns.image=<column>",
        )
    if isinstance(dataset.features[image_column], datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    base_fp = getattr(dataset, "_fingerprint", spec)
    # Iterate the light columns only; image bytes are read by index when the item is fetched.
    light = dataset.remove_columns([image_column])
    for index, row in enumerate(light):
        key = f"{source}:{config.hf_split}:{index}"
        meta = map_columns(row, config, METADATA_FIELDS)
        meta.setdefault("source_id", str(index))
        yield SourceItem(
            input_key=key,
            source=source,
            display=f"{spec}[{config.hf_split}][{index}]",
            fingerprint=fingerprint_of(base_fp, index, meta, config_sig),
            fetch=lambda i=index: _image_bytes(dataset[i][image_column]),
            metadata=meta,
            origin=f"row {index}",
        )


def _image_bytes(value: Any) -> bytes:
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return Path(value["path"]).read_bytes()
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and Path(value).is_file():
        return Path(value).read_bytes()
    raise SourceError("no_image", f"the image column holds {type(value).__name__}, not image bytes or a path")
