"""Cache keys for generated captions: a hash of everything that changes a caption.

    fingerprint("runs/qwen-dpo", workspace)   # -> "sha256:9f2c…" over the adapter's weights and configs
    caption_key(image_id="ab12…", prompt="Describe…", model="sha256:…", adapter=None, settings={…})

A caption depends on the model's and the adapter's *content* (a retrained adapter in the same folder
must be captioned again), the prompt, the decoding settings, precision and backend, and the image.
Folder names and timestamps are not content, so a local folder is hashed file by file; the SHA-256 of
a large weight file is memoised in the workspace by (path, size, mtime), so the 15 GB of a 7B base
are read once, not on every run. A Hub id that is already in the local cache is identified by its
commit (the snapshot folder's name), which is content-addressed by the Hub. Files a training run
writes beside its adapter that do not change the model (cards, curves, metrics, logs) are left out,
so re-rendering a card does not re-caption anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Protocol

KEY_VERSION = 1
# Written by `mirada train` or the Hub beside a model, without changing what it generates.
_NOT_MODEL = ("*.md", "*.png", "*.jpg", "*.svg", "*.csv", "*.log", "*.jsonl", ".gitattributes",
              "train_results.json", "eval_results.json", "all_results.json", "trainer_state.json",
              "training_args.bin", "emissions*")  # fmt: skip
_CHUNK = 1 << 20


class HashMemo(Protocol):
    """Where file hashes are memoised (the workspace implements it)."""

    def memo_file_hash(self, path: str, size: int, mtime_ns: int) -> str | None: ...

    def remember_file_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None: ...


def file_sha256(path: Path, memo: HashMemo | None = None) -> str:
    """SHA-256 of a file's bytes, memoised by (resolved path, size, mtime) when ``memo`` is given."""
    stat = path.stat()
    resolved = str(path.resolve())
    if memo is not None:
        known = memo.memo_file_hash(resolved, stat.st_size, stat.st_mtime_ns)
        if known:
            return known
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    if memo is not None:
        memo.remember_file_hash(resolved, stat.st_size, stat.st_mtime_ns, value)
    return value


def model_files(folder: Path) -> list[Path]:
    """The top-level files of a model or adapter folder that determine what it generates."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not any(fnmatch(p.name, pattern) for pattern in _NOT_MODEL)
    )


def folder_fingerprint(folder: Path, memo: HashMemo | None = None) -> str:
    """``sha256:<hex>`` over the names and contents of :func:`model_files`."""
    digest = hashlib.sha256()
    for path in model_files(folder):
        digest.update(f"{path.name}\0{file_sha256(path, memo)}\n".encode())
    return "sha256:" + digest.hexdigest()


def hub_fingerprint(repo_id: str) -> str | None:
    """``hub:<repo>@<commit>`` when the repository is in the local Hub cache; None otherwise (no network)."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached, not a repo id, offline: the caller loads first and asks again
        return None
    return f"hub:{repo_id}@{Path(path).name}"


def fingerprint(name_or_path: str | os.PathLike[str], memo: HashMemo | None = None) -> str | None:
    """Content identity of a model or adapter: a local folder's hash, or a cached Hub snapshot's commit."""
    path = Path(name_or_path)
    if path.is_dir():
        return folder_fingerprint(path, memo)
    return hub_fingerprint(str(name_or_path))


def caption_key(
    *, image_id: str, prompt: str, model: str, adapter: str | None, settings: dict[str, Any]
) -> str:
    """The cache key of one caption (hex SHA-256 of a canonical JSON of every input)."""
    payload = {"v": KEY_VERSION, "image": image_id, "prompt": prompt, "model": model, "adapter": adapter,
               "settings": settings}  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
