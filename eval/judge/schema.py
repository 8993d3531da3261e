"""Judge verdicts as validated data: what a usable answer is, and what gets the judge re-asked.

The judge is asked for JSON but Command A Vision is not a structured-output model (DESIGN §6.5),
so every answer is parsed with the draft stage's JSON extraction and validated here with pydantic.
An answer that fails is an ``InvalidOutput``: the runner re-asks (``limits.max_invalid_outputs``)
and bills every attempt, exactly as for a draft.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from data_tools.draft.parsing import InvalidOutput, json_object

Choice = Literal["A", "B", "tie"]


def _choice(value: object) -> object:
    """Accept the spellings models use for the same answer: ``"a"``, ``"Caption A"``, ``"TIE"``."""
    if isinstance(value, str):
        text = value.strip().strip('."').lower()
        text = text.removeprefix("caption ").strip()
        if text in ("a", "b"):
            return text.upper()
        if text in ("tie", "draw", "equal", "none", "both"):
            return "tie"
    return value


class PairwiseVerdict(BaseModel):
    """Which of two captions is better: overall and per criterion, with a short reason."""

    winner: Choice
    criteria: dict[str, Choice] = Field(default_factory=dict)
    reason: str = Field("", max_length=2000)

    _norm_winner = field_validator("winner", mode="before")(_choice)

    @field_validator("criteria", mode="before")
    @classmethod
    def _norm_criteria(cls, value: object) -> object:
        return {str(k): _choice(v) for k, v in value.items()} if isinstance(value, dict) else value


class RubricVerdict(BaseModel):
    """Scores from 1 to 5 per criterion for one caption."""

    scores: dict[str, int]
    reason: str = Field("", max_length=2000)

    @field_validator("scores")
    @classmethod
    def _range(cls, value: dict[str, int]) -> dict[str, int]:
        if not value:
            raise ValueError("no scores")
        bad = {k: v for k, v in value.items() if not 1 <= v <= 5}
        if bad:
            raise ValueError(f"scores must be 1-5, got {bad}")
        return value


def parse_verdict(
    text: str, mode: str, criteria: tuple[str, ...] | list[str] = ()
) -> PairwiseVerdict | RubricVerdict:
    """The validated verdict in ``text``; raises :class:`InvalidOutput` (the runner re-asks).

    ``parse_verdict('{"winner": "a", "reason": "x"}', "pairwise").winner == "A"``
    """
    if not text or not text.strip():
        raise InvalidOutput("empty answer")
    data = json_object(text)
    model = PairwiseVerdict if mode == "pairwise" else RubricVerdict
    try:
        verdict = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "object"
        raise InvalidOutput(f"invalid field {field}: {first['msg']}") from None
    if isinstance(verdict, RubricVerdict) and criteria:
        missing = [c for c in criteria if c not in verdict.scores]
        if missing:
            raise InvalidOutput(f"no score for {', '.join(missing)}")
    return verdict
