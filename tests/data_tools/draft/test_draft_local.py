"""The draft stage's ``local`` backend: a thin, batched, adapter-capable use of the generator.

Concurrent requests from the draft runner's workers must reach the model as one batch and get the
same answers as one at a time; an adapter must change the drafts; one bad image must fail only its
own request; and the base package must still not import the ``vlm`` layer to offer the backend.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.draft.backends import BackendError, ChatRequest, LocalBackend
from data_tools.draft.config import DraftConfig
from tests.helpers import draw_image, encode

pytest.importorskip("torch")
pytest.importorskip("peft")

REPO = Path(__file__).resolve().parents[3]
SYSTEM = "Eres un experto en cultura iberoamericana."
PROMPTS = [
    "Describe la imagen.",
    "Descreva a imagem com o seu contexto cultural.",
    "Hola",
    "Describe esta foto.",
]


def request(index: int, **changes: object) -> ChatRequest:
    fields = {"system": SYSTEM, "prompt": PROMPTS[index % 4],
              "image": encode(draw_image(index, (40 + 8 * index, 36)), "PNG"), "image_mime": "image/png",
              "detail": "low", "temperature": 0.0, "max_tokens": 8, "seed": index}  # fmt: skip
    return ChatRequest(**{**fields, **changes})


async def ask_all(backend: LocalBackend, requests: list[ChatRequest]) -> list[object]:
    try:
        return await asyncio.gather(*(backend.chat(r) for r in requests), return_exceptions=True)
    finally:
        await backend.aclose()


@pytest.fixture(scope="module")
def qwen_adapter(tiny_model, tmp_path_factory) -> Path:
    from tests.vlm.generate.gen_helpers import train_adapter

    return train_adapter(tiny_model("qwen2_5_vl"), tmp_path_factory.mktemp("runs") / "draft-sft")


def test_concurrent_requests_run_as_one_batch_with_the_answers_of_single_requests(tiny_model):
    model = str(tiny_model("qwen2_5_vl"))
    batched = LocalBackend(model, batch_size=8)
    together = asyncio.run(ask_all(batched, [request(i) for i in range(4)]))
    alone = []
    for i in range(4):
        single = LocalBackend(model, batch_size=1)
        alone.extend(asyncio.run(ask_all(single, [request(i)])))
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.output_tokens for r in together] == [r.output_tokens for r in alone]
    assert all(r.input_tokens > 0 for r in together)


def test_batches_follow_batch_size_and_decoding_settings(tiny_model):
    from vlm.generate.draft import LocalCaptioner

    backend = LocalBackend(str(tiny_model("qwen2_5_vl")), batch_size=3)
    requests = [request(i) for i in range(4)] + [request(4, max_tokens=5)]
    captioner_box: list[LocalCaptioner] = []

    async def go() -> list[object]:
        tasks = [asyncio.ensure_future(backend.chat(r)) for r in requests]
        captioner_box.append(backend._impl())
        return await asyncio.gather(*tasks)

    results = asyncio.run(go())
    assert len(results) == 5 and results[4].output_tokens <= 5
    assert sorted(captioner_box[0].batches) == [1, 1, 3]  # 3 + 1 with 8 tokens, 1 with 5 tokens


def test_an_adapter_changes_the_drafts(tiny_model, qwen_adapter):
    model = str(tiny_model("qwen2_5_vl"))
    base = asyncio.run(ask_all(LocalBackend(model), [request(i) for i in range(3)]))
    tuned = asyncio.run(
        ask_all(LocalBackend(model, adapter=str(qwen_adapter)), [request(i) for i in range(3)])
    )
    assert [r.text for r in base] != [r.text for r in tuned]
    config = DraftConfig(backend="local", local={"model": model, "adapter": str(qwen_adapter)})
    assert config.model.endswith(f"+{qwen_adapter}")  # the adapter is part of every draft's cache key


def test_a_bad_image_fails_only_its_own_request(tiny_model):
    backend = LocalBackend(str(tiny_model("qwen2_5_vl")))
    requests = [request(0), request(1, image=b"not an image"), request(2)]
    results = asyncio.run(ask_all(backend, requests))
    assert isinstance(results[1], BackendError) and results[1].kind == "client_error"
    assert "refused" in str(results[1])
    assert all(not isinstance(results[i], BaseException) for i in (0, 2))


def test_a_model_that_cannot_load_fails_every_request_with_one_reason(tmp_path):
    (tmp_path / "m").mkdir()
    backend = LocalBackend(str(tmp_path / "m"))
    results = asyncio.run(ask_all(backend, [request(0), request(1)]))
    assert all(isinstance(r, BackendError) and "cannot load local model" in str(r) for r in results)
    assert "\n" not in str(results[0])


def test_the_base_package_does_not_import_vlm_to_offer_the_local_backend():
    code = ("import sys, data_tools.draft.cli, data_tools.draft.backends as b; b.LocalBackend('x'); "
            "print(sorted(m for m in sys.modules if m == 'vlm' or m.startswith('vlm.')))")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
