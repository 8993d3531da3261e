"""Preference rows from reviewed decisions: DPO pairs, KTO labels and SFT targets, every drop counted.

    from data_tools.config import load_config
    from data_tools.prefs.build import build_prefs
    from data_tools.prefs.config import PrefsConfig
    result = build_prefs(workspace, load_config(PrefsConfig, "configs/prefs.yaml"))
    result.rows["dpo"][0]["chosen"]        # [{"role": "assistant", "content": "…"}]
    result.report["dpo"]["dropped"]        # {"tie": 3, "identical": 1, "over_cap": 0, …}

The review stage leaves one decision per record: the aggregated ranking of the candidates (with
their mean/median/Borda scores), each candidate's acceptability vote and the correction that wins,
if any. Every caption of a record becomes a :class:`Side`; a correction becomes a side with
strategy ``human_correction`` that beats every candidate. Which side beats which is decided in one
place (:func:`compare`) so DPO, KTO and SFT never disagree about it, and the pairing policy only
chooses *which* comparisons to make (best against the rest, all pairs, best against worst).

The trade-off is conservatism: whenever the evidence cannot order two captions (equal aggregated
scores, a candidate nobody ranked, rank and acceptability contradicting each other in
``consistent`` mode, identical texts) no pair is made, and the drop is counted under its reason so
the Dataset Card can say exactly how much data each rule cost. Rows hold image *paths*; the images
are embedded when the datasets are saved (:mod:`data_tools.prefs.publish`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from data_tools.errors import UserError
from data_tools.prefs.config import DPOSettings, KTOSettings, PrefsConfig, SFTSettings, portable
from data_tools.prefs.split import SPLIT_ORDER, SplitItem, assign_splits
from data_tools.workspace import ImageRow, Workspace

log = logging.getLogger("data_tools.prefs")

CORRECTION = "human_correction"
Order = Literal["acceptability_then_rank", "rank", "consistent"]

# Every reason a record, a caption, a pair or a row can be left out; the report always lists them all.
RECORD_FILTERS = ("pending", "discarded", "duplicate_record", "missing_image", "unpublishable",
                  "single_annotator", "low_agreement", "high_rank_spread")  # fmt: skip
CAPTION_FILTERS = ("missing_draft", "empty_caption", "too_long_caption")
FORMAT_FILTERS: dict[str, tuple[str, ...]] = {
    "dpo": ("tie", "unranked", "conflict", "identical", "over_cap"),
    "kto": ("disputed", "identical"),
    "sft": ("no_acceptable_caption",),
}
_EPS = 1e-9


class PrefsError(UserError, ValueError):
    """The workspace cannot give preference data (nothing reviewed, no instruction for a variety…)."""


# -- instructions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instructions:
    """The user turn per language variety, from ``configs/prompts/prefs/instructions.yaml``."""

    path: Path
    version: str
    by_language: dict[str, tuple[str, ...]]
    sha256: str

    @classmethod
    def load(cls, path: Path) -> Instructions:
        path = Path(path)
        if not path.is_file():
            raise PrefsError(f"instruction file not found: {path}")
        raw = path.read_bytes()
        data = yaml.safe_load(raw) or {}
        table = data.get("instructions") if isinstance(data, dict) else None
        if not isinstance(table, dict) or not table:
            raise PrefsError(f"{path}: expected a mapping 'instructions: {{es-MX: …, pt-BR: …}}'")
        by_language: dict[str, tuple[str, ...]] = {}
        for tag, value in table.items():
            texts = (value,) if isinstance(value, str) else tuple(value or ())
            if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise PrefsError(f"{path}: instruction for {tag!r} must be a text or a list of texts")
            by_language[str(tag)] = tuple(t.strip() for t in texts)
        return cls(
            path, str(data.get("version", "unversioned")), by_language, hashlib.sha256(raw).hexdigest()
        )

    def resolve(self, tag: str | None) -> str | None:
        """The table key used for ``tag``: exact, then the bare language (``es-PA`` → ``es``), else None."""
        if not tag:
            return None
        if tag in self.by_language:
            return tag
        base = tag.split("-")[0]
        return base if base in self.by_language else None

    def for_image(self, tag: str | None, image_id: str) -> str:
        """The instruction for an image; with several phrasings, one chosen by the image id (stable)."""
        key = self.resolve(tag)
        if key is None:
            raise PrefsError(f"no instruction for language {tag!r} in {self.path}")
        texts = self.by_language[key]
        return texts[int(image_id[:8], 16) % len(texts)] if len(texts) > 1 else texts[0]


# -- sides and comparisons -------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One caption that can stand on either side of a pair: a drafted candidate or a human correction."""

    key: str  # the draft's cache key, or "correction:<sha>"
    text: str
    source: Literal["candidate", "correction"]
    strategy: str  # cultural | generic | perturbed | human_correction
    perturbation: str | None
    model: str  # drafting model, or "human"
    rank: int | None  # position in the aggregated ranking (1 = best); 0 for a correction; None if unranked
    score: float | None  # aggregated rank score, lower is better; None for a correction or unranked
    acceptable: bool  # the aggregated acceptability vote (a correction is acceptable)
    votes: tuple[int, int] | None  # (yes, total) acceptability votes; None for a correction

    @property
    def disputed(self) -> bool:
        return self.votes is not None and 0 < self.votes[0] < self.votes[1]


