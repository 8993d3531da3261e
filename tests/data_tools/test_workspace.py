from __future__ import annotations

import sqlite3

import pytest

from data_tools.records import ImageMetadata
from data_tools.workspace import Workspace, WorkspaceError
from data_tools.workspace import migrations as migrations_module
from data_tools.workspace.migrations import MIGRATIONS, apply_migrations


def test_blank_workspace_has_layout_wal_and_all_migrations(tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        assert (ws.root / "images").is_dir() and (ws.root / "exports").is_dir()
        assert ws.applied_migrations() == [m.__name__ for m in MIGRATIONS]
    db = sqlite3.connect(tmp_path / "ws" / "mirada.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopen_applies_nothing_twice(tmp_path):
    Workspace.open(tmp_path / "ws").close()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.applied_migrations() == [m.__name__ for m in MIGRATIONS]


def test_old_schema_is_upgraded_by_appended_migration(tmp_path, monkeypatch):
    path = tmp_path / "ws"
    Workspace.open(path).close()  # a workspace made by the current release

    def m999_add_note(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE images ADD COLUMN note TEXT")

    monkeypatch.setattr(migrations_module, "MIGRATIONS", [*MIGRATIONS, m999_add_note])
    db = sqlite3.connect(path / "mirada.db", isolation_level=None)
    assert apply_migrations(db) == ["m999_add_note"]
    assert "note" in [row[1] for row in db.execute("PRAGMA table_info(images)")]
    assert apply_migrations(db) == []


def test_failed_migration_rolls_back_whole(tmp_path):
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)

    def m001_half(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE a (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        apply_migrations(db, [m001_half])
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'a'").fetchone() is None
    assert db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == 0


def test_open_missing_without_create_is_clear(tmp_path):
    with pytest.raises(WorkspaceError, match="not a Mirada workspace"):
        Workspace.open(tmp_path / "nothing", create=False)


def _add(ws: Workspace, image_id: str, key: str, run: int) -> bool:
    return ws.add_image(
        image_id=image_id, file_name=f"{image_id}.jpg", fmt="jpg", width=10, height=10, phash="0" * 16,
        meta=ImageMetadata(country="MX", language="es-MX", license="CC0-1.0"), source="test", input_key=key,
        fingerprint="f", run_id=run,
    )  # fmt: skip


def test_exact_duplicate_adds_provenance_not_a_row(workspace):
    run = workspace.start_run("collect", {"x": 1})
    assert _add(workspace, "a" * 64, "k1", run) is True
    assert _add(workspace, "a" * 64, "k2", run) is False
    assert len(workspace.images()) == 1
    assert [s["input_key"] for s in workspace.image_sources("a" * 64)] == ["k1", "k2"]
    assert workspace.get_input("k2").outcome == "duplicate"


def test_transaction_rolls_back_on_error(workspace):
    run = workspace.start_run("collect", {})
    with pytest.raises(RuntimeError), workspace.transaction() as db:
        db.execute("UPDATE runs SET status = 'x' WHERE id = ?", (run,))
        raise RuntimeError
    assert workspace.runs()[0]["status"] == "running"


def test_runs_record_resolved_config_and_summary(workspace):
    run = workspace.start_run("collect", {"images": {"max_side": 10}})
    workspace.finish_run(run, "completed", {"new": 3})
    (only,) = workspace.runs("collect")
    assert only["config"] == {"images": {"max_side": 10}}
    assert only["summary"] == {"new": 3} and only["status"] == "completed"


def test_grouping_refuses_unknown_columns(workspace):
    with pytest.raises(ValueError, match="cannot group"):
        workspace.count_images_by("id; DROP TABLE images")


def test_nested_transactions_join_the_outer_one(workspace):
    run = workspace.start_run("collect", {})
    with pytest.raises(RuntimeError), workspace.transaction():
        with workspace.transaction() as db:  # committed only with the outer block
            db.execute("UPDATE runs SET status = 'inner' WHERE id = ?", (run,))
        raise RuntimeError
    assert workspace.runs()[0]["status"] == "running"
    with workspace.transaction(), workspace.transaction() as db:
        db.execute("UPDATE runs SET status = 'both' WHERE id = ?", (run,))
    assert workspace.runs()[0]["status"] == "both"


def test_run_records_completed_failed_and_interrupted(tmp_path):
    with Workspace.open(tmp_path / "ws") as ws:
        with ws.run("collect", {"a": 1}) as run:
            run.summary["n"] = 3
        with pytest.raises(ValueError), ws.run("draft", {}) as run:
            run.summary["partial"] = True
            raise ValueError("boom")
        with pytest.raises(KeyboardInterrupt), ws.run("prefs", {}):
            raise KeyboardInterrupt
        with ws.run("draft", {}) as run:
            run.status = "budget_reached"
        runs = ws.runs()
    assert [(r["stage"], r["status"]) for r in runs] == [
        ("collect", "completed"),
        ("draft", "failed"),
        ("prefs", "interrupted"),
        ("draft", "budget_reached"),
    ]
    assert runs[0]["summary"] == {"n": 3} and runs[0]["config"] == {"a": 1}
    assert runs[1]["summary"] == {"partial": True}  # kept on failure too


def test_run_of_a_killed_process_reads_interrupted(tmp_path):
    import subprocess
    import sys
    import textwrap

    ws_path = tmp_path / "ws"
    Workspace.open(ws_path).close()
    code = textwrap.dedent(
        f"""
        import os, signal
        from data_tools.workspace import Workspace
        ws = Workspace.open({str(ws_path)!r})
        with ws.run("draft", {{}}):
            print("started", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9 and "started" in proc.stdout
    with Workspace.open(ws_path) as ws:
        (run,) = ws.runs()
        assert run["status"] == "interrupted" and run["finished_at"] is None
        with ws.run("draft", {}):  # a live run of this very process still reads running
            assert ws.runs()[-1]["status"] == "running"
