"""The workspace: ``mirada.db`` (SQLite, WAL), content-addressed ``images/`` and ``exports/``.

All SQL in Mirada lives in this package; stages call methods. Writes that record work are
committed before the method returns (autocommit connection, explicit short transactions), so a
process killed at any point leaves a consistent database and a rerun resumes from it. The trade-off
is one fsync-ish commit per recorded item, which WAL mode with ``synchronous=NORMAL`` makes cheap.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_tools.errors import UserError
from data_tools.records import ImageMetadata
from data_tools.workspace._base import now
from data_tools.workspace.drafts import DraftStoreMixin
from data_tools.workspace.generations import GenerationStoreMixin
from data_tools.workspace.judge import JudgeStoreMixin
from data_tools.workspace.migrations import apply_migrations
from data_tools.workspace.project import ProjectStoreMixin
from data_tools.workspace.reviews import ReviewStoreMixin

DB_NAME = "mirada.db"


@dataclass(frozen=True)
class ImageRow:
    """One collected image as stored in the workspace."""

    id: str
    seq: int
    file_name: str
    format: str
    width: int
    height: int
    phash: str
    country: str | None
    language: str | None
    region: str | None
    category: str | None
    cultural_context: str | None
    reference_captions: list[str]
    license: str | None
    author: str | None
    source: str
    source_id: str | None
    source_url: str | None
    publishable: bool
    flags: list[str]
    status: str
    cluster_id: str | None
    dup_of: str | None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> ImageRow:
        data = dict(row)
        data["reference_captions"] = json.loads(data.pop("reference_captions_json"))
        data["flags"] = json.loads(data.pop("flags_json"))
        data["publishable"] = bool(data["publishable"])
        for key in ("run_id", "created_at"):
            data.pop(key, None)
        return cls(**data)


@dataclass(frozen=True)
class InputRow:
    """What collect decided about one input (a file, a dataset row, a URL)."""

    input_key: str
    fingerprint: str
    outcome: str  # accepted | duplicate | rejected
    image_id: str | None
    reason: str | None
    detail: str | None


_HOST = socket.gethostname()


@dataclass
class RunRecord:
    """The run a ``with workspace.run(...)`` block records: fill ``summary``; ``status`` overrides."""

    id: int
    stage: str
    summary: dict[str, Any] = field(default_factory=dict)
    status: str | None = None


def _owner_alive(pid: int | None, host: str | None) -> bool:
    """Whether the process that started a run still exists (unknown owners count as alive)."""
    if pid is None or host != _HOST:
        return True  # runs from before m005, or from another machine: we cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet still answers kill(0): it is a zombie
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def workspace_of_export(path: str | os.PathLike[str]) -> Path | None:
    """The workspace a stage export lives in (``WS/exports/<stage>/<name>``), or None for any other path.

    Lets later stages that are handed an export folder (train gets ``WS/exports/prefs/NAME``) record
    their run in the workspace that made the data, without a second ``--workspace`` argument.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir() or folder.parent.parent.name != "exports":
        return None
    root = folder.parent.parent.parent
    return root if (root / DB_NAME).is_file() else None


class WorkspaceError(UserError, RuntimeError):
    """The workspace cannot be opened or is not a Mirada workspace."""


