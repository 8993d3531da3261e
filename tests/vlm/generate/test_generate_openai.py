"""The openai backend against a local OpenAI-compatible server (what `vllm serve --enable-lora` offers).

The server answers like vLLM: the base under its model name, each adapter under its served LoRA
name. The request must carry the training prompt as the only (user) turn, with the image.
"""

from __future__ import annotations

import pytest

from tests.fakes.openai_server import OpenAIServer
from vlm.generate.cli import main


def lora_answer(body: dict) -> str:
    """Like vLLM: "<model>: <prompt>" under the requested name (the base, or a served LoRA name)."""
    return f"{body['model']}: {body['messages'][-1]['content'][0]['text']}"


@pytest.fixture
def server():
    fake = OpenAIServer(lora_answer)
    yield fake
    fake.close()


def test_base_and_served_adapter_through_an_openai_compatible_server(gen_ws, server, capsys):
    argv = ["-w", str(gen_ws.root), "--model", "Qwen/Qwen2.5-VL-7B-Instruct", "--adapter", "cultura-dpo",
            "--backend", "openai", "--set", f"openai.base_url={server.url}", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert len(server.bodies) == 9  # 8 captions + one 429 retried
    assert {b["model"] for b in server.bodies} == {"Qwen/Qwen2.5-VL-7B-Instruct", "cultura-dpo"}
    first = server.bodies[1]
    assert [m["role"] for m in first["messages"]] == ["user"]  # no system turn: the training prompt only
    assert first["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/")
    assert first["temperature"] == 0.0 and first["max_tokens"] == 128
    rows = gen_ws.generations()
    assert {r["system"] for r in rows} == {"Qwen2.5-VL-7B-Instruct", "cultura-dpo"}
    assert all(r["caption"].startswith(("Qwen/", "cultura-dpo: ")) and r["tokens"] == 7 for r in rows)
    assert main(argv) == 0  # a rerun asks the server nothing
    assert len(server.bodies) == 9
