"""Helpers for the draft-stage tests: the fake server's key function and a one-call draft run."""

from __future__ import annotations

import asyncio
from typing import Any

import cohere

from data_tools.config import load_config
from data_tools.draft.backends import CohereBackend
from data_tools.draft.config import DraftConfig
from data_tools.draft.runner import DraftRunner, DraftSummary
from data_tools.workspace import Workspace
from tests.fakes.cohere_server import FakeCohereServer, default_key

API_KEY = "co-test-key-5f1b9e"


def draft_key(body: dict[str, Any]) -> str:
    """One key per request identity: image + prompt + seed (variants share a prompt)."""
    return f"{default_key(body)}:{body.get('seed')}"


FAST = ("limits.backoff_s=0.01", "limits.timeout_s=5")


def draft_config(*overrides: str) -> DraftConfig:
    return load_config(DraftConfig, None, [*FAST, *overrides])


def run_draft(ws: Workspace, server: FakeCohereServer, *overrides: str, limit: int | None = None,
              api_key: str = API_KEY) -> DraftSummary:  # fmt: skip
    """Plan and run a draft over ``ws`` through the real AsyncClientV2 talking to ``server``."""
    config = draft_config(*overrides)
    runner = DraftRunner(ws, config)

    async def go() -> DraftSummary:
        client = cohere.AsyncClientV2(api_key=api_key, base_url=server.url)
        runner.backend = CohereBackend(client, config.cohere.model)
        run_id = ws.start_run("draft", config.model_dump(mode="json"))
        try:
            return await runner.run(runner.plan(limit), run_id)
        finally:
            await runner.backend.aclose()

    return asyncio.run(go())
