"""What a reviewer sees: one record per image with shuffled, anonymous candidates.

Candidates are shown as "candidato 1…N" in an order shuffled per record with a fixed seed; the
slot → draft mapping stays in the workspace, so the strategy that produced a candidate (cultural,
generic, perturbed) never reaches annotators. The same builder serves Argilla and the JSONL
round-trip, so both show exactly the same thing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from data_tools.draft.prompts import country_name
from data_tools.workspace import DraftRecord, ImageRow, Workspace

PROBLEM_LABELS = ("wrong_culture", "stereotype", "factual_error", "wrong_variety", "hallucination")


@dataclass(frozen=True)
class UIText:
    """Titles, labels and guidelines in the reviewers' language (``configs/review/<lang>.yaml``)."""

    language: str
    texts: dict[str, Any]
    guidelines: str


@functools.cache
def load_ui(ui_dir: Path, language: str | None) -> UIText:
    """The UI texts of the language's own file (``pt.yaml`` for ``pt-BR``, ``ca.yaml`` for ``ca``), else Spanish.

    Spanish is the documented fallback (Basque and any language without a file): Mirada's
    reviewers of Iberian and Latin American languages read it.
    """
    code = (language or "es").split("-")[0].lower()
    if not (Path(ui_dir) / f"{code}.yaml").is_file():
        code = "es"
    path = Path(ui_dir) / f"{code}.yaml"
    texts = yaml.safe_load(path.read_text(encoding="utf-8"))
    guidelines = (Path(ui_dir) / texts["guidelines"]).read_text(encoding="utf-8")
    return UIText(code, texts, guidelines)


@dataclass
class ReviewRecord:
    dataset: str
    record_id: str
    image: ImageRow
    slots: dict[str, str]  # "candidate_1" -> cache_key
    texts: dict[str, str]  # "candidate_1" -> caption
    context: str
    suggestion: str | None
    content_sha: str | None = None  # set by the push: what Argilla is sent
    suggestion_key: str | None = None  # the draft whose caption pre-fills the correction box


def dataset_name(prefix: str, language: str | None, per_variety: bool = False) -> str:
    """The Argilla dataset a record goes to: one per language by default, one per variety on request.

    ``dataset_name('tacos', 'es-MX') == 'tacos-es'`` (the variety is a metadata filter in that
    dataset, so a small team of Spanish speakers works in one queue);
    ``dataset_name('tacos', 'es-MX', per_variety=True) == 'tacos-es-MX'``.
    """
    if not language:
        return f"{prefix}-und"
    return f"{prefix}-{language if per_variety else language.split('-')[0].lower()}"


def category_label(category: str, ui: UIText) -> str:
    """The category in the reviewers' language (``food`` → ``comida``); unknown ones as written."""
    return (ui.texts.get("categories") or {}).get(category, category)


def context_markdown(image: ImageRow, ui: UIText) -> str:
    labels = ui.texts["context"]
    lines = []
    if image.country:
        lines.append(f"**{labels['country']}:** {country_name(image.country, ui.language)} ({image.country})")
    if image.region:
        lines.append(f"**{labels['region']}:** {image.region}")
    if image.category:
        lines.append(f"**{labels['category']}:** {category_label(image.category, ui)}")
    if image.language:
        lines.append(f"**{labels['language']}:** {image.language}")
    if image.cultural_context:
        lines.append(f"**{labels['notes']}:** {image.cultural_context}")
    return "\n\n".join(lines)


def image_data_uri(path: Path, max_side: int) -> str:
    """The image as a JPEG data URI no larger than ``max_side``: what Argilla's ImageField displays."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _shuffled(drafts: list[DraftRecord], record_id: str, seed: int) -> list[DraftRecord]:
    ordered = sorted(drafts, key=lambda d: d.cache_key)
    rng = random.Random(int(hashlib.sha256(f"{seed}:{record_id}".encode()).hexdigest()[:12], 16))
    rng.shuffle(ordered)
    return ordered


def problems_by_slot(values: dict[str, Any]) -> dict[str, list[str]]:
    """Which candidate has which problem: slot -> labels, from an answer's values.

    Argilla datasets ask one question per problem (``problem_stereotype``: which candidates have a
    stereotype); a JSONL answer may give ``"problems": {"candidate_2": ["stereotype"]}``. Datasets
    created before per-candidate problems asked one record-level ``problems`` list: no slots then.
    """
    found: dict[str, set[str]] = {}
    for label in PROBLEM_LABELS:
        for slot in values.get(f"problem_{label}") or []:
            found.setdefault(str(slot), set()).add(label)
    if isinstance(values.get("problems"), dict):
        for slot, labels in values["problems"].items():
            found.setdefault(str(slot), set()).update(p for p in labels or [] if p in PROBLEM_LABELS)
    return {slot: sorted(labels) for slot, labels in found.items() if labels}


def normalise(text: str | None) -> str:
    """Text compared for "did the annotator change it": whitespace runs collapse, ends are stripped."""
    return " ".join((text or "").split())


def is_unchanged_suggestion(correction: object, suggestion: str | None) -> bool:
    """True when a "correction" is the pre-filled suggestion as pushed (whitespace aside).

    Argilla's web UI submits a suggested answer the annotator never touched as that annotator's
    answer; counting it as a human correction would make the model's own draft beat every candidate.
    """
    return bool(suggestion) and isinstance(correction, str) and normalise(correction) == normalise(suggestion)


def best_candidate(drafts: list[DraftRecord]) -> DraftRecord | None:
    """The pre-filled correction: the most confident cultural candidate (reviewers edit rather than type)."""
    cultural = [d for d in drafts if d.strategy == "cultural"] or drafts
    return max(cultural, key=lambda d: (d.confidence or 0.0, -d.variant), default=None)


def build_records(
    workspace: Workspace,
    prefix: str,
    ui_dir: Path,
    seed: int,
    *,
    per_variety: bool = False,
    prefill: bool = True,
) -> list[ReviewRecord]:
    """One record per image that has drafted candidates; images of every language, grouped later by dataset.

    A record pushed before keeps the dataset it was pushed to (so changing the grouping or the
    prefix never duplicates a record that annotators may already be answering).
    """
    pushed = {record_id: dataset for dataset, record_id in workspace.review_items()}
    drafts_by_image: dict[str, list[DraftRecord]] = {}
    for draft in workspace.drafts(status="done"):
        drafts_by_image.setdefault(draft.image_id, []).append(draft)
    records = []
    for image in workspace.images(status="ok"):
        drafts = drafts_by_image.get(image.id)
        if not drafts:
            continue
        ui = load_ui(ui_dir, image.language)
        ordered = _shuffled(drafts, image.id, seed)
        slots = {f"candidate_{n}": d.cache_key for n, d in enumerate(ordered, start=1)}
        texts = {f"candidate_{n}": d.caption or "" for n, d in enumerate(ordered, start=1)}
        best = best_candidate(drafts) if prefill else None
        records.append(
            ReviewRecord(
                dataset=pushed.get(image.id) or dataset_name(prefix, image.language, per_variety),
                record_id=image.id,
                image=image,
                slots=slots,
                texts=texts,
                context=context_markdown(image, ui),
                suggestion=best.caption if best else None,
                suggestion_key=best.cache_key if best else None,
            )
        )
    return records
