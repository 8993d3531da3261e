"""Known review answers → exact DPO pairs, KTO rows and SFT targets; every filter counted."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from data_tools.config import load_config
from data_tools.prefs.build import (
    CAPTION_FILTERS,
    CORRECTION,
    FORMAT_FILTERS,
    RECORD_FILTERS,
    Instructions,
    PrefsError,
    Side,
    build_prefs,
    compare,
    dpo_pairs,
    kto_weights,
    record_agreement,
    record_rank_spread,
    to_dataset_dict,
)
from data_tools.prefs.config import DPOSettings, PrefsConfig
from tests.data_tools.prefs.prefs_helpers import Answer, Scenario, four, tacos

CORR = "Tacos al pastor con piña, cebolla y cilantro en una taquería de la CDMX."
A = "Tacos al pastor en una taquería de la Ciudad de México."
B = "Tacos con piña y cilantro en un puesto callejero."
C = "Comida en un plato."
D = "Tapas españolas en un bar de Madrid."


def config(*overrides: str) -> PrefsConfig:
    return load_config(PrefsConfig, None, ["splits.test_size=0", *overrides])


def texts(row: dict) -> tuple[str, str]:
    return row["chosen"][0]["content"], row["rejected"][0]["content"]


@pytest.fixture
def scenario(workspace):
    return Scenario(workspace)


@pytest.fixture
def worked(scenario):
    """Tacos (correction + ranking A>B>C>D, A and B acceptable) and a second image with C and D tied."""
    tacos(scenario)
    scenario.image(
        four("Dos"),
        [Answer("ana", ["A", "B", "C", "D"], {"A"}), Answer("bruno", ["A", "B", "D", "C"], {"A"})],
    )
    scenario.aggregate()
    return scenario


@pytest.mark.parametrize(
    ("pairing", "cap", "expected", "over_cap"),
    [
        ("best_vs_rest", 4, [(CORR, A), (CORR, B), (CORR, C), (CORR, D)], 0),
        ("top_vs_bottom", 4, [(CORR, D)], 0),
        ("all_pairs", 4, [(CORR, B), (CORR, C), (CORR, D), (A, D)], 6 + 1),  # largest contrasts kept
        ("all_pairs", 10, [(CORR, A), (CORR, B), (CORR, C), (CORR, D), (A, B), (A, C), (A, D), (B, C), (B, D), (C, D)], 0),
    ],
)  # fmt: skip
def test_dpo_pairs_for_each_policy(worked, pairing, cap, expected, over_cap):
    result = build_prefs(
        worked.ws, config(f"dpo.pairing={pairing}", f"dpo.max_pairs_per_image={cap}", "formats=[dpo]")
    )
    tacos_rows = [r for r in result.rows["dpo"] if r["image_id"] == worked.images[0].image_id]
    assert [texts(r) for r in tacos_rows] == expected
    assert result.report["dpo"]["dropped"]["over_cap"] == over_cap
    assert "kto" not in result.rows and "kto" not in result.report


def test_dpo_reasons_strategies_and_metadata(worked):
    result = build_prefs(
        worked.ws, config("dpo.pairing=all_pairs", "dpo.max_pairs_per_image=10", "formats=[dpo]")
    )
    rows = {texts(r): r for r in result.rows["dpo"] if r["image_id"] == worked.images[0].image_id}
    assert rows[(CORR, A)]["reason"] == "correction" and rows[(CORR, A)]["chosen_strategy"] == CORRECTION
    assert rows[(CORR, A)]["chosen_model"] == "human" and rows[(CORR, A)]["chosen_rank"] == 0
    assert rows[(A, B)]["reason"] == "rank" and (
        rows[(A, B)]["chosen_rank"],
        rows[(A, B)]["rejected_rank"],
    ) == (1, 2)
    assert rows[(B, C)]["reason"] == "acceptability"
    assert rows[(C, D)]["reason"] == "rank"
    assert (
        rows[(A, D)]["rejected_strategy"] == "perturbed"
        and rows[(A, D)]["rejected_perturbation"] == "wrong_country"
    )
    row = rows[(A, D)]
    assert (row["country"], row["language"], row["category"], row["license"]) == (
        "MX",
        "es-MX",
        "food",
        "CC0-1.0",
    )
    assert row["agreement"] == 1.0 and row["rank_spread"] == 0.0 and row["n_annotators"] == 2
    assert row["prompt"] == [
        {"role": "user", "content": "Describe esta imagen teniendo en cuenta su contexto cultural."}
    ]
    assert row["images"] == [str(worked.ws.image_path(worked.ws.get_image(row["image_id"])))]


def test_ties_never_pair_and_are_counted(worked):
    second = worked.images[1].image_id
    result = build_prefs(
        worked.ws, config("dpo.pairing=all_pairs", "dpo.max_pairs_per_image=10", "formats=[dpo]")
    )
    rows = [texts(r) for r in result.rows["dpo"] if r["image_id"] == second]
    names = {
        f"Dos {n}: una escena con detalle número {i} de la cultura local.": n for i, n in enumerate("abcd")
    }
    assert [(names[c], names[r]) for c, r in rows] == [
        ("a", "b"),
        ("a", "c"),
        ("a", "d"),
        ("b", "c"),
        ("b", "d"),
    ]
    assert result.report["dpo"]["dropped"]["tie"] == 1  # c and d: both 3.5 on average, both unacceptable
    best = build_prefs(worked.ws, config("formats=[dpo]"))
    assert best.report["dpo"]["dropped"]["tie"] == 0  # best_vs_rest never compares c with d
    assert best.report["dpo"]["rows"] == 4 + 3


def _side(key, score, acceptable, source="candidate"):
    return Side(key=key, text=f"texto {key}", source=source, strategy="cultural", perturbation=None, model="m",
                rank=None, score=score, acceptable=acceptable, votes=(1, 1))  # fmt: skip


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("acceptability_then_rank", (-1, "acceptability")),
        ("rank", (1, "rank")),
        ("consistent", (0, "conflict")),
    ],
)
def test_rank_against_acceptability_per_order(order, expected):
    ranked_first_but_unacceptable, acceptable_second = _side("a", 1.0, False), _side("b", 2.0, True)
    assert compare(ranked_first_but_unacceptable, acceptable_second, order) == expected


def test_compare_corrections_unranked_and_consistent_agreement():
    correction = _side("c", None, True, source="correction")
    assert compare(_side("a", 1.0, True), correction, "rank") == (-1, "correction")
    assert compare(_side("a", 1.0, True), _side("b", None, True), "acceptability_then_rank") == (
        0,
        "unranked",
    )
    assert compare(_side("a", None, True), _side("b", None, False), "consistent") == (1, "acceptability")
    assert compare(_side("a", 1.0, True), _side("b", 2.0, False), "consistent") == (1, "acceptability")
    assert compare(_side("a", 2.0, True), _side("b", 2.0, True), "rank") == (0, "tie")


def test_conflict_and_unranked_counts_in_pairs():
    counts = Counter()
    sides = [_side("a", 1.0, False), _side("b", 2.0, True), _side("z", None, True)]
    pairs = dpo_pairs(sides, DPOSettings(order="consistent", pairing="all_pairs"), counts)
    # consistent: b (acceptable) is sorted first; b vs a contradicts the rank; b vs z unranked; a vs z by vote
    assert [(c.key, r.key, why) for c, r, why in pairs] == [("z", "a", "acceptability")]
    assert +counts == Counter(conflict=1, unranked=1)


def test_kto_rows_labels_and_ratio(worked):
    result = build_prefs(worked.ws, config("formats=[kto]"))
    rows = [(r["completion"][0]["content"], r["label"], r["source"]) for r in result.rows["kto"]
            if r["image_id"] == worked.images[0].image_id]  # fmt: skip
    assert rows == [(CORR, True, "correction"), (A, True, "candidate"), (B, True, "candidate"),
                    (C, False, "candidate"), (D, False, "candidate")]  # fmt: skip
    report = result.report["kto"]
    assert (report["desirable"], report["undesirable"]) == (3 + 1, 2 + 3)
    assert report["suggested_weights"] == kto_weights(4, 5)
    assert result.rows["kto"][0]["votes_yes"] is None and result.rows["kto"][1]["votes_yes"] == 2


def test_kto_weights_land_in_trl_range():
    assert kto_weights(10, 30) == {"desirable_weight": 3.45, "undesirable_weight": 1.0}
    assert kto_weights(30, 10) == {"desirable_weight": 1.0, "undesirable_weight": 2.61}
    assert kto_weights(12, 10) == {"desirable_weight": 1.0, "undesirable_weight": 1.0}
    assert kto_weights(0, 5) is None
    for desirable, undesirable in ((1, 9), (7, 3), (5, 50), (99, 2), (3, 4)):
        w = kto_weights(desirable, undesirable)
        ratio = w["desirable_weight"] * desirable / (w["undesirable_weight"] * undesirable)
        assert 1 <= ratio <= 4 / 3 + 0.01


def test_sft_targets(scenario):
    tacos(scenario)  # correction wins
    only_b = scenario.image(four("Solo"), [Answer("ana", ["A", "B", "C", "D"], {"B"}), Answer("bruno", ["A", "B", "C", "D"], {"B"})])  # fmt: skip
    none_ok = scenario.image(
        four("Nada"), [Answer("ana", ["C", "A", "B", "D"]), Answer("bruno", ["C", "A", "B", "D"])]
    )
    scenario.aggregate()
    result = build_prefs(scenario.ws, config("formats=[sft]"))
    targets = {r["image_id"]: (r["messages"][1]["content"], r["strategy"]) for r in result.rows["sft"]}
    assert targets[scenario.images[0].image_id] == (CORR, CORRECTION)
    assert targets[only_b.image_id][0].startswith("Solo b:")  # best-ranked *acceptable*, not the top-ranked
    assert none_ok.image_id not in targets and result.report["sft"]["dropped"] == {"no_acceptable_caption": 1}
    assert result.rows["sft"][0]["messages"][0] == {"role": "user", "content": "Describe esta imagen teniendo en cuenta su contexto cultural."}  # fmt: skip
    relaxed = build_prefs(scenario.ws, config("formats=[sft]", "sft.require_acceptable=false", "sft.layout=prompt_completion"))  # fmt: skip
    row = next(r for r in relaxed.rows["sft"] if r["image_id"] == none_ok.image_id)
    assert row["completion"][0]["content"].startswith("Nada c:") and "messages" not in row


def test_agreement_definitions():
    assert record_agreement({"acceptable_votes": {"a": [2, 2], "b": [1, 2]}}) == 0.5
    assert record_agreement({"acceptable_votes": {"a": [2, 3], "b": [3, 3]}}) == pytest.approx(
        (1 / 3 + 1) / 2
    )
    assert record_agreement({"acceptable_votes": {"a": [1, 1]}}) is None
    assert record_rank_spread({"n_submitted": 2, "rank_spread": {"a": 0.5, "b": 0.0}}) == 0.25
    assert record_rank_spread({"n_submitted": 1, "rank_spread": {"a": 0.0}}) is None


def test_every_filter_is_counted(scenario, tmp_path):
    both = [
        Answer("ana", ["A", "B", "C", "D"], {"A", "B"}),
        Answer("bruno", ["A", "B", "C", "D"], {"A", "B"}),
    ]
    tacos(scenario)  # kept
    pending = scenario.image(four("Pend"), [])
    scenario.image(
        four("Desc"), [Answer("ana", [], status="discarded"), Answer("bruno", [], status="discarded")]
    )
    scenario.image(four("Twice"), both, datasets=("test-ds", "other-ds"))  # duplicate_record (kept once)
    gone = scenario.image(four("Gone"), both)
    scenario.image(four("Nolic"), both, license=None)
    scenario.image(four("Solo"), [Answer("ana", ["A", "B", "C", "D"], {"A"})], country="PE", language="es-PE")
    scenario.image(four("Split"), [Answer("ana", ["A", "B", "C", "D"], {"A", "B"}), Answer("bruno", ["A", "B", "C", "D"], {"C", "D"})])  # fmt: skip
    scenario.image(four("Spread"), [Answer("ana", ["A", "B", "C", "D"], {"A", "B"}), Answer("bruno", ["D", "C", "B", "A"], {"A", "B"})])  # fmt: skip
    captions = {"A": ("cultural", "Buena descripción cultural."), "B": ("cultural", "   "), "C": ("generic", "x" * 100),
                "D": ("perturbed", "buena   DESCRIPCIÓN cultural."), "E": ("cultural", "Fallida.")}  # fmt: skip
    scenario.image(captions, [Answer("ana", ["A", "C", "D", "B"], {"A", "D"}), Answer("bruno", ["A", "C", "D", "B"], {"A"})],
                   failed={"E"})  # fmt: skip
    scenario.aggregate()
    (scenario.ws.images_dir / f"{gone.image_id}.png").unlink()
    result = build_prefs(
        scenario.ws,
        config("filters.single_annotator=drop", "filters.max_rank_spread=0.9", "filters.max_caption_chars=80",
               "kto.drop_disputed=true"),
    )  # fmt: skip
    report = result.report
    assert report["records"]["dropped"] == {
        "pending": 1, "discarded": 1, "duplicate_record": 1, "missing_image": 1, "unpublishable": 1,
        "single_annotator": 1, "low_agreement": 1, "high_rank_spread": 1,
    }  # fmt: skip
    assert report["records"]["total"] == 11 and report["records"]["used"] == 3
    assert report["captions"]["dropped"] == {"missing_draft": 1, "empty_caption": 1, "too_long_caption": 1}
    # the last image keeps A and D, whose texts differ only in case and spacing
    assert report["dpo"]["dropped"]["identical"] == 1
    assert report["kto"]["dropped"] == {
        "disputed": 1,
        "identical": 0,
    }  # D's vote was split: dropped before dedup
    assert set(report["records"]["dropped"]) == set(RECORD_FILTERS)
    assert set(report["captions"]["dropped"]) == set(CAPTION_FILTERS)
    assert all(set(report[f]["dropped"]) == set(FORMAT_FILTERS[f]) for f in ("dpo", "kto", "sft"))
    assert pending.image_id not in {r["image_id"] for rows in result.rows.values() for r in rows}
    kept = build_prefs(scenario.ws, config("filters.max_caption_chars=80"))
    assert kept.report["records"]["dropped"]["single_annotator"] == 0
    solo = [r for r in kept.rows["dpo"] if r["country"] == "PE"]
    assert solo and all(r["agreement"] is None and r["n_annotators"] == 1 for r in solo)
    assert kept.report["kto"]["dropped"]["identical"] == 1  # without drop_disputed, D duplicates A


def test_unpublishable_can_be_kept_and_nothing_reviewed_is_an_error(scenario):
    with pytest.raises(PrefsError, match="review pull"):
        build_prefs(scenario.ws, config())
    tacos(scenario, license=None)
    scenario.aggregate()
    assert build_prefs(scenario.ws, config()).report["records"]["dropped"]["unpublishable"] == 1
    kept = build_prefs(scenario.ws, config("filters.drop_unpublishable=false"))
    assert kept.rows["dpo"][0]["license"] is None


def test_instructions_per_variety_with_fallback_and_missing(scenario, tmp_path):
    tacos(scenario, country="AR", language="es-AR")
    scenario.image(four("Pa"), [Answer("ana", ["A", "B", "C", "D"], {"A"}), Answer("bruno", ["A", "B", "C", "D"], {"A"})],
                   country="PA", language="es-PA")  # fmt: skip
    scenario.aggregate()
    result = build_prefs(scenario.ws, config("formats=[sft]"))
    prompts = {r["language"]: r["messages"][0]["content"] for r in result.rows["sft"]}
    assert prompts == {"es-AR": "Describí esta imagen teniendo en cuenta su contexto cultural.",
                       "es-PA": "Describe esta imagen teniendo en cuenta su contexto cultural."}  # fmt: skip
    narrow = tmp_path / "instructions.yaml"
    narrow.write_text(
        "version: t\ninstructions:\n  es-AR: [Contame qué ves., Describí la foto.]\n", encoding="utf-8"
    )
    with pytest.raises(PrefsError, match=r"\['es-PA'\]"):
        build_prefs(scenario.ws, config(f"instructions={narrow}"))
    two = Instructions.load(narrow)
    assert {two.for_image("es-AR", f"{i:08x}") for i in range(4)} == {"Contame qué ves.", "Describí la foto."}


def test_every_shipped_variety_has_an_instruction():
    instructions = Instructions.load(PrefsConfig().instructions)
    for tag in (
        "es-ES",
        "es-MX",
        "es-AR",
        "es-CO",
        "es-PE",
        "es",
        "pt-BR",
        "pt-PT",
        "pt",
        "ca",
        "gl",
        "eu",
        "qu",
        "gn",
    ):
        assert instructions.resolve(tag) == tag
    assert instructions.resolve("es-CL") == "es" and instructions.resolve("pt-AO") == "pt"
    assert instructions.resolve("ay") is None


def test_dataset_dict_has_design_formats(worked):
    result = build_prefs(worked.ws, config("splits.test_size=0.5"))
    for fmt, columns in (("dpo", ("prompt", "chosen", "rejected")), ("kto", ("prompt", "completion", "label")),
                         ("sft", ("messages",))):  # fmt: skip
        dataset = to_dataset_dict(result.rows[fmt], result.splits, fmt)
        assert list(dataset) == ["train", "test"]
        part = dataset["train"]
        assert str(part.features["images"]) == "List(Image(mode=None, decode=True))"
        row = part[0]
        assert row["images"][0].size[1] == 48 and all(c in row for c in columns)
        assert {"id", "country", "language", "category", "agreement"} <= set(row)


def test_repeated_candidate_text_makes_one_side():
    counts = Counter()
    sides = [_side("gold", None, True, source="correction"), _side("a", 1.0, True), _side("b", 2.0, True),
             _side("c", 3.0, False)]  # fmt: skip
    sides[2] = dataclasses.replace(sides[2], text=sides[1].text.upper() + "  ")  # the same caption, twice
    pairs = dpo_pairs(sides, DPOSettings(pairing="all_pairs", max_pairs_per_image=10), counts)
    texts = [(c.text, r.text) for c, r, _ in pairs]
    assert len(texts) == len(set(texts)) == 3  # gold>a, gold>c, a>c — the copy of a adds nothing
    assert counts["identical"] >= 1
