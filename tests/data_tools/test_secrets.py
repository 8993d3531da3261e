"""No secret in any message or file: URLs with credentials (``user:password@``, pre-signed query
parameters) are fetched with them but stored, logged and exported without them; an Argilla server
that echoes the key or is reached through a URL with a password never gets either printed."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data_tools.secrets import public_url, redact
from tests.helpers import draw_image, encode

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("hunter2", "AKIAEXAMPLE", "deadbeefsignature", "goog-sig-0123", "sas-sig-4567", "tok-89ab")


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://ana:hunter2@museo.example/a.jpg", "https://museo.example/a.jpg"),
        ("https://b.s3.amazonaws.com/x.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE"
         "&X-Amz-Signature=deadbeefsignature&w=2", "https://b.s3.amazonaws.com/x.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&w=2"),
        ("https://storage.googleapis.com/b/o.png?X-Goog-Signature=goog-sig-0123", "https://storage.googleapis.com/b/o.png"),
        ("https://acc.blob.core.windows.net/c/i.jpg?sv=2024&sig=sas-sig-4567", "https://acc.blob.core.windows.net/c/i.jpg?sv=2024"),
        ("https://cdn.example/i.jpg?TOKEN=tok-89ab", "https://cdn.example/i.jpg"),
        ("https://Cdn.Example/i.jpg?w=1&h=2", "https://Cdn.Example/i.jpg?w=1&h=2"),  # untouched, byte for byte
    ],
)  # fmt: skip
def test_public_url_drops_credentials_only(url, public):
    assert public_url(url) == public
    assert redact(f"download failed for {url} (HTTP 403)") == f"download failed for {public} (HTTP 403)"


class _Images:
    """Serves a picture at /img/<n>.jpg (any query) and 403 elsewhere; records what it was sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.seen.append((self.path, self.headers.get("Authorization")))
                name = self.path.split("?")[0]
                if name.startswith("/img/"):
                    status, body = 200, encode(draw_image(int(name[5:].split(".")[0]), (120, 90)))
                else:
                    status, body = 403, b"forbidden"
                self.send_response(status)
                self.send_header("Content-Type", "image/jpeg" if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_signed_and_password_urls_are_fetched_but_never_stored_or_exported(tmp_path):
    images = _Images()
    host = images.host
    rows = [
        f"http://ana:hunter2@{host}/img/1.jpg,",
        f"http://{host}/img/2.jpg?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=deadbeefsignature&w=2,",
        f"http://{host}/img/3.jpg?X-Goog-Signature=goog-sig-0123,https://mirror.example/3.jpg?sig=sas-sig-4567",
        f"http://ana:hunter2@{host}/denied.jpg?token=tok-89ab,",
    ]
    listing = tmp_path / "urls.csv"
    listing.write_text(
        "url,source_url,country,language,license\n" + "".join(f"{r},MX,es-MX,CC-BY-4.0\n" for r in rows)
    )
    ws = tmp_path / "ws"
    try:
        collected = subprocess.run([sys.executable, "-m", "data_tools.cli", "collect", str(listing), "-w", str(ws)],
                                   capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    finally:
        images.close()
    assert collected.returncode == 0, collected.stderr
    assert len([p for p, _ in images.seen if p.startswith("/img/")]) == 3  # fetched with the full URLs
    assert any(auth and auth.startswith("Basic ") for _, auth in images.seen)
    assert any("X-Amz-Signature=deadbeefsignature" in p for p, _ in images.seen)
    exported = subprocess.run([sys.executable, "-m", "data_tools.cli", "export", "-w", str(ws)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    status = subprocess.run([sys.executable, "-m", "data_tools.cli", "status", "-w", str(ws), "--json"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    shown = collected.stdout + collected.stderr + exported.stdout + exported.stderr + status.stdout
    assert "denied.jpg" in shown or "denied.jpg" in (ws / "mirada.db").read_bytes().decode("utf-8", "replace")
    files = [p for p in ws.rglob("*") if p.is_file() and p.suffix not in (".jpg", ".png", ".webp")]
    assert any(p.suffix in (".parquet", ".arrow", ".jsonl", ".csv") for p in files)
    for secret in SECRETS:
        assert secret not in shown, secret
        for path in files:
            assert secret.encode() not in path.read_bytes(), (secret, path)
    urls = subprocess.run([sys.executable, "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("
                           "'SELECT group_concat(source_url) FROM images').fetchone()[0])", str(ws / "mirada.db")],
                          capture_output=True, text=True)  # fmt: skip
    assert "https://mirror.example/3.jpg" in urls.stdout and f"http://{host}/img/2.jpg?w=2" in urls.stdout


class _Echo:
    """An 'Argilla' that answers every request with a 500 echoing the credentials it was sent."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = f'{{"detail": "internal error for key {self.headers.get("X-Argilla-Api-Key")} '
                body += f'auth {self.headers.get("Authorization")}"}}'
                data = body.encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_argilla_errors_never_show_the_key_or_a_url_password(collected):
    import os

    key, password = "argilla-key-5e4d3c2b1a", "pw-7f6e5d"
    echo = _Echo()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGILLA_")}
    try:
        for url in (f"http://ana:{password}@127.0.0.1:{echo.port}", f"http://ana:{password}@127.0.0.1:9"):
            result = subprocess.run(
                [sys.executable, "-m", "data_tools.cli", "review", "push", "-w", str(collected.root)],
                capture_output=True, text=True, cwd=ROOT, timeout=120,
                env={**env, "ARGILLA_API_URL": url, "ARGILLA_API_KEY": key},
            )  # fmt: skip
            assert result.returncode == 2 and "cannot use Argilla at" in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
            for secret in (key, password, base64.b64encode(f"ana:{password}".encode()).decode()):
                assert secret not in result.stdout + result.stderr, (secret, result.stderr)
    finally:
        echo.close()
    raw = (collected.root / "mirada.db").read_bytes()
    assert key.encode() not in raw and password.encode() not in raw
