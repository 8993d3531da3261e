"""Draft prompts as data: one native YAML template per language variety, versioned by folder.

``configs/prompts/draft/<version>/<tag>.yaml`` holds the prompts for one BCP 47 variety, written
natively (a Mexican Spanish prompt says "platillo", a rioplatense one uses voseo), not translated.
Templates are Jinja so that absent metadata disappears instead of printing "None". The version is
part of every draft's cache key; the template text is hashed too, so an edit without a version bump
is detected and reported instead of silently mixing prompts.

A template file looks like::

    language: es-MX
    language_name: español de México
    categories: {food: comida, ...}  # optional: the category vocabulary in this variety
    system: ...                      # the assistant's role
    output_json: ...                 # how to answer: the JSON object and its fields
    output_text: ...                 # how to answer when plain text is requested (local models)
    strategies:
      cultural: ...                  # Jinja; all metadata
      generic: ...                   # no cultural context: a plausible, flat caption
      perturbed:
        wrong_country: ...           # attributes the image to {{ wrong_country_name }}
        stereotype: ...              # leans on a cliché about the culture
        wrong_variety: ...           # written in {{ wrong_language_name }}
"""

from __future__ import annotations

import functools
import gettext
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

STRATEGIES = ("cultural", "generic", "perturbed")
PERTURBATIONS = ("wrong_country", "stereotype", "wrong_variety")
REQUIRED_KEYS = ("language", "language_name", "system", "output_json", "output_text", "strategies")

# Plausible confusions for the wrong-country and wrong-variety perturbations: near neighbours make
# harder negatives than random picks.
CONFUSABLE_COUNTRIES: dict[str, tuple[str, ...]] = {
    "MX": ("ES", "GT", "CO"), "GT": ("MX", "HN"), "HN": ("SV", "GT"), "SV": ("HN", "NI"), "NI": ("CR", "HN"),
    "CR": ("PA", "NI"), "PA": ("CO", "CR"), "CU": ("DO", "PR"), "DO": ("CU", "PR"), "PR": ("DO", "CU"),
    "CO": ("VE", "EC", "MX"), "VE": ("CO",), "EC": ("PE", "CO"), "PE": ("BO", "EC"), "BO": ("PE", "AR"),
    "CL": ("AR", "PE"), "AR": ("UY", "CL"), "UY": ("AR",), "PY": ("AR", "BO"), "ES": ("MX", "PT", "AR"),
    "PT": ("BR", "ES"), "BR": ("PT", "AR"), "AD": ("ES",), "GQ": ("ES",),
}  # fmt: skip
CONFUSABLE_VARIETIES: dict[str, str] = {
    "es-MX": "es-ES", "es-ES": "es-AR", "es-AR": "es-MX", "es-CO": "es-ES", "es-PE": "es-ES",
    "pt-BR": "pt-PT", "pt-PT": "pt-BR", "ca": "es-ES", "gl": "pt-PT", "eu": "es-ES",
}  # fmt: skip


class PromptError(ValueError):
    """A prompt template is missing or malformed; the message names the file."""


@functools.lru_cache(maxsize=512)
def compile_template(body: str, *, strict: bool = False) -> Any:
    """The compiled Jinja template of ``body``, compiled once: planning renders it for every job."""
    from jinja2 import StrictUndefined, Template, Undefined

    return Template(body, undefined=StrictUndefined if strict else Undefined, lstrip_blocks=strict)


@dataclass(frozen=True)
class PromptTemplate:
    language: str
    language_name: str
    system: str
    output_json: str
    output_text: str
    strategies: dict[str, Any]
    categories: dict[str, str]
    version: str
    path: Path
    sha256: str

    def render(self, strategy: str, context: dict[str, Any], *, perturbation: str | None = None) -> str:
        """The user prompt for ``strategy`` (and ``perturbation``) with ``context`` filled in."""
        body = self.strategies[strategy]
        if strategy == "perturbed":
            if perturbation not in body:
                raise PromptError(f"{self.path}: no perturbed prompt {perturbation!r}")
            body = body[perturbation]
        text = compile_template(body, strict=True).render(**context)
        # Lines whose only content was a false {% if %} vanish, so absent metadata leaves no gap.
        return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def _validate(data: object, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PromptError(f"{path}: a prompt template must be a mapping")
    missing = [key for key in REQUIRED_KEYS if not data.get(key)]
    if missing:
        raise PromptError(f"{path}: missing keys {missing}")
    strategies = data["strategies"]
    for name in ("cultural", "generic"):
        if not isinstance(strategies.get(name), str):
            raise PromptError(f"{path}: strategies.{name} must be a text")
    perturbed = strategies.get("perturbed", {})
    if not isinstance(perturbed, dict) or not all(isinstance(perturbed.get(p), str) for p in PERTURBATIONS):
        raise PromptError(f"{path}: strategies.perturbed must have texts for {list(PERTURBATIONS)}")
    return data


class PromptLibrary:
    """All templates of one version; looks a variety up with fallback ``es-PA`` → ``es`` → error."""

    def __init__(self, root: Path, version: str) -> None:
        self.root = Path(root)
        self.version = version
        folder = self.root / version
        if not folder.is_dir():
            available = (
                sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
            )
            raise PromptError(f"no prompt version {version!r} under {self.root} (available: {available})")
        self.templates: dict[str, PromptTemplate] = {}
        for path in sorted(folder.glob("*.yaml")):
            raw = path.read_bytes()
            data = _validate(yaml.safe_load(raw), path)
            if data["language"] != path.stem:
                raise PromptError(f"{path}: language {data['language']!r} does not match the file name")
            self.templates[path.stem] = PromptTemplate(
                language=data["language"],
                language_name=data["language_name"],
                system=data["system"].strip(),
                output_json=data["output_json"].strip(),
                output_text=data["output_text"].strip(),
                strategies=data["strategies"],
                categories=dict(data.get("categories") or {}),
                version=version,
                path=path,
                sha256=hashlib.sha256(raw).hexdigest(),
            )
        if not self.templates:
            raise PromptError(f"no templates in {folder}")

    def for_language(self, tag: str | None) -> PromptTemplate:
        """The template for a BCP 47 tag: exact, then the bare language (``es-PA`` → ``es``)."""
        if tag:
            if tag in self.templates:
                return self.templates[tag]
            base = tag.split("-")[0]
            if base in self.templates:
                return self.templates[base]
        raise PromptError(
            f"no prompt template for language {tag!r} in {self.root / self.version}; "
            f"available: {sorted(self.templates)}. Add {tag}.yaml"
            + (f" (or {str(tag).split('-')[0]}.yaml)" if "-" in str(tag) else "")
            + " there (copy es.yaml and translate it), or give the image a variety that has one; "
            "`mirada collect` lists such images"
        )


@functools.cache
def country_name(code: str | None, language: str) -> str | None:
    """The country's name in ``language`` from pycountry's ISO 3166 translations: ``('MX', 'ca')`` → ``Mèxic``."""
    if not code:
        return None
    import pycountry

    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    name = getattr(country, "common_name", None) or country.name
    try:
        translation = gettext.translation(
            "iso3166-1", pycountry.LOCALES_DIR, languages=[language.split("-")[0]]
        )
    except OSError:
        return name
    return translation.gettext(country.name)
