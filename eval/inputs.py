"""What eval compares: captions per (image, system), each image's human references and expected terms.

Captions come from the workspace (what ``mirada generate`` stored) and/or predictions JSONL files
(``image_id`` or ``file_name``, ``system``, ``caption``, optional ``language``) so captions from
another tool or an API are compared on the same images. References are human-written only: the
image's ``reference_captions`` and reviewers' corrections; drafts never are. Problems that make the
comparison meaningless (broken lines, unknown images, no references, nothing in common) raise
:class:`EvalError` before anything is written; softer ones (empty captions, images some system lacks)
are counted in ``notes`` and reported.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_tools.stage_args import UserError
from data_tools.workspace import ImageRow, Workspace
from eval.cultural import term_id

try:  # the project-wide base class once it exists; stage_args.UserError until then
    from data_tools.errors import UserError as _Base  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on merge order
    _Base = UserError

SPLITS = ("test", "validation", "train", "all")


class EvalError(_Base):
    """Inputs eval cannot compare; the message names the file, line, system or image."""


@dataclass
class Prediction:
    image_id: str
    system: str
    caption: str
    language: str | None  # the language/variety the caption was requested in (None: the image's)
    origin: str  # "workspace" or "file.jsonl:12"


@dataclass
class EvalInputs:
    """Everything the report needs, already restricted to the images every system covers."""

    images: list[ImageRow]  # evaluated images, in workspace order
    references: dict[str, list[str]]
    expected_terms: dict[str, set[str]]  # image id -> term ids
    vocabulary: set[str]  # every culture term id known in the workspace
    vocabulary_terms: list[str]  # the same terms as written, for matching
    captions: dict[str, dict[str, Prediction]]  # system -> image id -> prediction
    systems: list[str]
    notes: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def read_predictions_file(path: Path, workspace: Workspace) -> list[Prediction]:
    """Parse a predictions JSONL file; a broken or incomplete line is an error naming the line."""
    if not path.is_file():
        raise EvalError(f"predictions file {path} does not exist")
    by_file: dict[str, set[str]] | None = None
    known = {image.id for image in workspace.images(status=None)}
    predictions: list[Prediction] = []
    unknown: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalError(f"{where}: not valid JSON ({exc.msg}); fix or remove that line") from None
            if not isinstance(row, dict):
                raise EvalError(
                    f"{where}: each line must be a JSON object with image_id/file_name, system, caption"
                )
            system, caption = row.get("system"), row.get("caption")
            if not isinstance(system, str) or not system.strip():
                raise EvalError(
                    f"{where}: missing 'system' (the name of the model or tool that wrote the caption)"
                )
            if caption is not None and not isinstance(caption, str):
                raise EvalError(f"{where}: 'caption' must be a string")
            image_id = row.get("image_id")
            if image_id is None and row.get("file_name"):
                if by_file is None:
                    by_file = _file_name_index(workspace)
                matches = by_file.get(str(row["file_name"]).replace("\\", "/"), set())
                if len(matches) > 1:
                    raise EvalError(
                        f"{where}: file_name {row['file_name']!r} matches {len(matches)} images; use image_id"
                    )
                image_id = next(iter(matches), None)
                if image_id is None:
                    unknown.append(f"{row['file_name']!r} ({where})")
                    continue
            if not isinstance(image_id, str):
                raise EvalError(f"{where}: needs 'image_id' or 'file_name'")
            if image_id not in known:
                unknown.append(f"{image_id[:12]!r} ({where})")
                continue
            language = row.get("language")
            predictions.append(
                Prediction(
                    image_id,
                    system.strip(),
                    (caption or "").strip(),
                    language if isinstance(language, str) else None,
                    where,
                )
            )
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise EvalError(
            f"{path.name}: {len(unknown)} prediction(s) name images this workspace does not have: {shown} "
            "(wrong --workspace, or ids from another collection?)"
        )
    return predictions


def _file_name_index(workspace: Workspace) -> dict[str, set[str]]:
    """Every name a user may know an image by: stored name, source id, original path and its basename."""
    index: dict[str, set[str]] = defaultdict(set)
    for image in workspace.images(status=None):
        names = {image.file_name}
        if image.source_id:
            names.add(image.source_id)
        for source in workspace.image_sources(image.id):
            relative = str(source["input_key"]).split("/", 1)[-1]
            names.update({relative, relative.rsplit("/", 1)[-1]})
        for name in names:
            index[name].add(image.id)
    return index


def workspace_predictions(workspace: Workspace, systems: Sequence[str] | None) -> list[Prediction]:
    """Captions ``mirada generate`` stored in the workspace (the latest per image and system)."""
    return [
        Prediction(
            row["image_id"],
            row["system"],
            (row.get("caption") or "").strip(),
            row.get("language"),
            "workspace",
        )
        for row in workspace.generations(list(systems) if systems else None)
    ]


def workspace_splits(workspace: Workspace) -> dict[str, str]:
    """The split ``mirada prefs`` recorded last (empty when prefs has not run)."""
    return dict(workspace.image_splits())


def human_references(
    workspace: Workspace,
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, set[str]]]:
    """(corrections per image, accepted candidates' cultural terms per image, every draft's terms per image)."""
    terms_of = {d.cache_key: d.cultural_terms for d in workspace.drafts(status="done")}
    image_terms: dict[str, set[str]] = defaultdict(set)
    for draft in workspace.drafts(status="done"):
        image_terms[draft.image_id].update(draft.cultural_terms)
    corrections: dict[str, list[str]] = defaultdict(list)
    accepted: dict[str, list[str]] = defaultdict(list)
    for decision in workspace.review_decisions():
        if decision.get("status") != "decided":
            continue
        image_id = decision["image_id"]
        for text in decision.get("corrections") or []:
            if text not in corrections[image_id]:
                corrections[image_id].append(text)
        for key, ok in (decision.get("acceptable") or {}).items():
            if ok:
                accepted[image_id].extend(terms_of.get(key, []))
    return dict(corrections), dict(accepted), dict(image_terms)


def load_inputs(
    workspace: Workspace,
    *,
    systems: Sequence[str] | None = None,
    prediction_files: Sequence[Path] = (),
    split: str = "test",
    category_terms: dict[str, list[str]] | None = None,
) -> EvalInputs:
    """Collect captions, references and expected terms; raise :class:`EvalError` on unusable inputs."""
    from eval.cultural import TermIndex

    if split not in SPLITS:
        raise EvalError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    predictions = workspace_predictions(workspace, systems)
    for path in prediction_files:
        predictions.extend(read_predictions_file(Path(path), workspace))
    if systems:
        predictions = [p for p in predictions if p.system in systems]
    found_systems = sorted({p.system for p in predictions})
    if systems:
        missing = [s for s in systems if s not in found_systems]
        if missing:
            raise EvalError(
                f"no captions for system(s) {', '.join(missing)}; available: {', '.join(found_systems) or 'none'} "
                "(run mirada generate, or pass --predictions FILE.jsonl)"
            )
    if not predictions:
        raise EvalError(
            "nothing to evaluate: this workspace has no stored generations and no --predictions file was given"
        )
    ordered = list(systems) if systems else found_systems
    notes: list[str] = []
    captions: dict[str, dict[str, Prediction]] = {s: {} for s in ordered}
    duplicates = 0
    for p in predictions:
        duplicates += p.image_id in captions[p.system]
        captions[p.system][p.image_id] = p  # the later line / newer generation wins
    if duplicates:
        notes.append(
            f"{duplicates} duplicate caption(s) for the same image and system: the last one was used"
        )

    images = {image.id: image for image in workspace.images(status=None)}
    splits = workspace_splits(workspace)
    if split != "all":
        if not splits:
            raise EvalError(
                f"--split {split}: this workspace has no recorded prefs splits yet; run mirada prefs, "
                "or evaluate every image with --split all"
            )
        in_split = {image_id for image_id, name in splits.items() if name == split}
        if not in_split:
            raise EvalError(
                f"--split {split}: no image is assigned to it (splits: {sorted(set(splits.values()))})"
            )
    else:
        in_split = set(images)

    corrections, accepted, draft_terms = human_references(workspace)
    references: dict[str, list[str]] = {}
    for image_id, image in images.items():
        refs = [r.strip() for r in image.reference_captions if r and r.strip()]
        refs += [c for c in corrections.get(image_id, []) if c not in refs]
        if refs:
            references[image_id] = refs

    covered = [set(captions[s]) & in_split for s in ordered]
    common = set.intersection(*covered) if covered else set()
    for system, ids in zip(ordered, covered, strict=True):
        extra = len(ids - common)
        if extra:
            notes.append(f"{system}: {extra} image(s) that not every system has were left out")
    without_refs = sorted(common - set(references))
    if not common:
        raise EvalError(
            f"the systems {', '.join(ordered)} have no image in common in split {split!r}; "
            "compare systems captioned on the same images"
        )
    if len(without_refs) == len(common):
        raise EvalError(
            f"none of the {len(common)} images has a reference caption or a reviewer's correction; add "
            "reference_captions to the metadata or review the drafts first (drafts are never references)"
        )
    if without_refs:
        notes.append(f"{len(without_refs)} image(s) without any human reference were left out")
    evaluated = [
        image
        for image in sorted(images.values(), key=lambda i: i.seq)
        if image.id in common and image.id in references
    ]
    empty = {s: sum(1 for i in evaluated if not captions[s][i.id].caption) for s in ordered}
    for system, count in empty.items():
        if count:
            notes.append(f"{system}: {count} empty caption(s), scored as written (zero on every metric)")

    # expected culture terms: region, category vocabulary, accepted candidates' terms, and any known term
    # the image's own human text (cultural context, references, corrections) mentions
    category_terms = category_terms or {}
    vocabulary_terms: set[str] = set()
    for image in images.values():
        vocabulary_terms.update(draft_terms.get(image.id, ()))
        vocabulary_terms.update(_regions(image))
        vocabulary_terms.update(category_terms.get(image.category or "", ()))
    index = TermIndex(vocabulary_terms, {image.language for image in evaluated})
    expected: dict[str, set[str]] = {}
    for image in evaluated:
        terms = {
            term_id(t)
            for t in [
                *_regions(image),
                *accepted.get(image.id, []),
                *category_terms.get(image.category or "", []),
            ]
        }
        human_text = " ".join([image.cultural_context or "", *references[image.id]])
        terms |= index.find(human_text, image.language)
        expected[image.id] = {t for t in terms if t}
    counts = {
        "images_in_split": len(in_split) if split != "all" else len(images),
        "evaluated_images": len(evaluated),
        "without_references": len(without_refs),
        "references": sum(len(references[i.id]) for i in evaluated),
        "empty_captions": empty,
    }
    return EvalInputs(
        images=evaluated,
        references={i.id: references[i.id] for i in evaluated},
        expected_terms=expected,
        vocabulary={term_id(t) for t in vocabulary_terms if term_id(t)},
        vocabulary_terms=sorted(vocabulary_terms),
        captions=captions,
        systems=ordered,
        notes=notes,
        counts=counts,
    )


def _regions(image: ImageRow) -> list[str]:
    return [part.strip() for part in (image.region or "").split(",") if part.strip()]
