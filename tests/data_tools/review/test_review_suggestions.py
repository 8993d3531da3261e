"""An untouched pre-filled suggestion is not a correction; dataset names come from the workspace's own id."""

from __future__ import annotations

import json
import shutil
import sqlite3

from data_tools.review.aggregate import aggregate_record
from data_tools.review.config import AggregationPolicy, ReviewConfig
from data_tools.review.service import ReviewService, response_from_values
from data_tools.workspace import ReviewItem, Workspace

A, B = "key-a", "key-b"
SUGGESTION = "Tacos al pastor en una taquería de la Ciudad de México."


def test_an_unchanged_suggestion_is_a_vote_not_a_correction():
    item = ReviewItem("ds", "r1", "img", {"candidate_1": A, "candidate_2": B}, None, SUGGESTION, A)
    values = {"ranking": ["candidate_2", "candidate_1"], "appropriate": ["candidate_2"]}
    # the web UI sends the pre-filled text back as the answer; extra spaces or a line break change nothing
    untouched = response_from_values(item, "u1", "ana", "submitted",
                                     {**values, "correction": "  Tacos al pastor en una\ntaquería de la Ciudad de México. "},
                                     "argilla")  # fmt: skip
    assert untouched.correction is None
    decision = aggregate_record([untouched], [A, B], AggregationPolicy(), SUGGESTION, A)
    assert decision["correction"] is None and decision["corrections"] == []
    assert decision["suggestion_accepted"] == 1 and decision["suggestion_key"] == A
    assert decision["ranking"] == [B, A]  # the annotator's ranking stands
    edited = response_from_values(item, "u2", "bruno", "submitted",
                                  {**values, "correction": SUGGESTION.replace("pastor", "suadero")}, "argilla")  # fmt: skip
    decision = aggregate_record([untouched, edited], [A, B], AggregationPolicy(), SUGGESTION, A)
    assert decision["correction"] == SUGGESTION.replace("pastor", "suadero")
    assert decision["suggestion_accepted"] == 1


def test_answers_stored_before_the_rule_are_judged_by_it_on_the_next_aggregation(drafted, tmp_path):
    """A workspace pulled by an older version holds the suggestion as a "correction" and no stored
    suggestion: the next pull/import recomputes the decision and the model's draft stops winning."""
    service = ReviewService(drafted, ReviewConfig())
    service.export_jsonl(tmp_path / "tasks.jsonl")
    tasks = {t["record_id"]: t for t in map(json.loads, (tmp_path / "tasks.jsonl").read_text().splitlines())}
    key = next(iter(sorted(drafted.review_items())))
    item = drafted.review_items()[key]
    old = response_from_values(
        item, "u1", "ana", "submitted", {"ranking": ["candidate_1"], "correction": None}, "argilla"
    )
    old.correction = tasks[key[1]]["suggested_correction"]  # what an old pull stored
    old.raw = {"status": "submitted", "values": {"correction": old.correction}}
    drafted.save_review_responses([old])
    with drafted.transaction() as db:  # as if pushed before suggestions were stored
        db.execute("UPDATE review_items SET suggestion = NULL, suggestion_key = NULL")
    service.aggregate()
    decision = next(d for d in drafted.review_decisions() if d["record_id"] == key[1])
    assert decision["correction"] is None and decision["suggestion_accepted"] == 1
    drafts = {d.cache_key: d.caption for d in drafted.drafts()}
    assert drafts[decision["suggestion_key"]] == tasks[key[1]]["suggested_correction"]


