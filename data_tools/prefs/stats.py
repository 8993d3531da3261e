"""Statistics and charts of a saved prefs dataset, computed from the ``DatasetDict`` itself.

    from data_tools.prefs.stats import dataset_stats, draw_charts
    stats = dataset_stats(datasets.load_from_disk("ws/exports/prefs/tacos_image_dpo"), "dpo")
    stats["by_country"]["MX"]          # {"images": 12, "rows": 40, "split_images": {"train": 11, "test": 1}}
    draw_charts(stats, "dpo", out_dir)  # {"countries": "charts/countries.png", …}

Everything the Dataset Card says about its data is computed here, from the very rows that were
saved (the image column is dropped first, so nothing is decoded), never from the intermediate
lists that produced them: if the two ever disagreed, the card would describe the data. Charts are
drawn with matplotlib's Agg back-end (no display) at a modest size and resolution, because a card
shows a handful of them per format and each costs ~0.15 s to render.
"""

from __future__ import annotations

import statistics
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from data_tools.prefs.build import CORRECTION, kto_weights
from data_tools.prefs.split import SPLIT_ORDER

NONE = "(none)"
TEXT_COLUMN = {"dpo": "chosen", "kto": "completion", "sft": "messages"}


# -- statistics ------------------------------------------------------------------------------------


def _text(row: dict[str, Any], fmt: str) -> str:
    value = row[TEXT_COLUMN[fmt]] if fmt != "sft" or "messages" in row else row["completion"]
    return value[-1]["content"]


def _words(text: str) -> int:
    return len(text.split())


def _summary(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values), "median": float(statistics.median(values)),
            "min": min(values), "max": max(values)}  # fmt: skip


def table_rows(dataset: Any) -> list[dict[str, Any]]:
    """Every row of every split without the image column (nothing is decoded), with a ``split`` key."""
    rows = []
    for split, part in dataset.items():
        for row in part.remove_columns("images").to_list():
            row["split"] = split
            rows.append(row)
    return rows


def dataset_stats(dataset: Any, fmt: str) -> dict[str, Any]:
    """Every figure the card shows, computed from the ``DatasetDict`` itself."""
    rows = table_rows(dataset)
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["image_id"], row)
    images = list(first.values())
    splits = [s for s in SPLIT_ORDER if s in dataset]
    stats: dict[str, Any] = {
        "format": fmt,
        "rows": len(rows),
        "images": len(images),
        "splits": {
            s: {"rows": sum(r["split"] == s for r in rows), "images": sum(i["split"] == s for i in images)}
            for s in splits
        },
    }
    for column in ("country", "language", "category"):
        groups: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"images": 0, "rows": 0, "split_images": Counter()}
        )
        for row in rows:
            groups[row[column] or NONE]["rows"] += 1
        for image in images:
            group = groups[image[column] or NONE]
            group["images"] += 1
            group["split_images"][image["split"]] += 1
        stats[f"by_{column}"] = {key: {**value, "split_images": dict(value["split_images"])}
                                 for key, value in sorted(groups.items(), key=lambda kv: (-kv[1]["images"], kv[0]))}  # fmt: skip
    stats["licenses"] = dict(Counter(i["license"] or NONE for i in images).most_common())
    stats["authors"] = len({i["author"] for i in images if i["author"]})
    stats["without_author"] = sum(1 for i in images if not i["author"])
    stats["n_annotators"] = dict(sorted(Counter(i["n_annotators"] for i in images).items()))
    agreement = [i["agreement"] for i in images if i["agreement"] is not None]
    stats["agreement"] = {**_summary(agreement), "full": sum(1 for a in agreement if a >= 1 - 1e-9),
                          "single_annotator": len(images) - len(agreement), "values": agreement}  # fmt: skip
    spread = [i["rank_spread"] for i in images if i["rank_spread"] is not None]
    stats["rank_spread"] = _summary(spread)
    stats["agreement_by"] = {
        column: {
            key: statistics.fmean(values)
            for key, values in _group([(i[column] or NONE, i["agreement"]) for i in images]).items()
            if values
        }
        for column in ("country", "language", "category")
    }
    stats["models"] = dict(Counter(m for r in rows for m in _models(r, fmt)).most_common())
    if fmt == "dpo":
        chosen = Counter(r["chosen_strategy"] for r in rows)
        rejected = Counter(r["rejected_strategy"] for r in rows)
        stats["strategies"] = {
            s: {
                "chosen": chosen[s],
                "rejected": rejected[s],
                "win_rate": chosen[s] / (chosen[s] + rejected[s]),
            }
            for s in sorted(set(chosen) | set(rejected), key=_strategy_order)
        }
        stats["perturbations_rejected"] = dict(Counter(r["rejected_perturbation"] for r in rows
                                                       if r["rejected_perturbation"]).most_common())  # fmt: skip
        stats["reasons"] = dict(Counter(r["reason"] for r in rows).most_common())
        chosen_words = [_words(r["chosen"][-1]["content"]) for r in rows]
        rejected_words = [_words(r["rejected"][-1]["content"]) for r in rows]
        stats["lengths"] = {"chosen": _summary(chosen_words), "rejected": _summary(rejected_words),
                            "chosen_longer": sum(c > r for c, r in zip(chosen_words, rejected_words, strict=True)),
                            "chosen_words": chosen_words, "rejected_words": rejected_words}  # fmt: skip
    elif fmt == "kto":
        good = Counter(r["strategy"] for r in rows if r["label"])
        bad = Counter(r["strategy"] for r in rows if not r["label"])
        stats["strategies"] = {
            s: {"desirable": good[s], "undesirable": bad[s], "desirable_rate": good[s] / (good[s] + bad[s])}
            for s in sorted(set(good) | set(bad), key=_strategy_order)
        }
        train = [r for r in rows if r["split"] == "train"]
        train_good = sum(r["label"] for r in train)
        stats["kto"] = {
            "desirable": sum(good.values()), "undesirable": sum(bad.values()),
            "train_desirable": train_good, "train_undesirable": len(train) - train_good,
            "weights": kto_weights(train_good, len(train) - train_good),
        }  # fmt: skip
        stats["disputed"] = dict(Counter(r["strategy"] for r in rows
                                         if r["votes_total"] and 0 < r["votes_yes"] < r["votes_total"]))  # fmt: skip
        good_words = [_words(_text(r, fmt)) for r in rows if r["label"]]
        bad_words = [_words(_text(r, fmt)) for r in rows if not r["label"]]
        stats["lengths"] = {"desirable": _summary(good_words), "undesirable": _summary(bad_words),
                            "desirable_words": good_words, "undesirable_words": bad_words}  # fmt: skip
    else:
        counts = Counter(r["strategy"] for r in rows)
        stats["strategies"] = {s: {"rows": counts[s]} for s in sorted(counts, key=_strategy_order)}
        words = [_words(_text(r, fmt)) for r in rows]
        stats["lengths"] = {"caption": _summary(words), "caption_words": words}
    stats["sources"] = _sources(rows, fmt)
    stats["example"] = _example(dataset, fmt)
    return stats


