"""Dataset Cards computed from the data they describe: statistics, charts, bias and balance, provenance.

    from data_tools.prefs.card import render_card
    from data_tools.prefs.stats import dataset_stats, draw_charts
    stats = dataset_stats(dataset_dict, "dpo")
    charts = draw_charts(stats, "dpo", out_dir)                  # PNGs under out_dir/charts/
    card = render_card(CardInputs(...), stats, charts)          # huggingface_hub.DatasetCard
    card.save(out_dir / "README.md")

The hackathon judges datasets largely by their cards, and a card that drifts from its data is worse
than none. So nothing here is typed by hand: every number, table, chart and bias statement is
computed from the saved ``DatasetDict`` (or, for provenance, from the workspace that produced it),
and a test loads the card back with ``DatasetCard.load`` and checks its numbers against the data.
The trade-off: the prose is generic where it cannot be computed (motivation, limitations that hold
for any such dataset), and teams add their own words through ``card.motivation``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_tools.cards import (
    language_tags,
    library_versions,
    md_table,
    md_text,
    scrub_local_paths,
    size_category,
)
from data_tools.draft.prompts import country_name as localised_country_name
from data_tools.prefs.build import CAPTION_FILTERS, FORMAT_FILTERS, RECORD_FILTERS, Instructions, features
from data_tools.prefs.config import PrefsConfig, portable
from data_tools.prefs.stats import NONE
from data_tools.workspace import Workspace

OVER, UNDER = 1.5, 0.5  # a group is over-/under-represented above/below these multiples of an even share
SMALL_GROUP = 5  # groups with fewer images get a "noisy" warning
LIBRARIES = ("mirada", "datasets", "huggingface_hub", "pyarrow", "pillow", "imagehash", "numpy", "pydantic",
             "matplotlib", "cohere", "argilla", "krippendorff", "statsmodels", "transformers", "trl", "peft",
             "torch")  # fmt: skip
CONFIG_FILE = "prefs_config.yaml"

COLUMN_HELP = {
    "id": "stable row id (a hash of the image id and the texts)",
    "images": "the image, as a one-element list of PIL images (TRL's vision format)",
    "prompt": "the user turn: a short instruction in the image's language variety",
    "chosen": "the preferred caption, as an assistant turn",
    "rejected": "the dispreferred caption, as an assistant turn",
    "completion": "the caption, as an assistant turn",
    "label": "true if the caption is desirable (a human correction, or voted acceptable by the annotators)",
    "messages": "the user instruction and the assistant caption",
    "image_id": "SHA-256 of the normalised image bytes",
    "country": "ISO 3166-1 alpha-2 code of the country the image shows",
    "language": "BCP 47 tag of the caption's language variety",
    "region": "region within the country, as the collector wrote it",
    "category": "topic of the image (food, festival, craft, clothing, …)",
    "license": "SPDX id of the image's licence",
    "author": "the image's author, for attribution",
    "source_url": "where the image was published, if known",
    "agreement": "acceptability agreement among the image's annotators (see Annotation); null with one annotator",
    "rank_spread": "mean standard deviation of the annotators' ranks per candidate; null with one annotator",
    "n_annotators": "annotators who submitted an answer for the image",
    "strategy": "how the caption was made: cultural, generic or perturbed (drafted by a model) or human_correction",
    "perturbation": "the controlled flaw of a perturbed caption: wrong_country, stereotype or wrong_variety",
    "model": "the model that drafted the caption, or human",
    "source": "candidate (drafted by a model) or correction (written by an annotator)",
    "rank": "position in the aggregated ranking (1 = best; 0 = a correction; null = nobody ranked it)",
    "votes_yes": "annotators who marked the caption acceptable",
    "votes_total": "annotators who voted on it",
    "reason": "why chosen beats rejected: correction, acceptability or rank",
}
for _side in ("chosen", "rejected"):
    for _name in ("strategy", "perturbation", "model", "rank"):
        COLUMN_HELP[f"{_side}_{_name}"] = f"{_side} caption: " + COLUMN_HELP[_name]

PIPELINE = {
    "collect": "images and cultural metadata are normalised (EXIF orientation, RGB, downscaled, EXIF/GPS "
    "stripped), validated (ISO country, BCP 47 variety, SPDX licence) and grouped into near-duplicate "
    "clusters by perceptual hash",
    "draft": "a vision-language model drafts several caption candidates per image: culturally grounded ones, "
    "a generic one and one with a controlled flaw (wrong country, stereotype or wrong variety)",
    "review": "people rank the candidates, mark the acceptable ones, flag problems and may write a correction, "
    "in Argilla (or a JSONL round-trip); candidates are shown shuffled and anonymous",
    "prefs": "decisions become DPO pairs, KTO rows and SFT targets; filters drop weak evidence; "
    "splits are grouped by near-duplicate cluster",
}


# -- provenance ------------------------------------------------------------------------------------


@dataclass
class Provenance:
    """What the workspace knows about how the data was made, gathered once for every card."""

    image_status: dict[str, int]
    drafts_by_strategy: dict[str, dict[str, int]]
    draft_models: dict[str, int]  # "backend/model (prompts vN)" -> drafts done
    spend_usd: float
    run_configs: dict[str, dict[str, Any]]  # stage -> latest recorded config
    responses: int
    annotators: list[str]
    agreement: dict[str, Any] | None
    agreement_error: str | None
    problems: dict[str, int]
    versions: dict[str, str] = field(default_factory=lambda: library_versions(LIBRARIES))
    # country -> {why its collected images are not in this dataset: images}
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)
    untemplated: dict[str, int] = field(default_factory=dict)  # variety without a draft template -> images
    edits: int = 0  # submitted corrections whose text differs from the pre-filled suggestion
    suggestions_accepted: int = 0  # submitted answers that left the pre-filled suggestion as it was

    @property
    def simulated(self) -> bool:
        return any(name.startswith("simulated-") for name in self.annotators)


def _left_out(
    workspace: Workspace,
    image_ids: set[str],
    done: list[Any],
    drop_unpublishable: bool,
    usable: set[str] | None,
    fmt: str | None,
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Why each collected image that is not in this dataset was left out, counted per country.

    The first stage an image did not get through names the reason, so a country that was collected
    but is absent from the dataset is never reported as simply "missing".
    """
    from data_tools.collect import draft_template_gaps

    images = workspace.images(status=None)
    gaps = draft_template_gaps(image.language for image in images)
    drafted = {d.image_id for d in done}
    decisions: dict[str, str] = {}
    for decision in workspace.review_decisions():
        status = decision.get("status") or "pending"
        if decisions.get(decision["image_id"]) != "decided":
            decisions[decision["image_id"]] = status
    left_out: dict[str, Counter[str]] = {}
    untemplated: Counter[str] = Counter()
    for image in images:
        if image.language in gaps and image.status == "ok":
            untemplated[image.language] += 1
        if image.id in image_ids or not image.country:
            continue
        if image.status != "ok":
            why = (
                "set aside as near-duplicates"
                if image.status == "near_duplicate"
                else f"status {image.status}"
            )
        elif image.language in gaps:
            why = f"no draft template for {image.language}"
        elif image.id not in drafted:
            why = "not drafted yet"
        elif image.id not in decisions:
            why = "not reviewed yet"
        elif decisions[image.id] != "decided":
            why = f"review {decisions[image.id]}"
        elif drop_unpublishable and not image.publishable:
            why = "licence not publishable"
        elif usable is not None and image.id in usable and fmt:
            why = f"made no {fmt.upper()} row (tied, identical or unranked captions; see Filters)"
        else:
            why = "dropped by the prefs filters (agreement, caption or pairing; see Filters)"
        left_out.setdefault(image.country, Counter())[why] += 1
    return {k: dict(v.most_common()) for k, v in sorted(left_out.items())}, dict(untemplated)


