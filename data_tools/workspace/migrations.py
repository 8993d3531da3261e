"""Append-only, named schema migrations for the workspace database.

Why append-only: a workspace holds paid API results and human reviews, so it must open with any
later Mirada. Each migration is a named function recorded in ``_migrations`` once applied; a new
schema change is a new function appended to ``MIGRATIONS``, never an edit of an old one (the
approach of simonw/llm's ``migrations.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]


def m001_initial(db: sqlite3.Connection) -> None:
    """Runs, collected images, their provenance and every input seen (accepted or rejected)."""
    _execute_all(
        db,
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stage TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            config_json TEXT NOT NULL,
            summary_json TEXT
        );
        CREATE TABLE images (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            file_name TEXT NOT NULL,
            format TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            phash TEXT NOT NULL,
            country TEXT,
            language TEXT,
            region TEXT,
            category TEXT,
            cultural_context TEXT,
            reference_captions_json TEXT NOT NULL DEFAULT '[]',
            license TEXT,
            author TEXT,
            source TEXT NOT NULL,
            source_id TEXT,
            source_url TEXT,
            publishable INTEGER NOT NULL,
            flags_json TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'ok',
            cluster_id TEXT,
            dup_of TEXT REFERENCES images(id),
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX images_seq ON images(seq);
        CREATE INDEX images_status ON images(status);
        CREATE TABLE image_sources (
            image_id TEXT NOT NULL REFERENCES images(id),
            input_key TEXT NOT NULL,
            source TEXT NOT NULL,
            source_id TEXT,
            source_url TEXT,
            run_id INTEGER REFERENCES runs(id),
            PRIMARY KEY (image_id, input_key)
        );
        CREATE TABLE inputs (
            input_key TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            outcome TEXT NOT NULL,
            image_id TEXT,
            reason TEXT,
            detail TEXT,
            run_id INTEGER REFERENCES runs(id),
            updated_at TEXT NOT NULL
        );
        CREATE INDEX inputs_outcome ON inputs(outcome);
        """,
    )


def m002_drafts(db: sqlite3.Connection) -> None:
    """Caption drafts (one row per cache key) and the ledger of every paid API call."""
    _execute_all(
        db,
        """
        CREATE TABLE drafts (
            cache_key TEXT PRIMARY KEY,
            image_id TEXT NOT NULL REFERENCES images(id),
            strategy TEXT NOT NULL,
            variant INTEGER NOT NULL,
            perturbation TEXT,
            backend TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            prompt_language TEXT NOT NULL,
            prompt_sha256 TEXT NOT NULL,
            params_json TEXT NOT NULL,
            status TEXT NOT NULL,
            caption TEXT,
            cultural_terms_json TEXT NOT NULL DEFAULT '[]',
            language TEXT,
            confidence REAL,
            raw_text TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            cost_usd REAL NOT NULL DEFAULT 0,
            run_id INTEGER REFERENCES runs(id),
            updated_at TEXT NOT NULL
        );
        CREATE INDEX drafts_image ON drafts(image_id);
        CREATE INDEX drafts_status ON drafts(status);
        CREATE TABLE api_calls (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER REFERENCES runs(id),
            cache_key TEXT,
            image_id TEXT,
            backend TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL,
            http_status INTEGER,
            input_tokens INTEGER,
            output_tokens INTEGER,
            billed_input_tokens INTEGER,
            billed_output_tokens INTEGER,
            cost_usd REAL NOT NULL DEFAULT 0,
            cost_upper_usd REAL NOT NULL DEFAULT 0,
            latency_s REAL,
            error TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX api_calls_key ON api_calls(cache_key);
        """,
    )


def m003_reviews(db: sqlite3.Connection) -> None:
    """Review records pushed to Argilla (with the hidden slot → draft mapping), responses, decisions."""
    _execute_all(
        db,
        """
        CREATE TABLE review_items (
            dataset TEXT NOT NULL,
            record_id TEXT NOT NULL,
            image_id TEXT NOT NULL REFERENCES images(id),
            slots_json TEXT NOT NULL,
            pushed_at TEXT NOT NULL,
            PRIMARY KEY (dataset, record_id)
        );
        CREATE TABLE review_responses (
            dataset TEXT NOT NULL,
            record_id TEXT NOT NULL,
            image_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            username TEXT NOT NULL,
            status TEXT NOT NULL,
            ranking_json TEXT NOT NULL DEFAULT '{}',
            acceptable_json TEXT NOT NULL DEFAULT '{}',
            problems_json TEXT NOT NULL DEFAULT '[]',
            correction TEXT,
            raw_json TEXT NOT NULL,
            source TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (dataset, record_id, user_id)
        );
        CREATE INDEX review_responses_image ON review_responses(image_id);
        CREATE TABLE review_decisions (
            dataset TEXT NOT NULL,
            record_id TEXT NOT NULL,
            image_id TEXT NOT NULL,
            decision_json TEXT NOT NULL,
            policy_json TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (dataset, record_id)
        );
        """,
    )


def m004_review_content(db: sqlite3.Connection) -> None:
    """What each pushed record showed (a hash), so a re-push skips records whose content is unchanged."""
    db.execute("ALTER TABLE review_items ADD COLUMN content_sha TEXT")


def m005_run_owner(db: sqlite3.Connection) -> None:
    """Which process runs a stage, so a run left ``running`` by a dead process reads as interrupted."""
    db.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN host TEXT")