def normalize(text: str) -> str:
    """What counts as the same caption: ``normalize(' Un  Taco. ') == normalize('un taco.')``."""
    return " ".join(text.split()).casefold()


def compare(a: Side, b: Side, order: Order) -> tuple[int, str]:
    """``(+1, why)`` if ``a`` beats ``b``, ``(-1, why)`` if ``b`` beats ``a``, ``(0, why)`` if neither.

    ``why`` is ``correction``, ``acceptability`` or ``rank`` for a preference, and ``tie``,
    ``unranked`` or ``conflict`` when the evidence cannot order the two captions.
    """
    if (a.source == "correction") != (b.source == "correction"):
        return (1 if a.source == "correction" else -1), "correction"
    if a.source == "correction":  # two corrections of one record cannot happen; never pair them
        return 0, "tie"
    by_rank: int | None = None
    if a.score is not None and b.score is not None:
        by_rank = 0 if math.isclose(a.score, b.score) else (1 if a.score < b.score else -1)
    by_vote = 0 if a.acceptable == b.acceptable else (1 if a.acceptable else -1)
    if order != "rank" and by_vote:
        if order == "consistent" and by_rank not in (None, 0, by_vote):
            return 0, "conflict"
        return by_vote, "acceptability"
    if by_rank is None:
        return 0, "unranked"
    if by_rank == 0:
        return 0, "tie"
    return by_rank, "rank"


def sort_sides(sides: list[Side], order: Order) -> list[Side]:
    """Best first: the correction, then (unless ``order == 'rank'``) acceptable before unacceptable, then
    by aggregated score; unranked candidates last within their group; the cache key breaks ties stably."""

    def key(side: Side) -> tuple[Any, ...]:
        unacceptable = 0 if order == "rank" else int(not side.acceptable)
        score = side.score if side.score is not None else math.inf
        return (side.source != "correction", unacceptable, score, side.key)

    return sorted(sides, key=key)


