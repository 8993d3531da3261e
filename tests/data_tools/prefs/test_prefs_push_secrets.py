"""A Hub that rejects the push and echoes the token back: one redacted line, never the token, never a traceback.

The Hub is a local HTTP server reached through ``HF_ENDPOINT`` (huggingface_hub's own setting), so
the real ``datasets``/``huggingface_hub`` push code runs; nothing is patched.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from data_tools.workspace import Workspace
from tests.data_tools.prefs.test_prefs_card import fill

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "hf_EchoedBack0123456789abcdef"


class EchoingHub:
    """Answers every request with a 401 whose body repeats the Authorization header it received."""

    def __init__(self) -> None:
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                owner.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = json.dumps({"error": f"Invalid credentials in Authorization header: {self.headers.get('Authorization')}"
                                   f"\nrequest {self.path} rejected"}).encode()  # fmt: skip
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Message", f"Invalid token {self.headers.get('Authorization')}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_rejected_push_is_one_line_without_the_token(tmp_path):
    with Workspace.open(tmp_path / "ws") as workspace:
        fill(workspace)
    hub = EchoingHub()
    # the suite runs offline (tests/conftest.py); this push must reach the local Hub
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "TRANSFORMERS_OFFLINE"}
    env.update({"HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1"})
    try:
        result = subprocess.run(
            [sys.executable, "-m", "data_tools.prefs", "--workspace", str(tmp_path / "ws"), "--format", "kto",
             "--push-to-hub", "org/fotos_image_kto"],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
        )  # fmt: skip
    finally:
        hub.close()
    assert hub.requests > 0  # the push really reached the (fake) Hub
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "pushing to the Hub failed" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    for text in (result.stdout, result.stderr):
        assert TOKEN not in text and base64.b64encode(TOKEN.encode()).decode() not in text
    for path in (tmp_path / "ws").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
