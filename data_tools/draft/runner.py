"""Plan and run caption drafting: cached, concurrent, rate-limited, budgeted, resumable.

Planning turns every collected image into jobs (image × strategy × variant), each with a cache key
over everything that changes the result (image, backend, model, prompt version and variety,
strategy, variant, perturbation, generation parameters) and nothing that does not (concurrency,
limits). A job whose key is already ``done`` in the workspace is never sent again.

Running keeps at most ``limits.concurrency`` requests in flight. Each candidate is *claimed* in the
workspace before its first call, so other ``mirada draft`` processes on the same workspace skip it
(a dead process's claims are taken over). Before each attempt the attempt's *upper-bound* cost is
written to the ledger (write-ahead); if the workspace's spend plus every reservation of every
process could pass the budget, no new request starts, in-flight ones finish, and the run stops
cleanly. Every attempt is finalised in the ledger (with its draft, when final) before the next
decision, so ``kill -9`` at any moment loses at most the answers still in flight, and those still
count against the budget at their upper bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from data_tools.draft.backends import Backend, BackendError, ChatRequest, ChatResponse
from data_tools.draft.config import DraftConfig
from data_tools.draft.cost import TokenEstimate, cost_usd, estimate
from data_tools.draft.parsing import InvalidOutput, parse_caption
from data_tools.draft.prompts import (
    CONFUSABLE_COUNTRIES,
    CONFUSABLE_VARIETIES,
    PromptError,
    PromptLibrary,
    PromptTemplate,
    compile_template,
    country_name,
)
from data_tools.draft.ratelimit import RateLimiter
from data_tools.logs import progress_bar
from data_tools.secrets import redact
from data_tools.workspace import CallRecord, DraftRecord, ImageRow, Workspace

log = logging.getLogger("data_tools.draft")

# Outcomes whose billing we cannot know: the request may have been processed and charged.
UNCERTAIN_BILLING = frozenset({"timeout", "connection_error", "invalid_response"})


class AuthError(RuntimeError):
    """The provider rejected the credentials; the run stops (nothing else would succeed)."""


@dataclass
class DraftJob:
    cache_key: str
    image: ImageRow
    strategy: str
    variant: int
    perturbation: str | None
    template: PromptTemplate | None
    system: str
    prompt: str
    estimate: TokenEstimate
    params: dict[str, Any]
    error: str | None = None  # a planning problem (e.g. no template for the language)


@dataclass
class DraftSummary:
    planned: int = 0
    cached: int = 0
    done: int = 0
    failed: int = 0
    not_started: int = 0
    held_elsewhere: int = 0  # drafted by another live process on the same workspace at the time
    stopped_by_budget: bool = False
    calls: Counter[str] = field(default_factory=Counter)
    by_strategy: dict[str, Counter[str]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)
    spent_usd: float = 0.0
    uncertain_usd: float = 0.0
    seconds: float = 0.0

    def count(self, strategy: str, outcome: str) -> None:
        self.by_strategy.setdefault(strategy, Counter())[outcome] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned, "cached": self.cached, "done": self.done, "failed": self.failed,
            "not_started": self.not_started, "held_elsewhere": self.held_elsewhere, "stopped_by_budget": self.stopped_by_budget, "calls": dict(self.calls),
            "by_strategy": {k: dict(v) for k, v in self.by_strategy.items()}, "failures": dict(self.failures),
            "spent_usd": round(self.spent_usd, 6), "uncertain_usd": round(self.uncertain_usd, 6),
            "seconds": round(self.seconds, 3),
        }  # fmt: skip


def _stable_int(*parts: object) -> int:
    return int(hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:8], 16)


def cache_key(image_id: str, backend: str, model: str, template_version: str, template_language: str,
              strategy: str, variant: int, perturbation: str | None, params: dict[str, Any],
              context: dict[str, Any] | None = None) -> str:  # fmt: skip
    """The identity of a draft: what changes the answer, nothing that does not.

    ``context`` (the image metadata the prompt shows) makes corrected metadata (a fixed country, new
    notes) draft again instead of reusing captions that state the old facts. Template text is
    covered by the prompt version instead, so a typo fix does not silently pay for a new round.
    """
    blob = json.dumps(
        [
            image_id,
            backend,
            model,
            template_version,
            template_language,
            strategy,
            variant,
            perturbation,
            params,
            context or {},
        ],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class DraftRunner:
    """Drafts caption candidates for a workspace with one backend.

    The paid-call loop (claims, write-ahead budget reservations, retries, re-asks, ledger) is shared
    with other kinds of jobs through hooks a subclass overrides: ``pending``, ``_taken``, ``_status``
    and ``_reserve_call`` (what is still to do, and its claim), ``_request`` (what to send), ``_parse``
    (a valid answer or ``InvalidOutput``), ``_draft``/``_done`` (the record of a failure/success)
    and ``_finish_call``/``_save_result`` (how it is stored). The judge (``eval.judge.runner``)
    reuses it so.
    """

    kind = "draft"  # progress-bar label

    def __init__(self, workspace: Workspace, config: DraftConfig, backend: Backend | None = None) -> None:
        self.ws = workspace
        self.config = config
        self.backend = backend
        self.library = PromptLibrary(config.prompts_dir, config.prompt_version)
        self.price = config.price()

    # -- planning --------------------------------------------------------------------------------
    def _params(self, variant: int) -> dict[str, Any]:
        return {
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "detail": self.config.detail,
            "output": self.config.output,
            "json_mode": self.config.backend == "cohere" and self.config.cohere.json_mode,
            "seed": variant,
        }

    def _perturbation(self, image: ImageRow, variant: int) -> str:
        options = [p for p in self.config.perturbations if not (p == "wrong_country" and not image.country)]
        if not options:
            raise PromptError("no perturbation applies (wrong_country needs a country)")
        return options[(_stable_int(image.id) + variant) % len(options)]

    def _context(self, image: ImageRow, template: PromptTemplate) -> dict[str, Any]:
        lang = template.language.split("-")[0]
        confusable = CONFUSABLE_COUNTRIES.get(image.country or "", ("ES",))
        wrong_country = confusable[_stable_int(image.id, "country") % len(confusable)]
        wrong_language = CONFUSABLE_VARIETIES.get(
            image.language or "", CONFUSABLE_VARIETIES.get(template.language, "es-ES")
        )
        wrong_template = self.library.templates.get(wrong_language)
        return {
            "country": image.country,
            "country_name": country_name(image.country, lang),
            "region": image.region,
            "category": template.categories.get(image.category or "", image.category),
            "cultural_context": image.cultural_context,
            "language": image.language,
            "language_name": template.language_name,
            "wrong_country_name": country_name(wrong_country, lang),
            "wrong_language": wrong_language,
            "wrong_language_name": wrong_template.language_name if wrong_template else wrong_language,
        }

    def plan(self, limit: int | None = None) -> list[DraftJob]:
        """All jobs for the workspace's images (the first ``limit`` images if given), cached or not."""
        images = self.ws.images(status=None if self.config.include_near_duplicates else "ok")
        if limit is not None:
            images = images[:limit]
        counts = self.config.strategies
        jobs = []
        for image in images:
            for strategy, number in (
                ("cultural", counts.cultural),
                ("generic", counts.generic),
                ("perturbed", counts.perturbed),
            ):
                for variant in range(number):
                    jobs.append(self._job(image, strategy, variant))
        return jobs

    def _job(self, image: ImageRow, strategy: str, variant: int) -> DraftJob:
        params = self._params(variant)
        empty = estimate("", image.width, image.height, self.config.detail, self.config.max_tokens)
        try:
            template = self.library.for_language(image.language)
            perturbation = self._perturbation(image, variant) if strategy == "perturbed" else None
            context = self._context(image, template)
            prompt = template.render(strategy, context, perturbation=perturbation)
            answer = template.output_json if self.config.output == "json" else template.output_text
            prompt = prompt + "\n\n" + compile_template(answer).render(**context)
        except PromptError as exc:
            key = cache_key(image.id, self.config.backend, self.config.model, self.config.prompt_version, "?",
                            strategy, variant, None, params)  # fmt: skip
            return DraftJob(key, image, strategy, variant, None, None, "", "", empty, params, error=str(exc))
        key = cache_key(image.id, self.config.backend, self.config.model, template.version, template.language,
                        strategy, variant, perturbation, params, context)  # fmt: skip
        tokens = estimate(
            template.system + prompt, image.width, image.height, self.config.detail, self.config.max_tokens
        )
        return DraftJob(
            key, image, strategy, variant, perturbation, template, template.system, prompt, tokens, params
        )

    def pending(self, jobs: list[DraftJob]) -> list[DraftJob]:
        states = self.ws.draft_states()
        return [job for job in jobs if states.get(job.cache_key, ("", 0))[0] != "done"]

    def estimate_cost(self, jobs: list[DraftJob]) -> dict[str, Any]:
        """What drafting ``jobs`` should cost (expected) and can cost at most (upper bound, one attempt each)."""
        sendable = [job for job in jobs if job.error is None]
        return {
            "requests": len(sendable),
            "unsendable": len(jobs) - len(sendable),
            "input_tokens_expected": sum(j.estimate.input_expected for j in sendable),
            "output_tokens_expected": sum(j.estimate.output_expected for j in sendable),
            "cost_expected_usd": sum(j.estimate.cost(self.price, upper=False) for j in sendable),
            "cost_upper_usd": sum(j.estimate.cost(self.price, upper=True) for j in sendable),
            "model": self.config.model,
            "price_per_million": self.price.model_dump(),
        }

    def check_prompt_versions(self) -> list[str]:
        """Warnings for templates edited after drafts were made with the same version."""
        warnings = []
        for (version, language), hashes in self.ws.prompt_hashes().items():
            template = self.library.templates.get(language)
            if version == self.library.version and template and hashes - {template.sha256}:
                warnings.append(
                    f"prompt template {template.path} changed since drafts were made with version {version!r}; "
                    "cached drafts are reused: set a new prompt_version to draft again with the new text"
                )
        return warnings

    # -- running ---------------------------------------------------------------------------------
    async def run(self, jobs: list[DraftJob], run_id: int) -> DraftSummary:
        if self.backend is None:
            raise ValueError("a backend is needed to run drafts")
        summary = DraftSummary(planned=len(jobs))
        todo = self.pending(jobs)
        summary.cached = len(jobs) - len(todo)
        ttl = self.config.limits.claim_ttl_s
        self.ws.heartbeat(run_id)
        lost, lost_usd = self.ws.reconcile_lost_calls(ttl_s=ttl)
        if lost:
            log.warning(
                "%d call(s) were in flight when their process ended; their billing is unknown, so they count "
                "against the budget at their upper bound ($%.4f)", lost, lost_usd,
            )  # fmt: skip
        state = _RunState()
        limiter = RateLimiter(self.config.limits.requests_per_minute, self.config.limits.tokens_per_minute)
        queue: asyncio.Queue[DraftJob] = asyncio.Queue()
        for job in todo:
            queue.put_nowait(job)
        started = time.perf_counter()
        beat = asyncio.create_task(self._heartbeat(run_id, ttl))
        with progress_bar(total=len(todo), desc=f"{self.kind} ({self.config.backend})", unit="cand") as bar:
            deferred: list[DraftJob] = []  # held by another process: looked at once more at the end

            async def worker() -> None:
                while not state.stop:
                    last_look = queue.empty()
                    if last_look and not deferred:
                        break
                    job = deferred.pop() if last_look else queue.get_nowait()
                    # Cheap, lock-free: skip what another process finished or holds; the claim itself is
                    # taken with the first reservation (one transaction), which checks again.
                    taken = self._taken(job, run_id, ttl)
                    if taken == "held" and not last_look:
                        deferred.append(job)  # its owner may die before this run ends: then take it over
                        continue
                    if last_look and taken is None and self._status(job) == "failed":
                        taken = "held"  # the other process tried and gave up on it: a rerun retries it
                    try:
                        outcome = (
                            f"{taken}_elsewhere"
                            if taken
                            else await self._run_job(job, run_id, limiter, state, summary)
                        )
                    except Exception as exc:  # one broken job (e.g. an image file gone) must not end the run
                        log.error("%s failed unexpectedly: %s", job.cache_key[:12], exc)
                        error = f"internal_error: {type(exc).__name__}: {redact(str(exc))}"
                        self._save_result(self._draft(job, "failed", 0, 0.0, error=error), run_id)
                        outcome = self._finish(job, "failed", "internal_error", summary)
                    if outcome == "not_started":
                        summary.not_started += 1
                        continue
                    if outcome == "done_elsewhere":
                        summary.cached += 1
                    elif outcome == "held_elsewhere":
                        summary.held_elsewhere += 1
                    bar.update(1)
                    bar.set_postfix(spent=f"${state.run_spent:.4f}", failed=summary.failed, refresh=False)

            workers = [
                asyncio.create_task(worker())
                for _ in range(min(self.config.limits.concurrency, max(1, len(todo))))
            ]
            try:
                await asyncio.gather(*workers)
            finally:
                for task in [*workers, beat]:
                    task.cancel()
                self.ws.release_claims(run_id)
        summary.not_started += queue.qsize()
        summary.held_elsewhere += len(deferred)
        summary.stopped_by_budget = state.budget_hit
        summary.spent_usd = state.run_spent
        summary.uncertain_usd = state.run_uncertain
        summary.seconds = time.perf_counter() - started
        if state.auth_error:
            raise AuthError(state.auth_error)
        return summary

    async def _heartbeat(self, run_id: int, ttl: float) -> None:
        """Keep this run's claims and reservations alive for other processes (they take over after ``ttl``)."""
        period = max(0.5, min(15.0, ttl / 4))
        while True:
            await asyncio.sleep(period)
            self.ws.heartbeat(run_id)

    def _request(self, job: DraftJob) -> ChatRequest:
        path = self.ws.image_path(job.image)
        mime = "image/png" if path.suffix == ".png" else "image/jpeg"
        return ChatRequest(
            system=job.system,
            prompt=job.prompt,
            image=path.read_bytes(),
            image_mime=mime,
            detail=self.config.detail,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            seed=job.variant,
            json_mode=bool(job.params["json_mode"]),
            timeout_s=self.config.limits.timeout_s,
        )

    def _draft(self, job: DraftJob, status: str, attempts: int, cost: float, **fields: Any) -> DraftRecord:
        template = job.template
        return DraftRecord(
            cache_key=job.cache_key, image_id=job.image.id, strategy=job.strategy, variant=job.variant,
            perturbation=job.perturbation, backend=self.config.backend, model=self.config.model,
            prompt_version=self.config.prompt_version, prompt_language=template.language if template else "?",
            prompt_sha256=template.sha256 if template else "", params=job.params, status=status,
            attempts=attempts, cost_usd=cost, **fields,
        )  # fmt: skip

    def _call(self, job: DraftJob, status: str, **fields: Any) -> CallRecord:
        return CallRecord(backend=self.config.backend, model=self.config.model, status=status,
                          cache_key=job.cache_key, image_id=job.image.id, **fields)  # fmt: skip

    async def _run_job(
        self, job: DraftJob, run_id: int, limiter: RateLimiter, state: _RunState, summary: DraftSummary
    ) -> str:
        limits = self.config.limits
        if job.error is not None:
            self._save_result(self._draft(job, "failed", 0, 0.0, error=job.error), run_id)
            return self._finish(job, "failed", "no_prompt_template", summary)
        request = self._request(job)
        base_upper = job.estimate.cost(self.price, upper=True)
        transient = invalid = attempts = 0
        job_cost = 0.0
        while True:
            if state.stop:
                return (
                    "not_started"
                    if attempts == 0
                    else self._give_up(job, run_id, attempts, job_cost, "run stopped", summary)
                )
            await limiter.acquire(job.estimate.input_expected + job.estimate.output_expected)
            upper = base_upper * state.overrun  # grows if the provider ever billed above our upper bound
            call_id = await self._reserve(job, run_id, state, upper, claim=attempts == 0)
            if isinstance(call_id, str):  # another process finished or holds it: nothing was sent
                return call_id
            if call_id is None:
                return (
                    "not_started"
                    if attempts == 0
                    else self._give_up(job, run_id, attempts, job_cost, "budget reached", summary)
                )
            attempts += 1
            summary.calls["sent"] += 1
            began = time.perf_counter()
            try:
                response = await self.backend.chat(request)  # type: ignore[union-attr]
            except BackendError as error:
                latency = time.perf_counter() - began
                uncertain = upper if error.kind in UNCERTAIN_BILLING else 0.0
                state.add(0.0, uncertain)
                summary.calls[error.kind] += 1
                call = self._call(job, error.kind, http_status=error.http_status, cost_upper_usd=uncertain,
                                  latency_s=latency, error=redact(str(error)))  # fmt: skip
                if error.kind == "auth_error":
                    self._finish_call(call_id, call, run_id, None, release=job.cache_key)
                    state.stop = True
                    state.auth_error = (
                        f"{self.config.backend} rejected the credentials ({redact(str(error))}); "
                        "check the API key"
                    )
                    return self._finish(job, "failed", "auth_error", summary, count=False)
                transient += error.transient
                final = not error.transient or transient >= limits.max_attempts
                reason = f"{error.kind}: {redact(str(error))}" + (
                    f" (after {attempts} attempts)" if error.transient else ""
                )
                draft = self._draft(job, "failed", attempts, job_cost, error=reason) if final else None
                # finalised before any backoff, so a waiting job (here or in another process) is not blocked
                self._finish_call(call_id, call, run_id, draft, release=job.cache_key if final else None)
                if final:
                    return self._finish(job, "failed", error.kind, summary)
                delay = error.retry_after
                if delay is None:
                    delay = min(
                        limits.max_backoff_s, limits.backoff_s * 2 ** (transient - 1)
                    ) * random.uniform(0.8, 1.2)
                delay = min(delay, limits.max_backoff_s)
                if error.kind == "rate_limited":
                    limiter.pause(delay)
                log.debug("retrying %s after %s in %.2fs", job.cache_key[:10], error.kind, delay)
                await asyncio.sleep(delay)
                continue
            latency = time.perf_counter() - began
            cost = self._cost(response, job.estimate)
            if cost > upper:
                # The estimate was not an upper bound for this provider: widen every later reservation.
                state.overrun = max(state.overrun, 1.25 * cost / base_upper)
                log.warning(
                    "a call cost $%.6f, above its reserved upper bound $%.6f; reservations now x%.2f",
                    cost, upper, state.overrun,
                )  # fmt: skip
            job_cost += cost
            state.add(cost, 0.0)
            try:
                parsed = self._parse(job, response.text)
            except InvalidOutput as exc:
                invalid += 1
                summary.calls["invalid_output"] += 1
                final = invalid > limits.max_invalid_outputs
                call = self._call(
                    job,
                    "invalid_output",
                    **self._usage(response),
                    cost_usd=cost,
                    latency_s=latency,
                    error=str(exc),
                )
                draft = (
                    self._draft(job, "failed", attempts, job_cost, raw_text=response.text[:4000],
                                error=f"invalid_output: {exc} (after {invalid} answers)")
                    if final else None
                )  # fmt: skip
                self._finish_call(call_id, call, run_id, draft, release=job.cache_key if final else None)
                if final:
                    return self._finish(job, "failed", "invalid_output", summary)
                continue
            summary.calls["ok"] += 1
            call = self._call(job, "ok", **self._usage(response), cost_usd=cost, latency_s=latency)
            draft = self._done(job, attempts, job_cost, parsed, response.text)
            self._finish_call(call_id, call, run_id, draft, release=job.cache_key)
            return self._finish(job, "done", None, summary)

    # -- hooks a job kind overrides (see the class docstring) ---------------------------------------
    def _taken(self, job: Any, run_id: int, ttl: float) -> str | None:
        """``done``/``held`` when another process finished or holds the job (a lock-free read)."""
        return self.ws.draft_taken(job.cache_key, run_id, ttl_s=ttl)

    def _status(self, job: Any) -> str | None:
        """``done``/``failed`` of the job's stored result, None if there is none."""
        return self.ws.draft_status(job.cache_key)

    def _reserve_call(self, call: CallRecord, run_id: int, *, budget_usd: float | None, ttl_s: float,
                      claim: bool) -> Any:  # fmt: skip
        """The write-ahead ledger row (and, on a first attempt, the job's claim) in one transaction."""
        return self.ws.reserve_draft_call(call, run_id, budget_usd=budget_usd, ttl_s=ttl_s, claim=claim)

    def _parse(self, job: Any, text: str) -> Any:
        return parse_caption(text, output=self.config.output)

    def _done(self, job: Any, attempts: int, cost: float, parsed: Any, text: str) -> Any:
        return self._draft(
            job, "done", attempts, cost, caption=parsed.caption, cultural_terms=parsed.cultural_terms,
            language=parsed.language or job.image.language, confidence=parsed.confidence, raw_text=text[:4000],
        )  # fmt: skip

    def _finish_call(
        self, call_id: int, call: CallRecord, run_id: int, result: Any, *, release: str | None
    ) -> None:
        """Finalise the reserved ledger row with the job's result (if final) and release its claim, atomically."""
        self.ws.finish_call(call_id, call, run_id, result, release=release)

    def _save_result(self, result: Any, run_id: int) -> None:
        """A result that involved no API call (failed before sending)."""
        self.ws.save_draft(result, run_id)

    async def _reserve(
        self, job: DraftJob, run_id: int, state: _RunState, upper: float, *, claim: bool
    ) -> int | str | None:
        """Write this attempt's ``upper`` USD to the ledger before it is sent; None once the budget cannot take it.

        The first attempt also claims the candidate in the same transaction; if another process
        finished or holds it, the answer is ``"done_elsewhere"`` / ``"held_elsewhere"``.

        The check covers every process on the workspace (see ``Workspace.reserve_call``). Requests in
        flight hold reservations that mostly come back (actual cost is far below the upper bound), so
        when only live ones stand in the way we wait for them instead of stopping.
        """
        while not state.stop:
            reservation = self._reserve_call(
                self._call(job, "reserved", cost_upper_usd=upper),
                run_id,
                budget_usd=self.config.budget_usd,
                ttl_s=self.config.limits.claim_ttl_s,
                claim=claim,
            )
            if reservation.taken:
                return f"{reservation.taken}_elsewhere"
            if reservation.call_id is not None:
                return reservation.call_id
            if not reservation.wait:
                state.stop = state.budget_hit = True
                return None
            await asyncio.sleep(0.05)
        return None

    def _give_up(
        self, job: DraftJob, run_id: int, attempts: int, cost: float, why: str, summary: DraftSummary
    ) -> str:
        self._save_result(
            self._draft(job, "failed", attempts, cost, error=f"{why} before a usable answer"), run_id
        )
        return self._finish(job, "failed", why.replace(" ", "_"), summary)

    @staticmethod
    def _finish(
        job: DraftJob, outcome: str, reason: str | None, summary: DraftSummary, count: bool = True
    ) -> str:
        if outcome == "done":
            summary.done += 1
        else:
            summary.failed += 1
            summary.failures[reason or "unknown"] += 1
        if count:
            summary.count(job.strategy, outcome)
        return outcome

    @staticmethod
    def _usage(response: ChatResponse) -> dict[str, Any]:
        return {
            "http_status": response.http_status,
            "input_tokens": response.input_tokens,
            "output_tokens": response.output_tokens,
            "billed_input_tokens": response.billed_input_tokens,
            "billed_output_tokens": response.billed_output_tokens,
        }

    def _cost(self, response: ChatResponse, fallback: TokenEstimate) -> float:
        # Bill by billed_units when the provider reports them; tokens include unbilled template overhead.
        inputs = (
            response.billed_input_tokens
            if response.billed_input_tokens is not None
            else response.input_tokens
        )
        outputs = (
            response.billed_output_tokens
            if response.billed_output_tokens is not None
            else response.output_tokens
        )
        return cost_usd(
            self.price,
            fallback.input_upper if inputs is None else inputs,
            fallback.output_upper if outputs is None else outputs,
        )


@dataclass
class _RunState:
    run_spent: float = 0.0
    run_uncertain: float = 0.0
    stop: bool = False
    budget_hit: bool = False
    overrun: float = 1.0
    auth_error: str | None = None

    def add(self, cost: float, uncertain: float) -> None:
        self.run_spent += cost
        self.run_uncertain += uncertain