def provenance(
    workspace: Workspace,
    image_ids: set[str],
    *,
    drop_unpublishable: bool = True,
    usable: set[str] | None = None,
    fmt: str | None = None,
) -> Provenance:
    """Provenance for the images in ``image_ids`` (annotators, agreement and problems only over those).

    ``usable`` are the images that passed the record filters (for any format), so an image that did
    but made no row of ``fmt`` is said to be left out for that reason.
    """
    done = [d for d in workspace.drafts(status="done")]
    draft_models = Counter(f"{d.backend}/{portable(d.model)} (prompts {d.prompt_version})" for d in done)
    runs: dict[str, dict[str, Any]] = {}
    for run in workspace.runs():  # the stages upstream of prefs; later ones (train…) did not shape the data
        if run["stage"].split("-")[0] in ("collect", "draft", "review"):
            runs[run["stage"]] = portable(run["config"])
    responses = [
        r for r in workspace.review_responses() if r.image_id in image_ids and r.status == "submitted"
    ]
    items = {key: item for key, item in workspace.review_items().items() if item.image_id in image_ids}
    agreement, error = None, None
    try:
        from data_tools.review.agreement import agreement as compute_agreement

        agreement = compute_agreement(responses, items)
    except ImportError as exc:  # krippendorff/statsmodels come with the review extra
        error = f"not computed: {exc.name} is not installed (pip install 'mirada[review]')"
    problems: Counter[str] = Counter()
    edits = accepted = 0
    for decision in workspace.review_decisions():
        if decision["image_id"] in image_ids:
            problems.update(decision.get("problems") or {})
            edits += len(decision.get("corrections") or [])
            accepted += int(decision.get("suggestion_accepted") or 0)
    left_out, untemplated = _left_out(workspace, image_ids, done, drop_unpublishable, usable, fmt)
    return Provenance(
        left_out=left_out,
        untemplated=untemplated,
        image_status=workspace.count_images_by("status", status=None),
        drafts_by_strategy=workspace.draft_counts(),
        draft_models=dict(draft_models.most_common()),
        spend_usd=float(workspace.spend()["cost_usd"]),
        run_configs=runs,
        responses=len(responses),
        annotators=sorted({r.username for r in responses}),
        agreement=agreement,
        agreement_error=error,
        problems=dict(problems.most_common()),
        edits=edits,
        suggestions_accepted=accepted,
    )


# -- rendering -------------------------------------------------------------------------------------


@dataclass
class CardInputs:
    """Everything a card needs besides the statistics of its own data."""

    name: str
    fmt: str
    config: PrefsConfig
    report: dict[str, Any]
    instructions: Instructions
    provenance: Provenance
    local_path: str  # for the load_from_disk snippet: relative to the workspace's parent, never absolute
    workspace: str  # the workspace folder's own name, for the reproduce command
    repo_id: str | None = None  # where the dataset is (or will be) on the Hub: pushed, or the project's owner
    code_url: str | None = None  # the card's link to the code: card.code_url, else the project setting


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


def _num(value: float | None, digits: int = 3) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def country_name(code: str) -> str:
    """The English name for the card (the draft prompts' localised lookup, in English)."""
    return (localised_country_name(code, "en") if code != NONE else None) or code


