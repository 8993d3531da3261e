"""Workspace tables of the judge: verdicts (cached like drafts) and calibrations of judge prompts.

Verdicts use the draft stage's claims and write-ahead ledger (``claim_work``, ``reserve_call``,
``_finalise_call``): a verdict is stored in the same transaction that finalises the ledger row of
the call that produced it, so a killed judge run never loses a paid answer, two processes never
pay for one verdict, and the judge's spend counts against the same ``--budget-usd`` as drafting's. A calibration stores each prompt's
agreement figures; the one marked ``chosen`` is the workspace's calibrated judge.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from data_tools.workspace._base import StoreMixin, now
from data_tools.workspace.drafts import CallRecord

_VERDICT_DONE = "SELECT 1 FROM judge_verdicts WHERE cache_key = ? AND status = 'done'"
# A done verdict is paid work: a later outcome for the same key (another process's failure after a
# takeover) adds its attempts and cost but never replaces the verdict.
_KEEP_DONE = ", ".join(
    f"{column} = CASE WHEN judge_verdicts.status = 'done' THEN judge_verdicts.{column} ELSE excluded.{column} END"
    for column in ("status", "verdict_json", "raw_text", "error", "run_id")
)


@dataclass
class VerdictRecord:
    """A judge's answer (or why there is none) for one image, caption pair or caption, and order."""

    cache_key: str
    image_id: str
    mode: str  # pairwise | rubric
    prompt_version: str
    prompt_sha256: str
    backend: str
    model: str
    params: dict[str, Any]
    subject: dict[str, Any]  # pairwise: first/second (system or draft key) + caption hashes; rubric: item
    status: str  # done | failed
    verdict: dict[str, Any] | None = None
    raw_text: str | None = None
    attempts: int = 0
    error: str | None = None
    cost_usd: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # not stored

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> VerdictRecord:
        data = dict(row)
        return cls(
            cache_key=data["cache_key"], image_id=data["image_id"], mode=data["mode"],
            prompt_version=data["prompt_version"], prompt_sha256=data["prompt_sha256"], backend=data["backend"],
            model=data["model"], params=json.loads(data["params_json"]), subject=json.loads(data["subject_json"]),
            status=data["status"], verdict=json.loads(data["verdict_json"]) if data["verdict_json"] else None,
            raw_text=data["raw_text"], attempts=data["attempts"], error=data["error"], cost_usd=data["cost_usd"],
        )  # fmt: skip