def m008_generations(db: sqlite3.Connection) -> None:
    """Split assignments recorded by prefs, generated captions per system, and memoised file hashes.

    ``generations`` holds one row per (system, cache key); ``seq`` grows each time a row is produced
    or re-confirmed, so "the latest caption of an image by a system" is the row with the largest
    ``seq`` even after a system switched back to an adapter it had used before.
    """
    _execute_all(
        db,
        """
        CREATE TABLE split_sets (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            dataset TEXT NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL
        );
        CREATE TABLE split_items (
            set_id INTEGER NOT NULL REFERENCES split_sets(id),
            image_id TEXT NOT NULL,
            split TEXT NOT NULL,
            PRIMARY KEY (set_id, image_id)
        );
        CREATE TABLE generations (
            system TEXT NOT NULL,
            key TEXT NOT NULL,
            seq INTEGER NOT NULL,
            image_id TEXT NOT NULL,
            caption TEXT NOT NULL,
            language TEXT,
            country TEXT,
            seconds REAL,
            tokens INTEGER,
            model TEXT NOT NULL,
            adapter TEXT,
            settings_json TEXT NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (system, key)
        );
        CREATE INDEX generations_key ON generations(key);
        CREATE INDEX generations_latest ON generations(system, image_id, seq);
        CREATE TABLE file_hashes (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL
        );
        """,
    )


def m009_project(db: sqlite3.Connection) -> None:
    """Project settings set once per workspace (Hub owner, dataset name, code URL) for every card."""
    db.execute("CREATE TABLE project (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)")


def m007_review_identity(db: sqlite3.Connection) -> None:
    """A stable workspace id for external names, and what each pushed record suggested as its correction.

    Argilla dataset names used to come from the workspace folder's name, so renaming or copying the
    folder made the next push create a second set of datasets. The id is generated once, here, and
    travels with the database. A workspace that already pushed keeps the prefix its datasets have
    (derived from the stored dataset names), so upgrading does not split its review either.

    ``suggestion``/``suggestion_key`` record the pre-filled correction a record was pushed with, so
    an answer that leaves it unchanged counts as accepting that candidate, not as a human correction.
    """
    import uuid

    db.execute("CREATE TABLE workspace_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO workspace_meta (key, value) VALUES ('workspace_id', ?)", (uuid.uuid4().hex,))
    db.execute("ALTER TABLE review_items ADD COLUMN suggestion TEXT")
    db.execute("ALTER TABLE review_items ADD COLUMN suggestion_key TEXT")
    prefixes = set()
    for dataset, language in db.execute(
        "SELECT DISTINCT r.dataset, i.language FROM review_items r LEFT JOIN images i ON i.id = r.image_id"
    ):
        suffix = f"-{language or 'und'}"
        if dataset.endswith(suffix) and len(dataset) > len(suffix):
            prefixes.add(dataset[: -len(suffix)])
    if len(prefixes) == 1:
        db.execute("INSERT INTO workspace_meta (key, value) VALUES ('review_prefix', ?)", (prefixes.pop(),))
def m006_claims(db: sqlite3.Connection) -> None:
    """Paid work claimed in the database: claims per work key, a heartbeat per run, and a write-ahead ledger.

    A claim (``work_key`` -> the run holding it) is taken before a paid call, so two processes on one
    workspace never pay for the same candidate; the run's ``heartbeat_at`` (unix seconds) and its
    pid/host tell a live owner from a dead one. An ``api_calls`` row with status ``reserved`` is written
    before a request leaves and finalised after it, so a killed process's call still counts against
    the budget at its upper bound.
    """
    db.execute("ALTER TABLE runs ADD COLUMN heartbeat_at REAL")
    db.execute(
        """CREATE TABLE claims (
            work_key TEXT PRIMARY KEY,
            stage TEXT NOT NULL,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            claimed_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX claims_run ON claims(run_id)")
    db.execute("CREATE INDEX api_calls_status ON api_calls(status)")


def m011_judge(db: sqlite3.Connection) -> None:
    """Judge verdicts (one row per cache key, like drafts) and each calibration of a judge prompt.

    A verdict's cache key covers the image, both captions in the order shown, the prompt version,
    backend, model and decoding settings, so a rerun never pays for a verdict it already has; its
    paid calls go to ``api_calls`` like drafting's, so one budget covers both.
    """
    _execute_all(
        db,
        """
        CREATE TABLE judge_verdicts (
            cache_key TEXT PRIMARY KEY,
            image_id TEXT NOT NULL,
            mode TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            prompt_sha256 TEXT NOT NULL,
            backend TEXT NOT NULL,
            model TEXT NOT NULL,
            params_json TEXT NOT NULL,
            subject_json TEXT NOT NULL,
            status TEXT NOT NULL,
            verdict_json TEXT,
            raw_text TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            cost_usd REAL NOT NULL DEFAULT 0,
            run_id INTEGER REFERENCES runs(id),
            updated_at TEXT NOT NULL
        );
        CREATE INDEX judge_verdicts_image ON judge_verdicts(image_id);
        CREATE TABLE judge_calibrations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER REFERENCES runs(id),
            prompt_version TEXT NOT NULL,
            backend TEXT NOT NULL,
            model TEXT NOT NULL,
            metrics_json TEXT NOT NULL,
            chosen INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        """,
    )


MIGRATIONS: list[Migration] = [
    m001_initial,
    m002_drafts,
    m003_reviews,
    m004_review_content,
    m005_run_owner,
    m006_claims,
    m007_review_identity,
    m008_generations,
    m009_project,
    m011_judge,
]


def _execute_all(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it COMMITs first, which would split a migration across transactions.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def apply_migrations(db: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; return the names applied.

    ``db`` must be in autocommit mode (``isolation_level=None``) so that transactions are explicit.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for migration in migrations:
        name = migration.__name__
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")  # a migration is applied whole or not at all
        try:
            migration(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        applied.append(name)
    return applied