def language_codes(stats: dict[str, Any]) -> list[str]:
    """ISO 639 codes for the YAML header: ``es-MX`` → ``es`` (the Hub does not take region subtags)."""
    return sorted(language_tags(list(stats["by_language"]), skip=[NONE]))


def _representation(groups: dict[str, dict[str, Any]], total: int, label: Any) -> list[str]:
    if len(groups) < 2 or not total:
        return []
    even = 1 / len(groups)
    over = [(k, v["images"] / total) for k, v in groups.items() if v["images"] / total > OVER * even]
    under = [(k, v["images"] / total) for k, v in groups.items() if v["images"] / total < UNDER * even]
    lines = []
    if over:
        lines.append("over-represented: " + ", ".join(f"{label(k)} ({s:.0%})" for k, s in over))
    if under:
        lines.append("under-represented: " + ", ".join(f"{label(k)} ({s:.0%})" for k, s in under))
    if not lines:
        lines.append("balanced: every group is within 0.5–1.5× an even share")
    return [f"{len(groups)} groups, an even share would be {even:.0%} each; " + "; ".join(lines) + "."]


def bias_findings(stats: dict[str, Any], inputs: CardInputs) -> dict[str, list[str]]:
    """Statements about balance, winners, length and disagreement, each computed from ``stats``."""
    fmt, total = stats["format"], stats["images"]
    findings: dict[str, list[str]] = {}
    countries = stats["by_country"]
    lines = [
        f"**Countries:** {line}"
        for line in _representation(countries, total, lambda k: f"{k} ({country_name(k)})")
    ]
    if len(countries) == 1:
        only = next(iter(countries))
        lines.append(f"**Countries:** every image is from {only} ({country_name(only)}).")
    expected = inputs.config.card.expected_countries
    left_out = inputs.provenance.left_out
    filtered = [c for c in left_out if c not in countries]
    missing = [c for c in expected if c not in countries and c not in left_out]
    if missing:
        lines.append(
            f"**Missing countries:** no images were collected from {len(missing)} of the {len(expected)} "
            "countries of Latin America and the Iberian Peninsula the card checks: "
            + ", ".join(f"{c} ({country_name(c)})" for c in missing)
            + "."
        )
    if filtered:
        lines.append(
            "**Collected but not in this dataset:** "
            + "; ".join(
                f"{c} ({country_name(c)}): "
                + ", ".join(f"{n} image{'s' if n != 1 else ''} ({why})" for why, n in left_out[c].items())
                for c in filtered
            )
            + "."
        )
    lines += [
        f"**Language varieties:** {line}" for line in _representation(stats["by_language"], total, md_text)
    ]
    lines += [f"**Categories:** {line}" for line in _representation(stats["by_category"], total, md_text)]
    small = [k for column in ("country", "language", "category") for k, v in stats[f"by_{column}"].items()
             if v["images"] < SMALL_GROUP]  # fmt: skip
    if small:
        lines.append(
            f"**Small groups:** {len(set(small))} countries, varieties or categories have fewer than "
            f"{SMALL_GROUP} images ({', '.join(md_text(k) for k in sorted(set(small)))}); figures about them are anecdotal."
        )
    findings["balance"] = lines

    strategies = stats["strategies"]
    wins = []
    if fmt == "dpo":
        for name, s in strategies.items():
            wins.append(f"`{name}` captions are chosen in {s['win_rate']:.0%} of the {s['chosen'] + s['rejected']} "
                        f"pairs they appear in ({s['chosen']} chosen, {s['rejected']} rejected).")  # fmt: skip
        reasons = stats["reasons"]
        wins.append("Pairs are decided by " + ", ".join(f"{k} ({_pct(v, stats['rows'])})" for k, v in reasons.items())
                    + ".")  # fmt: skip
        if stats["perturbations_rejected"]:
            wins.append("Rejected perturbed captions carry: " + ", ".join(
                f"{k} ({v})" for k, v in stats["perturbations_rejected"].items()) + ".")  # fmt: skip
        lengths = stats["lengths"]
        share = lengths["chosen_longer"] / stats["rows"] if stats["rows"] else 0.0
        note = (" DPO can learn that longer is better from such data; watch caption length after training."
                if share > 0.6 else "")  # fmt: skip
        wins.append(
            f"**Length:** the chosen caption is longer than the rejected one in {share:.0%} of pairs "
            f"(mean {_num(lengths['chosen']['mean'], 1)} vs {_num(lengths['rejected']['mean'], 1)} words).{note}"
        )
    elif fmt == "kto":
        for name, s in strategies.items():
            wins.append(f"`{name}` captions are desirable in {s['desirable_rate']:.0%} of "
                        f"{s['desirable'] + s['undesirable']} rows.")  # fmt: skip
        lengths = stats["lengths"]
        wins.append(f"**Length:** desirable captions average {_num(lengths['desirable']['mean'], 1)} words, "
                    f"undesirable ones {_num(lengths['undesirable']['mean'], 1)}.")  # fmt: skip
    else:
        wins.append("SFT targets come from: " + ", ".join(
            f"`{k}` ({_pct(v['rows'], stats['rows'])})" for k, v in strategies.items()) + ".")  # fmt: skip
    findings["strategies"] = wins

    disagreement = []
    agreement = stats["agreement"]
    if agreement["n"]:
        for column, label in (("country", "country"), ("language", "variety"), ("category", "category")):
            by = stats["agreement_by"][column]
            if len(by) >= 2:
                low = min(by, key=lambda k: (by[k], k))
                high = max(by, key=lambda k: (by[k], k))
                disagreement.append(f"Lowest mean agreement by {label}: {md_text(low)} ({by[low]:.2f}); highest: "
                                    f"{md_text(high)} ({by[high]:.2f}).")  # fmt: skip
        disagreement.append(
            f"{agreement['full']} of {agreement['n']} images with two or more annotators had full agreement on "
            f"every candidate's acceptability."
        )
    if agreement["single_annotator"]:
        disagreement.append(f"{agreement['single_annotator']} images were answered by a single annotator: their "
                            "disagreement is unknown.")  # fmt: skip
    if fmt == "kto" and stats["disputed"]:
        disagreement.append("Split acceptability votes per strategy: " + ", ".join(
            f"`{k}` {v}" for k, v in sorted(stats["disputed"].items())) + ".")  # fmt: skip
    problems = inputs.provenance.problems
    if problems:
        disagreement.append("Problems annotators flagged (responses): " + ", ".join(
            f"{md_text(k)} ({v})" for k, v in problems.items()) + ".")  # fmt: skip
    findings["disagreement"] = disagreement
    return findings


