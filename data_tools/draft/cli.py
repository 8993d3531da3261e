"""Draft stage: several caption candidates per collected image, from a vision-language model.

    CO_API_KEY=… mirada draft --workspace ws --dry-run            # tokens and cost before spending
    CO_API_KEY=… mirada draft --workspace ws --budget-usd 25      # hard cap on the workspace's spend
    mirada draft --workspace ws --backend local --set local.model=Qwen/Qwen2.5-VL-7B-Instruct
    mirada draft --workspace ws --backend openai --set openai.base_url=http://gpu:8000/v1
    python -m data_tools.draft --workspace ws --limit 10

Reruns only call for candidates not yet drafted (also after ``kill -9``); ``mirada status`` shows
the spend. Several processes may draft one workspace at once: each candidate is claimed in the
workspace before its call, and the budget is checked against every process's spend and reservations. Keys come from the environment only (``CO_API_KEY``; ``CO_API_URL`` for the base URL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from typing import Any

from data_tools.config import load_config
from data_tools.draft.backends import Backend, CohereBackend, LocalBackend, OpenAIBackend
from data_tools.draft.config import DraftConfig
from data_tools.draft.runner import AuthError, DraftRunner, DraftSummary
from data_tools.secrets import register_secret
from data_tools.stage_args import UserError, add_common_args, add_config_args, run_stage
from data_tools.workspace import Workspace


def make_backend(config: DraftConfig) -> Backend:
    """The configured backend with its client; keys are read from the environment here and nowhere else."""
    if config.backend == "cohere":
        import cohere

        key = os.environ.get(config.cohere.api_key_env)
        if not key:
            raise UserError(
                f"set {config.cohere.api_key_env} to your Cohere API key (or use --dry-run to estimate without one)"
            )
        register_secret(key)
        base_url = config.cohere.base_url or os.environ.get("CO_API_URL") or None
        client = cohere.AsyncClientV2(api_key=key, base_url=base_url, timeout=config.limits.timeout_s)
        return CohereBackend(client, config.cohere.model)
    if config.backend == "openai":
        import httpx

        key = os.environ.get(config.openai.api_key_env)
        register_secret(key)
        limits = httpx.Limits(max_connections=config.limits.concurrency)
        return OpenAIBackend(
            httpx.AsyncClient(limits=limits), config.openai.model, config.openai.base_url, key
        )
    local = config.local
    return LocalBackend(local.model, device=local.device, dtype=local.dtype, adapter=local.adapter,
                        quantization=local.quantization, batch_size=local.batch_size)  # fmt: skip


def run_paid(
    workspace: Workspace, stage: str, stage_config: dict[str, Any], runner: DraftRunner, jobs: list[Any]
) -> tuple[DraftSummary, int]:
    """Send ``jobs`` through ``runner`` (its backend set) under one run record; return the summary and run id.

    The one path every paid stage (draft, judge) takes: a budget stop is recorded as
    ``budget_reached``, a refused key as ``auth_error`` (one line, redacted), and the summary is kept
    whatever happens.
    """
    summary = DraftSummary()
    with workspace.run(stage, stage_config) as run:
        try:
            summary = asyncio.run(_run(runner, jobs, run.id))
            run.status = "budget_reached" if summary.stopped_by_budget else None
        except AuthError as exc:
            run.status = "auth_error"
            raise UserError(str(exc)) from None
        finally:
            run.summary = summary.to_dict()
    return summary, run.id


async def _run(runner: DraftRunner, jobs: list[Any], run_id: int) -> DraftSummary:
    try:
        return await runner.run(jobs, run_id)
    finally:
        if runner.backend is not None:
            await runner.backend.aclose()


def print_estimate(estimate: dict[str, Any], pending: int, cached: int, budget: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"draft --dry-run: {estimate['model']}", show_header=False)
    table.add_row("candidates to draft", str(pending))
    table.add_row("already drafted (cached)", str(cached))
    table.add_row("cannot be sent (no prompt template)", str(estimate["unsendable"]))
    table.add_row("input tokens (expected)", f"{estimate['input_tokens_expected']:,}")
    table.add_row("output tokens (expected)", f"{estimate['output_tokens_expected']:,}")
    table.add_row("cost expected", f"${estimate['cost_expected_usd']:.4f}")
    table.add_row("cost upper bound (one attempt each)", f"${estimate['cost_upper_usd']:.4f}")
    if budget is not None:
        table.add_row("budget", f"${budget:.2f}")
    Console().print(table)


def print_summary(summary: DraftSummary, workspace: Workspace, budget: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="draft: this run", show_header=False)
    table.add_row("candidates planned", str(summary.planned))
    table.add_row("already drafted (cached, not sent)", str(summary.cached))
    table.add_row("drafted now", str(summary.done))
    table.add_row("failed (reason kept; retried on the next run)", str(summary.failed))
    table.add_row(
        "not started", str(summary.not_started) + (" (budget reached)" if summary.stopped_by_budget else "")
    )
    if summary.held_elsewhere:
        table.add_row("being drafted by another process (skipped)", str(summary.held_elsewhere))
    table.add_row("API calls", ", ".join(f"{k}={v}" for k, v in sorted(summary.calls.items())) or "0")
    table.add_row(
        "spent this run",
        f"${summary.spent_usd:.4f}"
        + (f" (+ up to ${summary.uncertain_usd:.4f} for timed-out calls)" if summary.uncertain_usd else ""),
    )
    spend = workspace.spend()
    total = spend["cost_usd"]
    table.add_row(
        "workspace total spend", f"${total:.4f}" + (f" of ${budget:.2f}" if budget is not None else "")
    )
    table.add_row("time", f"{summary.seconds:.1f} s")
    console.print(table)
    if summary.by_strategy:
        strategies = Table(title="by strategy")
        for column in ("strategy", "done", "failed"):
            strategies.add_column(column)
        for strategy, counts in sorted(summary.by_strategy.items()):
            strategies.add_row(strategy, str(counts.get("done", 0)), str(counts.get("failed", 0)))
        console.print(strategies)
    if summary.failures:
        console.print("failures: " + ", ".join(f"{k}={v}" for k, v in summary.failures.most_common()))
    if summary.stopped_by_budget:
        console.print(
            f"[yellow]stopped: the next request could pass the budget. {summary.not_started} candidates are left; "
            "raise --budget-usd and rerun to continue.[/yellow]"
        )


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Draft caption candidates for every collected image: culturally grounded ones, generic ones and "
            "controlled-flaw ones, in the image's language variety. Results and every API call are committed to "
            "the workspace as they arrive; a rerun only asks for what is missing."
        ),
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_args(parser)
    parser.add_argument(
        "--backend", choices=["cohere", "local", "openai"], help="override the configured backend"
    )
    parser.add_argument("--model", help="override the backend's model")
    parser.add_argument("--budget-usd", type=float, help="hard cap on the workspace's total spend (USD)")
    parser.add_argument("--dry-run", action="store_true", help="estimate tokens and cost, send nothing")
    parser.add_argument("--limit", type=int, help="draft only the first N images")
    add_config_args(parser, DraftConfig)
    return parser


def resolve_config(args: argparse.Namespace) -> DraftConfig:
    overrides = list(args.overrides)
    if args.backend:
        overrides.append(f"backend={args.backend}")
    config = load_config(DraftConfig, args.config, overrides)
    if args.model:
        section = getattr(config, config.backend)
        section.model = args.model
    if args.budget_usd is not None:
        config.budget_usd = args.budget_usd
    return config


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.draft") -> int:
    parser = build_parser(prog)

    def body(args: argparse.Namespace) -> int:
        config = resolve_config(args)
        with Workspace.open(args.workspace, create=False) as workspace:
            try:
                runner = DraftRunner(workspace, config)
            except ValueError as exc:  # unknown price, missing prompt version
                raise UserError(str(exc)) from None
            for warning in runner.check_prompt_versions():
                print(f"warning: {warning}")
            jobs = runner.plan(args.limit)
            pending = runner.pending(jobs)
            if args.dry_run:
                print_estimate(
                    runner.estimate_cost(pending), len(pending), len(jobs) - len(pending), config.budget_usd
                )
                return 0
            runner.backend = make_backend(config)
            summary, _ = run_paid(workspace, "draft", config.model_dump(mode="json"), runner, jobs)
            print_summary(summary, workspace, config.budget_usd)
        return 0

    return run_stage(body, parser, argv)
