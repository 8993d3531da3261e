"""Aggregation, agreement and the JSONL round-trip on known answers (no server needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from data_tools.review.aggregate import aggregate_record
from data_tools.review.agreement import _alpha, agreement, progress
from data_tools.review.config import AggregationPolicy, ReviewConfig
from data_tools.review.service import ReviewError, ReviewService, ranking_from_value
from data_tools.workspace import ReviewItem, ReviewResponse

A, B, C, D = "key_a", "key_b", "key_c", "key_d"


def resp(user, ranking, acceptable=(), problems=(), correction=None, status="submitted", record="r1"):
    return ReviewResponse(
        dataset="ds", record_id=record, image_id="img-" + record, user_id=user, username=user, status=status,
        ranking={k: i for i, k in enumerate(ranking, start=1)}, acceptable={k: k in acceptable for k in (A, B, C, D)},
        problems=list(problems), correction=correction,
    )  # fmt: skip


def test_mean_rank_majority_and_correction_wins():
    responses = [
        resp("ana", [A, B, C, D], acceptable={A, B}, problems=["stereotype"], correction="Mejor pie."),
        resp("bruno", [B, A, C, D], acceptable={A}, problems=["stereotype", "wrong_variety"]),
        resp("carla", [A, C, B, D], acceptable={A, C}),
    ]
    decision = aggregate_record(responses, [A, B, C, D], AggregationPolicy())
    assert decision["status"] == "decided" and decision["n_submitted"] == 3
    assert decision["ranking"] == [A, B, C, D]
    assert decision["rank_scores"][A] == pytest.approx(4 / 3)
    assert decision["acceptable"] == {A: True, B: False, C: False, D: False}
    assert decision["acceptable_votes"][B] == [1, 3] and set(decision["disputed"]) == {B, C}
    assert decision["problems"] == {"stereotype": 2, "wrong_variety": 1}
    assert decision["correction"] == "Mejor pie."
    assert decision["rank_spread"][D] == 0.0 and decision["rank_spread"][B] > 0


@pytest.mark.parametrize(
    ("policy", "expected"),
    [({"acceptable": "unanimous"}, {A: True, B: False}), ({"acceptable": "any"}, {A: True, B: True}),
     ({"acceptable": "majority"}, {A: True, B: False})],
)  # fmt: skip
def test_acceptability_policies(policy, expected):
    responses = [resp("ana", [A, B], acceptable={A, B}), resp("bruno", [A, B], acceptable={A})]
    decision = aggregate_record(responses, [A, B], AggregationPolicy(**policy))
    assert decision["acceptable"] == expected


def test_median_and_borda_and_correction_ignored():
    responses = [resp("ana", [A, B, C]), resp("bruno", [C, A, B]), resp("carla", [A, C, B])]
    median = aggregate_record(responses, [A, B, C], AggregationPolicy(rank="median"))
    assert median["ranking"][0] == A and median["rank_scores"][A] == 1
    borda = aggregate_record(responses, [A, B, C], AggregationPolicy(rank="borda"))
    assert borda["ranking"] == [A, C, B]
    ignored = aggregate_record(
        [resp("ana", [A], correction="x y z")], [A], AggregationPolicy(correction="ignore")
    )
    assert ignored["correction"] is None and ignored["corrections"] == ["x y z"]


def test_pending_discarded_and_partial():
    assert aggregate_record([], [A], AggregationPolicy())["status"] == "pending"
    discarded = aggregate_record([resp("ana", [], status="discarded")], [A], AggregationPolicy())
    assert discarded["status"] == "discarded" and discarded["n_discarded"] == 1
    needs_two = aggregate_record([resp("ana", [A])], [A], AggregationPolicy(min_submitted=2))
    assert needs_two["status"] == "pending"
    partial = aggregate_record([resp("ana", [B])], [A, B], AggregationPolicy())  # ranked only one candidate
    assert partial["ranking"] == [B]


def test_alpha_matches_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 3-coder example with missing values.
    coders = [
        [np.nan, np.nan, np.nan, np.nan, np.nan, 3, 4, 1, 2, 1, 1, 3, 3, np.nan, 3],
        [1, np.nan, 2, 1, 3, 3, 4, 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
        [np.nan, np.nan, 2, 1, 3, 4, 4, np.nan, 2, 1, 1, 3, 3, np.nan, 4],
    ]
    units = [list(column) for column in zip(*coders, strict=True)]
    assert _alpha(units, "nominal") == pytest.approx(0.691, abs=1e-3)
    assert _alpha(units, "interval") == pytest.approx(0.811, abs=1e-3)


def items_for(records):
    return {
        ("ds", r): ReviewItem("ds", r, "img-" + r, {"candidate_1": A, "candidate_2": B, "candidate_3": C})
        for r in records
    }


def test_agreement_perfect_opposite_and_undefined():
    records = ["r1", "r2", "r3", "r4"]
    same = [resp(u, [A, B, C] if i % 2 else [C, B, A], acceptable={A} if i % 2 else {C}, record=r)
            for i, r in enumerate(records) for u in ("ana", "bruno")]  # fmt: skip
    result = agreement(same, items_for(records))
    assert result["overlap_records"] == 4
    assert result["ranking_alpha_ordinal"] == pytest.approx(1.0)
    assert result["acceptable_alpha_nominal"] == pytest.approx(1.0)
    assert result["acceptable_cohen_kappa"]["ana~bruno"] == pytest.approx(1.0)
    assert result["acceptable_fleiss_kappa"] == pytest.approx(1.0)
    assert result["problems_alpha_nominal"] is None  # nobody flagged anything: no variation, undefined
    opposite = [resp("ana", [A, B, C], acceptable={A}, record=r) for r in records] + [
        resp("bruno", [C, B, A], acceptable={B, C}, record=r) for r in records
    ]
    result = agreement(opposite, items_for(records))
    assert result["ranking_alpha_ordinal"] < 0 and result["acceptable_cohen_kappa"]["ana~bruno"] < 0
    single = agreement([resp("ana", [A, B, C], record="r1")], items_for(["r1"]))
    assert single["overlap_records"] == 0 and single["ranking_alpha_ordinal"] is None


def test_progress_counts():
    items = items_for(["r1", "r2", "r3"])
    responses = [resp("ana", [A], record="r1"), resp("bruno", [A], record="r1"), resp("ana", [A], record="r2"),
                 resp("bruno", [], status="discarded", record="r2")]  # fmt: skip
    summary = progress(responses, items, min_submitted=2)
    assert (summary["complete"], summary["started"], summary["untouched"]) == (1, 1, 1)
    assert summary["per_annotator"]["bruno"] == {"submitted": 1, "discarded": 1}
    assert math.isclose(summary["complete_fraction"], 1 / 3)


def test_ranking_value_shapes():
    assert ranking_from_value(["candidate_2", "candidate_1"]) == {"candidate_2": 1, "candidate_1": 2}
    assert ranking_from_value([{"value": "candidate_1", "rank": 2}, {"value": "candidate_2", "rank": 1}]) == {
        "candidate_1": 2, "candidate_2": 1
    }  # fmt: skip
    assert ranking_from_value(None) == {}


# -- JSONL round-trip on a drafted workspace ------------------------------------------------------


@pytest.fixture
def drafted(collected, server):
    from tests.data_tools.draft.draft_helpers import run_draft

    run_draft(collected, server)
    return collected


def test_export_hides_strategies_and_shuffles(drafted, tmp_path):
    service = ReviewService(drafted, ReviewConfig())
    count = service.export_jsonl(tmp_path / "tasks.jsonl")
    tasks = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert count == len(tasks) == 11
    text = (tmp_path / "tasks.jsonl").read_text()
    for word in ("cultural", "generic", "perturbed", "strategy", "wrong_country"):
        assert f'"{word}' not in text.replace('"wrong_culture"', "")
    assert service.prefix == f"mirada-{drafted.workspace_id[:8]}"  # not the folder's name
    assert all(t["dataset"] == f"{service.prefix}-{t['language'].split('-')[0]}" for t in tasks)
    assert all(len(t["candidates"]) == 4 and t["suggested_correction"] for t in tasks)
    drafts = {d.cache_key: d for d in drafted.drafts()}
    first_slots = [drafts[item.slots["candidate_1"]].strategy for item in drafted.review_items().values()]
    assert len(set(first_slots)) > 1  # the shuffle puts different strategies first
    again = ReviewService(drafted, ReviewConfig()).records()
    assert {r.record_id: r.slots for r in again} == {k[1]: v.slots for k, v in drafted.review_items().items()}


def test_import_round_trip_is_idempotent_and_maps_back(drafted, tmp_path):
    from data_tools.review.simulate import simulate_responses

    service = ReviewService(drafted, ReviewConfig())
    service.export_jsonl(tmp_path / "tasks.jsonl")
    simulate_responses(drafted, tmp_path / "answers.jsonl")
    first = service.import_jsonl(tmp_path / "answers.jsonl")
    assert (first.responses, first.new, first.changed) == (22, 22, 0)
    assert first.decisions == {"decided": 11}
    again = service.import_jsonl(tmp_path / "answers.jsonl")
    assert (again.new, again.changed) == (0, 0)
    drafts = {d.cache_key: d for d in drafted.drafts()}
    decisions = drafted.review_decisions()
    best = [drafts[d["ranking"][0]].strategy for d in decisions]
    assert best.count("cultural") >= 9  # the simulated annotators prefer cultural candidates
    stored = drafted.review_responses()
    assert all(set(r.ranking) <= set(drafts) for r in stored)


def test_import_rejects_bad_lines_and_writes_nothing(drafted, tmp_path):
    service = ReviewService(drafted, ReviewConfig())
    service.export_jsonl(tmp_path / "tasks.jsonl")
    record = next(iter(drafted.review_items().values()))
    good = {
        "dataset": record.dataset,
        "record_id": record.record_id,
        "user": "ana",
        "ranking": ["candidate_1"],
    }
    lines = [
        good,
        {**good, "ranking": ["candidate_9"]},
        {**good, "status": "maybe"},
        {"user": "x"},
        {**good, "record_id": "nope"},
    ]
    (tmp_path / "bad.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    with pytest.raises(ReviewError) as info:
        service.import_jsonl(tmp_path / "bad.jsonl")
    message = str(info.value)
    for fragment in (
        "line 2",
        "candidate_9",
        "line 3",
        "'maybe'",
        "line 4",
        "line 5",
        "never exported",
        "line 6",
    ):
        assert fragment in message
    assert drafted.review_responses() == []


def test_nothing_to_review_is_a_clear_error(collected):
    with pytest.raises(ReviewError, match="run `mirada draft` first"):
        ReviewService(collected, ReviewConfig()).records()


def test_unanswered_acceptability_is_no_vote():
    from data_tools.review.service import response_from_values

    item = ReviewItem("ds", "r1", "img-r1", {"candidate_1": A, "candidate_2": B})
    silent = response_from_values(
        item, "u1", "bruno", "submitted", {"ranking": ["candidate_1", "candidate_2"]}, "import"
    )
    assert silent.acceptable == {}
    voted = response_from_values(item, "u2", "ana", "submitted", {"appropriate": ["candidate_1"]}, "import")
    decision = aggregate_record([silent, voted], [A, B], AggregationPolicy())
    assert decision["acceptable"] == {A: True, B: False}
    assert decision["acceptable_votes"] == {A: [1, 1], B: [0, 1]} and decision["disputed"] == []


def test_reexport_keeps_the_slots_annotators_saw(drafted, tmp_path, server):
    from data_tools.review.simulate import simulate_responses
    from tests.data_tools.draft.draft_helpers import run_draft

    service = ReviewService(drafted, ReviewConfig())
    service.export_jsonl(tmp_path / "tasks.jsonl")
    simulate_responses(drafted, tmp_path / "answers.jsonl")
    service.import_jsonl(tmp_path / "answers.jsonl")
    before = {k: dict(v.slots) for k, v in drafted.review_items().items()}
    run_draft(drafted, server, "strategies.cultural=3")  # a new candidate per image
    service.export_jsonl(tmp_path / "tasks2.jsonl")
    assert {k: dict(v.slots) for k, v in drafted.review_items().items()} == before
    tasks = [json.loads(line) for line in (tmp_path / "tasks2.jsonl").read_text().splitlines()]
    assert all(len(t["candidates"]) == 4 for t in tasks)  # answered records show what was answered


def test_responses_and_decisions_land_together_or_not_at_all(drafted, tmp_path, monkeypatch):
    """A failure while deciding (after the responses were written) must leave neither in the workspace."""
    from data_tools.review import service as service_module
    from data_tools.review.simulate import simulate_responses

    service = ReviewService(drafted, ReviewConfig())
    service.export_jsonl(tmp_path / "tasks.jsonl")
    simulate_responses(drafted, tmp_path / "answers.jsonl")

    def broken(*args, **kwargs):
        raise RuntimeError("killed while deciding")

    monkeypatch.setattr(service_module, "aggregate_record", broken)
    with pytest.raises(RuntimeError, match="killed while deciding"):
        service.import_jsonl(tmp_path / "answers.jsonl")
    assert drafted.review_responses() == [] and drafted.review_decisions() == []

    monkeypatch.undo()
    assert service.import_jsonl(tmp_path / "answers.jsonl").new == 22
    assert len(drafted.review_decisions()) == 11
