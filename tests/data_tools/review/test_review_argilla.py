"""Push, annotate through the REST API as the web UI does, pull — against a real argilla-server."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from data_tools.review.cli import connect
from data_tools.review.config import ReviewConfig
from data_tools.review.items import PROBLEM_LABELS
from data_tools.review.service import ReviewError, ReviewService
from data_tools.stage_args import UserError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def drafted(collected, server):
    from tests.data_tools.draft.draft_helpers import run_draft

    run_draft(collected, server)
    return collected


@pytest.fixture
def review(drafted, argilla_server, monkeypatch, request):
    """A review service whose datasets are unique to this test (the server lives for the session)."""
    monkeypatch.setenv("ARGILLA_API_URL", argilla_server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla_server.owner_api_key)
    prefix = "t" + str(abs(hash(request.node.name)) % 10**8)
    # one dataset per variety: these tests address small datasets by variety (the default is per language)
    config = ReviewConfig(
        dataset_prefix=prefix, argilla_workspace=argilla_server.workspace, datasets="variety"
    )
    return ReviewService(drafted, config), connect(config)


def annotate(
    argilla_server, username: str, server_id: str, values: dict | None, status: str = "submitted"
) -> None:
    """Answer a record as the web UI does: POST /api/v1/records/{server id}/responses."""
    body: dict = {"status": status}
    if values is not None:
        body["values"] = {name: {"value": value} for name, value in values.items()}
    response = httpx.post(
        f"{argilla_server.url}/api/v1/records/{server_id}/responses",
        json=body,
        headers={"X-Argilla-Api-Key": argilla_server.annotators[username]},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def server_ids(client, name: str, workspace: str) -> dict[str, str]:
    dataset = client.datasets(name=name, workspace=workspace)
    return {str(r.id): str(r._server_id) for r in dataset.records()}


def ranking(*slots: str) -> list[dict]:
    return [{"value": slot, "rank": n} for n, slot in enumerate(slots, start=1)]


def test_push_creates_one_dataset_per_variety_and_is_idempotent(review, argilla_server):
    service, client = review
    summary = service.push(client)
    assert len(summary.datasets) == 10  # 11 images in 10 varieties (two es-MX images)
    name = f"{service.prefix}-es-MX"
    assert summary.datasets[name] == {"logged": 2, "unchanged": 0, "kept_answered": 0}
    dataset = client.datasets(name=name, workspace=argilla_server.workspace)
    # image and candidates side by side in one custom field, then the context
    assert [f.name for f in dataset.fields] == ["record", "context"]
    assert list(dataset.questions["ranking"].values) == [f"candidate_{n}" for n in range(1, 5)]
    problems = {f"problem_{label}" for label in PROBLEM_LABELS}  # which candidate has which problem
    assert {q.name for q in dataset.questions} == {"ranking", "appropriate", "correction"} | problems
    assert dataset.questions["problem_stereotype"].title == "Estereotipo o falta de respeto: ¿qué candidatos?"
    assert dataset.distribution.min_submitted == 2
    assert "Pautas de revisión" in dataset.guidelines
    assert (
        "Diretrizes"
        in client.datasets(name=f"{service.prefix}-pt-BR", workspace=argilla_server.workspace).guidelines
    )
    records = list(dataset.records(with_suggestions=True))
    assert len(records) == 2
    record = records[0]
    shown = record.fields["record"]
    assert shown["image"].startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(shown["image"].split(",", 1)[1]))) as image:
        assert image.format == "JPEG" and max(image.size) <= 1280
    assert [c["label"] for c in shown["candidates"]] == [f"Candidato {n}" for n in range(1, 5)]
    assert "México" in record.fields["context"]
    assert record.metadata["country"] == "MX"
    assert record.suggestions["correction"].value
    text = " ".join(str(v) for v in record.fields.values())
    assert "cultural" not in text.lower().split() and "perturbed" not in text
    again = service.push(client)
    assert again.datasets[name] == {"logged": 0, "unchanged": 2, "kept_answered": 0}  # nothing re-sent
    assert len(list(dataset.records())) == 2
    service.config.shuffle_seed = 99  # a new shuffle changes what unanswered records show: they are re-sent
    reshuffled = service.push(client)
    assert reshuffled.datasets[name]["logged"] + reshuffled.datasets[name]["unchanged"] == 2
    assert sum(c["logged"] for c in reshuffled.datasets.values()) > 0
    assert len(list(dataset.records())) == 2  # upserted by id, not duplicated
    stored = service.ws.review_items(name)
    shown = _fields(client, name, argilla_server.workspace)
    drafts = {d.cache_key: d.caption for d in service.ws.drafts()}
    for (_, record_id), item in stored.items():  # the workspace mapping is what Argilla shows
        assert {s: drafts[k] for s, k in item.slots.items()} == {s: shown[record_id][s] for s in item.slots}
    dataset.delete()  # someone deletes the dataset on the server: the next push sends everything again
    restored = service.push(client)
    assert restored.datasets[name] == {"logged": 2, "unchanged": 0, "kept_answered": 0}
    dataset = client.datasets(name=name, workspace=argilla_server.workspace)
    assert len(list(dataset.records())) == 2


def test_responses_come_back_whole_and_pull_is_idempotent(review, argilla_server):
    service, client = review
    service.push(client)
    name = f"{service.prefix}-es-MX"
    ids = server_ids(client, name, argilla_server.workspace)
    first, second = sorted(ids)
    annotate(argilla_server, "ana", ids[first], {
        "ranking": ranking("candidate_2", "candidate_1", "candidate_4", "candidate_3"),
        "appropriate": ["candidate_2"], "problem_stereotype": ["candidate_1"],
        "problem_wrong_variety": ["candidate_1", "candidate_3"], "correction": "Tacos al pastor, bien servidos.",
    })  # fmt: skip
    annotate(argilla_server, "bruno", ids[first], {
        "ranking": ranking("candidate_2", "candidate_4", "candidate_1", "candidate_3"), "appropriate": ["candidate_2", "candidate_4"],
    })  # fmt: skip
    annotate(argilla_server, "ana", ids[second], None, status="discarded")
    annotate(argilla_server, "bruno", ids[second], {"ranking": ranking("candidate_1", "candidate_2", "candidate_3", "candidate_4")},
             status="draft")  # fmt: skip
    summary = service.pull(client)
    assert summary.by_status == {"submitted": 2, "discarded": 1}  # the draft is not pulled by default
    assert (summary.new, summary.changed) == (3, 0)
    item = service.ws.review_items(name)[(name, first)]
    stored = {r.username: r for r in service.ws.review_responses(name) if r.record_id == first}
    ana = stored["ana"]
    assert ana.ranking == {item.slots["candidate_2"]: 1, item.slots["candidate_1"]: 2, item.slots["candidate_4"]: 3,
                           item.slots["candidate_3"]: 4}  # fmt: skip
    assert (
        ana.acceptable[item.slots["candidate_2"]] is True
        and ana.acceptable[item.slots["candidate_1"]] is False
    )
    assert (
        ana.problems == ["stereotype", "wrong_variety"]
        and decision_of(service, first)["candidate_problems"]
        == {
            item.slots["candidate_1"]: {"stereotype": 1, "wrong_variety": 1},
            item.slots["candidate_3"]: {"wrong_variety": 1},
        }
        and ana.correction == "Tacos al pastor, bien servidos."
    )
    assert stored["bruno"].correction is None
    decision = next(d for d in service.ws.review_decisions() if d["record_id"] == first)
    assert decision["ranking"][0] == item.slots["candidate_2"]
    assert decision["correction"] == "Tacos al pastor, bien servidos."
    assert (
        decision["acceptable"][item.slots["candidate_4"]] is False
        and item.slots["candidate_4"] in decision["disputed"]
    )
    other = next(d for d in service.ws.review_decisions() if d["record_id"] == second)
    assert other["status"] == "discarded"
    again = service.pull(client)
    assert (again.new, again.changed) == (0, 0)
    # the agreement on the one overlapping record is computed from these answers
    from data_tools.review.cli import review_status

    status = review_status(service.ws, service.config)
    assert status["agreement"]["overlap_records"] == 1
    assert status["progress"]["per_annotator"]["ana"] == {"submitted": 1, "discarded": 1}
    assert Path(status["chart"]).is_file()


def test_push_never_overwrites_an_answered_record(review, argilla_server):
    service, client = review
    service.push(client)
    name = f"{service.prefix}-pt-BR"
    ((record_id, server_id),) = server_ids(client, name, argilla_server.workspace).items()
    annotate(
        argilla_server,
        "ana",
        server_id,
        {"ranking": ranking("candidate_1", "candidate_2", "candidate_3", "candidate_4")},
    )
    before = dict(service.ws.review_items(name)[(name, record_id)].slots)
    service.config.shuffle_seed = 99  # a new shuffle would change what an answered record shows
    summary = service.push(client)
    assert summary.datasets[name] == {"logged": 0, "unchanged": 0, "kept_answered": 1}
    assert service.ws.review_items(name)[(name, record_id)].slots == before
    record = next(
        iter(client.datasets(name=name, workspace=argilla_server.workspace).records(with_responses=True))
    )
    assert len(list(record.responses)) == 1


def test_server_down_mid_pull_leaves_workspace_unchanged(review, argilla_server):
    service, client = review
    service.push(client)
    name = f"{service.prefix}-ca"
    ((_, server_id),) = server_ids(client, name, argilla_server.workspace).items()
    annotate(
        argilla_server,
        "ana",
        server_id,
        {"ranking": ranking("candidate_1", "candidate_2", "candidate_3", "candidate_4")},
    )
    import data_tools.review.service as module

    original = module._responses_of
    calls = []

    def responses_then_die(client, dataset_id, page=200):
        calls.append(dataset_id)
        if len(calls) == 3:  # the server dies while the third dataset is being read
            argilla_server.stop(kill=True)
        return original(client, dataset_id, page)

    module._responses_of = responses_then_die
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for a dead server
            service.pull(client)
    finally:
        module._responses_of = original
        argilla_server.start()
    assert service.ws.review_responses() == [] and service.ws.review_decisions() == []
    summary = service.pull(connect(service.config))
    assert summary.by_status == {"submitted": 1}


def test_cli_errors_for_wrong_key_and_down_server(drafted, argilla_server):
    env = {**os.environ, "ARGILLA_API_URL": argilla_server.url, "ARGILLA_API_KEY": "not-a-key-123"}
    result = subprocess.run([sys.executable, "-m", "data_tools.review", "push", "-w", str(drafted.root)],
                            capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "401" in result.stderr or "rejected" in result.stderr
    assert "not-a-key-123" not in result.stderr
    env["ARGILLA_API_URL"] = "http://127.0.0.1:9"  # nothing listens there
    result = subprocess.run([sys.executable, "-m", "data_tools.review", "pull", "-w", str(drafted.root)],
                            capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    assert (
        result.returncode == 2 and "cannot use Argilla" in result.stderr and "Traceback" not in result.stderr
    )
    with pytest.raises(UserError, match="ARGILLA_API_URL"):
        connect(ReviewConfig())


def test_a_record_answered_during_a_push_gets_its_previous_candidates_back(
    review, argilla_server, monkeypatch
):
    """The race Argilla cannot prevent (no compare-and-set): an annotator answers between the push's check
    and its upsert. The answer was given to the previous candidates, so those are put back and kept."""
    service, client = review
    with service.ws.transaction() as db:  # the fake drafting server words every candidate alike
        db.execute("UPDATE drafts SET caption = caption || ' (' || substr(cache_key, 1, 8) || ')'")
    service.push(client)
    name = f"{service.prefix}-es-MX"
    ids = server_ids(client, name, argilla_server.workspace)
    stored = service.ws.review_items(name)
    service.config.shuffle_seed = 99  # the push wants to show candidates in a new order
    moved = [
        r.record_id
        for r in service.records()
        if r.dataset == name and r.slots != stored[(name, r.record_id)].slots
    ]
    assert moved, "the new shuffle must change at least one record of this dataset"
    record_id, server_id = moved[0], ids[moved[0]]
    before = dict(stored[(name, record_id)].slots)
    shown_before = {
        s: v for s, v in _fields(client, name, argilla_server.workspace)[record_id].items() if s in before
    }
    new_texts = next(r.texts for r in service.records() if r.record_id == record_id)
    assert new_texts != shown_before  # the push would change what this record shows

    original = ReviewService._log
    calls = []

    def answer_first(self, dataset, rg_records):  # the annotator's answer lands just before the upsert
        if dataset.name == name and not calls:
            order = ranking("candidate_1", "candidate_2", "candidate_3", "candidate_4")
            annotate(argilla_server, "ana", server_id, {"ranking": order})
            calls.append(len(rg_records))
        original(self, dataset, rg_records)

    monkeypatch.setattr(ReviewService, "_log", answer_first)
    summary = service.push(client)
    assert summary.answered_meanwhile == [record_id]
    assert (
        service.ws.review_items(name)[(name, record_id)].slots == before
    )  # the mapping the answer refers to
    shown_after = _fields(client, name, argilla_server.workspace)[record_id]
    assert {s: shown_after[s] for s in before} == shown_before  # and what the annotator saw is back
    assert summary.datasets[name]["logged"] >= 1


def decision_of(service: ReviewService, record_id: str) -> dict:
    return next(d for d in service.ws.review_decisions() if d["record_id"] == record_id)


def _fields(client, name: str, workspace: str) -> dict[str, dict]:
    """Record id -> {slot: candidate text} as the custom field shows it."""
    return {
        str(r.id): {c["slot"]: c["text"] for c in r.fields["record"]["candidates"]}
        for r in client.datasets(name=name, workspace=workspace).records()
    }


def test_default_push_makes_one_dataset_per_language_with_the_variety_as_metadata(
    drafted, argilla_server, monkeypatch, caplog
):
    monkeypatch.setenv("ARGILLA_API_URL", argilla_server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla_server.owner_api_key)
    config = ReviewConfig(argilla_workspace=argilla_server.workspace)
    service, client = ReviewService(drafted, config), connect(config)
    with caplog.at_level("WARNING"):
        summary = service.push(client)
    prefix = f"mirada-{drafted.workspace_id[:8]}"
    assert set(summary.datasets) == {f"{prefix}-{code}" for code in ("es", "pt", "ca", "gl", "eu")}
    assert "normalized" not in caplog.text  # the SDK's batch-size warning is not repeated per dataset
    spanish = client.datasets(name=f"{prefix}-es", workspace=argilla_server.workspace)
    varieties = {r.metadata["language"] for r in spanish.records()}
    assert {"es-MX", "es-AR"} <= varieties
    assert {p.name for p in spanish.settings.metadata} >= {"language", "country", "category"}


def test_pull_warns_about_a_missing_dataset_and_pulls_the_others(review, argilla_server, caplog):
    service, client = review
    service.push(client)
    mexico, brazil = f"{service.prefix}-es-MX", f"{service.prefix}-pt-BR"
    ((_, server_id),) = server_ids(client, brazil, argilla_server.workspace).items()
    annotate(
        argilla_server,
        "ana",
        server_id,
        {"ranking": ranking("candidate_1", "candidate_2", "candidate_3", "candidate_4")},
    )
    client.datasets(name=mexico, workspace=argilla_server.workspace).delete()
    with caplog.at_level("WARNING"):
        summary = service.pull(client)
    assert summary.missing_datasets == [mexico] and mexico in caplog.text
    assert summary.by_status == {"submitted": 1}
    assert [r.dataset for r in service.ws.review_responses()] == [brazil]


def test_push_gives_the_configured_annotators_access(drafted, argilla_server, monkeypatch, request):
    import argilla as rg

    monkeypatch.setenv("ARGILLA_API_URL", argilla_server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla_server.owner_api_key)
    team = "team" + str(abs(hash(request.node.name)) % 10**6)  # a workspace nobody has access to yet
    ana = rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.annotators["ana"])
    config = ReviewConfig(argilla_workspace=team, annotators=["nobody-yet"])
    with pytest.raises(ReviewError, match=r"nobody-yet.*review users add"):
        ReviewService(drafted, config).push(connect(config))
    config = ReviewConfig(argilla_workspace=team, annotators=["ana"])
    summary = ReviewService(drafted, config).push(connect(config))
    assert summary.annotators_added == ["ana"]
    assert team in {w.name for w in ana.workspaces}
    assert len(ana.workspaces(team).datasets) == 5  # she sees the review, not "None yet"
    again = ReviewService(drafted, config).push(connect(config))
    assert again.annotators_added == []


def test_cli_users_add_creates_missing_annotators_who_can_log_in(drafted, argilla_server, request):
    team = "crew" + str(abs(hash(request.node.name)) % 10**6)
    env = {
        **os.environ,
        "ARGILLA_API_URL": argilla_server.url,
        "ARGILLA_API_KEY": argilla_server.owner_api_key,
    }
    result = subprocess.run([sys.executable, "-m", "data_tools.review", "users", "add", "carla", "bruno",
                             "-w", str(drafted.root), "--set", f"argilla_workspace={team}"],
                            capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    password = result.stdout.split("created annotator carla with password ")[1].split()[0]
    assert "bruno: now has access" in result.stdout and "password" not in result.stdout.split("bruno:")[1]
    token = httpx.post(f"{argilla_server.url}/api/v1/token", data={"username": "carla", "password": password})
    assert token.status_code == 201, token.text
    me = httpx.get(
        f"{argilla_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.json()["username"] == "carla"
    bad = subprocess.run([sys.executable, "-m", "data_tools.review", "users", "remove", "carla", "-w", str(drafted.root)],
                         capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    assert bad.returncode == 2 and "users add NAME" in bad.stderr


def test_a_dataset_created_with_the_old_layout_keeps_getting_records_in_it(review, argilla_server):
    """Datasets made before the side-by-side layout (an image field, one text field per candidate) stay usable."""
    import argilla as rg

    service, client = review
    name = f"{service.prefix}-pt-BR"
    slots = {f"candidate_{n}": f"Candidato {n}" for n in range(1, 5)}
    old = rg.Settings(
        fields=[rg.ImageField("image"), rg.TextField("context", use_markdown=True),
                *[rg.TextField(slot) for slot in slots]],
        questions=[rg.RankingQuestion("ranking", values=slots), rg.MultiLabelQuestion("problems", labels=list(PROBLEM_LABELS), required=False),
                   rg.TextQuestion("correction", required=False)],
        metadata=[rg.TermsMetadataProperty(m) for m in ("country", "language", "category")],
    )  # fmt: skip
    workspace = client.workspaces(argilla_server.workspace)
    rg.Dataset(name=name, workspace=workspace, settings=old, client=client).create()
    assert service.push(client).datasets[name]["logged"] == 1
    ((record_id, server_id),) = server_ids(client, name, argilla_server.workspace).items()
    record = next(iter(client.datasets(name=name, workspace=argilla_server.workspace).records()))
    item = service.ws.review_items(name)[(name, record_id)]
    captions = {d.cache_key: d.caption for d in service.ws.drafts()}
    assert {s: record.fields[s] for s in slots} == {s: captions[k] for s, k in item.slots.items()}
    annotate(argilla_server, "ana", server_id,
             {"ranking": ranking("candidate_2", "candidate_1", "candidate_3", "candidate_4"), "problems": ["stereotype"]})  # fmt: skip
    service.pull(client)
    (response,) = service.ws.review_responses(name)
    assert response.problems == ["stereotype"] and response.ranking[item.slots["candidate_2"]] == 1
