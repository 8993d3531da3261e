"""The generate stage's work: every (system, image) caption, cached in the workspace by content.

    systems = resolve_systems("Qwen/Qwen2.5-VL-7B-Instruct", ["runs/sft", "runs/dpo"], backend="hf")
    summary = generate(workspace, "Qwen/Qwen2.5-VL-7B-Instruct", systems, config, run_id=run.id)

Order of work: keys first, model last. Every caption's key is computed from content fingerprints
before anything is loaded, so a rerun whose captions are all in the workspace never loads the model
(a 7B base takes minutes); captions already made under another system name are reused. Pending
captions are generated per system in batches and each batch is committed before the next starts,
so ``kill -9`` loses at most one batch and a rerun continues where it stopped. A batch the
processor refuses is retried image by image, so one bad image is named and skipped, not the batch.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_tools.errors import UserError, one_line
from data_tools.logs import progress_bar
from data_tools.workspace import Generation, Workspace
from vlm.generate.backends import Backend, System
from vlm.generate.config import GenerateConfig, device_dtype
from vlm.generate.items import Item, select_items
from vlm.generate.keys import caption_key, fingerprint

log = logging.getLogger("vlm.generate")
EXPORT_COLUMNS = ("image_id", "system", "caption", "language", "country", "seconds", "tokens")
BackendFactory = Callable[[Sequence[System]], Backend]


@dataclass
class GenerateSummary:
    """What one run did, per system: captions reused from the cache, generated now, failed."""

    images: int = 0
    systems: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (system, image_id, reason)
    model_loaded: bool = False
    export: str | None = None
    keys: set[str] = field(default_factory=set)  # this run's cache keys (exports show only these)
    last_error: Exception | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images, "systems": {k: dict(v) for k, v in self.systems.items()},
            "seconds": round(self.seconds, 3), "tokens": self.tokens, "model_loaded": self.model_loaded,
            "failures": [{"system": s, "image_id": i, "reason": r} for s, i, r in self.failures[:50]],
            "export": self.export,
        }  # fmt: skip


def _default_name(source: str) -> str:
    """``runs/qwen-dpo/`` -> ``qwen-dpo``; ``org/repo`` -> ``repo``."""
    return Path(source.rstrip("/")).name or source


def resolve_systems(
    model: str,
    adapters: Sequence[str] = (),
    names: Sequence[str] = (),
    *,
    base_name: str | None = None,
    include_base: bool = True,
    backend: str = "hf",
) -> list[System]:
    """The base (unless excluded) and one system per adapter, each with a unique name.

    An adapter is a local folder with ``adapter_config.json`` or a Hub id (downloaded; it is small),
    resolved by the shared loading layer. With the openai backend an adapter may also be just the
    name the server serves it under.
    """
    from vlm.models.family import adapter_base, is_adapter_dir

    if is_adapter_dir(model):  # the base system would silently be the run's base: say what to type instead
        raise UserError(f"--model {model} is a trained adapter; pass its base as --model and the run as "
                        f"--adapter: --model {adapter_base(model)} --adapter {model}")  # fmt: skip
    if len(names) > len(adapters):
        raise UserError(
            f"{len(names)} --name values for {len(adapters)} --adapter values; give one name per adapter"
        )
    systems = [System(base_name or _default_name(model))] if include_base else []
    for index, source in enumerate(adapters):
        name = names[index] if index < len(names) else _default_name(source)
        if backend == "openai" and not Path(source).exists() and source.count("/") != 1:
            systems.append(System(name, None, source))  # served by the server under this name
        else:
            from vlm.models import resolve_adapter  # a folder, or a Hub id downloaded into the Hub cache

            systems.append(System(name, resolve_adapter(source), source))
    if not systems:
        raise UserError("nothing to caption with: --no-base needs at least one --adapter")
    seen = Counter(s.name for s in systems)
    duplicated = sorted(n for n, c in seen.items() if c > 1)
    if duplicated:
        raise UserError(
            f"two systems are called {duplicated[0]!r}; name them apart with --name / --base-name"
        )
    for system in systems:
        if not re.fullmatch(r"[\w.@+-]+", system.name):
            raise UserError(f"system name {system.name!r}: use letters, digits and . _ - + @ only")
    return systems


def resolved_dtype(config: GenerateConfig) -> str:
    """The dtype a run really uses (``auto`` is bfloat16 on a GPU, float32 on CPU), for the cache key."""
    if config.backend == "openai":
        return "server"
    if config.backend == "vllm":
        return config.dtype
    return device_dtype(config.dtype)


class _Keys:
    """Fingerprints of the base and every adapter, and the settings part of every key."""

    def __init__(
        self, workspace: Workspace, model: str, systems: Sequence[System], config: GenerateConfig
    ) -> None:
        self.settings = {"backend": config.backend, "dtype": resolved_dtype(config), "quantization": config.quantization,
                         "max_image_tokens": config.max_image_tokens, "decoding": config.decoding.key_fields()}  # fmt: skip
        if config.backend == "openai":
            self.model = f"openai:{config.openai.base_url.rstrip('/')}#{config.openai.model or model}"
        else:
            self.model = fingerprint(model, workspace)
        self.adapters: dict[str, str | None] = {}
        for system in systems:
            if system.adapter is not None:
                self.adapters[system.name] = fingerprint(system.adapter, workspace)
            elif system.source is not None:
                self.adapters[system.name] = f"served:{system.name}"
            else:
                self.adapters[system.name] = None

    def key(self, system: System, item: Item) -> str:
        assert self.model is not None
        return caption_key(image_id=item.image_id, prompt=item.instruction, model=self.model,
                           adapter=self.adapters[system.name], settings=self.settings)  # fmt: skip


def generate(
    workspace: Workspace,
    model: str,
    systems: Sequence[System],
    config: GenerateConfig,
    make_backend: BackendFactory,
    *,
    run_id: int | None = None,
    items: Sequence[Item] | None = None,
) -> GenerateSummary:
    """Caption every selected image with every system; only pending captions reach the backend."""
    items = list(items if items is not None else select_items(workspace, config))
    summary = GenerateSummary(images=len(items), systems={s.name: Counter() for s in systems})
    started = time.perf_counter()
    keys = _Keys(workspace, model, systems, config)
    backend: Backend | None = None
    try:
        if keys.model is None:
            # a Hub model not in the local cache yet: loading downloads it, and then it has a commit
            backend = make_backend(systems)
            summary.model_loaded = True
            keys.model = fingerprint(model, workspace) or f"name:{model}"
        all_keys = {(s.name, item.image_id): keys.key(s, item) for s in systems for item in items}
        cached = workspace.cached_generations(all_keys.values())
        pending: dict[str, list[tuple[Item, str]]] = {}
        reused: list[Generation] = []
        for system in systems:
            for item in items:
                key = all_keys[(system.name, item.image_id)]
                hit = cached.get(key)
                if hit is None:
                    pending.setdefault(system.name, []).append((item, key))
                    continue
                summary.systems[system.name]["cached"] += 1
                reused.append(
                    _row(system, item, key, hit["caption"], hit["seconds"], hit["tokens"], model, keys)
                )
        workspace.add_generations(reused, run_id)  # re-stamped as the latest caption of each (image, system)
        todo = sum(len(v) for v in pending.values())
        if todo:
            if backend is None:  # only the adapters with work to do are loaded
                backend = make_backend([s for s in systems if s.name in pending])
                summary.model_loaded = True
            _generate_pending(workspace, backend, systems, pending, summary, model, keys, run_id, todo)
    finally:
        if backend is not None:
            backend.close()
    summary.seconds = time.perf_counter() - started
    summary.keys = set(all_keys.values())
    return summary


def _row(system: System, item: Item, key: str, caption: str, seconds: float | None, tokens: int | None,
         model: str, keys: _Keys) -> Generation:  # fmt: skip
    return Generation(
        system=system.name, key=key, image_id=item.image_id, caption=caption, model=model,
        language=item.language, country=item.country, seconds=seconds, tokens=tokens,
        adapter=system.source, settings={**keys.settings, "model_fingerprint": keys.model,
                                         "adapter_fingerprint": keys.adapters[system.name]},
    )  # fmt: skip


def _generate_pending(workspace: Workspace, backend: Backend, systems: Sequence[System],
                      pending: dict[str, list[tuple[Item, str]]], summary: GenerateSummary, model: str,
                      keys: _Keys, run_id: int | None, todo: int) -> None:  # fmt: skip
    bar = progress_bar(total=todo, desc="generate", unit="img")
    try:
        for system in systems:
            work = pending.get(system.name, [])
            bar.set_postfix_str(system.name)
            for start in range(0, len(work), backend.batch_size):
                batch = work[start : start + backend.batch_size]
                rows = _caption_batch(backend, system, batch, summary, model, keys)
                workspace.add_generations(rows, run_id)  # committed before the next batch starts
                summary.systems[system.name]["generated"] += len(rows)
                summary.tokens += sum(r.tokens or 0 for r in rows)
                bar.update(len(batch))
    finally:
        bar.close()


def _caption_batch(backend: Backend, system: System, batch: list[tuple[Item, str]], summary: GenerateSummary,
                   model: str, keys: _Keys) -> list[Generation]:  # fmt: skip
    """Caption one batch; if the backend raises, retry image by image so a refused image is named and skipped."""
    ready: list[tuple[Item, str, Any]] = []
    for item, key in batch:
        try:
            ready.append((item, key, item.load_image()))
        except OSError as exc:
            _fail(summary, system, item, f"cannot read the image file: {one_line(exc)}")
    if not ready:
        return []
    try:
        return _run(backend, system, ready, model, keys)
    except UserError:
        raise
    except Exception as exc:
        if len(ready) == 1:
            _refused(summary, system, ready[0][0], exc)
        groups = [[one] for one in ready] if len(ready) > 1 else []
    rows: list[Generation] = []
    for group in groups:
        try:
            rows.extend(_run(backend, system, group, model, keys))
        except UserError:
            raise
        except Exception as exc:
            _refused(summary, system, group[0][0], exc)
    failed = summary.systems[system.name]["failed"]
    if not rows and not summary.systems[system.name]["generated"] and failed >= min(3, len(batch)):
        # every image fails, alone too: the model or backend is broken, not the images
        assert summary.last_error is not None
        raise summary.last_error
    return rows


def _run(backend: Backend, system: System, ready: list[tuple[Item, str, Any]], model: str,
         keys: _Keys) -> list[Generation]:  # fmt: skip
    started = time.perf_counter()
    outputs = backend.caption(system, [r[0] for r in ready], [r[2] for r in ready])
    elapsed = (time.perf_counter() - started) / len(ready)
    return [_row(system, item, key, out.text, round(elapsed, 4), out.tokens, model, keys)
            for (item, key, _), out in zip(ready, outputs, strict=True)]  # fmt: skip


def _refused(summary: GenerateSummary, system: System, item: Item, exc: Exception) -> None:
    summary.last_error = exc
    _fail(
        summary, system, item, f"the model/processor refused it: {type(exc).__name__}: {one_line(exc)[:200]}"
    )


def _fail(summary: GenerateSummary, system: System, item: Item, reason: str) -> None:
    summary.failures.append((system.name, item.image_id, reason))
    summary.systems[system.name]["failed"] += 1
    log.info(
        "image %s not captioned by %s: %s", item.image_id[:12], system.name, reason
    )  # the run ends with one error line


# -- exports -----------------------------------------------------------------------------------------


def export_rows(workspace: Workspace, systems: Sequence[System], keys: set[str]) -> list[dict[str, Any]]:
    """This run's captions (current keys only, never a stale one) with the export columns."""
    rows = workspace.generations([s.name for s in systems])
    return [{c: row[c] for c in EXPORT_COLUMNS} for row in rows if row["key"] in keys]


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_dataset(rows: Sequence[dict[str, Any]], folder: Path) -> Path:
    """A ``datasets.load_from_disk`` folder with the export columns, swapped in whole."""
    import datasets

    features = datasets.Features({
        "image_id": datasets.Value("string"), "system": datasets.Value("string"), "caption": datasets.Value("string"),
        "language": datasets.Value("string"), "country": datasets.Value("string"),
        "seconds": datasets.Value("float64"), "tokens": datasets.Value("int32"),
    })  # fmt: skip
    dataset = datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in EXPORT_COLUMNS}, features=features)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        dataset.save_to_disk(str(tmp))
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    return folder
