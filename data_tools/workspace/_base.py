"""What the workspace's table mixins share: the clock and the two primitives they build on."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


def now() -> str:
    """UTC timestamp as stored in every table: ``2026-11-22T19:43:15+00:00``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class StoreMixin:
    """Base of the per-stage mixins; :class:`~data_tools.workspace.store.Workspace` provides both methods."""

    def _query(
        self, sql: str, params: Iterable[Any] = ()
    ) -> list[sqlite3.Row]:  # pragma: no cover - overridden
        raise NotImplementedError

    def transaction(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError
