"""The draft runner against a real HTTP server through the real cohere SDK: never pay twice."""

from __future__ import annotations

import time

import pytest

from data_tools.draft.config import DraftConfig
from data_tools.draft.runner import AuthError, DraftRunner
from tests.data_tools.draft.draft_helpers import API_KEY, draft_config, run_draft

CANDIDATES = 11 * 4  # 11 images x (2 cultural + 1 generic + 1 perturbed)


def ledger(ws):
    return ws._query("SELECT * FROM api_calls ORDER BY id")


def test_every_image_drafted_with_tagged_strategies(collected, server):
    summary = run_draft(collected, server)
    assert summary.done == CANDIDATES and summary.failed == 0
    assert {k: dict(v) for k, v in summary.by_strategy.items()} == {
        "cultural": {"done": 22}, "generic": {"done": 11}, "perturbed": {"done": 11}
    }  # fmt: skip
    drafts = collected.drafts(status="done")
    assert len(drafts) == CANDIDATES
    assert all(d.caption and d.language for d in drafts)
    perturbed = [d for d in drafts if d.strategy == "perturbed"]
    assert {d.perturbation for d in perturbed} <= {"wrong_country", "stereotype", "wrong_variety"}
    assert len({d.perturbation for d in perturbed}) > 1
    # the prompt went out in the image's own variety and with its metadata
    by_language = {r.prompt: r for r in server.chat_requests}
    assert any("Escribí" in p for p in by_language)  # es-AR
    assert any("Txapela" in p or "txapela" in p for p in by_language)  # eu notes passed through
    assert server.max_in_flight <= DraftConfig().limits.concurrency


def test_rerun_sends_nothing(collected, server):
    run_draft(collected, server)
    sent = len(server.chat_requests)
    summary = run_draft(collected, server)
    assert summary.cached == CANDIDATES and summary.done == 0
    assert len(server.chat_requests) == sent


def test_cost_matches_billed_units_and_ledger(collected, server):
    run_draft(collected, server)
    price = DraftConfig().price()
    calls = ledger(collected)
    assert len(calls) == server.successes() == CANDIDATES
    for call, request in zip(sorted(calls, key=lambda c: c["billed_input_tokens"]),
                             sorted(server.chat_requests, key=lambda r: r.usage["billed_units"]["input_tokens"]), strict=True):  # fmt: skip
        assert call["billed_input_tokens"] == request.usage["billed_units"]["input_tokens"]
    expected = sum(
        (c["billed_input_tokens"] * price.input + c["billed_output_tokens"] * price.output) / 1e6
        for c in calls
    )
    assert collected.spend()["cost_usd"] == pytest.approx(expected)
    assert sum(d.cost_usd for d in collected.drafts()) == pytest.approx(expected)
    # billed units, not tokens (the fake adds template overhead to tokens, as the real API does)
    assert all(c["input_tokens"] > c["billed_input_tokens"] for c in calls)
    assert server.repeated_successes() == {}


def test_dry_run_estimate_bounds_the_real_cost(collected, server):
    runner = DraftRunner(collected, draft_config())
    estimate = runner.estimate_cost(runner.pending(runner.plan()))
    run_draft(collected, server)
    actual = collected.spend()["cost_usd"]
    assert estimate["requests"] == CANDIDATES
    assert estimate["cost_upper_usd"] >= actual
    assert estimate["cost_expected_usd"] == pytest.approx(actual, rel=0.5)


def test_429_with_retry_after_is_honoured_and_ledgered(collected, server):
    server.inject("429", retry_after=0.5)
    started = time.monotonic()
    summary = run_draft(collected, server, limit=1)
    assert summary.done == 4 and summary.failed == 0
    assert time.monotonic() - started >= 0.5
    statuses = [c["status"] for c in ledger(collected)]
    assert statuses.count("rate_limited") == 1 and statuses.count("ok") == 4
    assert server.count(status=429) == 1  # the SDK did not retry on its own (max_retries=0)


