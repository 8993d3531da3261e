"""Judge prompts as data: ``configs/prompts/judge/<version>.yaml``, one file per version.

Why data and not code: calibration compares prompt versions against the annotators, so a prompt
must be something a team edits, versions and compares without touching Python. The version is in
every verdict's cache key; the file's SHA-256 is stored with each verdict, so an edit without a
version bump is detected (and reported) instead of silently mixing two prompts in one table.

A file holds ``version``, ``criteria`` (name -> what it means; Jinja, may use ``language``),
``system``, ``pairwise`` and ``rubric`` (Jinja templates; see ``v1.yaml`` for the variables).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined, Template, TemplateError

from data_tools.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO_ROOT / "configs" / "prompts" / "judge"
REQUIRED = ("version", "criteria", "system", "pairwise", "rubric")
CRITERIA = ("cultural_accuracy", "specificity", "respect", "faithfulness", "fluency")


_ENV = Environment(undefined=StrictUndefined, keep_trailing_newline=False)


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> Template:
    """Compile each template text once: planning renders thousands of prompts from a handful of texts."""
    return _ENV.from_string(text)


class JudgePromptError(UserError, ValueError):
    """A judge prompt is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class JudgePrompt:
    version: str
    path: Path
    sha256: str
    system: str
    criteria: dict[str, str]
    pairwise_template: str
    rubric_template: str

    def _render(self, template: str, context: dict[str, Any]) -> str:
        try:
            criteria = {name: _compiled(text).render(**context) for name, text in self.criteria.items()}
            return _compiled(template).render(**context, criteria=criteria).strip()
        except TemplateError as exc:
            raise JudgePromptError(f"{self.path.name}: {exc}") from None

    def pairwise(self, context: dict[str, Any], caption_a: str, caption_b: str) -> str:
        """The user turn asking to compare ``caption_a`` (shown first) with ``caption_b``."""
        return self._render(
            self.pairwise_template, {**context, "caption_a": caption_a, "caption_b": caption_b}
        )

    def rubric(self, context: dict[str, Any], caption: str) -> str:
        """The user turn asking for 1–5 scores per criterion for one caption."""
        return self._render(self.rubric_template, {**context, "caption": caption})


def available(directory: Path = DEFAULT_DIR) -> list[str]:
    return sorted(path.stem for path in Path(directory).glob("*.yaml"))


def load_prompt(version: str, directory: Path = DEFAULT_DIR) -> JudgePrompt:
    """``load_prompt("v1")`` reads ``configs/prompts/judge/v1.yaml``; unknown versions list the known ones."""
    path = Path(directory) / f"{version}.yaml"
    if not path.is_file():
        known = ", ".join(available(directory)) or "none"
        raise JudgePromptError(f"no judge prompt {version!r} in {Path(directory).name}/ (available: {known})")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise JudgePromptError(f"{path.name} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise JudgePromptError(f"{path.name} must be a mapping with keys {', '.join(REQUIRED)}")
    missing = [key for key in REQUIRED if not data.get(key)]
    if missing:
        raise JudgePromptError(f"{path.name} lacks {', '.join(missing)}")
    if str(data["version"]) != version:
        raise JudgePromptError(f"{path.name} says version {data['version']!r}; the file name must match it")
    criteria = {str(k): str(v) for k, v in dict(data["criteria"]).items()}
    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown:
        raise JudgePromptError(f"{path.name}: unknown criteria {unknown}; use {', '.join(CRITERIA)}")
    return JudgePrompt(
        version=version, path=path, sha256=hashlib.sha256(raw).hexdigest(), system=str(data["system"]).strip(),
        criteria=criteria, pairwise_template=str(data["pairwise"]), rubric_template=str(data["rubric"]),
    )  # fmt: skip
