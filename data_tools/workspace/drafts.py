"""Workspace tables of the draft stage: caption drafts and the API-call ledger.

Every paid call is written to the ledger in the same transaction as the draft it produced (or the
failure it caused), so spend shown by ``mirada status`` always equals the sum of the ledger, and a
result is never acknowledged before it is on disk.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from data_tools.workspace._base import StoreMixin, now


@dataclass(frozen=True)
class CallRecord:
    """One API call as the ledger keeps it. ``cost_upper_usd`` is what it might have cost when unknown."""

    backend: str
    model: str
    status: (
        str  # ok | invalid_output | rate_limited | server_error | timeout | connection_error | client_error
    )
    cache_key: str | None = None
    image_id: str | None = None
    http_status: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    billed_input_tokens: int | None = None
    billed_output_tokens: int | None = None
    cost_usd: float = 0.0
    cost_upper_usd: float = 0.0
    latency_s: float | None = None
    error: str | None = None


@dataclass
class DraftRecord:
    """A caption candidate (or the reason there is none) for one image × strategy × variant."""

    cache_key: str
    image_id: str
    strategy: str
    variant: int
    backend: str
    model: str
    prompt_version: str
    prompt_language: str
    prompt_sha256: str
    params: dict[str, Any]
    status: str  # done | failed
    perturbation: str | None = None
    caption: str | None = None
    cultural_terms: list[str] = field(default_factory=list)
    language: str | None = None
    confidence: float | None = None
    raw_text: str | None = None
    error: str | None = None
    attempts: int = 0
    cost_usd: float = 0.0

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> DraftRecord:
        data = dict(row)
        data["params"] = json.loads(data.pop("params_json"))
        data["cultural_terms"] = json.loads(data.pop("cultural_terms_json"))
        for key in ("run_id", "updated_at"):
            data.pop(key, None)
        return cls(**data)


class DraftStoreMixin(StoreMixin):
    """Draft and ledger access for :class:`~data_tools.workspace.store.Workspace`."""

    def draft_states(self) -> dict[str, tuple[str, int]]:
        """``cache_key -> (status, attempts)`` of every draft recorded so far."""
        return {
            row[0]: (row[1], int(row[2]))
            for row in self._query("SELECT cache_key, status, attempts FROM drafts")
        }

    def record_call(self, call: CallRecord, run_id: int, draft: DraftRecord | None = None) -> None:
        """Append ``call`` to the ledger and, if given, upsert ``draft`` — in one transaction."""
        with self.transaction() as db:
            self._insert_call(db, call, run_id)
            if draft is not None:
                self._upsert_draft(db, draft, run_id)

    @staticmethod
    def _insert_call(db: sqlite3.Connection, call: CallRecord, run_id: int) -> None:
        """One ledger row, inside the caller's transaction (the judge's verdicts use it too)."""
        db.execute(
            """INSERT INTO api_calls (run_id, cache_key, image_id, backend, model, status, http_status,
                 input_tokens, output_tokens, billed_input_tokens, billed_output_tokens, cost_usd, cost_upper_usd,
                 latency_s, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run_id, call.cache_key, call.image_id, call.backend, call.model, call.status, call.http_status,
                call.input_tokens, call.output_tokens, call.billed_input_tokens, call.billed_output_tokens,
                call.cost_usd, call.cost_upper_usd, call.latency_s, call.error, now(),
            ),
        )  # fmt: skip

    def save_draft(self, draft: DraftRecord, run_id: int) -> None:
        """Record a draft outcome that involved no API call (e.g. failed before sending)."""
        with self.transaction() as db:
            self._upsert_draft(db, draft, run_id)

    @staticmethod
    def _upsert_draft(db: sqlite3.Connection, draft: DraftRecord, run_id: int) -> None:
        db.execute(
            """INSERT INTO drafts (cache_key, image_id, strategy, variant, perturbation, backend, model, prompt_version,
                 prompt_language, prompt_sha256, params_json, status, caption, cultural_terms_json, language, confidence,
                 raw_text, attempts, error, cost_usd, run_id, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(cache_key) DO UPDATE SET status = excluded.status, caption = excluded.caption,
                 cultural_terms_json = excluded.cultural_terms_json, language = excluded.language,
                 confidence = excluded.confidence, raw_text = excluded.raw_text,
                 attempts = drafts.attempts + excluded.attempts, error = excluded.error,
                 cost_usd = drafts.cost_usd + excluded.cost_usd, run_id = excluded.run_id,
                 updated_at = excluded.updated_at""",
            (
                draft.cache_key, draft.image_id, draft.strategy, draft.variant, draft.perturbation, draft.backend,
                draft.model, draft.prompt_version, draft.prompt_language, draft.prompt_sha256,
                json.dumps(draft.params, sort_keys=True), draft.status, draft.caption,
                json.dumps(draft.cultural_terms, ensure_ascii=False), draft.language, draft.confidence,
                draft.raw_text, draft.attempts, draft.error, draft.cost_usd, run_id, now(),
            ),
        )  # fmt: skip

    def drafts(self, *, image_id: str | None = None, status: str | None = None) -> list[DraftRecord]:
        clauses, params = [], []
        if image_id:
            clauses.append("image_id = ?")
            params.append(image_id)
        if status:
            clauses.append("status = ?")
            params.append(status)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._query(f"SELECT * FROM drafts{where} ORDER BY image_id, strategy, variant", params)
        return [DraftRecord.from_sql(row) for row in rows]

    def prompt_hashes(self) -> dict[tuple[str, str], set[str]]:
        """``(prompt_version, prompt_language) -> {template sha256}`` seen in recorded drafts."""
        result: dict[tuple[str, str], set[str]] = {}
        for row in self._query("SELECT DISTINCT prompt_version, prompt_language, prompt_sha256 FROM drafts"):
            result.setdefault((row[0], row[1]), set()).add(row[2])
        return result

    def spend(self) -> dict[str, float]:
        """Known cost of all calls, plus the upper bound of calls whose billing is unknown (timeouts)."""
        row = self._query(
            "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(cost_upper_usd), 0) FROM api_calls"
        )[0]
        return {"cost_usd": float(row[0]), "uncertain_usd": float(row[1])}

    def ledger_summary(self) -> list[dict[str, Any]]:
        """Per backend/model/status: calls, tokens and cost."""
        rows = self._query(
            """SELECT backend, model, status, COUNT(*) AS calls, COALESCE(SUM(billed_input_tokens), 0) AS input_tokens,
                 COALESCE(SUM(billed_output_tokens), 0) AS output_tokens, COALESCE(SUM(cost_usd), 0) AS cost_usd,
                 AVG(latency_s) AS mean_latency_s
               FROM api_calls GROUP BY backend, model, status ORDER BY backend, model, status"""
        )
        return [dict(row) for row in rows]

    def draft_counts(self) -> dict[str, dict[str, int]]:
        """``strategy -> {status: count}``."""
        result: dict[str, dict[str, int]] = {}
        for row in self._query("SELECT strategy, status, COUNT(*) FROM drafts GROUP BY strategy, status"):
            result.setdefault(row[0], {})[row[1]] = int(row[2])
        return result
