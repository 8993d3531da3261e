"""Review round-trips: push to and pull from Argilla, or export and import JSONL; then aggregate.

Argilla is driven through its own SDK with a client passed in. Pulls read everything first and
write to the workspace in one transaction at the end, so a server that dies mid-pull leaves the
workspace exactly as it was. Records that already have responses are never re-logged on push, so
an annotator's work can never be overwritten by a later push.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_tools.errors import UserError
from data_tools.review.aggregate import aggregate_record
from data_tools.review.config import ReviewConfig
from data_tools.review.items import (
    PROBLEM_LABELS,
    ReviewRecord,
    best_candidate,
    build_records,
    category_label,
    image_data_uri,
    is_unchanged_suggestion,
    load_ui,
    problems_by_slot,
)
from data_tools.workspace import ReviewItem, ReviewResponse, Workspace

log = logging.getLogger("data_tools.review")


class ReviewError(UserError, RuntimeError):
    """A review operation that cannot proceed; the message says what to do."""


@dataclass
class PushSummary:
    datasets: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # name -> {logged, unchanged, kept_answered}
    answered_meanwhile: list[str] = field(
        default_factory=list
    )  # logged records that got answers during the push
    annotators_added: list[str] = field(default_factory=list)  # given access to the Argilla workspace now


@dataclass
class PullSummary:
    responses: int = 0
    new: int = 0
    changed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    unknown_records: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    missing_datasets: list[str] = field(default_factory=list)  # pushed from here, gone from the server


def ranking_from_value(value: Any) -> dict[str, int]:
    """Slot ranks from what Argilla or a JSONL file holds: an ordered list of slots or ``[{value, rank}]``."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): int(v) for k, v in value.items()}
    ranks = {}
    for position, entry in enumerate(value, start=1):
        if isinstance(entry, dict):
            ranks[str(entry["value"])] = int(entry.get("rank") or position)
        else:
            ranks[str(entry)] = position
    return ranks


def response_from_values(
    item: ReviewItem, user_id: str, username: str, status: str, values: dict[str, Any], source: str
) -> ReviewResponse:
    """Map one annotator's slot-level answers back to draft cache keys."""
    slots = item.slots
    ranking = {slots[s]: r for s, r in ranking_from_value(values.get("ranking")).items() if s in slots}
    # An unanswered (optional) "appropriate" question is no vote at all, not a "no" for every candidate.
    answered = status == "submitted" and values.get("appropriate") is not None
    chosen = set(values.get("appropriate") or [])
    acceptable = {key: slot in chosen for slot, key in slots.items()} if answered else {}
    flat = values.get("problems") if isinstance(values.get("problems"), list) else []
    by_slot = problems_by_slot(values)
    problems = sorted(
        {p for p in flat if p in PROBLEM_LABELS} | {p for labels in by_slot.values() for p in labels}
    )
    correction = values.get("correction")
    if is_unchanged_suggestion(correction, item.suggestion):
        correction = None  # the pre-filled text sent back as it was: accepting a candidate, not a correction
    return ReviewResponse(
        dataset=item.dataset, record_id=item.record_id, image_id=item.image_id, user_id=user_id, username=username,
        status=status, ranking=ranking, acceptable=acceptable, problems=problems,
        correction=correction.strip() if isinstance(correction, str) and correction.strip() else None,
        raw={"status": status, "values": values}, source=source,
    )  # fmt: skip


def _responses_of(client: Any, dataset_id: Any, page: int = 200) -> Any:
    """``(external_id, [(user_id, status, {question: value})])`` per record, page by page.

    Read through the SDK's API layer (``client.api.records.list``), not ``dataset.records(...)``:
    argilla 2.8's record resource crashes on a response that has no values, which is exactly what
    the web UI sends when an annotator presses Discard.
    """
    offset = 0
    while True:
        models = client.api.records.list(
            dataset_id, offset=offset, limit=page, with_suggestions=False, with_responses=True
        )
        for model in models:
            answers = []
            for response in model.responses or []:
                values = {
                    question: (value or {}).get("value")
                    for question, value in (response.values or {}).items()
                }
                status = getattr(response.status, "value", str(response.status))
                answers.append((str(response.user_id), status, values))
            yield str(model.external_id), answers
        if len(models) < page:
            return
        offset += page


def default_prefix(workspace: Workspace) -> str:
    """Dataset names' prefix from the workspace's stable id (or the prefix it already pushed with)."""
    return workspace.meta("review_prefix") or f"mirada-{workspace.workspace_id[:8]}"


