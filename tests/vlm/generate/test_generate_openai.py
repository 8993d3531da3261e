"""The openai backend against a local OpenAI-compatible server (what `vllm serve --enable-lora` offers).

The server answers like vLLM: the base under its model name, each adapter under its served LoRA
name. The request must carry the training prompt as the only (user) turn, with the image.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vlm.generate.cli import main


class LoraServer:
    """``/v1/chat/completions`` that answers "<model>: <prompt>"; the first call gets a 429."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append(body)
                if len(owner.bodies) == 1:
                    status, payload = 429, {"error": {"message": "slow down"}}
                else:
                    text = body["messages"][-1]["content"][0]["text"]
                    status = 200
                    payload = {"choices": [{"message": {"role": "assistant", "content": f"{body['model']}: {text}"}}],
                               "usage": {"prompt_tokens": 100, "completion_tokens": 7}}  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0.05")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    fake = LoraServer()
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
