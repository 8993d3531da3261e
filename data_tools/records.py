"""Image records and the validation of their cultural metadata (DESIGN §2).

Validation normalises what it can (``mx`` → ``MX``, ``es_mx`` → ``es-MX``, ``cc by 4.0`` →
``CC-BY-4.0``) and refuses what it cannot, with a message naming the field and the value, so a
collector can fix a spreadsheet in one pass. Lookups use maintained registries (``pycountry`` for
ISO 3166, ``langcodes`` for BCP 47, ``license-expression`` for SPDX) rather than hand-kept lists.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from data_tools.errors import UserError
from data_tools.secrets import public_url

METADATA_FIELDS = (
    "country",
    "language",
    "region",
    "category",
    "cultural_context",
    "reference_captions",
    "license",
    "author",
    "source_id",
    "source_url",
)

# A few licence spellings people write in spreadsheets that are not SPDX ids.
_LICENSE_ALIASES = {
    "cc0": "CC0-1.0",
    "public domain": "CC0-1.0",
    "publicdomain": "CC0-1.0",
    "pd": "CC0-1.0",
    "apache 2.0": "Apache-2.0",
    "apache2": "Apache-2.0",
    "mit license": "MIT",
}


class MetadataError(UserError, ValueError):
    """Invalid metadata for one record; ``field`` and ``value`` say what to fix."""

    def __init__(self, field_name: str, value: object, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "...'"
        super().__init__(f"field {field_name!r} has invalid value {shown}: {reason}")
        self.field = field_name
        self.value = value
        self.reason = reason


@dataclass
class ImageMetadata:
    """Cultural metadata and provenance of one image, as collectors supply it (DESIGN §2)."""

    country: str | None = None
    language: str | None = None
    region: str | None = None
    category: str | None = None
    cultural_context: str | None = None
    reference_captions: list[str] = field(default_factory=list)
    license: str | None = None
    author: str | None = None
    source_id: str | None = None
    source_url: str | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def publishable(self) -> bool:
        """A record can go into a published dataset only with a recognised licence."""
        return self.license is not None and "unknown_license" not in self.flags

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def _spdx_licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


@functools.cache
def _spdx_keys_casefold() -> dict[str, str]:
    return {key.casefold(): key for key in _spdx_licensing().known_symbols}


def normalize_country(value: str) -> str:
    """ISO 3166-1 alpha-2 from alpha-2, alpha-3 or an English name: ``normalize_country('mex') == 'MX'``."""
    import pycountry

    text = value.strip()
    if not text:
        raise MetadataError("country", value, "empty")
    candidates = []
    if len(text) == 2:
        candidates.append(pycountry.countries.get(alpha_2=text.upper()))
    elif len(text) == 3:
        candidates.append(pycountry.countries.get(alpha_3=text.upper()))
    else:
        for attr in ("name", "common_name", "official_name"):
            try:
                candidates.append(pycountry.countries.get(**{attr: text}))
            except KeyError:
                continue
    for country in candidates:
        if country is not None:
            return country.alpha_2
    raise MetadataError("country", value, "not an ISO 3166-1 country code (expected e.g. MX, PE, ES, BR)")


def normalize_language(value: str) -> str:
    """A valid BCP 47 tag in canonical case: ``normalize_language('es_mx') == 'es-MX'``."""
    import langcodes

    text = value.strip().replace("_", "-")
    if not text:
        raise MetadataError("language", value, "empty")
    if not langcodes.tag_is_valid(text):
        raise MetadataError(
            "language", value, "not a valid BCP 47 tag (expected e.g. es-MX, pt-BR, ca, eu, qu)"
        )
    # standardize_tag fixes case and deprecated subtags; macro=False keeps e.g. 'qu' as is.
    return langcodes.standardize_tag(text)


def normalize_license(value: str) -> str | None:
    """An SPDX expression with canonical ids, or None if it is not one (the record is then flagged).

    ``normalize_license('cc-by-sa-4.0') == 'CC-BY-SA-4.0'``; ``normalize_license('CC BY 4.0') == 'CC-BY-4.0'``.
    """
    text = value.strip()
    alias = _LICENSE_ALIASES.get(text.casefold())
    if alias:
        return alias
    keys = _spdx_keys_casefold()
    dashed = re.sub(r"\s+", "-", text)
    for candidate in (text, dashed):
        if candidate.casefold() in keys:
            return keys[candidate.casefold()]
    try:
        parsed = _spdx_licensing().parse(text, validate=True, strict=True)
    except Exception:
        return None
    return None if parsed is None else parsed.render()


def _text(field_name: str, value: object, max_chars: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from pandas/CSV
        return None
    if not isinstance(value, str | int | float):
        raise MetadataError(field_name, value, f"expected text, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        return None
    if len(text) > max_chars:
        raise MetadataError(field_name, text, f"{len(text)} characters, more than the limit of {max_chars}")
    return text


def _captions(value: object, max_chars: int) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise MetadataError("reference_captions", value, f"not a JSON list: {exc}") from exc
        else:
            value = [stripped]
    if not isinstance(value, list | tuple):
        raise MetadataError("reference_captions", value, "expected a list of captions")
    captions = []
    for item in value:
        text = _text("reference_captions", item, max_chars)
        if text:
            captions.append(text)
    return captions


def validate_metadata(
    raw: Mapping[str, Any],
    *,
    required: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    strict_categories: bool = False,
    max_field_chars: int = 500,
    max_context_chars: int = 4000,
) -> ImageMetadata:
    """Validate and normalise one record's metadata; raise :class:`MetadataError` on the first problem.

    Unknown keys are ignored (sidecar files often carry extra columns); ``categories`` is the
    configured vocabulary, enforced only with ``strict_categories``.
    """
    meta = ImageMetadata()
    country = _text("country", raw.get("country"), max_field_chars)
    meta.country = normalize_country(country) if country else None
    language = _text("language", raw.get("language"), max_field_chars)
    meta.language = normalize_language(language) if language else None
    meta.region = _text("region", raw.get("region"), max_field_chars)
    category = _text("category", raw.get("category"), max_field_chars)
    if category:
        category = category.lower()
        if strict_categories and categories and category not in categories:
            raise MetadataError(
                "category", category, f"not in the configured vocabulary {sorted(categories)}"
            )
    meta.category = category
    meta.cultural_context = _text("cultural_context", raw.get("cultural_context"), max_context_chars)
    meta.reference_captions = _captions(raw.get("reference_captions"), max_context_chars)
    license_text = _text("license", raw.get("license"), max_field_chars)
    if license_text:
        meta.license = normalize_license(license_text)
        if meta.license is None:
            meta.license = license_text
            meta.flags.append("unknown_license")
    else:
        meta.flags.append("no_license")
    meta.author = _text("author", raw.get("author"), max_field_chars)
    meta.source_id = _text("source_id", raw.get("source_id"), max_field_chars)
    source_url = _text("source_url", raw.get("source_url"), max_context_chars)
    meta.source_url = public_url(source_url) if source_url else None  # no user:password@, no signatures
    for name in required:
        if getattr(meta, name, None) in (None, [], ""):
            raise MetadataError(name, raw.get(name), "required by the configuration but missing")
    return meta