class ReviewService:
    """The review stage's operations on one workspace."""

    def __init__(self, workspace: Workspace, config: ReviewConfig) -> None:
        self.ws = workspace
        self.config = config
        self.prefix = config.dataset_prefix or default_prefix(workspace)
        self.new_passwords: dict[str, str] = {}  # set by grant_access(create_missing=True), shown once

    def records(self) -> list[ReviewRecord]:
        records = build_records(
            self.ws,
            self.prefix,
            self.config.ui_dir,
            self.config.shuffle_seed,
            per_variety=self.config.datasets == "variety",
            prefill=self.config.prefill_correction,
        )
        if not records:
            raise ReviewError("no drafted candidates to review: run `mirada draft` first")
        return records

    # -- Argilla ---------------------------------------------------------------------------------
    def settings(self, language: str | None, candidates: int) -> Any:
        """The dataset's layout: image and numbered candidates side by side, then the context; questions.

        One custom field shows the image as wide as its column allows with the candidates beside it,
        so an annotator ranking "Candidato 3" sees its text next to the questions without scrolling
        (separate fields stacked the candidates below a full-size image).
        """
        import argilla as rg

        ui = load_ui(self.config.ui_dir, language)
        t = ui.texts
        slots = {f"candidate_{n}": t["fields"]["candidate"].format(n=n) for n in range(1, candidates + 1)}
        q = t["questions"]
        labels = t["context"]
        return rg.Settings(
            guidelines=ui.guidelines,
            fields=[
                rg.CustomField(
                    "record",
                    title=t["fields"]["record"],
                    template=(Path(self.config.ui_dir) / "record.html").read_text(encoding="utf-8"),
                ),
                rg.TextField("context", title=t["fields"]["context"], use_markdown=True),
            ],
            questions=[
                rg.RankingQuestion(
                    "ranking",
                    values=slots,
                    title=q["ranking"]["title"],
                    description=q["ranking"]["description"],
                ),
                rg.MultiLabelQuestion(
                    "appropriate",
                    labels=slots,
                    title=q["appropriate"]["title"],
                    description=q["appropriate"]["description"],
                    required=False,
                ),
                *[  # one row per problem, ticking the candidates that have it: prefs knows which caption
                    rg.MultiLabelQuestion(
                        f"problem_{label}",
                        labels=slots,
                        title=q["problems"]["which"].format(problem=text),
                        description=q["problems"]["description"],
                        required=False,
                    )
                    for label, text in q["problems"]["labels"].items()
                ],
                rg.TextQuestion(
                    "correction",
                    title=q["correction"]["title"],
                    description=q["correction"]["description"],
                    required=False,
                    use_markdown=False,
                ),
            ],
            metadata=[  # filters in the UI: the variety is one, so a language's varieties share a dataset
                rg.TermsMetadataProperty("language", title=labels["language"]),
                rg.TermsMetadataProperty("country", title=labels["country"]),
                rg.TermsMetadataProperty("category", title=labels["category"]),
            ],
            distribution=rg.TaskDistribution(min_submitted=self.config.min_submitted),
        )

    def _workspace(self, client: Any, create: bool) -> Any:
        import warnings

        import argilla as rg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "workspace not found" is an expected answer here
            workspace = client.workspaces(self.config.argilla_workspace)
        if workspace is None:
            if not create:
                raise ReviewError(f"Argilla has no workspace {self.config.argilla_workspace!r}; push first")
            workspace = rg.Workspace(name=self.config.argilla_workspace, client=client).create()
        return workspace

    def _dataset(self, client: Any, name: str, language: str | None, candidates: int, create: bool) -> Any:
        """The dataset ``name``; created when missing and ``create``, else None when missing."""
        import warnings

        import argilla as rg

        workspace = self._workspace(client, create)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "dataset not found" is an expected answer here
            dataset = client.datasets(name=name, workspace=workspace)
        if dataset is None:
            if not create:
                return None
            dataset = rg.Dataset(
                name=name, workspace=workspace, settings=self.settings(language, candidates), client=client
            )
            dataset.create()
        return dataset

    def push(self, client: Any) -> PushSummary:
        """Create or update one dataset per language; upsert new or changed records nobody has answered yet.

        A record whose content (candidates, context, suggestion, metadata, image) is what Argilla already
        holds is not sent again, so a re-push uploads only what changed and leaves annotators' screens
        alone. Argilla has no compare-and-set, so a record answered between the check and the upsert is
        reported (``answered_meanwhile``) and gets its previous candidates back, rather than its answer
        being mapped to candidates its annotator never saw.
        """
        summary = PushSummary()
        if self.config.annotators:
            summary.annotators_added = self.grant_access(client, self.config.annotators)
        pushed = self.ws.review_items()
        by_dataset: dict[str, list[ReviewRecord]] = defaultdict(list)
        for record in self.records():
            by_dataset[record.dataset].append(record)
        for name, records in sorted(by_dataset.items()):
            language = records[0].image.language
            dataset = self._dataset(client, name, language, max(len(r.slots) for r in records), create=True)
            slots_available = set(dataset.questions["ranking"].values)  # the candidates it has room for
            on_server = dict(_responses_of(client, dataset.id))  # external id -> answers, every record
            answered = {external_id for external_id, answers in on_server.items() if answers}
            to_log = [r for r in records if r.record_id not in answered]
            rg_records, logged, unchanged = [], [], 0
            for record in to_log:
                slots = {s: k for s, k in record.slots.items() if s in slots_available}
                if len(slots) < len(record.slots):
                    log.warning(
                        "%s: %d candidates, the dataset has room for %d",
                        record.record_id[:12],
                        len(record.slots),
                        len(slots),
                    )
                    record.slots = slots
                record.content_sha = self._content_sha(record, slots)
                previous = pushed.get((name, record.record_id))
                if (
                    previous is not None
                    and previous.content_sha == record.content_sha
                    and previous.slots == slots
                    and record.record_id in on_server  # a deleted dataset or record is sent again
                ):
                    unchanged += 1
                    continue
                rg_records.append(self._rg_record(record, slots, dataset))
                logged.append(record)
            if rg_records:
                self._log(dataset, rg_records)
                restored = self._restore_answered_meanwhile(client, dataset, logged, pushed, summary)
                logged = [r for r in logged if r.record_id not in restored]
            self.ws.save_review_items([self._item(r, r.content_sha) for r in logged])
            summary.datasets[name] = {
                "logged": len(rg_records),
                "unchanged": unchanged,
                "kept_answered": len(records) - len(to_log),
            }
        return summary

    @staticmethod
    def _item(record: ReviewRecord, content_sha: str | None) -> ReviewItem:
        """What the workspace keeps of a record it showed: the hidden slot mapping and the suggestion."""
        suggestion_key = record.suggestion_key if record.suggestion_key in record.slots.values() else None
        return ReviewItem(
            record.dataset, record.record_id, record.image.id, dict(record.slots), content_sha,
            record.suggestion, suggestion_key,
        )  # fmt: skip

    def grant_access(self, client: Any, usernames: list[str], *, create_missing: bool = False) -> list[str]:
        """Give each named Argilla user access to the review workspace; returns those newly added.

        A name Argilla does not know is an error naming it (push) or, with ``create_missing``, a new
        annotator whose one-time password is returned in ``self.new_passwords`` (never stored or logged).
        """
        import secrets

        import argilla as rg

        workspace = self._workspace(client, create=True)
        members = {user.username for user in workspace.users}
        known = {user.username: user for user in client.users}
        missing = [name for name in usernames if name not in known]
        if missing and not create_missing:
            raise ReviewError(
                f"Argilla has no user {', '.join(map(repr, missing))}: create them with "
                f"`mirada review users add {' '.join(missing)}` (or in Argilla), then push again"
            )
        self.new_passwords = {}
        added = []
        for name in usernames:
            user = known.get(name)
            if user is None:
                password = secrets.token_urlsafe(12)
                user = rg.User(username=name, password=password, role="annotator", client=client).create()
                self.new_passwords[name] = password
            if name not in members:
                user.add_to_workspace(workspace)
                members.add(name)
                added.append(name)
        return added

    def _rg_record(self, record: ReviewRecord, slots: dict[str, str], dataset: Any) -> Any:
        """The Argilla record for ``record`` showing ``slots`` (image as a resized data URI).

        Datasets created before the side-by-side layout (an image field and one text field per
        candidate) keep getting records in their own layout.
        """
        import argilla as rg

        ui = load_ui(self.config.ui_dir, record.image.language)
        image = image_data_uri(self.ws.image_path(record.image), self.config.image_max_side)
        if "record" in {f.name for f in dataset.fields}:
            candidates = [
                {"slot": s, "label": ui.texts["fields"]["candidate"].format(n=s.split("_")[-1]), "text": record.texts[s]}
                for s in slots
            ]  # fmt: skip
            fields = {"record": {"image": image, "candidates": candidates}, "context": record.context}
        else:
            fields = {"image": image, "context": record.context, **{s: record.texts[s] for s in slots}}
        suggestions = (
            [rg.Suggestion("correction", record.suggestion, agent="mirada-draft")]
            if record.suggestion
            else []
        )
        metadata = {k: v for k, v in (("country", record.image.country), ("language", record.image.language),
                                      ("category", category_label(record.image.category or "", ui))) if v}  # fmt: skip
        return rg.Record(id=record.record_id, fields=fields, metadata=metadata, suggestions=suggestions)

    def _log(self, dataset: Any, rg_records: list[Any]) -> None:
        # An explicit batch size no larger than the records: the SDK warns "batch size … was normalized"
        # on every dataset otherwise.
        dataset.records.log(rg_records, batch_size=max(1, min(len(rg_records), 256)))

    def _restore_answered_meanwhile(
        self,
        client: Any,
        dataset: Any,
        logged: list[ReviewRecord],
        pushed: dict[tuple[str, str], ReviewItem],
        summary: PushSummary,
    ) -> set[str]:
        """Put back what annotators saw on records answered between the check and the upsert.

        Argilla has no compare-and-set. An answer that lands while a push updates a record was given to
        the previous candidates (nobody loads, reads and ranks four captions in the milliseconds after
        the upsert), so that record gets its previous candidates back and keeps its previous mapping.
        Returns the ids restored; all late ids are reported in ``summary.answered_meanwhile``.
        """
        now_answered = {eid for eid, answers in _responses_of(client, dataset.id) if answers}
        late = [r for r in logged if r.record_id in now_answered]
        if not late:
            return set()
        summary.answered_meanwhile += [r.record_id for r in late]
        captions = {d.cache_key: d.caption or "" for d in self.ws.drafts()}
        restore = []
        for record in late:
            previous = pushed.get((record.dataset, record.record_id))
            if previous is None:  # first push of this record: what was answered is what was just sent
                continue
            record.slots = dict(previous.slots)
            record.texts = {s: captions.get(k, "") for s, k in previous.slots.items()}
            restore.append(record)
        if restore:
            self._log(dataset, [self._rg_record(r, r.slots, dataset) for r in restore])
        log.warning(
            "%s: %d records were answered while this push updated them; %d got their previous candidates back: %s",
            dataset.name,
            len(late),
            len(restore),
            ", ".join(r.record_id[:12] for r in late[:5]),
        )
        return {r.record_id for r in restore}

    def _content_sha(self, record: ReviewRecord, slots: dict[str, str]) -> str:
        """A hash of everything a pushed record shows (the image by id and display size, not its bytes)."""
        shown = {
            "image": [record.image.id, self.config.image_max_side],
            "context": record.context,
            "candidates": {s: record.texts.get(s) for s in slots},
            "slots": slots,
            "suggestion": record.suggestion,
            "metadata": [record.image.country, record.image.language, record.image.category],
        }
        return hashlib.sha256(json.dumps(shown, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def pull(self, client: Any) -> PullSummary:
        """Fetch every response of every pushed record, then store them and the decisions at once."""
        items = self.ws.review_items()
        if not items:
            raise ReviewError("nothing was pushed from this workspace: run `mirada review push` first")
        usernames = {str(user.id): user.username for user in client.users}
        responses: list[ReviewResponse] = []
        summary = PullSummary()
        for name in sorted({dataset for dataset, _ in items}):
            dataset = self._dataset(client, name, None, 0, create=False)
            if dataset is None:  # deleted on the server, or pushed to another server: the others still count
                log.warning(
                    "Argilla has no dataset %r in workspace %r: its answers were not pulled "
                    "(push again to recreate it)",
                    name,
                    self.config.argilla_workspace,
                )
                summary.missing_datasets.append(name)
                continue
            for external_id, answers in _responses_of(client, dataset.id):
                item = items.get((name, external_id))
                if item is None:
                    summary.unknown_records += 1
                    continue
                for user, status, values in answers:
                    if status == "draft" and not self.config.include_drafts:
                        continue
                    responses.append(
                        response_from_values(item, user, usernames.get(user, user), status, values, "argilla")
                    )
        return self._store(responses, summary)

    # -- JSONL round-trip ------------------------------------------------------------------------
    def _keep_answered_mappings(self, records: list[ReviewRecord]) -> list[ReviewRecord]:
        """Records whose answers exist keep the slots their annotators saw; the others may be remapped.

        Returns the records whose mapping may be (re)written. Without this, drafting more candidates
        and exporting again would attach never-shown candidates to old answers.
        """
        items = self.ws.review_items()
        answered = {(r.dataset, r.record_id) for r in self.ws.review_responses()}
        drafts = {d.cache_key: d for d in self.ws.drafts()}
        writable = []
        for record in records:
            key = (record.dataset, record.record_id)
            if key in answered and key in items:
                record.slots = dict(items[key].slots)
                record.texts = {
                    s: (drafts[k].caption or "") if k in drafts else "" for s, k in record.slots.items()
                }
            else:
                writable.append(record)
        return writable

    def export_jsonl(self, path: Path) -> int:
        """Write one task per record (image path, context, anonymous candidates) for annotation elsewhere."""
        records = self.records()
        writable = self._keep_answered_mappings(records)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for record in records:
                task = {
                    "dataset": record.dataset,
                    "record_id": record.record_id,
                    "image": str(self.ws.image_path(record.image).resolve()),
                    "language": record.image.language,
                    "context": record.context,
                    "candidates": record.texts,
                    "suggested_correction": record.suggestion,
                    "answer_with": {"ranking": "slots best first", "appropriate": "slots",
                                    "problems": {"slot": list(PROBLEM_LABELS)},
                                    "correction": "text or null", "status": "submitted | discarded"},
                }  # fmt: skip
                handle.write(json.dumps(task, ensure_ascii=False) + "\n")
        self.ws.save_review_items([self._item(r, None) for r in writable])
        return len(records)

    def import_jsonl(self, path: Path) -> PullSummary:
        """Import an answers file (format and accepted spellings: :mod:`data_tools.review.answers`).

        Every problem in the file is reported at once, with line numbers, and then nothing is imported.
        """
        from data_tools.review.answers import AnswerFileError, read_answers

        items = self.ws.review_items()
        try:
            answers = read_answers(path, items, self.config.ui_dir)
        except AnswerFileError as exc:
            raise ReviewError(str(exc)) from None
        responses = [
            response_from_values(
                items[(a.dataset, a.record_id)], a.user, a.user, a.status, a.values, "import"
            )
            for a in answers
        ]
        return self._store(responses, PullSummary())

    # -- storing and aggregating ------------------------------------------------------------------
    def _store(self, responses: list[ReviewResponse], summary: PullSummary) -> PullSummary:
        summary.responses = len(responses)
        for response in responses:
            summary.by_status[response.status] = summary.by_status.get(response.status, 0) + 1
        with (
            self.ws.transaction()
        ):  # responses and the decisions derived from them land together or not at all
            summary.new, summary.changed = self.ws.save_review_responses(responses)
            summary.decisions = self.aggregate()
        return summary

    def _legacy_suggestions(
        self, items: dict[tuple[str, str], ReviewItem]
    ) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        """For records pushed before suggestions were stored: the suggestion the push computed then.

        The push pre-filled the most confident cultural candidate among the record's candidates; the
        same rule over the same drafts gives back the same text, so old answers that left it untouched
        stop counting as corrections on the next pull.
        """
        need = {key: item for key, item in items.items() if not item.suggestion}
        if not need or not self.config.prefill_correction:
            return {}
        drafts = {d.cache_key: d for d in self.ws.drafts()}
        found = {}
        for key, item in need.items():
            best = best_candidate([drafts[k] for k in item.slots.values() if k in drafts])
            if best is not None and best.caption:
                found[key] = (best.caption, best.cache_key)
        return found

    def aggregate(self) -> dict[str, int]:
        """Recompute every record's decision from all stored responses; returns counts by decision status."""
        items = self.ws.review_items()
        grouped: dict[tuple[str, str], list[ReviewResponse]] = defaultdict(list)
        for response in self.ws.review_responses():
            grouped[(response.dataset, response.record_id)].append(response)
        legacy = self._legacy_suggestions(items)
        decisions, counts = [], defaultdict(int)
        for key, item in items.items():
            suggestion, suggestion_key = (
                (item.suggestion, item.suggestion_key) if item.suggestion else legacy.get(key, (None, None))
            )
            decision = aggregate_record(
                grouped.get(key, []),
                list(item.slots.values()),
                self.config.aggregation,
                suggestion,
                suggestion_key,
                item.slots,
            )
            counts[decision["status"]] += 1
            decisions.append((key[0], key[1], item.image_id, decision))
        self.ws.save_review_decisions(decisions, self.config.aggregation.model_dump())
        return dict(counts)