def _models(row: dict[str, Any], fmt: str) -> list[str]:
    if fmt == "dpo":
        return [row["chosen_model"], row["rejected_model"]]
    return [row["model"]]


def _sources(rows: list[dict[str, Any]], fmt: str) -> dict[str, int]:
    """Rows whose (chosen) caption is a human correction vs a drafted candidate."""
    if fmt == "dpo":
        return dict(
            Counter("correction" if r["chosen_strategy"] == CORRECTION else "candidate" for r in rows)
        )
    return dict(Counter(r["source"] for r in rows))


def _strategy_order(name: str) -> tuple[int, str]:
    known = (CORRECTION, "cultural", "generic", "perturbed")
    return (known.index(name) if name in known else len(known), name)


def _group(pairs: Iterable[tuple[str, float | None]]) -> dict[str, list[float]]:
    """``[("MX", 1.0), ("MX", None), ("PE", 0.5)]`` → ``{"MX": [1.0], "PE": [0.5]}`` (None values skipped)."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for key, value in pairs:
        if value is not None:
            grouped[key].append(value)
    return grouped


TEXT_FIELDS = ("prompt", "chosen", "rejected", "completion", "messages")


def readable(text: str) -> bool:
    """Text a reader can read: no U+FFFD replacement characters or control codes, mostly letters.

    A random test model (``make demo``) emits byte-level tokens that decode to U+FFFD; such a
    caption shown as the card's example looks like a bug in the card, not in the data.
    """
    if not text.strip() or "\ufffd" in text:
        return False
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text):
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return letters >= 0.8 * len(text)


def _row_texts(row: dict[str, Any]) -> list[str]:
    texts = []
    for column in TEXT_FIELDS:
        value = row.get(column)
        if isinstance(value, list):
            texts += [str(turn.get("content", "")) for turn in value if isinstance(turn, dict)]
        elif isinstance(value, str):
            texts.append(value)
    return texts


def _example(dataset: Any, fmt: str, scan: int = 500) -> dict[str, Any]:
    """The first row (train first) whose texts are all readable; else the first row, marked unreadable."""
    split = "train" if "train" in dataset else next(iter(dataset))
    order = [split] + [s for s in dataset if s != split]
    first: dict[str, Any] | None = None
    chosen: dict[str, Any] | None = None
    for name in order:
        part = dataset[name].remove_columns("images")
        for index in range(min(len(part), scan)):
            row = part[index]
            first = first or row
            if all(readable(t) for t in _row_texts(row)):
                chosen = row
                break
        if chosen is not None:
            break
    row = chosen or first or {}
    keep = [c for c in ("prompt", "chosen", "rejected", "completion", "label", "messages") if c in row]
    return {"images": "[<PIL.Image>]", **{c: row[c] for c in keep}, "country": row.get("country"),
            "language": row.get("language"), "category": row.get("category"),
            "_readable": chosen is not None}  # fmt: skip


# -- charts ----------------------------------------------------------------------------------------

_COLORS = {"train": "#264653", "validation": "#e9c46a", "test": "#e76f51"}


def legend_outside(ax: Any, title: str | None = None) -> None:
    """The legend to the right of the axes, where it cannot hide a bar."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title=title)