def dpo_pairs(sides: list[Side], settings: DPOSettings, counts: Counter[str]) -> list[tuple[Side, Side, str]]:
    """``(chosen, rejected, why)`` for one image under the pairing policy and the per-image cap.

    Positions refer to the best-first order: best_vs_rest compares position 0 with every other,
    all_pairs every (i, j), top_vs_bottom the first with the last. Over the cap, the pairs with the
    largest contrast (position gap) are kept. Example with sides ``[correction, A, B]`` and
    best_vs_rest: ``[(correction, A, 'correction'), (correction, B, 'correction')]``.
    """
    ordered, seen = [], set()
    for side in sort_sides(sides, settings.order):  # a repeated text is one side (its best occurrence)
        text = normalize(side.text)
        if text in seen:
            counts["identical"] += 1
            continue
        seen.add(text)
        ordered.append(side)
    n = len(ordered)
    if settings.pairing == "best_vs_rest":
        positions = [(0, j) for j in range(1, n)]
    elif settings.pairing == "all_pairs":
        positions = list(itertools.combinations(range(n), 2))
    else:
        positions = [(0, n - 1)] if n >= 2 else []
    found: list[tuple[int, int, Side, Side, str]] = []
    for i, j in positions:
        verdict, why = compare(ordered[i], ordered[j], settings.order)
        if verdict == 0:
            counts[why] += 1
            continue
        chosen, rejected = (ordered[i], ordered[j]) if verdict > 0 else (ordered[j], ordered[i])
        if normalize(chosen.text) == normalize(rejected.text):
            counts["identical"] += 1
            continue
        found.append((i, j, chosen, rejected, why))
    by_contrast = sorted(found, key=lambda f: (-(f[1] - f[0]), f[0], f[1]))
    kept = by_contrast[: settings.max_pairs_per_image]
    counts["over_cap"] += len(found) - len(kept)
    return [(chosen, rejected, why) for _, _, chosen, rejected, why in sorted(kept, key=lambda f: f[:2])]


def kto_labels(sides: list[Side], settings: KTOSettings, counts: Counter[str]) -> list[tuple[Side, bool]]:
    """Each caption with its label: a correction is desirable, a candidate as its acceptability vote says.

    A text repeated within one image is kept once, with the label of its best occurrence (so a
    correction that copies a candidate stays one desirable row).
    """
    labelled: list[tuple[Side, bool]] = []
    seen: set[str] = set()
    for side in sort_sides(sides, "acceptability_then_rank"):
        if side.source == "correction" and not settings.include_corrections:
            continue
        if settings.drop_disputed and side.disputed:
            counts["disputed"] += 1
            continue
        text = normalize(side.text)
        if text in seen:
            counts["identical"] += 1
            continue
        seen.add(text)
        labelled.append((side, side.source == "correction" or side.acceptable))
    return labelled


def sft_target(sides: list[Side], settings: SFTSettings, counts: Counter[str]) -> Side | None:
    """The correction, else the best-ranked acceptable candidate (else, if allowed, the best-ranked one)."""
    ordered = sort_sides(sides, "acceptability_then_rank")
    if not ordered:
        return None
    best = ordered[0]
    if best.source == "correction" or best.acceptable or not settings.require_acceptable:
        return best
    counts["no_acceptable_caption"] += 1
    return None


# -- per-record figures ----------------------------------------------------------------------------


def record_agreement(decision: dict[str, Any]) -> float | None:
    """Mean pairwise agreement of the acceptability votes over a record's candidates.

    For a candidate with ``y`` yes out of ``n`` votes, the share of annotator pairs that agree is
    ``(y(y-1) + (n-y)(n-y-1)) / (n(n-1))``; the record's agreement is the mean over its candidates.
    ``None`` with fewer than two annotators. Example: votes ``{a: [2, 2], b: [1, 2]}`` → ``0.5``.
    """
    values = []
    for yes, total in (decision.get("acceptable_votes") or {}).values():
        if total >= 2:
            no = total - yes
            values.append((yes * (yes - 1) + no * (no - 1)) / (total * (total - 1)))
    return statistics.fmean(values) if values else None


def record_rank_spread(decision: dict[str, Any]) -> float | None:
    """Mean over candidates of the population std of their ranks; ``None`` with fewer than two annotators."""
    spreads = list((decision.get("rank_spread") or {}).values())
    if decision.get("n_submitted", 0) < 2 or not spreads:
        return None
    return statistics.fmean(spreads)


