"""A minimal OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 for the ``openai`` backends.

What `vllm serve` or any OpenAI-compatible endpoint offers, reduced to what Mirada's backends use:
a JSON answer with ``usage``, and a 429 with ``Retry-After`` on the first call so the retry path is
exercised. ``answer(body)`` decides the assistant's text; every request body is kept in ``bodies``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIServer:
    def __init__(
        self,
        answer: Callable[[dict[str, Any]], str],
        *,
        usage: tuple[int, int] = (100, 7),
        retry_after: str = "0.05",
    ) -> None:
        self.bodies: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append(body)
                if len(owner.bodies) == 1:  # first call: rate limited
                    status, payload = 429, {"error": {"message": "slow down"}}
                else:
                    status = 200
                    payload = {"choices": [{"message": {"role": "assistant", "content": answer(body)}}],
                               "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}}  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
