"""The Dataset Card of the collected images dataset (``mirada export``), written at publish time.

Every number comes from the exported dataset itself (what is pushed) and the workspace's collect
runs; nothing is typed by hand. Per-image licences are listed because a collection usually mixes
them: the card's ``license`` is the SPDX id when there is one, else ``other`` with the table below.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from data_tools.cards import language_tags, md_table, md_text, scrub_local_paths, size_category
from data_tools.prefs.card import country_name
from data_tools.workspace import Workspace


def _counts(dataset: Any, column: str) -> Counter[str]:
    return Counter(value or "(none)" for value in dataset[column])


def render_images_card(workspace: Workspace, dataset: Any, *, repo_id: str, name: str) -> str:
    """Markdown with a YAML header (``huggingface_hub.DatasetCard``) for the images dataset ``repo_id``."""
    from huggingface_hub import DatasetCard, DatasetCardData

    total = len(dataset)
    countries, varieties = _counts(dataset, "country"), _counts(dataset, "language")
    categories, licences = _counts(dataset, "category"), _counts(dataset, "license")
    authors = _counts(dataset, "author")
    spdx = [k for k in licences if k != "(none)"]
    languages = language_tags(varieties, skip=["(none)"])
    data = DatasetCardData(
        language=languages or None,
        license=spdx[0].lower() if len(spdx) == 1 and "(none)" not in licences else "other",
        task_categories=["image-to-text", "image-text-to-text"],
        size_categories=[size_category(total)],
        pretty_name=f"{name} images",
        tags=["mirada", "image", "cultural-context"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    )
    collect_runs = [r for r in workspace.runs("collect") if r["status"] == "completed"]
    lines = [
        f"# {name} images",
        "",
        f"{total} photographs with their cultural metadata (country, language variety, region, category, the "
        "collector's notes, reference captions) and provenance (licence, author, source), collected with Mirada "
        f"(`mirada collect`, {len(collect_runs)} run(s)) and exported with `mirada export`. Near-duplicates are "
        "left out. These are the images the caption candidates, the human review and the preference datasets "
        "were built from.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'images = load_dataset("{repo_id}", split="train")',
        "```",
        "",
        "## Composition",
        "",
        md_table(
            ["country", "images"],
            [(f"{country_name(k)} ({k})" if k != "(none)" else k, v) for k, v in countries.most_common()],
        ),
        "",
        md_table(["language variety", "images"], [(md_text(k), v) for k, v in varieties.most_common()]),
        "",
        md_table(["category", "images"], [(md_text(k), v) for k, v in categories.most_common()]),
        "",
        "## Licences and provenance",
        "",
        md_table(["licence (SPDX)", "images"], [(md_text(k), v) for k, v in licences.most_common()]),
        "",
        f"{len([a for a in authors if a != '(none)'])} named author(s); {authors.get('(none)', 0)} image(s) without "
        "an author. Each row carries its `license`, `author`, `source` and `source_url`: reuse an image under its "
        "own licence.",
        "",
    ]
    return scrub_local_paths(str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))))