@dataclass
class ReviewedImage:
    """One image that passed the record filters, with its captions and review figures."""

    image: ImageRow
    path: Path
    decision: dict[str, Any]
    sides: list[Side]
    instruction: str
    agreement: float | None
    rank_spread: float | None

    @property
    def n_annotators(self) -> int:
        return int(self.decision.get("n_submitted", 0))

    def metadata(self) -> dict[str, Any]:
        image = self.image
        return {
            "image_id": image.id, "country": image.country, "language": image.language, "region": image.region,
            "category": image.category, "license": image.license, "author": image.author,
            "source_url": image.source_url, "agreement": self.agreement, "rank_spread": self.rank_spread,
            "n_annotators": self.n_annotators,
        }  # fmt: skip


# -- building --------------------------------------------------------------------------------------


@dataclass
class PrefsResult:
    """Rows per format (images as paths), the image → split assignment and the report of every drop."""

    rows: dict[str, list[dict[str, Any]]]
    splits: dict[str, str]
    images: dict[str, ReviewedImage]
    report: dict[str, Any]
    instructions: Instructions


def _pick_decisions(decisions: list[dict[str, Any]], counts: Counter[str]) -> list[dict[str, Any]]:
    """One decision per image: an image reviewed in two datasets keeps the record with most answers."""
    by_image: dict[str, list[dict[str, Any]]] = {}
    for decision in decisions:
        by_image.setdefault(decision["image_id"], []).append(decision)
    picked = []
    for group in by_image.values():
        group.sort(key=lambda d: (d.get("status") != "decided", -d.get("n_submitted", 0), d["dataset"]))
        picked.append(group[0])
        counts["duplicate_record"] += len(group) - 1
    return picked


def _sides(decision: dict[str, Any], drafts: dict[str, Any], config: PrefsConfig,
           counts: Counter[str]) -> list[Side]:  # fmt: skip
    filters = config.filters
    ranking: list[str] = list(decision.get("ranking") or [])
    candidates = ranking + sorted(set(decision.get("acceptable") or {}) - set(ranking))
    votes = decision.get("acceptable_votes") or {}
    scores = decision.get("rank_scores") or {}
    sides = []

    def fits(text: str) -> bool:
        if len(text) < filters.min_caption_chars:
            counts["empty_caption"] += 1
            return False
        if len(text) > filters.max_caption_chars:
            counts["too_long_caption"] += 1
            return False
        return True

    for key in candidates:
        draft = drafts.get(key)
        if draft is None or draft.status != "done":
            counts["missing_draft"] += 1
            continue
        text = (draft.caption or "").strip()
        if not fits(text):
            continue
        yes_total = votes.get(key)
        sides.append(
            Side(
                key=key, text=text, source="candidate", strategy=draft.strategy, perturbation=draft.perturbation,
                model=portable(draft.model), rank=ranking.index(key) + 1 if key in ranking else None,
                score=scores.get(key), acceptable=bool((decision.get("acceptable") or {}).get(key)),
                votes=(int(yes_total[0]), int(yes_total[1])) if yes_total else None,
            )
        )  # fmt: skip
    correction = (decision.get("correction") or "").strip()
    if correction and fits(correction):
        digest = hashlib.sha256(correction.encode()).hexdigest()[:16]
        sides.insert(0, Side(key=f"correction:{digest}", text=correction, source="correction", strategy=CORRECTION,
                             perturbation=None, model="human", rank=0, score=None, acceptable=True, votes=None))  # fmt: skip
    return sides