def test_server_errors_retried_then_failed_with_reason_then_recovered(collected, server):
    server.inject("503", times=1)
    summary = run_draft(collected, server, "limits.max_attempts=3", limit=1)
    assert summary.done == 4
    server.inject("500", times=None)
    summary = run_draft(collected, server, "limits.max_attempts=3", limit=2)
    assert summary.failed == 4 and summary.failures == {"server_error": 4}
    failed = collected.drafts(status="failed")
    assert all("server_error" in d.error and "after 3 attempts" in d.error for d in failed)
    assert server.count(status=500) == 12  # bounded: 3 attempts x 4 candidates
    server.clear_faults()
    summary = run_draft(collected, server, limit=2)
    assert summary.done == 4 and summary.cached == 4  # only the failed ones were sent again
    assert not collected.drafts(status="failed")


def test_timeouts_malformed_and_dropped_connections_are_retried(collected, server):
    server.inject("timeout", seconds=1.5)
    server.inject("malformed")
    server.inject("drop")
    summary = run_draft(collected, server, "limits.timeout_s=0.5", limit=1)
    assert summary.done == 4 and summary.failed == 0
    statuses = [c["status"] for c in ledger(collected)]
    assert {"timeout", "invalid_response", "connection_error"} <= set(statuses)
    spend = collected.spend()
    assert spend["uncertain_usd"] > 0  # a timed-out call may have been billed: counted against the budget


def test_invalid_caption_reasked_a_bounded_number_of_times(collected, server):
    server.inject("invalid_caption", times=1)
    assert run_draft(collected, server, limit=1).done == 4
    server.inject("invalid_caption", times=None)
    summary = run_draft(collected, server, "limits.max_invalid_outputs=2", limit=2)
    assert summary.failed == 4 and summary.failures == {"invalid_output": 4}
    failed = collected.drafts(status="failed")
    assert all(d.raw_text and "invalid_output" in d.error for d in failed)
    assert sum(1 for c in ledger(collected) if c["status"] == "invalid_output") == 1 + 4 * 3
    assert all(d.cost_usd > 0 for d in failed)  # paid answers are accounted even when unusable


def test_budget_is_a_hard_cap_and_the_run_resumes(collected, server):
    budget = 0.02
    summary = run_draft(collected, server, f"budget_usd={budget}", "limits.concurrency=4")
    spend = collected.spend()
    assert summary.stopped_by_budget and 0 < summary.done < CANDIDATES
    assert spend["cost_usd"] + spend["uncertain_usd"] <= budget
    assert summary.not_started == CANDIDATES - summary.done
    summary = run_draft(collected, server, "budget_usd=10")
    assert summary.done == CANDIDATES - len(collected.drafts(status="done")) + summary.done
    assert len(collected.drafts(status="done")) == CANDIDATES
    assert server.repeated_successes() == {}


def test_bad_key_stops_the_run_and_never_leaks(collected, server, caplog):
    with pytest.raises(AuthError, match="rejected the credentials") as info:
        run_draft(collected, server, api_key="co-wrong-key-77")
    assert "co-wrong-key-77" not in str(info.value)
    assert len(server.chat_requests) <= DraftConfig().limits.concurrency
    raw = (collected.root / "mirada.db").read_bytes()
    assert b"co-wrong-key-77" not in raw and API_KEY.encode() not in raw


def test_cache_key_covers_result_parameters_only(collected):
    base = DraftRunner(collected, draft_config()).plan(limit=1)
    same = DraftRunner(collected, draft_config("limits.concurrency=2", "budget_usd=3")).plan(limit=1)
    assert [j.cache_key for j in base] == [j.cache_key for j in same]
    for change in ("temperature=0.2", "cohere.model=c4ai-aya-vision-8b", "detail=high", "max_tokens=200"):
        other = DraftRunner(collected, draft_config(change)).plan(limit=1)
        assert not {j.cache_key for j in other} & {j.cache_key for j in base}, change


