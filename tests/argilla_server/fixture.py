"""Pytest plugin: a session-scoped real ``argilla-server`` (``argilla_server`` fixture).

Enable it from a conftest with ``pytest_plugins = ["tests.argilla_server.fixture"]`` (only the rootdir
conftest may say that), or import the fixture into a directory's conftest
(``from tests.argilla_server.fixture import argilla_server``), as ``tests/argilla_server/conftest.py`` does.

The first use builds the server venv (~1.5 min, once per machine; ``venv_builder.py``); each session then
starts one server on a free port and a fresh data dir (~4–8 s). If the venv cannot be built the fixture
FAILS with pip's output: a missing review server is a broken test environment, not an optional feature.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.argilla_server.serverctl import ArgillaServer, ArgillaServerError, free_port
from tests.argilla_server.venv_builder import ServerVenvError, ensure_server_venv


@pytest.fixture(scope="session")
def argilla_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgillaServer]:
    """A running server: ``.url``, ``.owner_api_key``, ``.annotators`` (username → API key), ``.workspace``,
    ``.stop(kill=False)`` / ``.start()`` (same data dir and port)."""
    problem = None  # pytest.fail outside the except blocks: no chained, doubled message
    try:
        python = ensure_server_venv()
    except ServerVenvError as error:
        problem = f"cannot provide the argilla_server fixture: {error}"
    if problem:
        pytest.fail(problem, pytrace=False)
    data_dir = tmp_path_factory.mktemp("argilla-server")
    server = ArgillaServer(data_dir, port=free_port(), python=python)
    try:
        server.start()
    except ArgillaServerError as error:
        shutil.rmtree(data_dir, ignore_errors=True)
        problem = str(error)
    if problem:
        pytest.fail(problem, pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