def test_jsonl_import_applies_the_same_rule(drafted, tmp_path):
    service = ReviewService(drafted, ReviewConfig())
    service.export_jsonl(tmp_path / "tasks.jsonl")
    first, second = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()[:2]]
    rows = [
        {"dataset": first["dataset"], "record_id": first["record_id"], "user": "ana",
         "ranking": ["candidate_3", "candidate_1", "candidate_2", "candidate_4"],
         "correction": first["suggested_correction"] + "  "},
        {"dataset": second["dataset"], "record_id": second["record_id"], "user": "ana",
         "ranking": ["candidate_1", "candidate_2", "candidate_3", "candidate_4"], "correction": "Un pie escrito a mano."},
    ]  # fmt: skip
    (tmp_path / "answers.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    service.config.aggregation.min_submitted = 1
    service.import_jsonl(tmp_path / "answers.jsonl")
    items = drafted.review_items()
    decisions = {d["record_id"]: d for d in drafted.review_decisions()}
    untouched, edited = decisions[first["record_id"]], decisions[second["record_id"]]
    assert untouched["correction"] is None
    assert untouched["ranking"][0] == items[(first["dataset"], first["record_id"])].slots["candidate_3"]
    assert edited["correction"] == "Un pie escrito a mano." and edited["suggestion_accepted"] == 0


def test_datasets_per_language_by_default_per_variety_on_request(drafted):
    records = ReviewService(drafted, ReviewConfig()).records()
    names = {r.dataset for r in records}
    prefix = f"mirada-{drafted.workspace_id[:8]}"
    assert names == {f"{prefix}-{code}" for code in ("es", "pt", "ca", "gl", "eu")}
    per_variety = ReviewService(drafted, ReviewConfig(datasets="variety")).records()
    assert (
        f"{prefix}-es-MX" in {r.dataset for r in per_variety} and len({r.dataset for r in per_variety}) == 10
    )
    mexico = next(r for r in records if r.image.language == "es-MX" and r.image.category == "food")
    assert "**Tema:** comida" in mexico.context  # the category in the reviewers' language, not `food`


def test_renamed_or_copied_workspace_keeps_its_dataset_names(drafted, tmp_path):
    prefix = ReviewService(drafted, ReviewConfig()).prefix
    drafted.close()
    moved = tmp_path / "renamed-project"
    drafted.root.rename(moved)
    copy = tmp_path / "copy-of-project"
    shutil.copytree(moved, copy)
    for root in (moved, copy):
        with Workspace.open(root) as ws:
            assert ReviewService(ws, ReviewConfig()).prefix == prefix
    with Workspace.open(tmp_path / "another") as other:  # a new workspace gets its own id
        assert other.workspace_id and ReviewService(other, ReviewConfig()).prefix != prefix
    drafted.root = moved  # let the fixture's close() find the database
    drafted._db = sqlite3.connect(moved / "mirada.db")


def test_upgraded_workspace_keeps_the_prefix_it_pushed_with(drafted, tmp_path):
    """A workspace that pushed under its folder's name before m007 keeps those datasets after upgrading."""
    service = ReviewService(drafted, ReviewConfig(datasets="variety", dataset_prefix="tacos"))
    service.export_jsonl(tmp_path / "tasks.jsonl")
    drafted.close()
    db = sqlite3.connect(drafted.root / "mirada.db")
    db.executescript("""
        DELETE FROM _migrations WHERE name = 'm007_review_identity';
        DROP TABLE workspace_meta;
        ALTER TABLE review_items DROP COLUMN suggestion;
        ALTER TABLE review_items DROP COLUMN suggestion_key;
    """)
    db.close()
    with Workspace.open(drafted.root) as ws:
        assert ws.workspace_id
        service = ReviewService(ws, ReviewConfig())
        assert service.prefix == "tacos"
        # records pushed before stay where they are, whatever the grouping is now
        assert {r.dataset for r in service.records()} == {d for d, _ in ws.review_items()}
    drafted._db = sqlite3.connect(drafted.root / "mirada.db")


def test_the_dataset_card_counts_real_edits_apart_from_accepted_suggestions(drafted, tmp_path):
    from data_tools.prefs.card import provenance

    service = ReviewService(drafted, ReviewConfig())
    service.export_jsonl(tmp_path / "tasks.jsonl")
    tasks = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()[:3]]
    rows = [{"dataset": t["dataset"], "record_id": t["record_id"], "user": "ana", "ranking": ["candidate_1"],
             "correction": t["suggested_correction"]} for t in tasks[:2]]  # fmt: skip
    rows.append({**rows[0], "record_id": tasks[2]["record_id"], "dataset": tasks[2]["dataset"],
                 "correction": "Escrito por una persona."})  # fmt: skip
    (tmp_path / "answers.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    service.config.aggregation.min_submitted = 1
    service.import_jsonl(tmp_path / "answers.jsonl")
    facts = provenance(drafted, {image.id for image in drafted.images()})
    assert (facts.edits, facts.suggestions_accepted) == (1, 2)
    from data_tools.review.cli import review_status

    assert review_status(drafted, service.config)["corrections"] == {"edits": 1, "suggestions_accepted": 2}


def test_catalan_and_galician_reviewers_read_their_language_basque_falls_back_to_spanish(drafted):
    from data_tools.review.items import load_ui

    config = ReviewConfig()
    assert (
        load_ui(config.ui_dir, "ca").texts["questions"]["ranking"]["title"].startswith("Ordena els candidats")
    )
    assert load_ui(config.ui_dir, "gl").texts["fields"]["record"] == "Imaxe e candidatos"
    assert load_ui(config.ui_dir, "eu").language == "es" and load_ui(config.ui_dir, "pt-BR").language == "pt"
    records = {r.image.language: r for r in ReviewService(drafted, config).records()}
    assert "**Regió:**" in records["ca"].context and "**Rexión:**" in records["gl"].context


def test_problems_are_flagged_per_candidate():
    item = ReviewItem("ds", "r1", "img", {"candidate_1": A, "candidate_2": B})
    from_argilla = response_from_values(item, "u1", "ana", "submitted", {
        "ranking": ["candidate_1", "candidate_2"], "problem_stereotype": ["candidate_2"],
        "problem_wrong_culture": ["candidate_2", "candidate_1"]}, "argilla")  # fmt: skip
    from_jsonl = response_from_values(item, "u2", "bruno", "submitted", {
        "ranking": ["candidate_1", "candidate_2"], "problems": {"candidate_2": ["stereotype", "not-a-label"]}}, "import")  # fmt: skip
    legacy = response_from_values(item, "u3", "carla", "submitted",
                                  {"ranking": ["candidate_1"], "problems": ["factual_error"]}, "import")  # fmt: skip
    assert from_argilla.problems == ["stereotype", "wrong_culture"] and from_jsonl.problems == ["stereotype"]
    decision = aggregate_record([from_argilla, from_jsonl, legacy], [A, B], AggregationPolicy(),
                                slots=item.slots)  # fmt: skip
    assert decision["candidate_problems"] == {
        A: {"wrong_culture": 1},
        B: {"stereotype": 2, "wrong_culture": 1},
    }
    assert decision["problems"] == {"stereotype": 2, "wrong_culture": 1, "factual_error": 1}
