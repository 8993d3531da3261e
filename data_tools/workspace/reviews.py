"""Workspace tables of the review stage: pushed records, every annotator's response, decisions.

The slot → draft mapping of each pushed record lives only here (annotators see "candidato 1…4" in
a shuffled order), so strategy labels never leak into Argilla. Responses are stored whole (the raw
values too) and keyed by dataset, record and user, so pulling twice changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from data_tools.workspace._base import StoreMixin, now


@dataclass(frozen=True)
class ReviewItem:
    dataset: str
    record_id: str
    image_id: str
    slots: dict[str, str]  # "candidate_1" -> draft cache_key
    content_sha: str | None = None  # what Argilla was sent (None: never pushed there, e.g. a JSONL export)
    suggestion: str | None = None  # the correction box's pre-filled text (None: none, or pushed before m007)
    suggestion_key: str | None = None  # the draft cache key whose caption was pre-filled


@dataclass
class ReviewResponse:
    """One annotator's answer to one record, mapped back from slots to draft cache keys."""

    dataset: str
    record_id: str
    image_id: str
    user_id: str
    username: str
    status: str  # submitted | discarded | draft
    ranking: dict[str, int] = field(default_factory=dict)  # cache_key -> rank (1 = best)
    acceptable: dict[str, bool] = field(
        default_factory=dict
    )  # cache_key -> culturally appropriate and accurate
    problems: list[str] = field(default_factory=list)
    correction: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    source: str = "argilla"

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> ReviewResponse:
        data = dict(row)
        return cls(
            dataset=data["dataset"], record_id=data["record_id"], image_id=data["image_id"], user_id=data["user_id"],
            username=data["username"], status=data["status"], ranking=json.loads(data["ranking_json"]),
            acceptable=json.loads(data["acceptable_json"]), problems=json.loads(data["problems_json"]),
            correction=data["correction"], raw=json.loads(data["raw_json"]), source=data["source"],
        )  # fmt: skip


class ReviewStoreMixin(StoreMixin):
    """Review access for :class:`~data_tools.workspace.store.Workspace`."""

    @property
    def workspace_id(self) -> str:
        """This workspace's stable id (32 hex digits, made once by migration m007_review_identity).

        External names (Argilla datasets…) derive from it rather than from the folder's name, so a
        renamed or copied workspace folder keeps talking to the same datasets.
        """
        return self.meta("workspace_id") or ""

    def meta(self, key: str) -> str | None:
        """A workspace-wide setting stored in the database (``workspace_meta``), or None."""
        rows = self._query("SELECT value FROM workspace_meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def review_items(self, dataset: str | None = None) -> dict[tuple[str, str], ReviewItem]:
        sql = "SELECT * FROM review_items" + (" WHERE dataset = ?" if dataset else "")
        return {
            (row["dataset"], row["record_id"]): ReviewItem(
                row["dataset"],
                row["record_id"],
                row["image_id"],
                json.loads(row["slots_json"]),
                row["content_sha"],
                row["suggestion"],
                row["suggestion_key"],
            )
            for row in self._query(sql, (dataset,) if dataset else ())
        }

    def save_review_items(self, items: list[ReviewItem]) -> None:
        """Record pushed records and their hidden slot mapping (after Argilla accepted them)."""
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO review_items (dataset, record_id, image_id, slots_json, pushed_at, content_sha,
                     suggestion, suggestion_key)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(dataset, record_id) DO UPDATE SET slots_json = excluded.slots_json,
                     pushed_at = excluded.pushed_at, content_sha = excluded.content_sha,
                     suggestion = excluded.suggestion, suggestion_key = excluded.suggestion_key""",
                [
                    (
                        i.dataset,
                        i.record_id,
                        i.image_id,
                        json.dumps(i.slots, sort_keys=True),
                        now(),
                        i.content_sha,
                        i.suggestion,
                        i.suggestion_key,
                    )
                    for i in items
                ],
            )

    def save_review_responses(self, responses: list[ReviewResponse]) -> tuple[int, int]:
        """Upsert responses in one transaction; returns (new, changed). Unchanged ones are not touched."""
        existing = {
            (r["dataset"], r["record_id"], r["user_id"]): (r["status"], r["raw_json"])
            for r in self._query("SELECT dataset, record_id, user_id, status, raw_json FROM review_responses")
        }
        new = changed = 0
        with self.transaction() as db:
            for r in responses:
                raw = json.dumps(r.raw, sort_keys=True, ensure_ascii=False)
                before = existing.get((r.dataset, r.record_id, r.user_id))
                if before == (r.status, raw):
                    continue
                new += before is None
                changed += before is not None
                db.execute(
                    """INSERT INTO review_responses (dataset, record_id, image_id, user_id, username, status, ranking_json,
                         acceptable_json, problems_json, correction, raw_json, source, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(dataset, record_id, user_id) DO UPDATE SET username = excluded.username,
                         status = excluded.status, ranking_json = excluded.ranking_json,
                         acceptable_json = excluded.acceptable_json, problems_json = excluded.problems_json,
                         correction = excluded.correction, raw_json = excluded.raw_json, source = excluded.source,
                         updated_at = excluded.updated_at""",
                    (
                        r.dataset, r.record_id, r.image_id, r.user_id, r.username, r.status,
                        json.dumps(r.ranking, sort_keys=True), json.dumps(r.acceptable, sort_keys=True),
                        json.dumps(r.problems, ensure_ascii=False), r.correction, raw, r.source, now(),
                    ),
                )  # fmt: skip
        return new, changed

    def review_responses(self, dataset: str | None = None) -> list[ReviewResponse]:
        sql = (
            "SELECT * FROM review_responses"
            + (" WHERE dataset = ?" if dataset else "")
            + " ORDER BY dataset, record_id, username"
        )
        return [ReviewResponse.from_sql(row) for row in self._query(sql, (dataset,) if dataset else ())]

    def save_review_decisions(
        self, decisions: list[tuple[str, str, str, dict[str, Any]]], policy: dict[str, Any]
    ) -> None:
        """Replace the decisions of the given records: ``(dataset, record_id, image_id, decision)``."""
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO review_decisions (dataset, record_id, image_id, decision_json, policy_json, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(dataset, record_id) DO UPDATE SET
                   decision_json = excluded.decision_json, policy_json = excluded.policy_json,
                   updated_at = excluded.updated_at""",
                [
                    (
                        d,
                        r,
                        i,
                        json.dumps(dec, sort_keys=True, ensure_ascii=False),
                        json.dumps(policy, sort_keys=True),
                        now(),
                    )
                    for d, r, i, dec in decisions
                ],
            )

    def review_decisions(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM review_decisions ORDER BY dataset, record_id")
        return [
            {
                "dataset": r["dataset"],
                "record_id": r["record_id"],
                "image_id": r["image_id"],
                **json.loads(r["decision_json"]),
            }
            for r in rows
        ]
