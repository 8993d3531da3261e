"""A local stand-in for the Hugging Face Hub HTTP API, for push tests without network.

Why it exists: publishing is the step a team does once, at the deadline, against a remote service;
a mistake there (wrong repository name, a card linking to nothing, a notebook left out) is found
too late. This server speaks the part of the Hub's HTTP API that ``huggingface_hub.HfApi`` and
``datasets.DatasetDict.push_to_hub`` use for a push, so both libraries run unmodified
(``HfApi(endpoint=server.url)``; ``datasets`` reads ``datasets.config.HF_ENDPOINT``) and the test
reads back exactly which files landed in which repository.

Trade-off: binary weights and parquet shards go through the classic LFS "basic" transfer (batch +
PUT), text files inline; the Xet protocol is not emulated, so a test sets
``huggingface_hub.constants.HF_HUB_DISABLE_XET`` (the library's own switch). The commit contents are
identical, only the transport of large files differs.
Repositories are kept in memory: ``server.repos[("model", "org/name")] -> {path: bytes}``.

Routes (read from ``huggingface_hub/hf_api.py`` and ``_commit_api.py`` 2.4): repo create, repo
info, tree listing, YAML validation, preupload, commit, file resolve (GET/HEAD).

    with FakeHub() as hub:
        api = HfApi(endpoint=hub.url, token="hf_x")
        api.create_repo("org/m")
        api.upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id="org/m")
        assert hub.files("org/m") == {"a.txt": b"hi"}
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
import urllib.parse
from typing import Any

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


def _mode(path: str) -> str:
    """Binary data goes through the LFS protocol (as ``.gitattributes`` on a new Hub repo says), text inline."""
    return "lfs" if path.rsplit(".", 1)[-1] in {"parquet", "safetensors", "bin", "arrow", "pt"} else "regular"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
              raw: bytes | None = None, head: bool = False) -> None:  # fmt: skip
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _auth(self) -> bool:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        self.server.hub.tokens_seen.add(token)
        if self.server.hub.token and token != self.server.hub.token:
            self._send(401, {"error": "Invalid credentials in Authorization header"},
                       headers={"X-Error-Message": "Invalid credentials"})  # fmt: skip
            return False
        return True

    def do_POST(self) -> None:
        hub = self.server.hub
        path = urllib.parse.urlsplit(self.path).path
        body = self._body()
        hub.requests.append(("POST", path))
        if not self._auth():
            return
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_type = payload.get("type") or "model"
            repo_id = (
                f"{payload['organization']}/{payload['name']}"
                if payload.get("organization")
                else payload["name"]
            )
            key = (repo_type, repo_id)
            with hub.lock:
                existed = key in hub.repos
                hub.repos.setdefault(key, {})
                hub.repo_settings[key] = {
                    k: v for k, v in payload.items() if k not in ("name", "organization")
                }
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            if existed:
                self._send(
                    409, {"error": "You already created this repo", "url": f"{hub.url}/{prefix}{repo_id}"}
                )
            else:
                self._send(200, {"url": f"{hub.url}/{prefix}{repo_id}", "name": repo_id})
            return
        if path == "/api/validate-yaml":
            self._send(200, {"errors": [], "warnings": []})
            return
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/(preupload|commit)/([^/]+)", path)
        if match:
            repo_type, repo_id, action = _TYPES[match[1]], urllib.parse.unquote(match[2]), match[3]
            if (repo_type, repo_id) not in hub.repos:
                self._send(404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
                return
            if action == "preupload":
                files = json.loads(body)["files"]
                self._send(200, {"files": [{"path": f["path"], "uploadMode": _mode(f["path"]), "shouldIgnore": False}
                                           for f in files]})  # fmt: skip
                return
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            with hub.lock:
                store = hub.repos[(repo_type, repo_id)]
                for line in lines:
                    value = line["value"]
                    if line["key"] == "file":
                        store[value["path"]] = base64.b64decode(value["content"])
                    elif line["key"] == "lfsFile":
                        store[value["path"]] = hub.blobs[value["oid"]]
                    elif line["key"] == "deletedFile":
                        store.pop(value["path"], None)
                    elif line["key"] == "deletedFolder":
                        for name in [n for n in store if n.startswith(value["path"].rstrip("/") + "/")]:
                            del store[name]
                hub.commits.append((repo_type, repo_id, lines[0]["value"]["summary"]))
                oid = hashlib.sha1(f"{len(hub.commits)}".encode()).hexdigest()
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            self._send(200, {"commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{oid}", "commitOid": oid,
                             "pullRequestUrl": None})  # fmt: skip
            return
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if match:
            objects = json.loads(body)["objects"]
            self._send(200, {"transfer": "basic", "objects": [
                {"oid": o["oid"], "size": o["size"], "actions": {"upload": {"href": f"{hub.url}/_lfs/{o['oid']}"}}}
                for o in objects]})  # fmt: skip
            return
        self._unknown("POST", path)

    def do_PUT(self) -> None:
        hub = self.server.hub
        path = urllib.parse.urlsplit(self.path).path
        body = self._body()
        hub.requests.append(("PUT", path))
        if path.startswith("/_lfs/"):
            oid = path.removeprefix("/_lfs/")
            if hashlib.sha256(body).hexdigest() != oid:
                self._send(400, {"error": "sha256 mismatch"})
                return
            hub.blobs[oid] = body
            self._send(200, {})
            return
        self._unknown("PUT", path)

    def _unknown(self, method: str, path: str) -> None:
        self.server.hub.unknown.append((method, path))
        self._send(404, {"error": f"fake hub: no route {method} {path}"})

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        hub = self.server.hub
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        hub.requests.append(("HEAD" if head else "GET", path))
        if not self._auth():
            return
        match = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if match:
            key = (_TYPES[match[1]], match[2])
            if key not in hub.repos:
                self._send(
                    404,
                    {"error": "Repository not found"},
                    headers={"X-Error-Code": "RepoNotFound"},
                    head=head,
                )
                return
            sha = hashlib.sha1(repr(sorted(hub.repos[key])).encode()).hexdigest()
            self._send(200, {"id": key[1], "sha": sha, "private": False,
                             "siblings": [{"rfilename": name} for name in sorted(hub.repos[key])]}, head=head)  # fmt: skip
            return
        match = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)/tree/([^/]+)/?(.*)", path)
        if match:
            key, folder = (_TYPES[match[1]], match[2]), match[4].strip("/")
            if key not in hub.repos:
                self._send(404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
                return
            recursive = "recursive=true" in split.query.lower() or "recursive=1" in split.query
            entries = []
            for name, data in sorted(hub.repos[key].items()):
                if folder and not name.startswith(folder + "/"):
                    continue
                rest = name[len(folder) + 1 :] if folder else name
                if not recursive and "/" in rest:
                    continue
                entries.append({"type": "file", "path": name, "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest()})  # fmt: skip
            if folder and not entries:
                self._send(404, {"error": "not found"}, headers={"X-Error-Code": "EntryNotFound"})
                return
            self._send(200, entries)
            return
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            key = (_TYPES.get(f"{match[1]}", "model") if match[1] else "model", match[2])
            data = hub.repos.get(key, {}).get(match[4])
            if data is None:
                self._send(404, {"error": "Entry not found"}, head=head,
                           headers={"X-Error-Code": "EntryNotFound" if key in hub.repos else "RepoNotFound"})  # fmt: skip
                return
            etag = hashlib.sha1(data).hexdigest()
            self._send(200, raw=data, head=head, headers={"ETag": f'"{etag}"', "X-Repo-Commit": "0" * 40})
            return
        self._unknown("HEAD" if head else "GET", path)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class FakeHub:
    """The stand-in server, run on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token  # when set, any other bearer token is refused with 401
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}
        self.repo_settings: dict[tuple[str, str], dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.commits: list[tuple[str, str, str]] = []
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.tokens_seen: set[str] = set()
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """Every file now in a repository (raises KeyError if it was never created)."""
        return dict(self.repos[(repo_type, repo_id)])


def point_libraries_at(hub: FakeHub, monkeypatch: Any) -> None:
    """Make ``huggingface_hub`` and ``datasets`` talk to ``hub`` for one test (pytest ``monkeypatch``).

    The libraries read their endpoint and offline switch into module constants at import time, so the
    constants are patched (the test suite runs with ``HF_HUB_OFFLINE=1``, which stays true for every
    other host because the stand-in is on 127.0.0.1 and nothing else is reachable anyway).
    """
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
