"""Text normalisation shared by every eval metric: one Unicode-aware tokenizer, one matcher.

Reference metrics and cultural metrics must split "España", "pão" or "l'escudella" the same way,
or a caption would score differently depending on which metric looked at it. Tokens are runs of
Unicode letters/digits (``\\w`` minus ``_``), lower-cased with ``str.casefold``; punctuation is
dropped. This is the Java-free replacement for the PTB tokenizer of coco-caption, so CIDEr values
are comparable between Mirada runs but not with published XM3600 figures.

Term matching (culture terms, wrong-culture names, variety markers) goes one step further: each
token is lemmatised with simplemma in the caption's language, then accents are stripped, so
"Tortillas mexicanas" matches the term "tortilla" and the name "mexicano".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

#: Languages simplemma 2.0 lemmatises among those Mirada captions in; others (Basque: simplemma has no
#: dictionary for it, whatever its README lists; Quechua, Guarani) are matched on unlemmatised tokens.
LEMMA_LANGUAGES = frozenset({"es", "pt", "ca", "gl", "ast", "en", "fr", "it"})


def tokenize(text: str) -> list[str]:
    """``"¡Tacos al pastor en Ciudad de México!"`` -> ``["tacos", "al", "pastor", "en", "ciudad", "de", "méxico"]``."""
    return _TOKEN.findall(text.casefold())


def tokenized(text: str) -> str:
    """The tokens joined by single spaces: the pre-tokenised form CIDEr (like coco-caption) expects."""
    return " ".join(tokenize(text))


def strip_accents(text: str) -> str:
    """``"Perú"`` -> ``"peru"`` (and casefolded): accents are not what makes a term right or wrong."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def primary_language(tag: str | None) -> str | None:
    """``"es-MX"`` -> ``"es"``; None stays None."""
    return tag.split("-")[0].split("_")[0].lower() if tag else None


@lru_cache(maxsize=200_000)
def _lemma(token: str, language: str) -> str:
    import simplemma

    return simplemma.lemmatize(token, lang=language)


def match_keys(text: str, language: str | None) -> tuple[str, ...]:
    """The tokens of ``text`` as matching keys: lemmatised in ``language``, casefolded, accents stripped."""
    lang = primary_language(language)
    tokens = tokenize(text)
    if lang in LEMMA_LANGUAGES:
        tokens = [_lemma(t, lang) for t in tokens]
    return tuple(strip_accents(t) for t in tokens)


def term_keys(term: str, languages: Iterable[str | None]) -> set[tuple[str, ...]]:
    """All matching keys of a (possibly multi-word) term, one per language it may be written in."""
    keys = {tuple(strip_accents(t) for t in tokenize(term))}
    for language in languages:
        keys.add(match_keys(term, language))
    return {key for key in keys if key}


def contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    """Whether the key sequence ``needle`` occurs contiguously in ``haystack``."""
    n = len(needle)
    if n == 0 or n > len(haystack):
        return False
    first = needle[0]
    return any(
        haystack[i] == first and tuple(haystack[i : i + n]) == tuple(needle)
        for i in range(len(haystack) - n + 1)
    )