class JudgeStoreMixin(StoreMixin):
    """Judge access for :class:`~data_tools.workspace.store.Workspace`."""

    def verdict_states(self) -> dict[str, tuple[str, int]]:
        """``cache_key -> (status, attempts)`` of every verdict recorded so far."""
        return {
            row[0]: (row[1], int(row[2]))
            for row in self._query("SELECT cache_key, status, attempts FROM judge_verdicts")
        }

    def verdict_status(self, cache_key: str) -> str | None:
        """``done``/``failed`` of the verdict with this key, None if there is none."""
        rows = self._query("SELECT status FROM judge_verdicts WHERE cache_key = ?", (cache_key,))
        return str(rows[0][0]) if rows else None

    def verdict_taken(self, cache_key: str, run_id: int, *, ttl_s: float) -> str | None:
        """``done``/``held`` when another process finished or holds this verdict (see ``work_taken``)."""
        return self.work_taken(cache_key, run_id, ttl_s=ttl_s, done_sql=_VERDICT_DONE)  # type: ignore[attr-defined]

    def reserve_verdict_call(
        self, call: CallRecord, run_id: int, *, budget_usd: float | None, ttl_s: float, claim: bool
    ) -> Any:
        """``reserve_call`` for a verdict; ``claim`` (stage ``judge``) on its first attempt."""
        return self.reserve_call(  # type: ignore[attr-defined]
            call, run_id, budget_usd=budget_usd, ttl_s=ttl_s,
            claim="judge" if claim else None, done_sql=_VERDICT_DONE if claim else None,
        )  # fmt: skip

    def finish_judge_call(
        self,
        call_id: int,
        call: CallRecord,
        run_id: int,
        verdict: VerdictRecord | None,
        *,
        release: str | None,
    ) -> None:
        """Finalise the reserved ledger row, store ``verdict`` and release the claim — in one transaction."""
        with self.transaction() as db:
            self._finalise_call(db, call_id, call, run_id, release)  # type: ignore[attr-defined]
            if verdict is not None:
                self._upsert_verdict(db, verdict, run_id)

    def save_verdict(self, verdict: VerdictRecord, run_id: int) -> None:
        with self.transaction() as db:
            self._upsert_verdict(db, verdict, run_id)

    @staticmethod
    def _upsert_verdict(db: sqlite3.Connection, v: VerdictRecord, run_id: int) -> None:
        db.execute(
            """INSERT INTO judge_verdicts (cache_key, image_id, mode, prompt_version, prompt_sha256, backend, model,
                 params_json, subject_json, status, verdict_json, raw_text, attempts, error, cost_usd, run_id, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(cache_key) DO UPDATE SET """
            + _KEEP_DONE
            + """, attempts = judge_verdicts.attempts + excluded.attempts,
                 cost_usd = judge_verdicts.cost_usd + excluded.cost_usd, updated_at = excluded.updated_at""",
            (
                v.cache_key, v.image_id, v.mode, v.prompt_version, v.prompt_sha256, v.backend, v.model,
                json.dumps(v.params, sort_keys=True), json.dumps(v.subject, sort_keys=True, ensure_ascii=False),
                v.status, json.dumps(v.verdict, ensure_ascii=False) if v.verdict is not None else None,
                v.raw_text, v.attempts, v.error, v.cost_usd, run_id, now(),
            ),
        )  # fmt: skip

    def verdicts(self, keys: list[str] | None = None) -> dict[str, VerdictRecord]:
        """``cache_key -> verdict`` (of ``keys`` only, when given)."""
        if keys is None:
            rows = self._query("SELECT * FROM judge_verdicts")
        else:
            rows = []
            wanted = list(dict.fromkeys(keys))
            for start in range(0, len(wanted), 500):  # SQLite caps bound parameters
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows += self._query(f"SELECT * FROM judge_verdicts WHERE cache_key IN ({marks})", chunk)
        return {row["cache_key"]: VerdictRecord.from_sql(row) for row in rows}

    def verdict_prompt_hashes(self) -> dict[str, set[str]]:
        """``prompt_version -> {prompt file sha256}`` seen in recorded verdicts."""
        result: dict[str, set[str]] = {}
        for row in self._query("SELECT DISTINCT prompt_version, prompt_sha256 FROM judge_verdicts"):
            result.setdefault(row[0], set()).add(row[1])
        return result

    def save_calibrations(self, rows: list[dict[str, Any]], chosen: str | None, run_id: int | None) -> None:
        """Store one calibration per prompt version (``{"prompt_version", "backend", "model", "metrics"}``)."""
        with self.transaction() as db:
            for row in rows:
                db.execute(
                    """INSERT INTO judge_calibrations (run_id, prompt_version, backend, model, metrics_json, chosen,
                         created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    (run_id, row["prompt_version"], row["backend"], row["model"],
                     json.dumps(row["metrics"], sort_keys=True), int(row["prompt_version"] == chosen), now()),
                )  # fmt: skip

    def calibrated_judge(
        self, backend: str | None = None, model: str | None = None, prompt_version: str | None = None
    ) -> dict[str, Any] | None:
        """The latest calibration marked chosen (for this backend/model when given), or None.

        With ``prompt_version``: that prompt's latest calibration, chosen or not (a team may judge with a
        prompt that lost the comparison; its measured agreement still belongs next to its win rates).
        """
        clauses, params = ([] if prompt_version else ["chosen = 1"]), []
        for column, value in (("backend", backend), ("model", model), ("prompt_version", prompt_version)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM judge_calibrations {where} ORDER BY id DESC LIMIT 1", params)
        if not rows:
            return None
        row = dict(rows[0])
        return {"prompt_version": row["prompt_version"], "backend": row["backend"], "model": row["model"],
                "metrics": json.loads(row["metrics_json"]), "chosen": bool(row["chosen"]), "run_id": row["run_id"],
                "created_at": row["created_at"]}  # fmt: skip
