"""Judge jobs run through the draft stage's runner: same ledger, budget, retries and resume.

A :class:`JudgeRunner` is a :class:`~data_tools.draft.runner.DraftRunner` whose jobs are verdicts
instead of captions (its hooks: what to send, how to validate the answer, where to store it). So
every guarantee drafting has holds for the judge without a second implementation: a verdict whose
cache key is ``done`` is never paid again, each attempt is committed to ``api_calls`` with the
verdict in one transaction (``kill -9`` loses only calls in flight), the workspace's total spend
(drafting's included) is held under ``budget_usd`` by upper-bound reservations, rate limits and
``Retry-After`` are honoured, and invalid JSON is re-asked up to ``limits.max_invalid_outputs``.

The cache key covers what changes the verdict: the image, both captions *in the order shown*, the
image metadata shown, the prompt version, backend, model and decoding settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from data_tools.draft.backends import ChatRequest
from data_tools.draft.cost import TokenEstimate, estimate
from data_tools.draft.prompts import country_name
from data_tools.draft.runner import DraftRunner
from data_tools.workspace import CallRecord, ImageRow, VerdictRecord, Workspace
from eval.judge.config import JudgeConfig
from eval.judge.prompts import JudgePrompt
from eval.judge.schema import parse_verdict


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class JudgeJob:
    """One verdict to obtain: a caption pair in one order (pairwise) or one caption (rubric)."""

    cache_key: str
    image: ImageRow
    strategy: str  # the mode: pairwise | rubric (the runner's per-kind counter reads ``strategy``)
    prompt: JudgePrompt
    system: str
    text: str
    subject: dict[str, Any]
    params: dict[str, Any]
    estimate: TokenEstimate
    variant: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def image_context(image: ImageRow) -> dict[str, Any]:
    """What the judge is told about the image (in English: the judge prompts are English)."""
    return {
        "country": image.country,
        "country_name": country_name(image.country, "en"),
        "region": image.region,
        "category": image.category,
        "cultural_context": image.cultural_context,
        "language": image.language or "the caption's language",
    }


class JudgeRunner(DraftRunner):
    """Plans and runs verdicts with one backend (``backend`` is set before :meth:`run`)."""

    kind = "judge"

    def __init__(self, workspace: Workspace, config: JudgeConfig, backend: Any = None) -> None:
        # Not DraftRunner.__init__: that loads the draft prompt library, which the judge does not use.
        self.ws = workspace
        self.config = config  # type: ignore[assignment]
        self.backend = backend
        self.price = config.price()

    # -- planning --------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        json_mode = self.config.backend == "cohere" and self.config.cohere.json_mode
        return {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
                "detail": self.config.detail, "json_mode": json_mode, "seed": 0}  # fmt: skip

    def _key(
        self, image: ImageRow, mode: str, prompt: JudgePrompt, captions: list[str], context: dict
    ) -> str:
        blob = [image.id, self.config.backend, self.config.model, mode, prompt.version,
                [sha(c) for c in captions], context, self.params()]  # fmt: skip
        return sha(json.dumps(blob, sort_keys=True, ensure_ascii=False))

    def _make(self, image: ImageRow, mode: str, prompt: JudgePrompt, text: str, captions: list[str],
              subject: dict[str, Any]) -> JudgeJob:  # fmt: skip
        context = image_context(image)
        key = self._key(image, mode, prompt, captions, context)
        tokens = estimate(
            prompt.system + text, image.width, image.height, self.config.detail, self.config.max_tokens
        )
        return JudgeJob(key, image, mode, prompt, prompt.system, text, subject, self.params(), tokens)

    def pairwise_job(
        self, image: ImageRow, prompt: JudgePrompt, first: tuple[str, str], second: tuple[str, str]
    ) -> JudgeJob:
        """The verdict on ``first`` shown as A and ``second`` as B; each is ``(id, caption)``."""
        text = prompt.pairwise(image_context(image), first[1], second[1])
        subject = {"first": first[0], "second": second[0], "first_sha": sha(first[1])[:16],
                   "second_sha": sha(second[1])[:16]}  # fmt: skip
        return self._make(image, "pairwise", prompt, text, [first[1], second[1]], subject)

    def rubric_job(self, image: ImageRow, prompt: JudgePrompt, item: tuple[str, str]) -> JudgeJob:
        text = prompt.rubric(image_context(image), item[1])
        return self._make(
            image, "rubric", prompt, text, [item[1]], {"item": item[0], "item_sha": sha(item[1])[:16]}
        )

    def prompt_warnings(self, prompts: list[JudgePrompt]) -> list[str]:
        """Warnings for judge prompts edited after verdicts were made with the same version."""
        seen = self.ws.verdict_prompt_hashes()
        return [
            f"judge prompt {p.path.name} changed since verdicts were made with version {p.version!r}; cached verdicts "
            "are reused: save the new text as a new version to judge again with it"
            for p in prompts
            if seen.get(p.version, set()) - {p.sha256}
        ]

    def pending(self, jobs: list[Any]) -> list[Any]:
        states = self.ws.verdict_states()
        return [job for job in jobs if states.get(job.cache_key, ("", 0))[0] != "done"]

    # -- DraftRunner hooks -----------------------------------------------------------------------
    def _request(self, job: JudgeJob) -> ChatRequest:  # type: ignore[override]
        path = self.ws.image_path(job.image)
        mime = "image/png" if path.suffix == ".png" else "image/jpeg"
        return ChatRequest(
            system=job.system, prompt=job.text, image=path.read_bytes(), image_mime=mime, detail=self.config.detail,
            temperature=self.config.temperature, max_tokens=self.config.max_tokens, seed=0,
            json_mode=bool(job.params["json_mode"]), timeout_s=self.config.limits.timeout_s,
        )  # fmt: skip

    def _parse(self, job: JudgeJob, text: str) -> Any:
        return parse_verdict(text, job.strategy, tuple(job.prompt.criteria))

    def _draft(self, job: JudgeJob, status: str, attempts: int, cost: float, **fields: Any) -> VerdictRecord:  # type: ignore[override]
        return VerdictRecord(
            cache_key=job.cache_key, image_id=job.image.id, mode=job.strategy, prompt_version=job.prompt.version,
            prompt_sha256=job.prompt.sha256, backend=self.config.backend, model=self.config.model, params=job.params,
            subject=job.subject, status=status, attempts=attempts, cost_usd=cost,
            raw_text=fields.get("raw_text"), error=fields.get("error"), verdict=fields.get("verdict"),
        )  # fmt: skip

    def _done(self, job: JudgeJob, attempts: int, cost: float, parsed: Any, text: str) -> VerdictRecord:
        return self._draft(job, "done", attempts, cost, verdict=parsed.model_dump(), raw_text=text[:4000])

    def _taken(self, job: JudgeJob, run_id: int, ttl: float) -> str | None:
        return self.ws.verdict_taken(job.cache_key, run_id, ttl_s=ttl)

    def _status(self, job: JudgeJob) -> str | None:
        return self.ws.verdict_status(job.cache_key)

    def _reserve_call(self, call: CallRecord, run_id: int, *, budget_usd: float | None, ttl_s: float,
                      claim: bool) -> Any:  # fmt: skip
        return self.ws.reserve_verdict_call(call, run_id, budget_usd=budget_usd, ttl_s=ttl_s, claim=claim)

    def _finish_call(
        self, call_id: int, call: CallRecord, run_id: int, result: Any, *, release: str | None
    ) -> None:
        self.ws.finish_judge_call(call_id, call, run_id, result, release=release)

    def _save_result(self, result: Any, run_id: int) -> None:
        self.ws.save_verdict(result, run_id)
