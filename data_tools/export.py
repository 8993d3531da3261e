"""``mirada export``: the collected images as a Hugging Face ``datasets.Dataset`` with an ``Image`` feature.

    mirada export --workspace ws                 # -> ws/exports/images (load_from_disk)
    mirada export --workspace ws --include-near-duplicates --out /tmp/all_images

The dataset is the interchange format between stages and the thing users open in a notebook;
images are stored as paths into the workspace and embedded by ``save_to_disk``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_tools.stage_args import add_common_args, run_stage
from data_tools.workspace import Workspace

log = logging.getLogger("data_tools.export")


def images_dataset(workspace: Workspace, *, include_near_duplicates: bool = False) -> Any:
    """One row per collected image with every metadata field; ``image`` decodes to PIL."""
    import datasets

    rows = workspace.images(status=None if include_near_duplicates else "ok")
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            **{
                name: datasets.Value("string")
                for name in (
                    "country", "language", "region", "category", "cultural_context", "license", "author",
                    "source", "source_id", "source_url", "status", "cluster_id", "dup_of",
                )
            },
            "reference_captions": datasets.List(datasets.Value("string")),
            "publishable": datasets.Value("bool"),
            "flags": datasets.List(datasets.Value("string")),
            "width": datasets.Value("int32"),
            "height": datasets.Value("int32"),
            "phash": datasets.Value("string"),
        }
    )  # fmt: skip
    data: dict[str, list[Any]] = {name: [] for name in features}
    for row in rows:
        for name in features:
            data[name].append(str(workspace.image_path(row)) if name == "image" else getattr(row, name))
    return datasets.Dataset.from_dict(data, features=features)


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.export") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Export collected images as a Hugging Face dataset."
    )
    add_common_args(parser)
    parser.add_argument("--out", type=Path, help="target folder (default: WORKSPACE/exports/images)")
    parser.add_argument(
        "--include-near-duplicates",
        action="store_true",
        help="also export images set aside as near-duplicates",
    )

    def body(args: argparse.Namespace) -> int:
        with Workspace.open(args.workspace, create=False) as workspace:
            dataset = images_dataset(workspace, include_near_duplicates=args.include_near_duplicates)
            out = args.out or workspace.exports_dir / "images"
            dataset.save_to_disk(str(out))
        print(f"exported {len(dataset)} images to {out}  (datasets.load_from_disk({str(out)!r}))")
        return 0

    return run_stage(body, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