def test_edited_prompt_without_version_bump_is_reported(collected, server, tmp_path):
    import shutil

    prompts = tmp_path / "prompts"
    shutil.copytree(DraftConfig().prompts_dir, prompts)
    run_draft(collected, server, f"prompts_dir={prompts}", limit=1)
    assert DraftRunner(collected, draft_config(f"prompts_dir={prompts}")).check_prompt_versions() == []
    language = collected.images()[0].language
    path = prompts / "v1" / f"{language}.yaml"
    path.write_text(path.read_text() + "\n# edited\n")
    warnings = DraftRunner(collected, draft_config(f"prompts_dir={prompts}")).check_prompt_versions()
    assert len(warnings) == 1 and "changed" in warnings[0]


def test_image_without_template_fails_with_reason_without_a_call(collected, server):
    collected._db.execute("UPDATE images SET language = 'ay' WHERE seq = 1")
    summary = run_draft(collected, server, limit=1)
    assert summary.failed == 4 and summary.failures == {"no_prompt_template": 4}
    assert len(server.chat_requests) == 0
    assert all("no prompt template" in d.error for d in collected.drafts(status="failed"))


def test_in_flight_reservations_wait_instead_of_stopping_the_run(collected, server):
    # Budget for ~3 upper-bound reservations at once, but far more actual spend: the run must not stop
    # just because concurrent requests hold reservations.
    runner = DraftRunner(collected, draft_config())
    upper = runner.plan(limit=1)[0].estimate.cost(runner.price, upper=True)
    server.latency_s = 0.05
    summary = run_draft(collected, server, f"budget_usd={upper * 3.5}", "limits.concurrency=8")
    spend = collected.spend()
    assert spend["cost_usd"] <= upper * 3.5
    assert summary.done > 8  # actual costs are far below the upper bound: many more than 3 fit


def test_a_missing_image_file_fails_that_job_only(collected, server):
    first = collected.images()[0]
    collected.image_path(first).unlink()
    summary = run_draft(collected, server)
    assert summary.failures == {"internal_error": 4}
    assert summary.done == CANDIDATES - 4
    assert all("FileNotFoundError" in d.error for d in collected.drafts(status="failed"))


def test_corrected_metadata_drafts_again(collected, server):
    run_draft(collected, server, limit=1)
    image = collected.images()[0]
    collected._db.execute(
        "UPDATE images SET cultural_context = 'Notas corregidas.' WHERE id = ?", (image.id,)
    )
    summary = run_draft(collected, server, limit=1)
    assert summary.cached == 0 and summary.done == 4
    assert any("Notas corregidas." in r.prompt for r in server.chat_requests[-4:])


class OverbillingBackend:
    """Our own Backend interface (not an SDK): bills ten times more input than any estimate allows."""

    name = "cohere"
    model = "command-a-vision-07-2025"

    async def chat(self, request):
        from data_tools.draft.backends import ChatResponse

        caption = (
            '{"caption": "Una foto con contexto.", "cultural_terms": [], "language": "es", "confidence": 0.5}'
        )
        billed = 50_000  # far above the upper bound of a low-detail request
        return ChatResponse(caption, billed, 30, billed, 30)

    async def aclose(self):
        pass


def test_billing_above_the_upper_bound_widens_reservations(collected):
    import asyncio

    config = draft_config("limits.concurrency=1")
    runner = DraftRunner(collected, config, OverbillingBackend())
    one_call = (50_000 * runner.price.input + 30 * runner.price.output) / 1e6
    runner.config.budget_usd = one_call * 3.5
    jobs = runner.plan()
    summary = asyncio.run(runner.run(jobs, collected.start_run("draft", {})))
    assert summary.stopped_by_budget
    # the first call overran its reservation; after it, reservations are sized by what was billed
    assert collected.spend()["cost_usd"] <= runner.config.budget_usd
    assert summary.done == 3