def limitations(stats: dict[str, Any], inputs: CardInputs) -> list[str]:
    """The limitations a careful author would state, with this dataset's numbers in them."""
    prov = inputs.provenance
    items = []
    if prov.simulated:
        items.append("**The review answers are simulated** (annotators named `simulated-…`, written by "
                     "`mirada review simulate` for the demo). They are not human judgement: do not train a model "
                     "you intend to use on this dataset.")  # fmt: skip
    models = ", ".join(f"`{portable(m)}`" for m in stats["models"] if m != "human")
    corrections = stats["sources"].get("correction", 0)
    items.append(f"Candidate captions were drafted by {models or 'no model'}; they carry that model's knowledge "
                 f"and blind spots. Only {corrections} of {stats['rows']} rows use a caption written by a person.")  # fmt: skip
    items.append(f"Annotators edited the pre-filled correction {prov.edits} time(s); {prov.suggestions_accepted} "
                 "answer(s) left it unchanged, which counts as accepting that candidate, never as a correction.")  # fmt: skip
    items.append(f"{len(prov.annotators)} annotator(s) judged these images; their cultural background shapes what "
                 "counts as appropriate, and a small group cannot speak for a whole country or variety.")  # fmt: skip
    items.append(f"{stats['images']} images from {len(stats['by_country'])} countries: enough to steer a model's "
                 "style, not to cover a culture. Statistics over small groups are anecdotal.")  # fmt: skip
    items.append("Splits keep near-duplicate photos (perceptual hash) together, but two different photos of the "
                 "same dish, place or festival can still fall into different splits.")  # fmt: skip
    phrasings = {len(v) for v in inputs.instructions.by_language.values()}
    if phrasings == {1}:
        items.append("Every row of a variety uses the same instruction; a model trained on it may depend on that "
                     "phrasing.")  # fmt: skip
    items.append(
        "Image licences stay with the images (see Licences); the dataset licence covers the captions "
        "and annotations."
    )
    return items


def _annotation_section(stats: dict[str, Any], inputs: CardInputs) -> list[str]:
    prov, config = inputs.provenance, inputs.config
    out = ["## Annotation", ""]
    review = prov.run_configs.get("review-push") or prov.run_configs.get("review-pull") or {}
    aggregation = review.get("aggregation")
    out.append(
        "Annotators saw each image with its cultural context and the candidate captions in a shuffled, anonymous "
        "order (the strategy that produced a caption is never shown). For each image they ranked the candidates "
        "from best to worst, marked the ones they would publish as they are (culturally appropriate and "
        "accurate), flagged problems (wrong culture, stereotype, factual error, wrong variety, hallucination), "
        "and could write a corrected caption."
    )
    if aggregation:
        out.append("")
        out.append(f"Answers were combined with this policy: `{json.dumps(aggregation, sort_keys=True)}`.")
    out.append("")
    if config.card.guidelines_url:
        out.append(f"Guidelines: <{config.card.guidelines_url}>.")
    else:
        out.append("Guidelines: " + ", ".join(f"[{p.name}](guidelines/{p.name})" for p in guideline_files(config, stats["by_language"]))
                   + " (copied next to this card).")  # fmt: skip
    out += ["", f"- Annotators: **{len(prov.annotators)}**" + (" (simulated)" if prov.simulated else "")
            + f"; submitted answers on these images: {prov.responses}.",
            "- Annotators per image: " + ", ".join(f"{k}: {v} images" for k, v in stats["n_annotators"].items()) + "."]  # fmt: skip
    agreement = stats["agreement"]
    out += [
        "",
        "**Per-image agreement** (column `agreement`): for each candidate with `y` of `n` annotators voting it "
        "acceptable, the share of annotator pairs that agree is `(y(y-1) + (n-y)(n-y-1)) / (n(n-1))`; an "
        "image's agreement is the mean over its candidates (1 = unanimous on every candidate). Images below "
        f"`filters.min_agreement = {config.filters.min_agreement}` were left out. `rank_spread` is the mean "
        "population standard deviation of the ranks each candidate received.",
        "",
        md_table(["measure", "value"], [
            ["images with 2+ annotators", agreement["n"]],
            ["mean agreement", _num(agreement["mean"])],
            ["median agreement", _num(agreement["median"])],
            ["images with full agreement", agreement["full"]],
            ["images with one annotator", agreement["single_annotator"]],
            ["mean rank spread", _num(stats["rank_spread"]["mean"])],
        ]),
    ]  # fmt: skip
    out += ["", "**Inter-annotator agreement** over the images answered by two or more annotators "
            "(Krippendorff's α and Fleiss' κ as computed by `krippendorff` and `statsmodels`):", ""]  # fmt: skip
    if prov.agreement is None:
        out.append(prov.agreement_error or "not computed.")
    else:
        a = prov.agreement
        rows = [["overlapping records", a["overlap_records"]],
                ["ranking, Krippendorff's α (ordinal)", _num(a["ranking_alpha_ordinal"])],
                ["acceptability, Krippendorff's α (nominal)", _num(a["acceptable_alpha_nominal"])],
                ["problems, Krippendorff's α (nominal)", _num(a["problems_alpha_nominal"])],
                ["acceptability, Fleiss' κ", _num(a["acceptable_fleiss_kappa"])]]  # fmt: skip
        # Annotators appear as A1, A2… (sorted usernames): the card needs their agreement, not their identity.
        alias = {name: f"A{i}" for i, name in enumerate(prov.annotators, start=1)}
        for pair, value in a["acceptable_cohen_kappa"].items():
            first, second = pair.split("~", 1)
            label = f"acceptability, Cohen's κ {alias.get(first, first)}~{alias.get(second, second)}"
            rows.append([label, _num(value)])
        out.append(md_table(["measure", "value"], rows))
        out.append("")
        out.append("n/a means the data cannot define the figure (no overlap, or no variation at all).")
    return out