def reviewed_images(workspace: Workspace, config: PrefsConfig, instructions: Instructions,
                    counts: Counter[str], caption_counts: Counter[str]) -> list[ReviewedImage]:  # fmt: skip
    """Decided records that pass the record filters, in collection order, with their filtered captions."""
    images = {image.id: image for image in workspace.images(status=None)}
    drafts = {draft.cache_key: draft for draft in workspace.drafts()}
    filters = config.filters
    kept: list[ReviewedImage] = []
    missing_instruction: set[str | None] = set()
    for decision in _pick_decisions(workspace.review_decisions(), counts):
        status = decision.get("status")
        if status != "decided":
            counts["discarded" if status == "discarded" else "pending"] += 1
            continue
        image = images.get(decision["image_id"])
        path = workspace.image_path(image) if image else None
        if image is None or path is None or not path.is_file():
            counts["missing_image"] += 1
            continue
        if filters.drop_unpublishable and not image.publishable:
            counts["unpublishable"] += 1
            continue
        agreement = record_agreement(decision)
        spread = record_rank_spread(decision)
        if agreement is None:
            if filters.single_annotator == "drop":
                counts["single_annotator"] += 1
                continue
        elif agreement < filters.min_agreement - _EPS:
            counts["low_agreement"] += 1
            continue
        if (
            filters.max_rank_spread is not None
            and spread is not None
            and spread > filters.max_rank_spread + _EPS
        ):
            counts["high_rank_spread"] += 1
            continue
        if instructions.resolve(image.language) is None:
            missing_instruction.add(image.language)
            continue
        sides = _sides(decision, drafts, config, caption_counts)
        instruction = instructions.for_image(image.language, image.id)
        kept.append(ReviewedImage(image, path, decision, sides, instruction, agreement, spread))
    if missing_instruction:
        shown = sorted(str(tag) for tag in missing_instruction)
        raise PrefsError(
            f"no instruction for language variet{'y' if len(shown) == 1 else 'ies'} {shown} in "
            f"{instructions.path}; add them (or their bare language, e.g. 'es') under 'instructions:'"
        )
    kept.sort(key=lambda r: r.image.seq)
    return kept


def _row_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def dpo_rows(
    reviewed: list[ReviewedImage], settings: DPOSettings, counts: Counter[str]
) -> list[dict[str, Any]]:
    rows = []
    for item in reviewed:
        for chosen, rejected, why in dpo_pairs(item.sides, settings, counts):
            rows.append(
                {
                    "id": _row_id(item.image.id, chosen.text, rejected.text), "images": [str(item.path)],
                    "prompt": _user(item.instruction), "chosen": _assistant(chosen.text),
                    "rejected": _assistant(rejected.text), **item.metadata(),
                    "chosen_strategy": chosen.strategy, "rejected_strategy": rejected.strategy,
                    "chosen_perturbation": chosen.perturbation, "rejected_perturbation": rejected.perturbation,
                    "chosen_model": chosen.model, "rejected_model": rejected.model,
                    "chosen_rank": chosen.rank, "rejected_rank": rejected.rank, "reason": why,
                }
            )  # fmt: skip
    return rows


def kto_rows(
    reviewed: list[ReviewedImage], settings: KTOSettings, counts: Counter[str]
) -> list[dict[str, Any]]:
    rows = []
    for item in reviewed:
        for side, label in kto_labels(item.sides, settings, counts):
            votes = side.votes or (None, None)
            rows.append(
                {
                    "id": _row_id(item.image.id, side.text, str(label)), "images": [str(item.path)],
                    "prompt": _user(item.instruction), "completion": _assistant(side.text), "label": label,
                    **item.metadata(), "strategy": side.strategy, "perturbation": side.perturbation,
                    "model": side.model, "source": side.source, "rank": side.rank,
                    "votes_yes": votes[0], "votes_total": votes[1],
                }
            )  # fmt: skip
    return rows


def sft_rows(
    reviewed: list[ReviewedImage], settings: SFTSettings, counts: Counter[str]
) -> list[dict[str, Any]]:
    rows = []
    for item in reviewed:
        side = sft_target(item.sides, settings, counts)
        if side is None:
            continue
        if settings.layout == "messages":
            text_columns = {"messages": _user(item.instruction) + _assistant(side.text)}
        else:
            text_columns = {"prompt": _user(item.instruction), "completion": _assistant(side.text)}
        rows.append(
            {
                "id": _row_id(item.image.id, side.text), "images": [str(item.path)], **text_columns,
                **item.metadata(), "strategy": side.strategy, "perturbation": side.perturbation,
                "model": side.model, "source": side.source, "rank": side.rank,
            }
        )  # fmt: skip
    return rows


