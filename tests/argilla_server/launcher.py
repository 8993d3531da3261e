"""Run the real ``argilla-server`` 2.8.0 offline: SQLite, the in-memory search engine, fakeredis.

Runs INSIDE the server venv (``venv_builder.py``), as a script, one uvicorn worker, in the foreground:

    <venv>/bin/python tests/argilla_server/launcher.py --data-dir /tmp/rg --port 6900 \\
        --owner mirada:mirada-password:mirada.owner.apikey \\
        --annotator ana:ana-password:ana.apikey --workspace mirada

What it changes in the stock server, and why (DESIGN 6.4):

- ``redis.from_url`` returns a ``fakeredis`` client (patched before ``argilla_server`` is imported, since
  ``argilla_server.jobs.queues`` connects at import). Nothing consumes that queue, so the one job the
  annotation flow needs, ``update_dataset_records_status_job`` (run when a dataset's distribution
  changes), is made to run as a task on the server's own event loop. Webhook and Hub import/export jobs
  are still only enqueued, i.e. never run (no webhooks, no Hub offline).
- ``ARGILLA_SEARCH_ENGINE=memory`` (``memory_search.py``), rebuilt from SQLite before serving, so a
  restart on the same ``--data-dir`` answers searches as before.
- SQLite in WAL mode, so the web UI's reads do not wait on a write.
- ``TMPDIR`` is ``<data-dir>/tmp``, emptied at start and exit: the server copies its ~14 MB web UI into
  a fresh temp dir on every import.

The database is migrated (``alembic upgrade head``, what ``python -m argilla_server database migrate``
does) and the users exist (created with fixed API keys, as ``database users create`` does) before the
server answers its first request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger("mirada.argilla_launcher")
_BACKGROUND_TASKS: set[asyncio.Task[Any]] = set()


@dataclass(frozen=True)
class UserSpec:
    """``username:password:api_key`` from the command line (the password may contain ``:``)."""

    username: str
    password: str
    api_key: str
    role: str

    @classmethod
    def parse(cls, text: str, role: str) -> UserSpec:
        username, sep, rest = text.partition(":")
        password, sep2, api_key = rest.rpartition(":")
        if not (sep and sep2 and username and password and api_key):
            raise argparse.ArgumentTypeError(f"expected USERNAME:PASSWORD:API_KEY, got {text!r}")
        if len(password) < 8 or len(api_key) < 8:
            raise argparse.ArgumentTypeError(f"{username}: password and API key need at least 8 characters")
        return cls(username=username, password=password, api_key=api_key, role=role)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="server home: SQLite DB, logs, temp files"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6900)
    parser.add_argument("--workspace", default="mirada", help="workspace every created user belongs to")
    parser.add_argument("--owner", required=True, help="USERNAME:PASSWORD:API_KEY of the owner")
    parser.add_argument(
        "--annotator", action="append", default=[], help="USERNAME:PASSWORD:API_KEY (repeatable)"
    )
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    try:
        args.users = [UserSpec.parse(args.owner, "owner")] + [
            UserSpec.parse(text, "annotator") for text in args.annotator
        ]
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    return args


def configure_environment(data_dir: Path) -> Path:
    """Point the server at ``data_dir`` and make it offline; returns the cleaned temp dir."""
    tmp = data_dir / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)
    os.environ["ARGILLA_HOME_PATH"] = str(data_dir / "home")
    os.environ["ARGILLA_DATABASE_URL"] = (
        f"sqlite+aiosqlite:///{data_dir / 'home' / 'argilla.db'}?check_same_thread=False"
    )
    os.environ["ARGILLA_SEARCH_ENGINE"] = "memory"
    os.environ["ARGILLA_DATABASE_SQLITE_TIMEOUT"] = "30"
    os.environ["ARGILLA_REDIS_USE_CLUSTER"] = "false"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    return tmp


def install_fakeredis() -> None:
    """Every Redis client the server makes talks to one in-process fake server."""
    import fakeredis
    import redis

    fake_server = fakeredis.FakeServer()

    def from_url(url: str, **kwargs: Any) -> fakeredis.FakeRedis:
        return fakeredis.FakeRedis(server=fake_server, **kwargs)

    redis.from_url = from_url
    redis.Redis.from_url = classmethod(lambda cls, url, **kwargs: from_url(url, **kwargs))


def run_records_status_job_in_process() -> None:
    """``update_dataset_records_status_job.delay(...)`` → a task on the running loop (no rq worker here)."""
    from argilla_server.jobs import dataset_jobs

    job = dataset_jobs.update_dataset_records_status_job

    def _done(task: asyncio.Task[Any]) -> None:
        _BACKGROUND_TASKS.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("records status job failed", exc_info=task.exception())

    def delay(*args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(job(*args, **kwargs))
        _BACKGROUND_TASKS.add(task)  # keep a reference until it ends
        task.add_done_callback(_done)
        return task

    job.delay = delay


def enable_sqlite_wal() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _wal(dbapi_connection: Any, connection_record: Any) -> None:
        if "sqlite" in type(dbapi_connection).__module__ or "sqlite" in repr(type(dbapi_connection)):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()


def migrate_database() -> None:
    """``alembic upgrade head`` in-process, without alembic.ini's logging setup (it would mute ours)."""
    from alembic import command
    from alembic.config import Config
    from argilla_server.database import ALEMBIC_CONFIG_FILE

    config = Config()
    config.set_main_option("script_location", str(Path(ALEMBIC_CONFIG_FILE).parent / "alembic"))
    command.upgrade(config, "head")