def guideline_files(config: PrefsConfig, languages: Iterable[str]) -> list[Path]:
    """The review guidelines shown for these varieties (Portuguese for pt-*, Spanish otherwise, as in review)."""
    folder = config.card.guidelines_dir
    wanted = {"pt" if str(tag).startswith("pt") else "es" for tag in languages}
    files = []
    for code in sorted(wanted or {"es"}):
        ui = folder / f"{code}.yaml"
        if ui.is_file():
            name = (yaml.safe_load(ui.read_text(encoding="utf-8")) or {}).get("guidelines")
            if name and (folder / name).is_file():
                files.append(folder / name)
    return files


def _statistics_section(stats: dict[str, Any], charts: dict[str, str]) -> list[str]:
    fmt, total = stats["format"], stats["images"]
    out = ["## Statistics", ""]
    for column, title, chart in (("country", "By country", "countries"), ("language", "By language variety", "languages"),
                                 ("category", "By category", "categories")):  # fmt: skip
        groups = stats[f"by_{column}"]
        headers = [column] + (["name"] if column == "country" else []) + ["images", "rows", "share of images",
                                                                          "mean agreement"]  # fmt: skip
        agreement = stats["agreement_by"][column]
        rows = [[md_text(key)] + ([country_name(key)] if column == "country" else [])
                + [g["images"], g["rows"], _pct(g["images"], total), _num(agreement.get(key), 2)]
                for key, g in groups.items()]  # fmt: skip
        out += [f"### {title}", "", md_table(headers, rows), "", f"![{title}]({charts[chart]})", ""]
    out += ["### By candidate strategy", ""]
    strategies = stats["strategies"]
    if fmt == "dpo":
        out.append(md_table(["strategy", "chosen", "rejected", "win rate"],
                            [[k, v["chosen"], v["rejected"], f"{v['win_rate']:.0%}"] for k, v in strategies.items()]))  # fmt: skip
    elif fmt == "kto":
        out.append(md_table(["strategy", "desirable", "undesirable", "desirable rate"],
                            [[k, v["desirable"], v["undesirable"], f"{v['desirable_rate']:.0%}"]
                             for k, v in strategies.items()]))  # fmt: skip
    else:
        out.append(md_table(["strategy", "rows"], [[k, v["rows"]] for k, v in strategies.items()]))
    out += ["", "`cultural`: drafted with all the metadata; `generic`: a plausible caption with no cultural context; "
            "`perturbed`: drafted with a controlled flaw; `human_correction`: written by an annotator.", "",
            f"![Strategies]({charts['strategies']})", "", "### Caption length (words)", ""]  # fmt: skip
    lengths = stats["lengths"]
    groups = {"dpo": ("chosen", "rejected"), "kto": ("desirable", "undesirable"), "sft": ("caption",)}[fmt]
    out.append(md_table(["captions", "n", "mean", "median", "min", "max"],
                        [[g, lengths[g]["n"], _num(lengths[g]["mean"], 1), _num(lengths[g]["median"], 1),
                          lengths[g]["min"] if lengths[g]["min"] is not None else "n/a",
                          lengths[g]["max"] if lengths[g]["max"] is not None else "n/a"] for g in groups]))  # fmt: skip
    out += ["", f"![Caption length]({charts['caption_length']})", "", "### Agreement", "",
            f"![Agreement]({charts['agreement']})", ""]  # fmt: skip
    return out