def draw_charts(stats: dict[str, Any], fmt: str, out_dir: Path) -> dict[str, str]:
    """PNG charts under ``out_dir/charts``; returns ``name -> path relative to out_dir`` for the card."""
    # A Figure on its own Agg canvas, not pyplot: never switch the caller's backend (e.g. a notebook's).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    charts_dir = out_dir / "charts"
    charts_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        # bbox_inches="tight" keeps the legend, placed outside the axes so it never covers a bar.
        fig.savefig(charts_dir / f"{name}.png", dpi=100, bbox_inches="tight")
        written[name] = f"charts/{name}.png"

    for column, title, name in (("country", "Images per country", "countries"),
                                ("language", "Images per language variety", "languages"),
                                ("category", "Images per category", "categories")):  # fmt: skip
        groups = stats[f"by_{column}"]
        labels = list(groups)[::-1]
        fig = Figure(figsize=(7, 0.45 * len(labels) + 1.2))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        left = [0] * len(labels)
        for split in stats["splits"]:
            values = [groups[label]["split_images"].get(split, 0) for label in labels]
            ax.barh(labels, values, left=left, color=_COLORS[split], label=split)
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.set_xlabel("images (count)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        legend_outside(ax, "split")
        save(fig, name)

    strategies = stats["strategies"]
    names = list(strategies)
    fig = Figure(figsize=(7, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    series = {"dpo": (("chosen", "#2a9d8f"), ("rejected", "#e76f51")),
              "kto": (("desirable", "#2a9d8f"), ("undesirable", "#e76f51")),
              "sft": (("rows", "#264653"),)}[fmt]  # fmt: skip
    width = 0.8 / len(series)
    for k, (key, color) in enumerate(series):
        ax.bar([x + k * width for x in range(len(names))], [strategies[n][key] for n in names], width,
               label=key, color=color)  # fmt: skip
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(names))], names)
    ax.set_ylabel({"dpo": "pairs (count)", "kto": "rows (count)", "sft": "rows (count)"}[fmt])
    ax.set_xlabel("caption strategy")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title({"dpo": "Strategy of chosen and rejected captions", "kto": "Labels per caption strategy",
                  "sft": "Strategy of the SFT caption"}[fmt])  # fmt: skip
    legend_outside(ax)
    save(fig, "strategies")

    lengths = stats["lengths"]
    fig = Figure(figsize=(7, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    groups_of = {"dpo": ("chosen", "rejected"), "kto": ("desirable", "undesirable"), "sft": ("caption",)}[fmt]
    all_values = [v for g in groups_of for v in lengths[f"{g}_words"]]
    bins = range(
        0, (max(all_values) if all_values else 1) + 2, max(1, (max(all_values, default=1) + 1) // 20)
    )
    for group, color in zip(groups_of, ("#2a9d8f", "#e76f51"), strict=False):
        ax.hist(lengths[f"{group}_words"], bins=list(bins), alpha=0.6, label=group, color=color)
    ax.set_xlabel("caption length (words)")
    ax.set_ylabel("captions (count)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Caption length")
    legend_outside(ax)
    save(fig, "caption_length")

    fig = Figure(figsize=(7, 3.2))

    FigureCanvasAgg(fig)
    ax = fig.subplots()
    values = stats["agreement"]["values"]
    ax.hist(values, bins=[i / 10 for i in range(11)], color="#264653")
    ax.set_xlabel("acceptability agreement per image (0–1; 1 = all annotators agreed on every candidate)")
    ax.set_ylabel("images (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, 1)
    ax.set_title(f"Annotator agreement ({len(values)} images with 2+ annotators)")
    save(fig, "agreement")
    return written
