"""The workspace's project settings: Hub owner, dataset name and code URL, set once for every stage.

    mirada project set owner=my-team dataset_name=tacos code_url=https://github.com/my-team/tacos
    workspace.project()   # {"owner": "my-team", "dataset_name": "tacos", "code_url": "https://…"}

Cards link datasets, models and code to each other. Asking for those links in each stage's config
gave cards with local paths (``load_from_disk("/tmp/…")``) whenever a team forgot one, so they live
in the workspace instead, validated when set, and prefs (later train, eval, publish) read them.
"""

from __future__ import annotations

import re
from typing import Any

from data_tools.workspace._base import StoreMixin, now

PROJECT_KEYS: dict[str, str] = {
    "owner": "Hugging Face user or organisation the datasets and models are published under",
    "dataset_name": "base name of the published datasets (prefs adds _image_dpo, _image_kto, _image_sft)",
    "code_url": "link to the code and notebooks (e.g. the team's GitHub repository), shown in every card",
}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")


class ProjectError(ValueError):
    """A project setting that cannot be stored; the message names the key and what is expected."""


def check_project_value(key: str, value: str) -> str:
    """The value stripped, or :class:`ProjectError` saying what a valid one looks like."""
    if key not in PROJECT_KEYS:
        raise ProjectError(f"unknown project setting {key!r}; known: {', '.join(PROJECT_KEYS)}")
    text = value.strip()
    if key in ("owner", "dataset_name") and text and (not _HUB_NAME.match(text) or ".." in text):
        raise ProjectError(f"{key}={text!r} is not a Hugging Face name (letters, digits, '-', '_', '.')")
    if key == "code_url" and text and not _URL.match(text):
        raise ProjectError(f"code_url={text!r} is not an http(s) URL")
    return text


class ProjectStoreMixin(StoreMixin):
    """``project()`` and ``set_project()`` over the ``project`` table (migration m009_project)."""

    def project(self) -> dict[str, Any]:
        """The settings that are set, e.g. ``{"owner": "my-team"}``; ``{}`` for a new workspace."""
        return {
            row["key"]: row["value"] for row in self._query("SELECT key, value FROM project ORDER BY key")
        }

    def set_project(self, **values: str | None) -> dict[str, Any]:
        """Set (or, with an empty value or None, clear) project settings; returns them all."""
        checked = {key: check_project_value(key, value or "") for key, value in values.items()}
        with self.transaction() as db:
            for key, value in checked.items():
                if value:
                    db.execute(
                        "INSERT INTO project (key, value, updated_at) VALUES (?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        (key, value, now()),
                    )
                else:
                    db.execute("DELETE FROM project WHERE key = ?", (key,))
        return self.project()