def _filters_section(inputs: CardInputs) -> list[str]:
    config, report, fmt = inputs.config, inputs.report, inputs.fmt
    f = config.filters
    rules = {
        "pending": "no decision yet (fewer submitted answers than the aggregation policy needs)",
        "discarded": "annotators discarded the record",
        "duplicate_record": "the image was reviewed in another record too; the one with most answers is kept",
        "missing_image": "the image file is missing from the workspace",
        "unpublishable": "image without a recognised licence" + ("" if f.drop_unpublishable else " (kept: filter off)"),
        "single_annotator": f"one annotator only (single_annotator = {f.single_annotator})",
        "low_agreement": f"agreement below {f.min_agreement}",
        "high_rank_spread": "mean rank spread above " + ("∞ (off)" if f.max_rank_spread is None else str(f.max_rank_spread)),
        "missing_draft": "the candidate's draft is missing or failed",
        "empty_caption": f"caption shorter than {f.min_caption_chars} characters",
        "too_long_caption": f"caption longer than {f.max_caption_chars} characters",
        "tie": "equal aggregated rank score (and equal acceptability): no preference",
        "unranked": "a candidate nobody ranked, with nothing else to order it",
        "conflict": "rank and acceptability contradict each other (order = consistent)",
        "identical": "the same text (ignoring case and spacing) on both sides / twice for one image",
        "over_cap": f"beyond dpo.max_pairs_per_image = {config.dpo.max_pairs_per_image}",
        "disputed": "split acceptability vote (kto.drop_disputed)",
        "no_acceptable_caption": "no correction and no candidate voted acceptable (sft.require_acceptable)",
    }  # fmt: skip
    rows = [["record", name, rules[name], report["records"]["dropped"][name]] for name in RECORD_FILTERS]
    rows += [["caption", name, rules[name], report["captions"]["dropped"][name]] for name in CAPTION_FILTERS]
    unit = {"dpo": "pair", "kto": "row", "sft": "image"}[fmt]
    rows += [[unit, name, rules[name], report[fmt]["dropped"][name]] for name in FORMAT_FILTERS[fmt]]
    return [
        "### Filters",
        "",
        f"{report['records']['used']} of {report['records']['total']} reviewed records and "
        f"{report['captions']['used']} of {report['captions']['total']} captions passed the filters. Each drop:",
        "",
        md_table(["level", "filter", "rule", "dropped"], rows),
        "",
    ]


def _pairing_text(config: PrefsConfig, fmt: str) -> str:
    if fmt == "dpo":
        pairing = {"best_vs_rest": "the best caption against each of the others",
                   "all_pairs": "every ordered pair of captions", "top_vs_bottom": "the best caption against the worst"}  # fmt: skip
        order = {"acceptability_then_rank": "an acceptable candidate beats an unacceptable one, and the aggregated "
                 "rank orders candidates within each group", "rank": "the aggregated rank alone orders candidates",
                 "consistent": "a pair is made only when rank and acceptability do not contradict each other"}  # fmt: skip
        return (f"Pairs: {pairing[config.dpo.pairing]}, at most {config.dpo.max_pairs_per_image} per image "
                f"(largest contrast first). A human correction beats every candidate; {order[config.dpo.order]}. "
                "Candidates with equal aggregated scores are never paired.")  # fmt: skip
    if fmt == "kto":
        return ("Rows: every candidate, labelled desirable if the annotators voted it acceptable, and every human "
                "correction as desirable" + ("" if config.kto.include_corrections else " (corrections left out here)")
                + ". Vision KTO in TRL needs this unpaired format.")  # fmt: skip
    return (
        "One row per image: the human correction if there is one, else the best-ranked candidate voted "
        "acceptable" + ("" if config.sft.require_acceptable else " (else the best-ranked candidate)") + "."
    )


def _trl_snippet(inputs: CardInputs, stats: dict[str, Any]) -> str:
    fmt = inputs.fmt
    # The Hub id when the project has an owner; else the folder relative to the workspace's parent.
    source = (f'load_dataset("{inputs.repo_id}")' if inputs.repo_id
              else f'load_from_disk("{inputs.local_path}")')  # fmt: skip
    loader = "from datasets import load_dataset" if inputs.repo_id else "from datasets import load_from_disk"
    trainer = {"dpo": "DPO", "kto": "KTO", "sft": "SFT"}[fmt]
    extra = ""
    if fmt == "kto":
        weights = stats["kto"]["weights"]
        why = (
            "# from this dataset's train split"
            if weights
            else "# train holds one label only: rebalance it first"
        )
        weights = weights or {"desirable_weight": 1.0, "undesirable_weight": 1.0}
        extra = (f"    desirable_weight={weights['desirable_weight']},   {why}\n"
                 f"    undesirable_weight={weights['undesirable_weight']},\n"
                 "    precompute_ref_log_probs=False,  # TRL refuses it for vision\n")  # fmt: skip
    evaluation = '    eval_dataset=dataset["test"],\n' if "test" in stats["splits"] else ""
    return (
        "```python\n"
        f"{loader}\n"
        "from peft import LoraConfig\n"
        f"from trl import {trainer}Config, {trainer}Trainer\n\n"
        f"dataset = {source}\n"
        f"args = {trainer}Config(\n"
        f'    output_dir="{inputs.name}-model",\n'
        "    max_length=None,                 # vision: truncation would cut image tokens\n"
        "    per_device_train_batch_size=2,   # KTO needs more than 1\n"
        f"{extra}"
        ")\n"
        f"trainer = {trainer}Trainer(\n"
        '    model="Qwen/Qwen2.5-VL-7B-Instruct",\n'
        "    args=args,\n"
        '    train_dataset=dataset["train"],\n'
        f"{evaluation}"
        '    peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=r".*(language_model|text_model).*\\.(q|k|v|o|gate|up|down)_proj"),\n'
        ")\n"
        "trainer.train()\n"
        "```"
    )


