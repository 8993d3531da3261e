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
import unicodedata
from collections.abc import Callable, Mapping
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

# Licence spellings people write in spreadsheets that are not SPDX ids (keys folded by _fold).
# Creative Commons forms ("CC BY 4", "CC-BY-SA 4.0 Internacional") are parsed by _CC_PATTERN instead.
_LICENSE_ALIASES = {
    "cc0": "CC0-1.0",
    "public domain": "CC0-1.0",
    "publicdomain": "CC0-1.0",
    "pd": "CC0-1.0",
    "dominio publico": "CC0-1.0",
    "dominio publico cc0": "CC0-1.0",
    "domini public": "CC0-1.0",
    "jabari publikoa": "CC0-1.0",
    "apache 2 0": "Apache-2.0",
    "apache2": "Apache-2.0",
    "mit license": "MIT",
    "licencia mit": "MIT",
}
_CC_PATTERN = re.compile(
    r"^(?:cc|creative commons)\s*((?:by|sa|nc|nd)(?:\s*(?:by|sa|nc|nd))*)\s*v?(\d)(?:\s*(\d))?"
    r"(?:\s*(?:int|intl|international|internacional|internacional))?$"
)


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


# Languages whose country names collect accepts besides English: the project's own languages.
COUNTRY_NAME_LANGUAGES = ("es", "pt", "pt_BR", "ca", "gl", "eu", "fr", "it")


def _fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive key: ``_fold(' Perú ') == 'peru'``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w]+", " ", letters).split())


@functools.cache
def _country_names() -> dict[str, tuple[str, str]]:
    """Folded country name -> ``(alpha_2, name as written)`` in English and the localised catalogs.

    The names come from pycountry's own gettext catalogs of ISO 3166-1 (the Debian iso-codes
    translations), so ``México``, ``Espanya``, ``Perú`` or ``Brasil`` resolve without a hand-kept list.
    A name that two countries share in different languages keeps the first (English) reading.
    """
    import gettext

    import pycountry

    translators = [gettext.NullTranslations()]
    for language in COUNTRY_NAME_LANGUAGES:
        try:
            translators.append(gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language]))
        except OSError:  # a pycountry build without that catalog: English still works
            continue
    names: dict[str, tuple[str, str]] = {}
    for translator in translators:
        for country in pycountry.countries:
            for attr in ("name", "common_name", "official_name"):
                english = getattr(country, attr, None)
                if not english:
                    continue
                local = translator.gettext(english)
                for variant in (local, local.split(",")[0]):
                    names.setdefault(_fold(variant), (country.alpha_2, variant.strip()))
    return names


def suggest_country(value: str, limit: int = 3) -> list[str]:
    """Country names close to a misspelt one, best first: ``suggest_country('Mexco')[0] == 'Mexico'``."""
    import difflib

    names = _country_names()
    close = difflib.get_close_matches(_fold(value), list(names), n=limit * 3, cutoff=0.75)
    seen: list[str] = []
    for key in close:
        shown = names[key][1]
        if shown not in seen:
            seen.append(shown)
    return seen[:limit]


def normalize_country(value: str, warn: Callable[[str], None] | None = None) -> str:
    """ISO 3166-1 alpha-2 from a code or a name as people write it: ``normalize_country('Perú') == 'PE'``.

    Accepts alpha-2, alpha-3, and country names in English, Spanish, Portuguese, Catalan, Galician
    and Basque (any case, with or without accents). A near miss (``Mexco``) is resolved only when
    one country is clearly meant, and ``warn`` is told so; otherwise the error says "did you mean".
    """
    import pycountry

    text = value.strip()
    if not text:
        raise MetadataError("country", value, "empty")
    found = None
    if len(text) == 2:
        found = pycountry.countries.get(alpha_2=text.upper())
    elif len(text) == 3:
        found = pycountry.countries.get(alpha_3=text.upper())
    if found is not None:
        return found.alpha_2
    names = _country_names()
    hit = names.get(_fold(text))
    if hit is not None:
        return hit[0]
    import difflib

    suggestions = suggest_country(text)
    codes = {names[_fold(s)][0] for s in suggestions}
    sure = (
        bool(suggestions)
        and difflib.SequenceMatcher(None, _fold(text), _fold(suggestions[0])).ratio() >= 0.83
    )
    if len(text) > 3 and len(codes) == 1 and sure:
        code = codes.pop()
        if warn is not None:
            warn(
                f"country {text!r} is not a known name; read as {code} ({suggestions[0]}), write {code} to confirm"
            )
        return code
    hint = f"did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    raise MetadataError(
        "country",
        value,
        hint or "not a country code or name (expected e.g. MX, PE, ES, BR, or México, Perú, España)",
    )


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
    folded = _fold(text).replace("_", " ")
    alias = _LICENSE_ALIASES.get(folded)
    if alias:
        return alias
    creative = _CC_PATTERN.match(folded)
    if creative:
        parts = "-".join(creative.group(1).upper().split())
        spdx = f"CC-{parts}-{creative.group(2)}.{creative.group(3) or 0}"
        known = _spdx_keys_casefold().get(spdx.casefold())
        if known:
            return known
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
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        raise MetadataError(field_name, value, "expected text, got an infinite number")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
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
    warn: Callable[[str], None] | None = None,
) -> ImageMetadata:
    """Validate and normalise one record's metadata; raise :class:`MetadataError` on the first problem.

    Unknown keys are ignored (sidecar files often carry extra columns); ``categories`` is the
    configured vocabulary, enforced only with ``strict_categories``. ``warn`` hears what was
    accepted but deserves a look (a guessed country, a licence that is not SPDX), so collect can
    say it at collect time, naming the file, instead of a silent flag found at prefs.
    """
    meta = ImageMetadata()
    country = _text("country", raw.get("country"), max_field_chars)
    meta.country = normalize_country(country, warn) if country else None
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
            if warn is not None:
                warn(
                    f"license {license_text!r} is not an SPDX licence: collected, but it cannot be published "
                    "(write e.g. CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0)"
                )
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
