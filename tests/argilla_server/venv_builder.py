"""Build (once) and reuse the separate virtualenv that runs the real ``argilla-server``.

Why a separate venv: ``argilla-server`` 2.8.0 pins an old FastAPI/pydantic stack that cannot live beside
gradio and the project's current FastAPI (DESIGN 6.4). Standard library only, so the pytest fixture, the
``make argilla`` script and a bare ``python3`` can all use it.

The venv lives in ``<repo>/.cache/argilla-venv`` unless ``MIRADA_ARGILLA_VENV`` names another folder. It
is complete when its stamp file holds exactly ``REQUIREMENTS`` (written last, after pip succeeded); any
other state is deleted and rebuilt. An exclusive ``fcntl`` lock on a sibling ``.lock`` file keeps two
test processes (pytest-xdist workers, a test run and ``make argilla``) from building it at once. A build
takes ~1.5 min with a warm pip cache on this project's machines.

    python tests/argilla_server/venv_builder.py      # build or check it, print the interpreter path
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_ENV_VAR = "MIRADA_ARGILLA_VENV"
DEFAULT_VENV = REPO_ROOT / ".cache" / "argilla-venv"

# The set DESIGN 6.4 measured, re-checked with pip on Python 3.11 (``pip check`` clean); fakeredis is
# pinned too so the stamp names one exact environment. fakeredis replaces Redis (launcher.py).
REQUIREMENTS: tuple[str, ...] = (
    "argilla-server==2.8.0",
    "click<8.2",
    "huggingface_hub==1.13.0",
    "datasets==5.0.1",
    "fakeredis==2.40.0",
)
STAMP_NAME = ".mirada-argilla-stamp"
PIP_TIMEOUT_S = 1200


class ServerVenvError(RuntimeError):
    """The server venv could not be built; the message says why and how to retry by hand."""


def venv_dir() -> Path:
    """Where the server venv lives: ``$MIRADA_ARGILLA_VENV`` or ``<repo>/.cache/argilla-venv``."""
    return Path(os.environ.get(VENV_ENV_VAR) or DEFAULT_VENV).expanduser().resolve()


def venv_python(path: Path | None = None) -> Path:
    return (path or venv_dir()) / "bin" / "python"


def requirement_string() -> str:
    """The stamp's content: one line, the pins in order."""
    return " ".join(REQUIREMENTS)


def is_complete(path: Path | None = None) -> bool:
    """True when the venv exists and its stamp matches the current pins."""
    path = path or venv_dir()
    stamp = path / STAMP_NAME
    return (
        venv_python(path).exists()
        and stamp.is_file()
        and stamp.read_text(encoding="utf-8").strip() == requirement_string()
    )


def _run(cmd: list[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        try:
            result = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=PIP_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerVenvError(f"{cmd[0]} failed to run: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise ServerVenvError(
            f"building the argilla-server venv failed (exit {result.returncode}) running:\n  {' '.join(cmd)}\n"
            f"last lines of {log}:\n{tail}"
        )


def ensure_server_venv(path: Path | None = None, *, quiet: bool = False) -> Path:
    """Return the server venv's python, building the venv first if it is missing or stale.

    Raises ``ServerVenvError`` (never skips): a test that needs the server must fail loudly when it
    cannot have one.
    """
    path = path or venv_dir()
    if is_complete(path):
        return venv_python(path)

    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent builder holds it until its venv is complete
        try:
            if is_complete(path):
                return venv_python(path)
            if path.exists():
                shutil.rmtree(path)
            log = path.with_name(path.name + ".build.log")
            log.write_text("", encoding="utf-8")
            if not quiet:
                print(
                    f"building the argilla-server venv in {path} (~2 min, once); log: {log}", file=sys.stderr
                )
            started = time.monotonic()
            _run([sys.executable, "-m", "venv", str(path)], log)
            _run([str(venv_python(path)), "-m", "pip", "install", "--quiet", *REQUIREMENTS], log)
            (path / STAMP_NAME).write_text(requirement_string() + "\n", encoding="utf-8")
            if not quiet:
                print(f"argilla-server venv ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return venv_python(path)


if __name__ == "__main__":
    try:
        print(ensure_server_venv())
    except ServerVenvError as error:
        sys.exit(str(error))