def render_card(inputs: CardInputs, stats: dict[str, Any], charts: dict[str, str]) -> Any:
    """The Dataset Card (YAML header + markdown) as a ``huggingface_hub.DatasetCard``."""
    from huggingface_hub import DatasetCard, DatasetCardData

    config, prov, fmt = inputs.config, inputs.provenance, inputs.fmt
    upper = fmt.upper()
    pretty = (
        config.card.pretty_name
        or f"{inputs.name.replace('_', ' ')} ({upper}, image captions with cultural context)"
    )
    languages = language_codes(stats)
    corrections = stats["sources"].get("correction", 0)
    header = DatasetCardData(
        license=config.card.license,
        language=languages,
        task_categories=["image-text-to-text", "image-to-text"],
        size_categories=[size_category(stats["rows"])],
        pretty_name=pretty,
        annotations_creators=["machine-generated" if prov.simulated else config.card.annotations_creators],
        language_creators=["machine-generated", "expert-generated"] if corrections else ["machine-generated"],
        multilinguality=["multilingual" if len(languages) > 1 else "monolingual"],
        source_datasets=["original"],
        tags=sorted({*config.card.tags, fmt, "image", "preference" if fmt != "sft" else "sft"}),
        **({"configs": [{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"}
                                                                   for s in stats["splits"]]}]}
           if inputs.repo_id else {}),
    )  # fmt: skip
    countries, varieties = stats["by_country"], stats["by_language"]
    out = [f"# {pretty}", ""]
    if prov.simulated:
        out += ["> **Warning: the review answers behind this dataset are SIMULATED** (`mirada review simulate`, "
                "demo only). It shows the pipeline, not human judgement.", ""]  # fmt: skip
    kind = {"dpo": "preference pairs (chosen/rejected captions)", "kto": "captions labelled desirable or undesirable",
            "sft": "image–caption targets"}[fmt]  # fmt: skip
    out += [
        f"**{stats['rows']} {kind}** for **{stats['images']} images** from **{len(countries)} "
        f"countr{'y' if len(countries) == 1 else 'ies'}** ({', '.join(map(md_text, countries))}) in **{len(varieties)} "
        f"language variet{'y' if len(varieties) == 1 else 'ies'}** ({', '.join(map(md_text, varieties))}), in TRL's "
        "vision format for "
        f"`{upper}Trainer`. Captions describe each image with its cultural context, in the variety of the place.",
        "",
        "## Motivation and impact",
        "",
        "Vision-language models describe what they see in a generic, often anglocentric way: a plate of *tacos al "
        "pastor* becomes \"food on a plate\", a *mola* \"a colourful textile\", a *castell* \"a crowd of people\". "
        "This dataset teaches a model to name what it sees as people from Latin America and the Iberian Peninsula "
        "would, in their own language variety, and to avoid the wrong country, the stereotype and the wrong "
        "variety. "
        + (
            "Its preferences are meant to come from people reviewing model-drafted captions; in this build they "
            "were simulated, so it demonstrates the pipeline and teaches nothing about culture."
            if prov.simulated
            else "The preferences come from people who reviewed model-drafted captions, so a model aligned on it "
            "learns what those reviewers judged culturally appropriate and accurate."
        ),
        "",
    ]  # fmt: skip
    if config.card.motivation:
        out += [config.card.motivation.strip(), ""]
    out += [
        "Built with Mirada (`mirada prefs`), an open pipeline for teams with a folder of photos, API credits and one "
        "GPU" + (f"; code: <{inputs.code_url}>" if inputs.code_url else "") + ".",
        "",
        "## Dataset structure",
        "",
        md_table(["split", "rows", "images"], [[s, v["rows"], v["images"]] for s, v in stats["splits"].items()]),
        "",
        f"Splits are grouped by image and near-duplicate cluster (no image or near-twin is in two splits) and "
        f"stratified by country and category; seed {config.splits.seed}, test share {config.splits.test_size}"
        + (f", validation share {config.splits.validation_size}" if config.splits.validation_size else "") + ".",
        "",
        md_table(["column", "meaning"], [[f"`{c}`", COLUMN_HELP.get(c, "")] for c in _columns(fmt, config)]),
        "",
        *_example_block(stats["example"]),
        "## How it was made",
        "",
    ]  # fmt: skip
    status = prov.image_status
    drafted = sum(v.get("done", 0) for v in prov.drafts_by_strategy.values())
    out += [
        f"1. **collect**: {PIPELINE['collect']}. The workspace holds {status.get('ok', 0)} images "
        f"({status.get('near_duplicate', 0)} more set aside as near-duplicates).",
        f"2. **draft**: {PIPELINE['draft']}. {drafted} candidates were drafted ("
        + ", ".join(f"{k}: {v.get('done', 0)}" for k, v in sorted(prov.drafts_by_strategy.items()))
        + ") by " + (", ".join(f"`{m}` ({n})" for m, n in prov.draft_models.items()) or "no model")
        + f"; API spend ${prov.spend_usd:.2f}."
        + (" " + ", ".join(f"{n} image{'s' if n != 1 else ''} in {md_text(tag)}" for tag, n in prov.untemplated.items())
           + " could not be drafted: no draft template exists for that variety (add one under "
           "`configs/prompts/draft/`)." if prov.untemplated else ""),
        f"3. **review**: {PIPELINE['review']}.",
        f"4. **prefs**: {PIPELINE['prefs']}. {_pairing_text(config, fmt)}",
        "",
        "### Instruction prompts",
        "",
        f"The user turn of every row (file `{portable(str(inputs.instructions.path))}`, version "
        f"{inputs.instructions.version}, sha256 `{inputs.instructions.sha256[:12]}`):",
        "",
        md_table(["variety", "instruction"],
                 [[tag, inputs.instructions.for_image(tag, "0" * 8)] for tag in varieties if tag != NONE]),
        "",
    ]  # fmt: skip
    out += _filters_section(inputs)
    out += ["### Libraries", "", md_table(["library", "version"], sorted(prov.versions.items())), "",
            "### Exact configuration", "", "`mirada prefs` (this dataset):", "", "```yaml",
            yaml.safe_dump(portable(config.model_dump(mode="json")), sort_keys=True, allow_unicode=True).strip(),
            "```", ""]  # fmt: skip
    for stage, stage_config in sorted(prov.run_configs.items()):
        out += [f"`mirada {stage.replace('-', ' ')}` (latest run):", "", "```yaml",
                yaml.safe_dump(stage_config, sort_keys=True, allow_unicode=True).strip(), "```", ""]  # fmt: skip
    out += [*_annotation_section(stats, inputs), ""]
    out += _statistics_section(stats, charts)
    findings = bias_findings(stats, inputs)
    out += ["## Bias and balance", "", "Computed from the data above.", "", "**Representation.**", ""]
    out += [f"- {line}" for line in findings["balance"]] + ["", "**Which captions win.**", ""]
    out += [f"- {line}" for line in findings["strategies"]] + ["", "**Where annotators disagree.**", ""]
    out += [f"- {line}" for line in findings["disagreement"] or ["No disagreement figures (no overlap)."]]
    out += ["", "## Limitations", ""] + [f"- {line}" for line in limitations(stats, inputs)] + [""]
    out += _licence_section(stats, config)
    out += ["## Use with TRL", "", _trl_snippet(inputs, stats), ""]
    if fmt == "kto":
        k = stats["kto"]
        weights = k["weights"]
        out += [
            f"Desirable : undesirable = {k['desirable']} : {k['undesirable']} overall, {k['train_desirable']} : "
            f"{k['train_undesirable']} in train. "
            + (f"Suggested `desirable_weight={weights['desirable_weight']}`, `undesirable_weight="
               f"{weights['undesirable_weight']}`: they put `desirable_weight·n_desirable / (undesirable_weight·"
               "n_undesirable)` inside [1, 4/3], as the KTO paper (Eq. 8) and TRL recommend."
               if weights else "KTO needs both labels in train; this split lacks one."),
            "",
        ]  # fmt: skip
    out += ["Vision settings that matter (TRL 1.16): `max_length=None` (truncation breaks image tokens), "
            "`processing_class=` the model's processor when you pass a loaded model"
            + (", `per_device_train_batch_size > 1` and `precompute_ref_log_probs=False` for KTO" if fmt == "kto" else "")
            + ".", "", "## Reproduce", "",
            f"From the workspace that produced it, with the configuration above (saved next to this card as "
            f"`{CONFIG_FILE}`):", "", "```bash",
            f"mirada prefs --workspace {inputs.workspace} --config {CONFIG_FILE} --format {fmt} --name "
            f"{inputs.name.rsplit('_image_', 1)[0]}", "```", ""]  # fmt: skip
    content = f"---\n{header.to_yaml()}\n---\n\n" + "\n".join(out).rstrip() + "\n"
    return DatasetCard(scrub_local_paths(content))


