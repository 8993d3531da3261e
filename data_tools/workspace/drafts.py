"""Workspace tables of the draft stage: caption drafts, the API-call ledger and claims on paid work.

Every paid call is written to the ledger in the same transaction as the draft it produced (or the
failure it caused), so spend shown by ``mirada status`` always equals the sum of the ledger, and a
result is never acknowledged before it is on disk.

Paid work is coordinated in the database, not in memory, so several processes on one workspace
(two teammates running ``mirada draft``; later the judge stage) behave as one:

* a **claim** (``claims``: work key -> run) is taken before a paid call and released with its
  result; a claim whose run is dead (process gone, or heartbeat older than the TTL) is free again;
* the ledger is **write-ahead**: a row with status ``reserved`` and the call's upper-bound cost is
  committed before the request leaves, in the same ``BEGIN IMMEDIATE`` transaction that checks the
  budget against everything spent or reserved by any process, and finalised with the billed cost
  afterwards. A reservation left by a dead process becomes ``lost`` (billing unknown) and keeps
  counting at its upper bound, so the budget stays a hard cap across processes and ``kill -9``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
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


RESERVED = "reserved"  # ledger status of a call whose request may be on the wire
LOST = "lost"  # a reservation whose process died: billing unknown, counted at its upper bound
_LOST_REASON = (
    "the process ended while this request was in flight; billing unknown, counted at its upper bound"
)
_DRAFT_DONE = "SELECT 1 FROM drafts WHERE cache_key = ? AND status = 'done'"
_EPSILON = 1e-12
# A done draft is paid work: a later outcome for the same key (another process's failure, a late
# answer after a takeover) adds its attempts and cost but never replaces the caption.
_KEEP_DONE = ", ".join(
    f"{column} = CASE WHEN drafts.status = 'done' THEN drafts.{column} ELSE excluded.{column} END"
    for column in (
        "status",
        "caption",
        "cultural_terms_json",
        "language",
        "confidence",
        "raw_text",
        "error",
        "run_id",
    )
)


@dataclass(frozen=True)
class Reservation:
    """The answer of :meth:`DraftStoreMixin.reserve_call`.

    ``call_id`` is the ledger row written ahead of the request, or None when the budget cannot take
    it; then ``wait`` says whether only live in-flight reservations stand in the way (they mostly come
    back, so waiting is worth it) or money spent and dead reservations already do (stop), and
    ``taken`` whether another process finished or holds the work.
    """

    call_id: int | None
    wait: bool = False
    taken: str | None = None  # "done" / "held": the work is another process's (claiming reservations only)


class DraftStoreMixin(StoreMixin):
    """Draft and ledger access for :class:`~data_tools.workspace.store.Workspace`."""

    _db: sqlite3.Connection  # provided by Workspace
    _lock: threading.RLock

    def draft_states(self) -> dict[str, tuple[str, int]]:
        """``cache_key -> (status, attempts)`` of every draft recorded so far."""
        return {
            row[0]: (row[1], int(row[2]))
            for row in self._query("SELECT cache_key, status, attempts FROM drafts")
        }

    def draft_status(self, cache_key: str) -> str | None:
        """``done``/``failed`` of the draft with this key, None if there is none."""
        rows = self._query("SELECT status FROM drafts WHERE cache_key = ?", (cache_key,))
        return str(rows[0][0]) if rows else None

    def record_call(self, call: CallRecord, run_id: int, draft: DraftRecord | None = None) -> None:
        """Append ``call`` to the ledger and, if given, upsert ``draft`` — in one transaction."""
        with self.transaction() as db:
            self._insert_call(db, call, run_id)
            if draft is not None:
                self._upsert_draft(db, draft, run_id)

    # -- paid work: heartbeats, claims, write-ahead reservations ----------------------------------
    def heartbeat(self, run_id: int) -> None:
        """Say that ``run_id``'s process is still working (its claims and reservations stay held)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (time.time(), run_id))

    @staticmethod
    def _live_runs(db: sqlite3.Connection, run_ids: Iterable[int], ttl_s: float) -> set[int]:
        """The runs among ``run_ids`` whose process still works: running, owner alive, heartbeat fresh."""
        from data_tools.workspace.store import _owner_alive  # store imports this module

        ids = sorted(set(run_ids))
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = db.execute(
            f"SELECT id, status, pid, host, heartbeat_at FROM runs WHERE id IN ({marks})", ids
        ).fetchall()
        clock = time.time()
        return {
            int(row[0])
            for row in rows
            if row[1] == "running"
            and _owner_alive(row[2], row[3])
            and (row[4] is None or clock - float(row[4]) <= ttl_s)
        }

    def claim_work(
        self, stage: str, work_key: str, run_id: int, *, ttl_s: float, done_sql: str | None = None
    ) -> str:
        """Claim ``work_key`` for ``run_id`` before paying for it: ``claimed``, ``held`` or ``done``.

        ``done_sql`` (one ``?`` for the key) finds work another process already finished, checked in
        the same transaction so a result committed a moment ago is never paid for again. A claim held
        by a dead run is taken over.
        """
        # A plain read first: taken work is skipped without the write lock, so processes walking the
        # same list do not queue behind each other; the decision is repeated under the lock below.
        taken = self.work_taken(work_key, run_id, ttl_s=ttl_s, done_sql=done_sql)
        if taken:
            return taken
        with self.transaction() as db:
            taken = self._claim_taken(db, work_key, run_id, ttl_s, done_sql)
            if taken:
                return taken
            self._insert_claim(db, stage, work_key, run_id)
            return "claimed"

    @staticmethod
    def _insert_claim(db: sqlite3.Connection, stage: str, work_key: str, run_id: int) -> None:
        db.execute(
            """INSERT INTO claims (work_key, stage, run_id, claimed_at) VALUES (?, ?, ?, ?)
               ON CONFLICT(work_key) DO UPDATE SET stage = excluded.stage, run_id = excluded.run_id,
                 claimed_at = excluded.claimed_at""",
            (work_key, stage, run_id, now()),
        )

    def work_taken(
        self, work_key: str, run_id: int, *, ttl_s: float, done_sql: str | None = None
    ) -> str | None:
        """``done``/``held`` when another process finished or holds ``work_key`` (a lock-free read)."""
        with self._lock:
            return self._claim_taken(self._db, work_key, run_id, ttl_s, done_sql)

    def draft_taken(self, cache_key: str, run_id: int, *, ttl_s: float) -> str | None:
        """:meth:`work_taken` for a draft candidate."""
        return self.work_taken(cache_key, run_id, ttl_s=ttl_s, done_sql=_DRAFT_DONE)

    def _claim_taken(
        self, db: sqlite3.Connection, work_key: str, run_id: int, ttl_s: float, done_sql: str | None
    ) -> str | None:
        if done_sql and db.execute(done_sql, (work_key,)).fetchone():
            return "done"
        row = db.execute("SELECT run_id FROM claims WHERE work_key = ?", (work_key,)).fetchone()
        if row and int(row[0]) != run_id and self._live_runs(db, [int(row[0])], ttl_s):
            return "held"
        return None

    def claim_draft(self, cache_key: str, run_id: int, *, ttl_s: float) -> str:
        """:meth:`claim_work` for a draft candidate (``done`` when a draft with this key is done)."""
        return self.claim_work("draft", cache_key, run_id, ttl_s=ttl_s, done_sql=_DRAFT_DONE)

    def release_claims(self, run_id: int, work_keys: Iterable[str] | None = None) -> None:
        """Give up ``run_id``'s claims (all of them, or those on ``work_keys``)."""
        with self.transaction() as db:
            if work_keys is None:
                db.execute("DELETE FROM claims WHERE run_id = ?", (run_id,))
            else:
                db.executemany(
                    "DELETE FROM claims WHERE work_key = ? AND run_id = ?",
                    [(key, run_id) for key in work_keys],
                )

    def claims(self) -> dict[str, int]:
        """``work_key -> run_id`` of every claim currently recorded (live or not)."""
        return {row[0]: int(row[1]) for row in self._query("SELECT work_key, run_id FROM claims")}

    def reserve_call(
        self,
        call: CallRecord,
        run_id: int,
        *,
        budget_usd: float | None,
        ttl_s: float,
        claim: str | None = None,
        done_sql: str | None = None,
    ) -> Reservation:
        """Write ``call`` (status ``reserved``, ``cost_upper_usd`` = its upper bound) ahead of the request.

        With a budget, the check and the write are one ``BEGIN IMMEDIATE`` transaction, so no two
        processes can both take the last dollars: everything billed, every unknown outcome at its
        upper bound, and every reservation (live or dead) plus this one must fit. With ``claim`` (a
        stage name), the same transaction first claims ``call.cache_key`` as :meth:`claim_work` does
        (a first attempt: one commit instead of two); ``Reservation.taken`` says why it could not.
        """
        with self.transaction() as db:
            if claim is not None and call.cache_key is not None:
                taken = self._claim_taken(db, call.cache_key, run_id, ttl_s, done_sql)
                if taken:
                    return Reservation(None, taken=taken)
            if budget_usd is not None:
                spent = float(
                    db.execute(
                        "SELECT COALESCE(SUM(cost_usd), 0) + COALESCE(SUM(cost_upper_usd), 0) FROM api_calls "
                        "WHERE status != ?",
                        (RESERVED,),
                    ).fetchone()[0]
                )
                held = db.execute(
                    "SELECT run_id, SUM(cost_upper_usd) FROM api_calls WHERE status = ? GROUP BY run_id",
                    (RESERVED,),
                ).fetchall()
                live = self._live_runs(db, [int(r[0]) for r in held if r[0] is not None], ttl_s)
                live_usd = sum(float(r[1]) for r in held if r[0] in live)
                dead_usd = sum(float(r[1]) for r in held if r[0] not in live)
                if spent + dead_usd + call.cost_upper_usd > budget_usd + _EPSILON:
                    return Reservation(None, wait=False)
                if spent + dead_usd + live_usd + call.cost_upper_usd > budget_usd + _EPSILON:
                    return Reservation(None, wait=True)
            if claim is not None and call.cache_key is not None:
                self._insert_claim(db, claim, call.cache_key, run_id)
            cursor = self._insert_call(db, call, run_id, status=RESERVED)
            return Reservation(int(cursor.lastrowid or 0))

    def reserve_draft_call(
        self, call: CallRecord, run_id: int, *, budget_usd: float | None, ttl_s: float, claim: bool
    ) -> Reservation:
        """:meth:`reserve_call` for a draft candidate; ``claim`` on its first attempt."""
        return self.reserve_call(
            call, run_id, budget_usd=budget_usd, ttl_s=ttl_s,
            claim="draft" if claim else None, done_sql=_DRAFT_DONE if claim else None,
        )  # fmt: skip

    def finish_call(
        self,
        call_id: int,
        call: CallRecord,
        run_id: int,
        draft: DraftRecord | None = None,
        *,
        release: str | None = None,
    ) -> None:
        """Finalise a reserved ledger row with what the call cost, its draft and its claim, atomically."""
        with self.transaction() as db:
            self._finalise_call(db, call_id, call, run_id, release)
            if draft is not None:
                self._upsert_draft(db, draft, run_id)

    @staticmethod
    def _finalise_call(
        db: sqlite3.Connection, call_id: int, call: CallRecord, run_id: int, release: str | None
    ) -> None:
        """The ledger half of :meth:`finish_call`, inside the caller's transaction (the judge's too)."""
        db.execute(
            """UPDATE api_calls SET status = ?, http_status = ?, input_tokens = ?, output_tokens = ?,
                 billed_input_tokens = ?, billed_output_tokens = ?, cost_usd = ?, cost_upper_usd = ?,
                 latency_s = ?, error = ? WHERE id = ?""",
            (
                call.status, call.http_status, call.input_tokens, call.output_tokens, call.billed_input_tokens,
                call.billed_output_tokens, call.cost_usd, call.cost_upper_usd, call.latency_s, call.error,
                call_id,
            ),
        )  # fmt: skip
        if release is not None:
            db.execute("DELETE FROM claims WHERE work_key = ? AND run_id = ?", (release, run_id))

    def reconcile_lost_calls(self, *, ttl_s: float) -> tuple[int, float]:
        """Mark reservations of dead runs ``lost``; return how many and their upper bound (still counted)."""
        with self.transaction() as db:
            held = db.execute(
                "SELECT id, run_id, cost_upper_usd FROM api_calls WHERE status = ?", (RESERVED,)
            ).fetchall()
            live = self._live_runs(db, [int(r[1]) for r in held if r[1] is not None], ttl_s)
            lost = [row for row in held if row[1] not in live]
            db.executemany(
                "UPDATE api_calls SET status = ?, error = ? WHERE id = ?",
                [(LOST, _LOST_REASON, row[0]) for row in lost],
            )
            return len(lost), sum(float(row[2]) for row in lost)

    @staticmethod
    def _insert_call(
        db: sqlite3.Connection, call: CallRecord, run_id: int, *, status: str | None = None
    ) -> sqlite3.Cursor:
        return db.execute(
            """INSERT INTO api_calls (run_id, cache_key, image_id, backend, model, status, http_status,
                 input_tokens, output_tokens, billed_input_tokens, billed_output_tokens, cost_usd, cost_upper_usd,
                 latency_s, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run_id, call.cache_key, call.image_id, call.backend, call.model, status or call.status,
                call.http_status, call.input_tokens, call.output_tokens, call.billed_input_tokens,
                call.billed_output_tokens, call.cost_usd, call.cost_upper_usd, call.latency_s, call.error, now(),
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
               ON CONFLICT(cache_key) DO UPDATE SET """
            + _KEEP_DONE
            + """, attempts = drafts.attempts + excluded.attempts,
                 cost_usd = drafts.cost_usd + excluded.cost_usd, updated_at = excluded.updated_at""",
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
