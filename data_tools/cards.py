"""The card kit: what every Mirada card (dataset, model, Space, eval) writes the same way.

    from data_tools.cards import md_table, md_text, library_versions, language_tags, scrub_local_paths
    md_table(["country", "images"], [("MX", 3)])           # a Markdown table that raw HTML cannot break
    md_text(row["category"])                                # what people typed, shown as text, never markup
    library_versions(["transformers", "trl"])               # {"transformers": "4.57.1", ...}, missing left out
    language_tags({"es-MX": 3, "pt-BR": 1, "es-ES": 2})     # ["es", "pt"]: the Hub's `language:` field
    scrub_local_paths("load_from_disk('/tmp/ws/x')")        # "load_from_disk('x')"

Each card used to carry its own table writer, version lookup and language-tag rule, and they drifted
(one escaped ``|`` but not ``<``, one dropped region subtags alphabetically, another by frequency).
Keeping them here means a fix to escaping or to the local-path rule reaches every card at once. The
functions are pure and small: the cards keep their own prose, this module only their shared mechanics.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

__all__ = [
    "HUB_URL",
    "language_tags",
    "library_versions",
    "md_table",
    "md_text",
    "scrub_local_paths",
    "size_category",
]

HUB_URL = "https://huggingface.co"

_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def md_text(value: Any) -> str:
    """What people typed (a category, a region, a licence), rendered as text, never as markup.

    HTML is escaped (an ``<img onerror=…>`` category shows as those characters, it does not run)
    and Markdown's inline markers are backslash-escaped, so metadata cannot add links, emphasis or
    table cells to a card. ``md_text('<b>x</b>') == '&lt;b&gt;x&lt;/b&gt;'``.
    """
    text = html.escape(str(value), quote=False).replace("\n", " ").replace("\r", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, number: Any = None, right: Iterable[int] = ()
) -> str:
    """A Markdown table; cells keep the Markdown the card writes (`code`) but never raw HTML.

    ``number`` formats float cells (e.g. ``lambda v: f"{v:.4g}"``) so a card's tables and its prose
    show a metric the same way; other cells are ``str()``-ed. A ``|`` inside a cell is escaped.
    Columns whose index is in ``right`` are right-aligned (the numbers of a metric table).
    """

    def cell(value: Any) -> str:
        if number is not None and isinstance(value, float):
            value = number(value)
        text = str(value).replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
        return re.sub(r"(?<!\\)\|", r"\\|", text)

    aligned = set(right)
    rule = "|" + "|".join("---:" if i in aligned else "---" for i in range(len(headers))) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``names``, in that order; libraries that are not installed are left out."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def language_tags(counts: Mapping[str, int] | Iterable[str], *, skip: Iterable[str] = ()) -> list[str]:
    """The Hub's ``language:`` list from BCP 47 varieties: primary subtags, most frequent first.

    The Hub's metadata takes ISO 639 codes, not region subtags, so ``es-MX`` and ``es-ES`` both count
    for ``es``. With a plain iterable every tag counts once (ties sort alphabetically).
    ``language_tags({"es-MX": 3, "pt-BR": 1, "es-ES": 2}) == ["es", "pt"]``.
    """
    items = counts.items() if isinstance(counts, Mapping) else ((tag, 1) for tag in counts)
    ignored = set(skip)
    totals: dict[str, int] = {}
    for tag, n in items:
        if not tag or tag in ignored:
            continue
        primary = str(tag).split("-")[0].lower()
        totals[primary] = totals.get(primary, 0) + n
    return sorted(totals, key=lambda k: (-totals[k], k))


def size_category(n: int) -> str:
    """The Hub's size bucket: ``size_category(999) == 'n<1K'``, ``size_category(1000) == '1K<n<10K'``."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):  # fmt: skip
        if n < limit:
            return label
    return "n>1M"


# An absolute POSIX path of two or more parts (``/tmp/x/y``, ``/home/ana/ws``) or a Windows one, not
# part of a URL: the card keeps only its last part.
_LOCAL_PATH = re.compile(r"(?<![\w.~/-])(?:/(?!/)|[A-Za-z]:\\)(?:[\w.@+-]+[/\\])+([\w.@+-]+)")


def scrub_local_paths(text: str) -> str:
    """Cards never carry someone's directories: ``/tmp/ws/photos`` becomes ``photos``.

    Each card already writes Hub ids or folder names where it knows a path; this last pass catches
    the ones inside other strings (``folder:/tmp/…`` sources, error texts, a command line) so no
    ``/tmp/…`` or home directory reaches a published card. URLs (``https://…/a/b``) are kept.
    """
    return _LOCAL_PATH.sub(lambda m: m.group(1), text)
