"""The local argilla-server works with the real ``argilla`` SDK the way Mirada's review stage uses it.

The SDK (owner) creates and fills a dataset; annotators answer through the same REST endpoints the web UI
calls (``POST /api/v1/records/{id}/responses``, ``PUT /api/v1/responses/{id}``,
``POST /api/v1/me/responses/bulk``); the SDK reads the answers back and queries them. That exercises the
server, our in-memory search engine (filters, text search, progress) and the in-process records-status
job, and finally proves that a killed server restarts on the same data with a rebuilt index.

The tests share one session server and run in file order: later ones build on the dataset the first
fixture fills.
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import argilla as rg
import httpx
import pytest
from PIL import Image

from tests.argilla_server.serverctl import ArgillaServer

pytestmark = pytest.mark.slow

COUNTRIES = ["MX", "ES", "PE", "MX", "BR", "ES"]
RANKING = [{"value": "candidate_1", "rank": 1}, {"value": "candidate_2", "rank": 2}]


def _image_data_uri(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _settings() -> rg.Settings:
    return rg.Settings(
        fields=[
            rg.ImageField("image"),
            rg.TextField("context"),
            rg.TextField("candidate_1"),
            rg.TextField("candidate_2"),
        ],
        questions=[
            rg.RankingQuestion("ranking", values=["candidate_1", "candidate_2"]),
            rg.MultiLabelQuestion("issues", labels=["wrong_country", "offensive", "hallucination", "none"]),
            rg.TextQuestion("correction", required=False),
        ],
        metadata=[rg.TermsMetadataProperty("country")],
        distribution=rg.TaskDistribution(min_submitted=2),
    )


def _answer(issues: list[str], correction: str | None = None) -> dict:
    values: dict = {"ranking": {"value": RANKING}, "issues": {"value": issues}}
    if correction is not None:
        values["correction"] = {"value": correction}
    return values


@dataclass
class Seeded:
    """The dataset every test reads, with HTTP clients acting as each person."""

    client: rg.Argilla
    dataset: rg.Dataset
    server_ids: dict[str, str]  # external id ("img0") → server UUID
    user_ids: dict[str, str]  # username → user UUID
    http: dict[str, httpx.Client]  # "owner" / annotator username → client with that API key


def _ids(records: Iterable[Any]) -> list[str]:
    return sorted(record.id for record in records)


@pytest.fixture(scope="module")
def seeded(argilla_server: ArgillaServer) -> Iterator[Seeded]:
    client = rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.owner_api_key, timeout=30)
    dataset = rg.Dataset(
        name=f"mirada-review-{uuid.uuid4().hex[:8]}",
        workspace=argilla_server.workspace,
        settings=_settings(),
        client=client,
    )
    dataset.create()
    records = [
        rg.Record(
            id=f"img{i}",
            fields={
                "image": _image_data_uri((40 * i, 90, 160)),
                "context": f"Mercado de artesanías número {i}" if i != 2 else "Tacos al pastor en Coyoacán",
                "candidate_1": f"Una foto de {country}",
                "candidate_2": "Un puesto callejero",
            },
            metadata={"country": country},
            suggestions=[
                rg.Suggestion("ranking", ["candidate_2", "candidate_1"], agent="cohere"),
                rg.Suggestion(
                    "issues", ["wrong_country"] if i % 3 == 0 else ["none"], score=[0.4], agent="cohere"
                ),
            ],
        )
        for i, country in enumerate(COUNTRIES)
    ]
    dataset.records.log(records)
    server_ids = {record.id: str(record._server_id) for record in dataset.records}
    user_ids = {user.username: str(user.id) for user in client.users}
    http = {
        name: httpx.Client(base_url=argilla_server.url, headers={"X-Argilla-Api-Key": key}, timeout=30)
        for name, key in {"owner": argilla_server.owner_api_key, **argilla_server.annotators}.items()
    }
    try:
        yield Seeded(client, dataset, server_ids, user_ids, http)
    finally:
        for http_client in http.values():
            http_client.close()


def test_web_ui_index_is_served(argilla_server: ArgillaServer) -> None:
    response = httpx.get(argilla_server.url + "/", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()


def test_users_exist_with_fixed_keys_and_roles(argilla_server: ArgillaServer, seeded: Seeded) -> None:
    roles = {user.username: str(user.role) for user in seeded.client.users}
    assert "owner" in roles[argilla_server.owner.username]
    for username, api_key in argilla_server.annotators.items():
        assert "annotator" in roles[username]
        me = httpx.get(argilla_server.url + "/api/v1/me", headers={"X-Argilla-Api-Key": api_key}, timeout=10)
        assert me.json()["username"] == username
    workspace_members = {user.username for user in seeded.client.workspaces(argilla_server.workspace).users}
    assert set(argilla_server.annotators) <= workspace_members


def test_annotators_respond_like_the_web_ui(seeded: Seeded) -> None:
    ana, bruno = seeded.http["ana"], seeded.http["bruno"]
    ids = seeded.server_ids

    # The record UUID, not the SDK's record.id (the external id), names a record in the REST API.
    wrong = ana.post(
        "/api/v1/records/img0/responses", json={"values": _answer(["none"]), "status": "submitted"}
    )
    assert wrong.status_code == 422

    # img0: both submit → completed (min_submitted=2). bruno first discards, then changes his mind (PUT).
    created = ana.post(
        f"/api/v1/records/{ids['img0']}/responses", json={"values": _answer(["none"]), "status": "submitted"}
    )
    assert created.status_code == 201, created.text
    discarded = bruno.post(f"/api/v1/records/{ids['img0']}/responses", json={"status": "discarded"})
    assert discarded.status_code == 201, discarded.text
    updated = bruno.put(
        f"/api/v1/responses/{discarded.json()['id']}",
        json={"values": _answer(["offensive"], "Un mercado en Oaxaca"), "status": "submitted"},
    )
    assert updated.status_code == 200, updated.text
    # img1: ana saves a draft; img2: ana submits through the bulk endpoint (the UI's "submit all").
    draft = ana.post(
        f"/api/v1/records/{ids['img1']}/responses", json={"values": _answer(["none"]), "status": "draft"}
    )
    assert draft.status_code == 201, draft.text
    bulk = ana.post(
        "/api/v1/me/responses/bulk",
        json={
            "items": [{"record_id": ids["img2"], "status": "submitted", "values": _answer(["hallucination"])}]
        },
    )
    assert bulk.status_code == 200 and bulk.json()["items"][0]["error"] is None, bulk.text

    records = {
        record.id: record for record in seeded.dataset.records(with_responses=True, with_suggestions=True)
    }
    assert records["img0"].status == "completed"
    assert {records[key].status for key in ("img1", "img2", "img3", "img4", "img5")} == {"pending"}
    by_user = {
        (str(response.user_id), response.question_name): response for response in records["img0"].responses
    }
    bruno_id, ana_id = seeded.user_ids["bruno"], seeded.user_ids["ana"]
    assert by_user[(bruno_id, "issues")].value == ["offensive"]
    assert by_user[(bruno_id, "correction")].value == "Un mercado en Oaxaca"
    assert by_user[(ana_id, "ranking")].value == ["candidate_1", "candidate_2"]  # SDK: values by rank
    assert by_user[(ana_id, "ranking")].status == "submitted"
    assert [r.status for r in records["img1"].responses if r.question_name == "issues"] == ["draft"]
    assert records["img3"].suggestions["issues"].value == ["wrong_country"]
    assert len(list(records["img3"].responses)) == 0


def test_sdk_queries_filter_and_search(seeded: Seeded) -> None:
    records = seeded.dataset.records

    def query(**kwargs: object) -> list[str]:
        return _ids(records(query=rg.Query(**kwargs)))

    assert query(filter=rg.Filter(("metadata.country", "==", "MX"))) == ["img0", "img3"]
    assert query(filter=rg.Filter(("metadata.country", "in", ["ES", "PE"]))) == ["img1", "img2", "img5"]
    assert query(filter=rg.Filter(("status", "==", "completed"))) == ["img0"]
    assert query(filter=rg.Filter(("response.status", "==", "submitted"))) == ["img0", "img2"]
    assert query(filter=rg.Filter(("response.status", "==", "draft"))) == ["img1"]
    assert query(filter=rg.Filter(("response.status", "==", "pending"))) == ["img3", "img4", "img5"]
    assert query(filter=rg.Filter(("issues.suggestion", "==", "wrong_country"))) == ["img0", "img3"]
    assert query(filter=rg.Filter(("issues.response", "==", "offensive"))) == ["img0"]
    assert query(query="pastor coyoacán") == ["img2"]
    assert query(query="artesanías", filter=rg.Filter(("metadata.country", "==", "ES"))) == ["img1", "img5"]
    assert query(query="no-such-word") == []


def test_rest_search_sorts_paginates_and_is_per_user(seeded: Seeded) -> None:
    owner, bruno = seeded.http["owner"], seeded.http["bruno"]
    dataset_id = str(seeded.dataset.id)
    sort = [{"scope": {"entity": "metadata", "metadata_property": "country"}, "order": "desc"}]
    page = owner.post(
        f"/api/v1/datasets/{dataset_id}/records/search", params={"offset": 2, "limit": 2}, json={"sort": sort}
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == len(COUNTRIES)
    countries = [item["record"]["metadata"]["country"] for item in body["items"]]
    assert countries == ["MX", "ES"]  # page 2 of PE MX | MX ES | ES BR

    # What the UI asks for bruno's queue: records *he* has not answered yet (ana's answers do not count).
    pending = {
        "and": [
            {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["pending"]}
        ]
    }
    mine = bruno.post(f"/api/v1/me/datasets/{dataset_id}/records/search", json={"filters": pending})
    assert mine.status_code == 200, mine.text
    assert sorted(item["record"]["external_id"] for item in mine.json()["items"]) == [
        "img1",
        "img2",
        "img3",
        "img4",
        "img5",
    ]
    metrics = bruno.get(f"/api/v1/me/datasets/{dataset_id}/metrics").json()["responses"]
    assert metrics == {"total": 6, "submitted": 1, "discarded": 0, "draft": 0, "pending": 5}

    properties = owner.get(f"/api/v1/me/datasets/{dataset_id}/metadata-properties").json()["items"]
    terms = owner.get(f"/api/v1/metadata-properties/{properties[0]['id']}/metrics").json()
    assert terms["total"] == 6
    assert {v["term"]: v["count"] for v in terms["values"]} == {"MX": 2, "ES": 2, "PE": 1, "BR": 1}


def test_progress_and_distribution_change(seeded: Seeded) -> None:
    progress = seeded.dataset.progress(with_users_distribution=True)
    assert (progress["total"], progress["completed"], progress["pending"]) == (6, 1, 5)
    assert progress["users"]["ana"]["completed"]["submitted"] == 1
    assert progress["users"]["ana"]["pending"] == {"submitted": 1, "draft": 1, "discarded": 0}

    # Lowering min_submitted re-computes every record's status in a background job (run in-process).
    patched = seeded.http["owner"].patch(
        f"/api/v1/datasets/{seeded.dataset.id}",
        json={"distribution": {"strategy": "overlap", "min_submitted": 1}},
    )
    assert patched.status_code == 200, patched.text
    completed: list[str] = []
    deadline = time.monotonic() + 10
    while completed != ["img0", "img2"] and time.monotonic() < deadline:
        time.sleep(0.1)
        completed = _ids(
            seeded.dataset.records(query=rg.Query(filter=rg.Filter(("status", "==", "completed"))))
        )
    assert completed == ["img0", "img2"]


def test_restart_keeps_data_and_rebuilds_the_index(argilla_server: ArgillaServer, seeded: Seeded) -> None:
    # Killed mid-session (SIGKILL, no graceful shutdown), then started again on the same data dir and port.
    argilla_server.stop(kill=True)
    with pytest.raises(httpx.TransportError):
        httpx.get(argilla_server.url + "/api/v1/status", timeout=2)
    argilla_server.start()

    client = rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.owner_api_key, timeout=30)
    dataset = client.datasets(seeded.dataset.name, workspace=argilla_server.workspace)
    assert len(list(dataset.records)) == len(COUNTRIES)
    assert _ids(
        dataset.records(query=rg.Query(filter=rg.Filter(("response.status", "==", "submitted"))))
    ) == [
        "img0",
        "img2",
    ]
    assert _ids(dataset.records(query=rg.Query(filter=rg.Filter(("metadata.country", "==", "MX"))))) == [
        "img0",
        "img3",
    ]
    assert _ids(dataset.records(query=rg.Query(query="coyoacán"))) == ["img2"]
    assert dataset.progress()["completed"] == 2

    # And it still takes answers after the restart.
    answer = httpx.post(
        f"{argilla_server.url}/api/v1/records/{seeded.server_ids['img3']}/responses",
        headers={"X-Argilla-Api-Key": argilla_server.annotators["bruno"]},
        json={"values": _answer(["none"]), "status": "submitted"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    assert dataset.progress()["completed"] == 3


def test_engine_ranges_vectors_chat_sorting_updates_and_deletes(argilla_server: ArgillaServer) -> None:
    """The rest of what the search engine must answer, on a dataset of its own (so counts above hold)."""
    client = rg.Argilla(api_url=argilla_server.url, api_key=argilla_server.owner_api_key, timeout=30)
    dataset = rg.Dataset(
        name=f"mirada-engine-{uuid.uuid4().hex[:8]}",
        workspace=argilla_server.workspace,
        settings=rg.Settings(
            fields=[rg.TextField("text"), rg.ChatField("chat", required=False)],
            questions=[
                rg.LabelQuestion("ok", labels=["yes", "no"]),
                rg.RatingQuestion("stars", values=[1, 2, 3, 4, 5]),
            ],
            metadata=[rg.IntegerMetadataProperty("width"), rg.FloatMetadataProperty("quality")],
            vectors=[rg.VectorField("emb", dimensions=2)],
            distribution=rg.TaskDistribution(min_submitted=1),
        ),
        client=client,
    )
    dataset.create()
    vectors = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    dataset.records.log(
        [
            rg.Record(
                id=f"r{i}",
                fields={
                    "text": f"registro {i}",
                    "chat": [{"role": "user", "content": "¿Qué muestra la foto?" if i == 4 else "hola"}],
                },
                metadata={"width": 100 * (i + 1), "quality": round(0.1 * (i + 1), 1)},
                vectors={"emb": vector},
                suggestions=[
                    rg.Suggestion("ok", "yes" if i % 2 else "no", score=0.2 * (i + 1), agent=f"model-{i % 2}")
                ],
            )
            for i, vector in enumerate(vectors)
        ]
    )
    server_ids = {record.id: str(record._server_id) for record in dataset.records}

    def ids(*conditions: tuple, **kwargs: object) -> list[str]:
        query = rg.Query(filter=rg.Filter(list(conditions)) if conditions else None, **kwargs)
        return _ids(dataset.records(query=query))

    assert ids(("metadata.width", ">=", 200), ("metadata.width", "<=", 400)) == ["r1", "r2", "r3"]
    assert ids(("metadata.quality", ">=", 0.35)) == ["r3", "r4"]
    assert ids(("ok.score", ">=", 0.55)) == ["r2", "r3", "r4"]
    assert ids(("ok.agent", "==", "model-1")) == ["r1", "r3"]
    assert ids(("ok.suggestion", "==", "yes"), ("metadata.width", ">=", 300)) == ["r3"]
    assert ids(query="foto") == ["r4"]  # chat content is searchable
    similar = dataset.records(query=rg.Query(similar=rg.Similar("emb", [0.9, 0.1])))
    nearest = [record.id for record, _score in similar]  # the SDK yields (record, score) here
    assert nearest[0] == "r0" and nearest[-1] == "r3"

    ana = httpx.Client(
        base_url=argilla_server.url,
        headers={"X-Argilla-Api-Key": argilla_server.annotators["ana"]},
        timeout=30,
    )
    with ana:
        response_ids: dict[str, str] = {}
        for record, stars in (("r0", 5), ("r1", 2), ("r2", 4)):
            answer = ana.post(
                f"/api/v1/records/{server_ids[record]}/responses",
                json={"values": {"ok": {"value": "yes"}, "stars": {"value": stars}}, "status": "submitted"},
            )
            assert answer.status_code == 201, answer.text
            response_ids[record] = answer.json()["id"]
        assert ids(("stars.response", ">=", 4)) == ["r0", "r2"]

        sort = [{"scope": {"entity": "response", "question": "stars"}, "order": "desc"}]
        found = ana.post(f"/api/v1/me/datasets/{dataset.id}/records/search", json={"sort": sort}).json()
        by_stars = [item["record"]["external_id"] for item in found["items"]]
        assert by_stars[:3] == ["r0", "r2", "r1"]  # then the unrated ones
        newest = [{"scope": {"entity": "record", "property": "inserted_at"}, "order": "desc"}]
        found = ana.post(f"/api/v1/me/datasets/{dataset.id}/records/search", json={"sort": newest}).json()
        assert found["items"][0]["record"]["external_id"] == "r4"

        # Clearing an answer (the UI's DELETE) makes the record pending again, in SQLite and in the index.
        assert ana.delete(f"/api/v1/responses/{response_ids['r1']}").status_code == 200
    assert ids(("status", "==", "pending")) == ["r1", "r3", "r4"]
    assert ids(("response.status", "==", "pending")) == ["r1", "r3", "r4"]

    properties = {
        p["name"]: p["id"]
        for p in httpx.get(
            f"{argilla_server.url}/api/v1/me/datasets/{dataset.id}/metadata-properties",
            headers={"X-Argilla-Api-Key": argilla_server.owner_api_key},
        ).json()["items"]
    }
    width = httpx.get(
        f"{argilla_server.url}/api/v1/metadata-properties/{properties['width']}/metrics",
        headers={"X-Argilla-Api-Key": argilla_server.owner_api_key},
    ).json()
    assert (width["min"], width["max"]) == (100, 500)

    # Re-logging a record replaces its document but keeps its answers; deleting removes it from searches.
    dataset.records.log([{"id": "r0", "text": "registro cambiado", "width": 100}])
    assert ids(query="cambiado") == ["r0"]
    assert ids(("response.status", "==", "submitted")) == ["r0", "r2"]
    dataset.records.delete([record for record in dataset.records if record.id == "r4"])
    assert ids(("metadata.width", ">=", 100)) == ["r0", "r1", "r2", "r3"]
