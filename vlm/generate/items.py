"""Which images to caption, in which language variety, with which instruction.

    items = select_items(workspace, config)   # the test split of the latest prefs build
    items[0].instruction                       # "Describe esta imagen teniendo en cuenta su contexto cultural."

What is evaluated must be what was trained: the images come from the split ``mirada prefs``
recorded in the workspace (so test images were never trained on), each is captioned in its own
variety, and the instruction is the user turn the preference rows carried. With a prefs export
folder (``--dataset``) both come from the export itself (its split columns and its ``prompt``
text); otherwise the instruction is looked up with the very code prefs used
(:class:`data_tools.prefs.build.Instructions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_tools.errors import UserError
from data_tools.workspace import ImageRow, Workspace
from vlm.generate.config import GenerateConfig


class SelectionError(UserError):
    """The requested images cannot be determined (no split recorded, unknown dataset, no instruction)."""


@dataclass(frozen=True)
class Item:
    """One image to caption, with the prompt it gets."""

    image_id: str
    path: Path
    language: str | None
    country: str | None
    instruction: str
    split: str | None = None

    def load_image(self) -> Any:
        """The image as RGB PIL (raises ``OSError`` for a missing or unreadable file)."""
        from PIL import Image

        with Image.open(self.path) as image:
            return image.convert("RGB")


def _wanted(split: str, available: set[str]) -> set[str]:
    return set(available) if split == "all" else {split}


def _first_user_text(row: dict[str, Any]) -> str | None:
    turns = row.get("prompt") or row.get("messages") or []
    for turn in turns:
        if turn.get("role") == "user":
            content = turn.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text") or "" for p in content if p.get("type") == "text")
    return None


def _from_export(workspace: Workspace, folder: Path, split: str) -> list[Item]:
    """Items from a prefs export (``load_from_disk`` folder): its splits, its prompts, workspace images."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError) as exc:
        raise SelectionError(f"{folder} is not a datasets folder written by `mirada prefs`: {exc}") from None
    parts = loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
    wanted = _wanted(split, set(parts))
    if not wanted & set(parts):
        raise SelectionError(f"{folder} has no {split!r} split (it has {', '.join(parts) or 'none'})")
    images = {image.id: image for image in workspace.images(status=None)}
    items: dict[str, Item] = {}
    for name in sorted(wanted & set(parts)):
        part = parts[name]
        columns = [
            c for c in ("image_id", "language", "country", "prompt", "messages") if c in part.column_names
        ]
        if "image_id" not in columns:
            raise SelectionError(f"{folder} has no image_id column; is it a `mirada prefs` export?")
        for row in part.select_columns(columns):
            image = images.get(row["image_id"])
            if image is None:
                raise SelectionError(
                    f"image {row['image_id'][:12]} of {folder.name} is not in the workspace {workspace.root}; "
                    "pass the workspace the export was built from"
                )
            text = _first_user_text(row)
            if not text:
                raise SelectionError(f"{folder.name}: row of image {row['image_id'][:12]} has no user prompt")
            items.setdefault(image.id, _item(workspace, image, text, name, row.get("language")))
    return sorted(items.values(), key=lambda item: images[item.image_id].seq)


def _item(
    workspace: Workspace, image: ImageRow, instruction: str, split: str | None, language: str | None = None
) -> Item:
    return Item(
        image.id, workspace.image_path(image), language or image.language, image.country, instruction, split
    )


def select_items(workspace: Workspace, config: GenerateConfig) -> list[Item]:
    """The images of ``config.split`` in collection order (at most ``config.limit``)."""
    from data_tools.prefs.build import Instructions, PrefsError

    if config.dataset and Path(config.dataset).is_dir():
        items = _from_export(workspace, Path(config.dataset), config.split)
    else:
        splits = workspace.image_splits(config.dataset)
        if config.dataset and not splits:
            known = workspace.split_datasets()
            raise SelectionError(
                f"no prefs split recorded for dataset {config.dataset!r} (and no such folder); "
                + (f"recorded: {', '.join(known)}" if known else "run `mirada prefs` first")
            )
        if not splits and config.split != "all":
            raise SelectionError(
                f"no {config.split!r} split: `mirada prefs` has not been run on this workspace; run it, or "
                "caption every collected image with --split all"
            )
        try:
            instructions = Instructions.load(config.instructions)
        except PrefsError as exc:
            raise SelectionError(str(exc)) from None
        chosen = workspace.images(status="ok") if not splits else workspace.images(status=None)
        wanted = _wanted(config.split, set(splits.values()))
        items = []
        missing: set[str | None] = set()
        for image in chosen:
            split = splits.get(image.id)
            if splits and split not in wanted:
                continue
            if instructions.resolve(image.language) is None:
                missing.add(image.language)
                continue
            items.append(_item(workspace, image, instructions.for_image(image.language, image.id), split))
        if missing:
            shown = sorted(str(tag) for tag in missing)
            raise SelectionError(
                f"no instruction for language {shown} in {instructions.path}; add it under 'instructions:'"
            )
    if not items:
        raise SelectionError(
            f"no images in the {config.split!r} split" + (f" of {config.dataset}" if config.dataset else "")
        )
    return items[: config.limit] if config.limit else items