async def ensure_users(users: list[UserSpec], workspace_name: str) -> None:
    """Create the workspace and users that are missing (a restart on the same data dir keeps them)."""
    from argilla_server.cli.database.users.utils import get_or_new_workspace
    from argilla_server.contexts import accounts
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.models import User, UserRole

    async with AsyncSessionLocal() as db:
        for spec in users:
            if await accounts.get_user_by_username(db, spec.username) is not None:
                continue
            if await accounts.get_user_by_api_key(db, spec.api_key) is not None:
                raise SystemExit(f"API key of {spec.username!r} already belongs to another user")
            await User.create(
                db,
                first_name=spec.username.capitalize(),
                username=spec.username,
                role=UserRole(spec.role),
                password_hash=accounts.hash_password(spec.password),
                api_key=spec.api_key,
                workspaces=[await get_or_new_workspace(db, workspace_name)],
            )


async def prepare(users: list[UserSpec], workspace_name: str) -> None:
    """Users, then the search index from SQLite; then drop pooled connections bound to this loop."""
    import memory_search
    from argilla_server.database import async_engine

    try:
        await ensure_users(users, workspace_name)
        await memory_search.rebuild_index()  # logs what it indexed
    finally:
        await async_engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = configure_environment(data_dir)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.monotonic()
    try:
        install_fakeredis()
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import memory_search  # noqa: F401  (registers the "memory" engine; imports argilla_server)
        import uvicorn
        from argilla_server import app

        _LOGGER.info("imported the server in %.1f s", time.monotonic() - started)
        run_records_status_job_in_process()
        enable_sqlite_wal()
        migrate_database()
        _LOGGER.info("migrated the database at %.1f s", time.monotonic() - started)
        asyncio.run(prepare(args.users, args.workspace))
        _LOGGER.info(
            "users and index ready at %.1f s; serving on %s:%d",
            time.monotonic() - started,
            args.host,
            args.port,
        )
        # uvicorn re-raises SIGTERM after its graceful shutdown with the handler found at start; make that
        # handler exit normally so the ``finally`` below still cleans the temp dir.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        uvicorn.run(
            app, host=args.host, port=args.port, workers=1, log_level=args.log_level, access_log=False
        )
    except KeyboardInterrupt:  # Ctrl+C in ``make argilla``: uvicorn already shut down gracefully
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
