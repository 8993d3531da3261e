"""The server venv is built once, under a lock, reused while its stamp matches, and rebuilt when stale.

pip is replaced by a stub that only creates ``bin/python`` (a real build takes ~1.5 min and is exercised
by the ``argilla_server`` fixture); what is tested here is the locking, stamping and failure reporting.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.argilla_server import venv_builder


@pytest.fixture
def fake_pip(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record every command; ``-m venv`` creates the interpreter path, slowly enough to overlap."""
    calls: list[list[str]] = []

    def run(cmd: list[str], log: Path) -> None:
        calls.append(cmd)
        if cmd[1:3] == ["-m", "venv"]:
            time.sleep(0.2)
            python = Path(cmd[3]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.write_text("")

    monkeypatch.setattr(venv_builder, "_run", run)
    return calls


def test_concurrent_callers_build_once_and_reuse(tmp_path: Path, fake_pip: list[list[str]]) -> None:
    path = tmp_path / "argilla-venv"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(venv_builder.ensure_server_venv(path, quiet=True)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [path / "bin" / "python"] * 3
    assert sum(cmd[1:3] == ["-m", "venv"] for cmd in fake_pip) == 1
    assert (path / venv_builder.STAMP_NAME).read_text().strip() == venv_builder.requirement_string()
    assert "argilla-server==2.8.0" in fake_pip[1]

    venv_builder.ensure_server_venv(path, quiet=True)
    assert len(fake_pip) == 2  # complete: nothing run again


def test_stale_stamp_rebuilds(tmp_path: Path, fake_pip: list[list[str]]) -> None:
    path = tmp_path / "argilla-venv"
    venv_builder.ensure_server_venv(path, quiet=True)
    (path / venv_builder.STAMP_NAME).write_text("argilla-server==2.7.0\n")
    (path / "leftover").write_text("old")

    venv_builder.ensure_server_venv(path, quiet=True)

    assert len(fake_pip) == 4
    assert not (path / "leftover").exists()
    assert venv_builder.is_complete(path)


def test_failed_build_raises_with_the_tool_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing build step (here a stand-in interpreter that fails like pip) surfaces its output."""
    failing = tmp_path / "failing-python"
    failing.write_text(
        "#!/bin/sh\necho 'ERROR: No matching distribution found for argilla-server==2.8.0'\nexit 1\n"
    )
    failing.chmod(0o755)
    monkeypatch.setattr(venv_builder.sys, "executable", str(failing))
    path = tmp_path / "argilla-venv"

    with pytest.raises(
        venv_builder.ServerVenvError, match="No matching distribution found for argilla-server"
    ):
        venv_builder.ensure_server_venv(path, quiet=True)
    assert not venv_builder.is_complete(path)


def test_env_var_overrides_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(venv_builder.VENV_ENV_VAR, str(tmp_path / "elsewhere"))
    assert venv_builder.venv_dir() == (tmp_path / "elsewhere").resolve()
    monkeypatch.delenv(venv_builder.VENV_ENV_VAR)
    assert venv_builder.venv_dir() == venv_builder.DEFAULT_VENV