class Workspace(DraftStoreMixin, ReviewStoreMixin, GenerationStoreMixin, ProjectStoreMixin, JudgeStoreMixin):
    """A Mirada project directory. Open with ``Workspace.open(path)``; close or use as a context manager."""

    def __init__(self, root: Path, db: sqlite3.Connection) -> None:
        self.root = root
        self._db = db
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction() blocks; only touched by the thread holding _lock

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike[str], *, create: bool = True) -> Workspace:
        """Open (and with ``create`` make) the workspace at ``root``, applying pending migrations."""
        root = Path(root)
        if not (root / DB_NAME).exists():
            if not create:
                raise WorkspaceError(
                    f"{root} is not a Mirada workspace (no {DB_NAME}); run `mirada collect` first"
                )
            if root.exists() and not root.is_dir():
                raise WorkspaceError(f"{root} exists and is not a directory")
        for sub in ("", "images", "exports"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; transactions are explicit (see transaction()).
        db = sqlite3.connect(root / DB_NAME, isolation_level=None, check_same_thread=False, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        apply_migrations(db)
        return cls(root, db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write; committed when the outermost block exits normally.

        Nested blocks (on the thread holding the lock) join the outer transaction, so a caller can
        make several store methods one atomic unit: e.g. review responses and the decisions derived
        from them, which must never be seen half-written.
        """
        with self._lock:
            if self._depth:  # this thread already holds an open transaction: join it
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")  # raises if a transaction leaked: loud, never joined silently
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._query("SELECT name FROM _migrations ORDER BY rowid")]

    # -- runs ------------------------------------------------------------------------------------
    @contextmanager
    def run(self, stage: str, config: dict[str, Any]) -> Iterator[RunRecord]:
        """Record one stage run around a block: the one start/finish path every stage uses.

        The block fills ``record.summary`` (and may set ``record.status``); a normal exit records
        ``completed``, Ctrl-C ``interrupted``, any other exception ``failed``, and the summary is kept
        in every case. A process killed outright cannot record anything: ``runs()`` reports its run as
        ``interrupted`` because the owner process (pid and host, stored at start) is gone.

            with workspace.run("prefs", config) as run:
                run.summary["rows"] = 42
        """
        record = RunRecord(self.start_run(stage, config), stage)
        status = "completed"
        try:
            yield record
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except SystemExit as exc:
            status = "completed" if exc.code in (0, None) else "failed"
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            self.finish_run(record.id, record.status or status, record.summary)

    def start_run(self, stage: str, config: dict[str, Any]) -> int:
        """Record a stage run with its resolved configuration (secrets must already be removed)."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (stage, started_at, config_json, pid, host) VALUES (?, ?, ?, ?, ?)",
                (stage, now(), json.dumps(config, sort_keys=True, default=str), os.getpid(), _HOST),
            )
            return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary_json = ? WHERE id = ?",
                (now(), status, json.dumps(summary, sort_keys=True, default=str), run_id),
            )

    def runs(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Every recorded run, oldest first; a ``running`` run whose process is gone reads ``interrupted``."""
        sql = "SELECT * FROM runs" + (" WHERE stage = ?" if stage else "") + " ORDER BY id"
        rows = self._query(sql, (stage,) if stage else ())
        result = []
        for row in rows:
            item = dict(row)
            item["config"] = json.loads(item.pop("config_json"))
            item["summary"] = json.loads(item.pop("summary_json") or "null")
            if item["status"] == "running" and not _owner_alive(item.get("pid"), item.get("host")):
                item["status"] = "interrupted"
            result.append(item)
        return result

    # -- inputs ----------------------------------------------------------------------------------
    def get_input(self, input_key: str) -> InputRow | None:
        rows = self._query(
            "SELECT input_key, fingerprint, outcome, image_id, reason, detail FROM inputs WHERE input_key = ?",
            (input_key,),
        )
        return InputRow(**dict(rows[0])) if rows else None

    def record_rejection(
        self, input_key: str, fingerprint: str, reason: str, detail: str, run_id: int
    ) -> None:
        with self.transaction() as db:
            self._upsert_input(db, input_key, fingerprint, "rejected", None, reason, detail, run_id)

    @staticmethod
    def _upsert_input(
        db: sqlite3.Connection,
        input_key: str,
        fingerprint: str,
        outcome: str,
        image_id: str | None,
        reason: str | None,
        detail: str | None,
        run_id: int,
    ) -> None:
        db.execute(
            """INSERT INTO inputs (input_key, fingerprint, outcome, image_id, reason, detail, run_id, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(input_key) DO UPDATE SET fingerprint = excluded.fingerprint,
                 outcome = excluded.outcome, image_id = excluded.image_id, reason = excluded.reason,
                 detail = excluded.detail, run_id = excluded.run_id, updated_at = excluded.updated_at""",
            (input_key, fingerprint, outcome, image_id, reason, detail, run_id, now()),
        )

    def rejections(self) -> list[InputRow]:
        rows = self._query(
            "SELECT input_key, fingerprint, outcome, image_id, reason, detail FROM inputs "
            "WHERE outcome = 'rejected' ORDER BY input_key"
        )
        return [InputRow(**dict(row)) for row in rows]

    def clear_stale_rejections(self, source: str, current: set[str]) -> int:
        """Forget rejections of ``source`` inputs that no longer exist (a fixed sidecar line, a deleted file).

        A rejection is keyed by its input; once the user fixes or removes that input, the key is not
        produced again, and without this the old reason would be reported forever.
        """
        with self.transaction() as db:
            rows = db.execute(
                "SELECT input_key FROM inputs WHERE outcome = 'rejected' AND substr(input_key, 1, ?) = ?",
                (len(source), source),
            ).fetchall()
            stale = [
                row[0]
                for row in rows
                if row[0][len(source) : len(source) + 1] in ("/", "#") and row[0] not in current
            ]
            db.executemany("DELETE FROM inputs WHERE input_key = ?", [(key,) for key in stale])
        return len(stale)

    def count_inputs_by(self, column: str) -> dict[str, int]:
        if column not in {"outcome", "reason"}:
            raise ValueError(f"cannot group inputs by {column!r}")
        rows = self._query(f"SELECT {column}, COUNT(*) FROM inputs GROUP BY {column} ORDER BY 2 DESC")
        return {str(row[0]): int(row[1]) for row in rows if row[0] is not None}

    # -- images ----------------------------------------------------------------------------------
    def add_image(
        self,
        *,
        image_id: str,
        file_name: str,
        fmt: str,
        width: int,
        height: int,
        phash: str,
        meta: ImageMetadata,
        source: str,
        input_key: str,
        fingerprint: str,
        run_id: int,
    ) -> bool:
        """Store a new image, or note another provenance of an exact duplicate.

        Returns True if the image is new. Both the image row and the input's outcome are committed
        in one transaction, so a crash never leaves an input marked done without its image.
        """
        with self.transaction() as db:
            exists = db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is not None
            if not exists:
                seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM images").fetchone()[0]
                db.execute(
                    """INSERT INTO images (id, seq, file_name, format, width, height, phash, country, language,
                         region, category, cultural_context, reference_captions_json, license, author, source,
                         source_id, source_url, publishable, flags_json, status, run_id, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, ?)""",
                    (
                        image_id, seq, file_name, fmt, width, height, phash, meta.country, meta.language,
                        meta.region, meta.category, meta.cultural_context,
                        json.dumps(meta.reference_captions, ensure_ascii=False), meta.license, meta.author,
                        source, meta.source_id, meta.source_url, int(meta.publishable),
                        json.dumps(meta.flags), run_id, now(),
                    ),
                )  # fmt: skip
            db.execute(
                """INSERT OR IGNORE INTO image_sources (image_id, input_key, source, source_id, source_url, run_id)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (image_id, input_key, source, meta.source_id, meta.source_url, run_id),
            )
            outcome = "accepted" if not exists else "duplicate"
            reason = None if not exists else "exact_duplicate"
            self._upsert_input(db, input_key, fingerprint, outcome, image_id, reason, None, run_id)
            return not exists

    def update_metadata(
        self, image_id: str, meta: ImageMetadata, input_key: str, fingerprint: str, run_id: int
    ) -> None:
        """Apply corrected sidecar metadata to an image collected earlier (same pixels, new notes)."""
        with self.transaction() as db:
            db.execute(
                """UPDATE images SET country = ?, language = ?, region = ?, category = ?, cultural_context = ?,
                     reference_captions_json = ?, license = ?, author = ?, source_id = ?, source_url = ?,
                     publishable = ?, flags_json = ? WHERE id = ?""",
                (
                    meta.country, meta.language, meta.region, meta.category, meta.cultural_context,
                    json.dumps(meta.reference_captions, ensure_ascii=False), meta.license, meta.author,
                    meta.source_id, meta.source_url, int(meta.publishable), json.dumps(meta.flags), image_id,
                ),
            )  # fmt: skip
            row = db.execute("SELECT outcome FROM inputs WHERE input_key = ?", (input_key,)).fetchone()
            outcome = row[0] if row else "accepted"
            self._upsert_input(
                db, input_key, fingerprint, outcome, image_id, None, "metadata updated", run_id
            )

    def get_image(self, image_id: str) -> ImageRow | None:
        rows = self._query("SELECT * FROM images WHERE id = ?", (image_id,))
        return ImageRow.from_sql(rows[0]) if rows else None

    def images(self, status: str | None = None) -> list[ImageRow]:
        sql = "SELECT * FROM images" + (" WHERE status = ?" if status else "") + " ORDER BY seq"
        return [ImageRow.from_sql(row) for row in self._query(sql, (status,) if status else ())]

    def image_path(self, image: ImageRow) -> Path:
        return self.images_dir / image.file_name

    def image_sources(self, image_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM image_sources WHERE image_id = ? ORDER BY rowid", (image_id,))
        return [dict(row) for row in rows]

    def phashes(self) -> list[tuple[str, str, int]]:
        """``(id, phash_hex, pixel_count)`` of every image, oldest first."""
        rows = self._query("SELECT id, phash, width * height FROM images ORDER BY seq")
        return [(r[0], r[1], int(r[2])) for r in rows]

    def set_clusters(self, assignments: dict[str, tuple[str | None, str | None]]) -> None:
        """Set ``image_id -> (cluster_id, dup_of)``; an image with ``dup_of`` becomes a near duplicate."""
        with self.transaction() as db:
            db.execute("UPDATE images SET cluster_id = NULL, dup_of = NULL, status = 'ok'")
            db.executemany(
                "UPDATE images SET cluster_id = ?, dup_of = ?, status = ? WHERE id = ?",
                [
                    (cluster, dup_of, "near_duplicate" if dup_of else "ok", image_id)
                    for image_id, (cluster, dup_of) in assignments.items()
                ],
            )

    def count_images_by(self, column: str, status: str | None = "ok") -> dict[str, int]:
        """Counts of images grouped by a metadata column (``None`` values shown as ``"(none)"``)."""
        allowed = {"country", "language", "category", "license", "status", "source", "publishable"}
        if column not in allowed:
            raise ValueError(f"cannot group images by {column!r}; choose from {sorted(allowed)}")
        where = " WHERE status = ?" if status else ""
        rows = self._query(
            f"SELECT {column}, COUNT(*) FROM images{where} GROUP BY {column} ORDER BY 2 DESC, 1",
            (status,) if status else (),
        )
        return {("(none)" if row[0] is None else str(row[0])): int(row[1]) for row in rows}