def kto_weights(desirable: int, undesirable: int, target: float = 1.15) -> dict[str, float] | None:
    """KTO's ``desirable_weight``/``undesirable_weight`` for these counts, or None if a label is missing.

    The KTO paper (Eq. 8) and TRL's warning ask for ``λ_D·n_D / (λ_U·n_U)`` in ``[1, 4/3]``. One
    weight stays 1 and the other moves the ratio to ``target`` (1.15, inside that range):
    ``kto_weights(10, 30) == {'desirable_weight': 3.45, 'undesirable_weight': 1.0}``.
    """
    if desirable <= 0 or undesirable <= 0:
        return None
    ratio = desirable / undesirable
    if 1 <= ratio <= 4 / 3:
        return {"desirable_weight": 1.0, "undesirable_weight": 1.0}
    if ratio < 1:
        return {"desirable_weight": round(target / ratio, 2), "undesirable_weight": 1.0}
    return {"desirable_weight": 1.0, "undesirable_weight": round(ratio / target, 2)}


def _by_split(rows: list[dict[str, Any]], splits: dict[str, str]) -> dict[str, int]:
    counts = Counter(splits[row["image_id"]] for row in rows)
    return {split: counts[split] for split in SPLIT_ORDER if counts[split]}


def _untemplated(workspace: Workspace) -> dict[str, int]:
    from data_tools.collect import draft_template_gaps

    languages = {tag: n for tag, n in workspace.count_images_by("language").items() if tag != "(none)"}
    gaps = draft_template_gaps(languages)
    return {tag: languages[tag] for tag in sorted(gaps)}


def build_prefs(workspace: Workspace, config: PrefsConfig) -> PrefsResult:
    """Rows of every requested format from the workspace's review decisions, split and counted."""
    instructions = Instructions.load(config.instructions)
    decisions_total = len(workspace.review_decisions())
    if decisions_total == 0:
        raise PrefsError("no review decisions in this workspace: run `mirada review pull` (or import) first")
    record_counts: Counter[str] = Counter()
    caption_counts: Counter[str] = Counter()
    reviewed = reviewed_images(workspace, config, instructions, record_counts, caption_counts)
    builders = {
        "dpo": lambda c: dpo_rows(reviewed, config.dpo, c),
        "kto": lambda c: kto_rows(reviewed, config.kto, c),
        "sft": lambda c: sft_rows(reviewed, config.sft, c),
    }
    rows: dict[str, list[dict[str, Any]]] = {}
    format_counts: dict[str, Counter[str]] = {}
    for fmt in config.formats:
        format_counts[fmt] = Counter()
        rows[fmt] = builders[fmt](format_counts[fmt])
    # Splits are assigned over every reviewed image, not only those that produced rows in the formats
    # built this time: building SFT today and DPO tomorrow must put each image in the same split.
    used_images = {item.image.id for item in reviewed}
    by_id = {item.image.id: item for item in reviewed}
    items = [
        SplitItem(image_id, by_id[image_id].image.cluster_id or image_id, by_id[image_id].image.country,
                  by_id[image_id].image.category, by_id[image_id].image.seq)
        for image_id in sorted(used_images, key=lambda i: by_id[i].image.seq)
    ]  # fmt: skip
    sizes = {"test": config.splits.test_size, "validation": config.splits.validation_size}
    splits = assign_splits(items, sizes, config.splits.seed)
    captions_total = sum(len(item.decision.get("acceptable") or {}) + bool(item.decision.get("correction"))
                         for item in reviewed)  # fmt: skip
    report: dict[str, Any] = {
        "records": {
            "total": decisions_total,
            "used": len(reviewed),
            "dropped": {name: record_counts[name] for name in RECORD_FILTERS},
        },
        "captions": {
            "total": captions_total,
            "used": sum(len(item.sides) for item in reviewed),
            "dropped": {name: caption_counts[name] for name in CAPTION_FILTERS},
        },
        # Collected images `mirada draft` cannot caption (their variety has no draft template), by variety:
        # they never reach review, so without this count they would vanish without a word.
        "untemplated": _untemplated(workspace),
        "splits": {
            "images": {s: n for s in SPLIT_ORDER if (n := sum(1 for v in splits.values() if v == s))},
            "clusters": {
                s: len({i.cluster for i in items if splits[i.image_id] == s})
                for s in SPLIT_ORDER
                if any(splits[i.image_id] == s for i in items)
            },
            "seed": config.splits.seed,
        },
    }
    for fmt, fmt_rows in rows.items():
        entry: dict[str, Any] = {
            "rows": len(fmt_rows),
            "images": len({row["image_id"] for row in fmt_rows}),
            "dropped": {name: format_counts[fmt][name] for name in FORMAT_FILTERS[fmt]},
            "by_split": _by_split(fmt_rows, splits),
        }
        if fmt == "dpo":
            entry["by_reason"] = dict(Counter(row["reason"] for row in fmt_rows).most_common())
        if fmt == "kto":
            desirable = sum(row["label"] for row in fmt_rows)
            undesirable = len(fmt_rows) - desirable
            train = [row for row in fmt_rows if splits[row["image_id"]] == "train"]
            train_desirable = sum(row["label"] for row in train)
            entry.update(
                desirable=desirable,
                undesirable=undesirable,
                desirable_to_undesirable=round(desirable / undesirable, 4) if undesirable else None,
                suggested_weights=kto_weights(train_desirable, len(train) - train_desirable),
                weights_basis={"split": "train", "desirable": train_desirable,
                               "undesirable": len(train) - train_desirable},
            )  # fmt: skip
        if fmt == "sft":
            entry["by_source"] = dict(Counter(row["source"] for row in fmt_rows).most_common())
        report[fmt] = entry
    return PrefsResult(rows, splits, by_id, report, instructions)


