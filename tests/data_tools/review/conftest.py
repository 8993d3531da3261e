"""Review fixtures: a workspace with drafted candidates (drafted through the local Cohere-compatible server)."""

from __future__ import annotations

import pytest

from data_tools.workspace import Workspace


@pytest.fixture
def drafted(collected: Workspace, server) -> Workspace:
    from tests.data_tools.draft.draft_helpers import run_draft

    run_draft(collected, server)
    return collected
