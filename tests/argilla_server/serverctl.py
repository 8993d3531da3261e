"""Start, wait for, stop and restart a local ``argilla-server`` (``launcher.py``) from any Python.

Standard library only, so the pytest fixture (``fixture.py``) and ``scripts/argilla_server.py`` share it.
The server runs as a child process of the caller, in the server venv, on one data dir; ``stop()`` then
``start()`` restarts it on the same data dir and port, which is how tests prove that the SQLite data and
the rebuilt search index survive a restart.

    server = ArgillaServer(tmp_dir / "argilla", port=free_port())
    with server:                       # start() … stop()
        rg.Argilla(api_url=server.url, api_key=server.owner_api_key)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.argilla_server.venv_builder import ensure_server_venv

LAUNCHER = Path(__file__).resolve().with_name("launcher.py")
HEALTH_PATH = "/api/v1/status"  # answers without credentials once the app's lifespan has run


@dataclass(frozen=True)
class Credentials:
    """A user the launcher creates (or finds) at start. Fixed keys: this server is local and throwaway."""

    username: str
    password: str
    api_key: str

    def as_arg(self) -> str:
        return f"{self.username}:{self.password}:{self.api_key}"


DEFAULT_WORKSPACE = "mirada"
DEFAULT_OWNER = Credentials("mirada", "mirada-password", "mirada.owner.apikey")
DEFAULT_ANNOTATORS: tuple[Credentials, ...] = (
    Credentials("ana", "ana-password", "ana.annotator.apikey"),
    Credentials("bruno", "bruno-password", "bruno.annotator.apikey"),
)


class ArgillaServerError(RuntimeError):
    """The server did not start or answer; the message carries the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (the OS picks it); another process could take it before we bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is fine
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    """Linux: SIGTERM the server if the test process dies without tearing down (no orphans)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ArgillaServer:
    """One local server process on ``data_dir``; see the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        owner: Credentials = DEFAULT_OWNER,
        annotators: Sequence[Credentials] = DEFAULT_ANNOTATORS,
        workspace: str = DEFAULT_WORKSPACE,
        python: Path | None = None,
        log_level: str = "warning",
        startup_timeout_s: float = 120.0,
        tie_to_parent: bool = True,
        log_to_console: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.owner = owner
        self.annotator_credentials = tuple(annotators)
        self.workspace = workspace
        self.log_level = log_level
        self.startup_timeout_s = startup_timeout_s
        self.tie_to_parent = tie_to_parent
        self.log_to_console = log_to_console
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None

    # -- what tests read ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def owner_api_key(self) -> str:
        return self.owner.api_key

    @property
    def annotators(self) -> dict[str, str]:
        """username → API key."""
        return {c.username: c.api_key for c in self.annotator_credentials}

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ---------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        python = self._python or ensure_server_venv()
        self._python = python
        cmd = [
            str(python),
            str(LAUNCHER),
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workspace",
            self.workspace,
            "--owner",
            self.owner.as_arg(),
            "--log-level",
            self.log_level,
        ]
        for annotator in self.annotator_credentials:
            cmd += ["--annotator", annotator.as_arg()]
        return cmd

    def start(self) -> ArgillaServer:
        """Start the server (building the venv first if needed) and return once it answers."""
        if self.running:
            return self
        if not port_is_free(self.port, self.host):
            # Otherwise the health check could be answered by whatever already listens there.
            raise ArgillaServerError(f"port {self.port} on {self.host} is in use; pick another (--port)")
        cmd = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
        env.update(PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        log = None if self.log_to_console else self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                env=env,
                cwd=self.data_dir,
                preexec_fn=_die_with_parent if self.tie_to_parent else None,
            )
        finally:
            if log is not None:
                log.close()
        try:
            self.wait_ready()
        except BaseException:
            self.stop(kill=True)
            raise
        return self

    def wait_ready(self) -> None:
        """Poll the health endpoint; fail fast with the log if the process exits."""
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise ArgillaServerError(
                    f"argilla-server exited (code {code}) before answering on {self.url}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + HEALTH_PATH, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ArgillaServerError(
                    f"argilla-server did not answer on {self.url} within {self.startup_timeout_s:.0f} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, *, kill: bool = False, timeout_s: float = 15.0) -> None:
        """Stop the server: SIGTERM and wait (graceful), or ``kill=True`` for SIGKILL (a crash)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)

    def restart(self, *, kill: bool = False) -> ArgillaServer:
        self.stop(kill=kill)
        return self.start()

    def wait(self) -> int:
        """Block until the server exits (foreground use); returns its exit code."""
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> ArgillaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


__all__ = [
    "DEFAULT_ANNOTATORS",
    "DEFAULT_OWNER",
    "DEFAULT_WORKSPACE",
    "ArgillaServer",
    "ArgillaServerError",
    "Credentials",
    "free_port",
    "port_is_free",
]