# -- datasets --------------------------------------------------------------------------------------


def features(fmt: str, sft_layout: str = "messages") -> Any:
    """The explicit ``datasets.Features`` of each format (DESIGN §3), so types never depend on inference."""
    import datasets

    text, number, integer = datasets.Value("string"), datasets.Value("float64"), datasets.Value("int32")
    turns = datasets.List({"role": text, "content": text})
    head: dict[str, Any] = {"id": text, "images": datasets.List(datasets.Image())}
    meta = {"image_id": text, "country": text, "language": text, "region": text, "category": text,
            "license": text, "author": text, "source_url": text, "agreement": number, "rank_spread": number,
            "n_annotators": integer}  # fmt: skip
    if fmt == "dpo":
        body = {"prompt": turns, "chosen": turns, "rejected": turns}
        tail = {f"{side}_{name}": (integer if name == "rank" else text) for name in
                ("strategy", "perturbation", "model", "rank") for side in ("chosen", "rejected")}  # fmt: skip
        tail["reason"] = text
    else:
        if fmt == "kto":
            body = {"prompt": turns, "completion": turns, "label": datasets.Value("bool")}
        elif sft_layout == "messages":
            body = {"messages": turns}
        else:
            body = {"prompt": turns, "completion": turns}
        tail = {"strategy": text, "perturbation": text, "model": text, "source": text, "rank": integer}
        if fmt == "kto":
            tail.update(votes_yes=integer, votes_total=integer)
    return datasets.Features({**head, **body, **meta, **tail})


def to_dataset_dict(
    rows: list[dict[str, Any]], splits: dict[str, str], fmt: str, sft_layout: str = "messages"
) -> Any:
    """A ``datasets.DatasetDict`` with the non-empty splits in train/validation/test order."""
    import datasets

    feats = features(fmt, sft_layout)
    result = {}
    for split in SPLIT_ORDER:
        part = [row for row in rows if splits[row["image_id"]] == split]
        if part:
            columns = {name: [row[name] for row in part] for name in feats}
            result[split] = datasets.Dataset.from_dict(columns, features=feats, split=datasets.Split(split))
    return datasets.DatasetDict(result)
