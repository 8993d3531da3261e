"""A workspace with reviewed candidates (3 annotators) and two systems' generations, built once."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_tools.collect import CollectConfig, Collector
from data_tools.workspace import DraftRecord, Generation, ReviewItem, ReviewResponse, Workspace
from tests.helpers import draw_image

API_KEY = "co-judge-key-7c2d41"
IMAGES = 36
COUNTRIES = (("MX", "es-MX", "food"), ("PE", "es-PE", "craft"), ("ES", "es-ES", "festival"))
ANNOTATORS = ("ana", "bruno", "carla")


def build(root: Path, folder: Path) -> dict:
    """Collect IMAGES pictures; 4 drafted candidates each, ranked by 3 annotators; base/aligned captions."""
    folder.mkdir(parents=True)
    rows = []
    for i in range(IMAGES):
        country, language, category = COUNTRIES[i % len(COUNTRIES)]
        draw_image(1000 + i, (96, 72)).save(folder / f"img{i:03d}.png")
        rows.append({"file_name": f"img{i:03d}.png", "country": country, "language": language, "category": category,
                     "cultural_context": f"nota {i}", "license": "CC0-1.0", "author": "tests",
                     "reference_captions": [f"Alineado {i}: una foto de {country}."]})  # fmt: skip
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rng = random.Random(7)
    truth: dict = {"better": {}, "aligned_better": {}}
    with Workspace.open(root) as ws:
        Collector(ws, CollectConfig(workers=1)).run([str(folder)])
        images = ws.images(status=None)
        assert len(images) == IMAGES
        run_id = ws.start_run("test-setup", {})
        items, responses, generations, splits = [], [], [], {}
        for n, image in enumerate(images):
            keys = [f"{image.id[:10]}-c{k}" for k in range(4)]
            for k, key in enumerate(keys):
                ws.save_draft(DraftRecord(cache_key=key, image_id=image.id, strategy="cultural", variant=k,
                                          backend="cohere", model="m", prompt_version="v1", prompt_language="es",
                                          prompt_sha256="x", params={}, status="done",
                                          caption=f"Pie {n}-{k}: una escena de {image.country}."), run_id)  # fmt: skip
            quality = keys[:]
            rng.shuffle(quality)  # best first
            record = f"r{n}"
            items.append(
                ReviewItem("ds", record, image.id, {f"candidate_{k + 1}": key for k, key in enumerate(keys)})
            )
            for user in ANNOTATORS:
                order = quality[:]
                if rng.random() < 0.35:  # annotators disagree a little: swap two neighbours
                    j = rng.randrange(3)
                    order[j], order[j + 1] = order[j + 1], order[j]
                responses.append(ReviewResponse("ds", record, image.id, user, user, "submitted",
                                                ranking={key: r for r, key in enumerate(order, start=1)}))  # fmt: skip
            base, aligned = f"Base {n}: una foto.", f"Alineado {n}: una foto de {image.country}."
            aligned_wins = rng.random() < 0.7
            truth["aligned_better"][image.id] = aligned_wins
            truth["better"][frozenset((base, aligned))] = aligned if aligned_wins else base
            generations += [Generation("base", f"b{n}", image.id, base, "m"),
                            Generation("aligned", f"a{n}", image.id, aligned, "m")]  # fmt: skip
            splits[image.id] = "test" if n < 30 else "train"
        ws.save_review_items(items)
        ws.save_review_responses(responses)
        ws.add_generations(generations, run_id)
        ws.record_splits("ds", splits, run_id)
        ws.finish_run(run_id, "completed", {})
        captions = {d.cache_key: d.caption for d in ws.drafts(status="done")}
        from eval.judge.calibrate import human_units

        units, _ = human_units(ws.review_responses(), ws.review_items(), captions)
        for u in units:  # the judge's "truth" for reviewed pairs: the annotators' majority
            truth["better"][frozenset((captions[u.left], captions[u.right]))] = (
                captions[u.left] if u.human == 1 else captions[u.right]
            )
    return truth


@pytest.fixture(scope="session")
def judge_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("judge")
    truth = build(base / "ws", base / "photos")
    return base / "ws", truth


@pytest.fixture
def reviewed(judge_template, tmp_path: Path) -> Iterator[tuple[Workspace, dict]]:
    """A fresh copy of the template workspace per test (copying beats rebuilding)."""
    source, truth = judge_template
    shutil.copytree(source, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws", create=False) as ws:
        yield ws, truth


def judge_config(*overrides: str):
    from data_tools.config import load_config
    from eval.judge.config import JudgeConfig

    return load_config(JudgeConfig, None, ["limits.backoff_s=0.01", "limits.timeout_s=10",
                                           "limits.concurrency=16", *overrides])  # fmt: skip


def run_jobs(ws: Workspace, runner, jobs: list, server) -> object:
    """Run ``jobs`` through the real AsyncClientV2 against the local server; returns the summary."""
    import asyncio

    import cohere

    from data_tools.draft.backends import CohereBackend

    async def go():
        client = cohere.AsyncClientV2(api_key=API_KEY, base_url=server.url)
        runner.backend = CohereBackend(client, runner.config.model)
        run_id = ws.start_run("judge", {})
        try:
            return await runner.run(jobs, run_id)
        finally:
            await runner.backend.aclose()

    return asyncio.run(go())