def _example_block(example: dict[str, Any]) -> list[str]:
    """The example row in a code fence no caption can close, with a word when no row is readable."""
    shown = {k: v for k, v in example.items() if not k.startswith("_")}
    text = json.dumps(shown, ensure_ascii=False, indent=2)
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    out = ["An example (image omitted):", ""]
    if not example.get("_readable", True):
        out += ["No row of this dataset has readable text: its captions contain characters that are not text "
                "(U+FFFD), as a randomly initialised test model writes. The first row is shown as it is.", ""]  # fmt: skip
    return [*out, fence + "json", text, fence, ""]


def _columns(fmt: str, config: PrefsConfig) -> list[str]:
    return list(features(fmt, config.sft.layout))


def _licence_section(stats: dict[str, Any], config: PrefsConfig) -> list[str]:
    licences = stats["licenses"]
    total = stats["images"]
    out = ["## Licences", ""]
    reason = f" {config.card.license_reason}" if config.card.license_reason else ""
    out.append(f"The captions, rankings and labels are released under **{config.card.license}**.{reason} Each "
               "image keeps its own licence, given per row in `license` with `author` and `source_url` for "
               "attribution:")  # fmt: skip
    out += [
        "",
        md_table(
            ["image licence", "images", "share"],
            [[md_text(k), v, _pct(v, total)] for k, v in licences.items()],
        ),
        "",
    ]
    notes = []
    if any("-BY" in k.upper() for k in licences):
        notes.append(
            "CC BY licences require attribution: keep `author` and `source_url` when you reuse images."
        )
    if any("-NC" in k.upper() for k in licences):
        notes.append(
            "Some images are non-commercial (NC): the dataset licence does not lift that restriction."
        )
    if any("-SA" in k.upper() for k in licences):
        notes.append(
            "Some images are ShareAlike (SA): adaptations of those images must keep the same licence."
        )
    if any("-ND" in k.upper() for k in licences):
        notes.append("Some images forbid derivatives (ND): do not publish altered versions of them.")
    if stats["without_author"]:
        notes.append(f"{stats['without_author']} images have no recorded author.")
    if NONE in licences:
        notes.append(f"{licences[NONE]} images have no recognised licence (filters.drop_unpublishable is off): do "
                     "not publish them.")  # fmt: skip
    out += [f"- {n}" for n in notes] + ([""] if notes else [])
    return out
