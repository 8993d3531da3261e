"""Parse what a vision model answered into a validated caption.

Command A Vision is not listed as structured-output capable, so we ask for JSON in the prompt and
parse defensively: code fences, prose around the object and percent confidences are tolerated;
a missing or empty caption is not (the caller re-asks a bounded number of times).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator


class InvalidOutput(ValueError):
    """The model's answer is not a usable caption; the message says why (shown in the ledger)."""


class CaptionOutput(BaseModel):
    caption: str = Field(min_length=3, max_length=3000)
    cultural_terms: list[str] = Field(default_factory=list)
    language: str | None = None
    confidence: float | None = Field(None, ge=0, le=1)

    @field_validator("caption")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("cultural_terms", mode="before")
    @classmethod
    def _terms(cls, value: object) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [str(item).strip() for item in value if str(item).strip()]
        raise ValueError("cultural_terms must be a list of strings")

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence(cls, value: object) -> float | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            value = value.strip().rstrip("%")
            number = float(value)
            return number / 100 if number > 1 else number
        number = float(value)  # type: ignore[arg-type]
        return number / 100 if 1 < number <= 100 else number


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def _first_object(text: str) -> str | None:
    """The first balanced ``{…}`` in ``text``, respecting strings: ``_first_object('x {"a": "}"} y') == '{"a": "}"}'``."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for index in range(start, len(text)):
            char = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[start : index + 1]
        start = text.find("{", start + 1)
    return None


def parse_caption(text: str, *, output: str = "json") -> CaptionOutput:
    """A validated caption from a model answer; raises :class:`InvalidOutput`."""
    if not text or not text.strip():
        raise InvalidOutput("empty answer")
    if output == "text":
        caption = text.strip().strip('"“”«»').strip()
        try:
            return CaptionOutput(caption=caption)
        except ValidationError as exc:
            raise InvalidOutput(f"unusable caption text: {exc.errors()[0]['msg']}") from None
    data = json_object(text)
    try:
        return CaptionOutput.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "object"
        raise InvalidOutput(f"invalid field {field}: {first['msg']}") from None


def json_object(text: str) -> dict[str, Any]:
    """The first JSON object in a model's answer (inside a ```json fence if there is one).

    Raises :class:`InvalidOutput` with what was wrong, so the runner re-asks; shared by every paid
    stage that asks a model for JSON (draft captions, judge verdicts).
    """
    fenced = _FENCE.search(text)
    candidate = _first_object(fenced.group(1) if fenced else text)
    if candidate is None:
        raise InvalidOutput(f"no JSON object in the answer: {text[:80]!r}")
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise InvalidOutput(f"malformed JSON ({exc.msg}) in {candidate[:80]!r}") from None
    if not isinstance(data, dict):
        raise InvalidOutput("the JSON is not an object")
    return data
