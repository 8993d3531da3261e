"""Saving the prefs datasets under ``exports/prefs/`` with their cards, and pushing both to the Hub.

    exports = export_all(workspace, config, result, base_name="tacos")
    # -> WS/exports/prefs/tacos_image_dpo/  (load_from_disk) + README.md + charts/*.png + guidelines/
    push_all(exports, token=os.environ["HF_TOKEN"], private=False)

Each format is one folder that is at once a ``DatasetDict.save_to_disk`` directory (images
embedded, so the folder stands alone) and a Hub dataset repository's extra files (card, charts,
guidelines). A folder is written beside its final place and swapped in at the end, so a run killed
halfway never leaves a dataset without its card or a card describing other data. Pushing sends
the data with ``DatasetDict.push_to_hub`` (parquet shards under ``data/``), then the card, charts and
guidelines in one commit, so the card on the Hub always comes with the charts it links to.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from data_tools.prefs.build import PrefsResult, to_dataset_dict
from data_tools.prefs.card import CONFIG_FILE, CardInputs, guideline_files, provenance, render_card
from data_tools.prefs.config import FORMATS, PrefsConfig, dataset_name, portable
from data_tools.prefs.stats import dataset_stats, draw_charts
from data_tools.workspace import Workspace

log = logging.getLogger("data_tools.prefs")
CARD_FILES = ("README.md", "charts/*", "guidelines/*", CONFIG_FILE)


@dataclass
class Export:
    """One saved dataset: its format, Hub-style name, folder, statistics and (if pushing) repository."""

    fmt: str
    name: str
    path: Path
    stats: dict[str, Any]
    repo_id: str | None = None


def hub_repo_ids(target: str, base_name: str, formats: list[str]) -> dict[str, str]:
    """Where each format goes: ``hub_repo_ids('org/tacos', 'x', ['dpo'])`` → ``{'dpo': 'org/tacos_image_dpo'}``.

    ``target`` is ``owner/name`` (name = the base name; a ``_image_<format>`` suffix is dropped) or just
    ``owner`` (the configured base name is used). The hackathon wants the algorithm and ``image`` in
    every preference dataset's name, so each format gets its own repository.
    """
    owner, _, name = target.strip().strip("/").partition("/")
    if not owner or "/" in name:
        raise ValueError(f"--push-to-hub takes OWNER or OWNER/NAME, got {target!r}")
    name = re.sub(r"_images?_(dpo|kto|sft)$", "", name or base_name)
    return {fmt: f"{owner}/{dataset_name(name, fmt)}" for fmt in formats}


def _save_quietly(dataset: Any, path: Path) -> None:
    """``save_to_disk`` without its per-shard progress bars (the stage prints one summary instead)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        dataset.save_to_disk(str(path))
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def export_all(workspace: Workspace, config: PrefsConfig, result: PrefsResult, *, base_name: str,
               repo_ids: dict[str, str] | None = None) -> list[Export]:  # fmt: skip
    """Save every non-empty format with its card and charts; write ``exports/prefs/report.json``."""
    root = workspace.exports_dir / "prefs"
    root.mkdir(parents=True, exist_ok=True)
    project = workspace.project()
    owner = project.get("owner")
    code_url = config.card.code_url or project.get("code_url")
    if not owner or not code_url:
        unset = " and ".join(k for k, v in (("owner", owner), ("code_url", code_url)) if not v)
        log.warning(
            "project %s not set: the Dataset Cards load the data from a local folder instead of the Hub%s; "
            "set them once with `mirada project set owner=<user or org> code_url=<repository URL>`",
            unset,
            "" if code_url else " and no link to the code",
        )
    exports = []
    for fmt in (f for f in FORMATS if f in result.rows):
        rows = result.rows[fmt]
        name = dataset_name(base_name, fmt)
        final = root / name
        if not rows:  # also remove an earlier run's folder, which would now describe other data
            shutil.rmtree(final, ignore_errors=True)
            log.warning("%s: no rows passed the filters; nothing written (see the report for why)", name)
            continue
        dataset = to_dataset_dict(rows, result.splits, fmt, config.sft.layout)
        staging = root / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        _save_quietly(dataset, staging)
        stats = dataset_stats(dataset, fmt)
        charts = draw_charts(stats, fmt, staging)
        if not config.card.guidelines_url:
            (staging / "guidelines").mkdir()
            for path in guideline_files(config, stats["by_language"]):
                shutil.copy2(path, staging / "guidelines" / path.name)
        image_ids = {row["image_id"] for row in rows}
        repo_id = (repo_ids or {}).get(fmt) or (f"{owner}/{name}" if owner else None)
        inputs = CardInputs(name=name, fmt=fmt, config=config, report=result.report, instructions=result.instructions,
                            provenance=provenance(workspace, image_ids, drop_unpublishable=config.filters.drop_unpublishable,
                                                  usable=set(result.images), fmt=fmt),
                            local_path=f"{workspace.root.name}/{final.relative_to(workspace.root).as_posix()}",
                            workspace=workspace.root.name, repo_id=repo_id, code_url=code_url)  # fmt: skip
        render_card(inputs, stats, charts).save(staging / "README.md")
        (staging / CONFIG_FILE).write_text(
            yaml.safe_dump(portable(config.model_dump(mode="json")), sort_keys=True, allow_unicode=True)
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        exports.append(Export(fmt, name, final, stats, repo_id))
    report = {**result.report, "exports": {e.fmt: {"name": e.name, "path": str(e.path)} for e in exports}}
    (root / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    return exports


def push_all(exports: list[Export], *, token: str, private: bool) -> dict[str, str]:
    """Push each export's data, then its card + charts + guidelines in one commit; returns ``fmt -> URL``."""
    import datasets

    from data_tools.hub import upload_folder

    urls = {}
    for export in exports:
        if not export.repo_id:
            raise ValueError(f"{export.name}: no repository to push to")
        dataset = datasets.load_from_disk(str(export.path))
        dataset.push_to_hub(export.repo_id, token=token, private=private,
                            commit_message=f"{export.name}: data (mirada prefs)")  # fmt: skip
        upload_folder(export.repo_id, export.path, repo_type="dataset", token=token, create=False,
                      allow_patterns=list(CARD_FILES),
                      message=f"{export.name}: Dataset Card and charts (mirada prefs)")  # fmt: skip
        urls[export.fmt] = f"https://huggingface.co/datasets/{export.repo_id}"
    return urls
