"""A local Cohere-compatible ``/v2/chat`` server for tests and benchmarks.

Why it exists: drafting captions costs money per call, so the properties that matter most (a rerun
never pays twice, rate limits are respected, a malformed answer is retried, N requests really run
concurrently) can only be proven against something that speaks the real wire protocol. This server
is driven through the *real* ``cohere.ClientV2`` / ``cohere.AsyncClientV2`` (``base_url=server.url``),
so the SDK's own retry, timeout and error-mapping code runs exactly as in production; nothing in the
SDK is mocked.

Trade-off: it is a standard-library ``ThreadingHTTPServer`` (one thread per connection, real sockets
on 127.0.0.1, an ephemeral port). That costs a thread per in-flight request but needs no extra
dependency, handles dozens of concurrent slow requests, and also runs as a separate process
(``python -m tests.fakes.cohere_server --port 0 --latency 0.2``) for kill -9 and benchmark runs.

What the Cohere SDK 7.3.1 does with the answers (read from ``cohere/core/http_client.py``):

- ``max_retries`` defaults to 2, so at most 3 attempts. It retries a *response* with status 429, 408,
  409 or >= 500, and ``httpx.ConnectError``. It does NOT retry timeouts (``httpx.ReadTimeout``
  propagates unwrapped) nor dropped connections (``httpx.RemoteProtocolError``; opt in with
  ``request_options={"retry_remote_protocol_errors": True}``).
- Wait before retry: ``retry-after-ms`` (float ms), else ``Retry-After`` (integer seconds or an HTTP
  date; a fractional ``Retry-After: 1.5`` is ignored, and ``0`` counts as absent), capped at 60 s; else
  ``X-RateLimit-Reset`` (unix time) + 0-20 % jitter; else 1 s, 2 s, ... ±10 % jitter.
- A 2xx body that is not JSON raises a plain ``cohere.core.api_error.ApiError`` (status_code 200,
  body = the text); error statuses map to ``BadRequestError`` (400), ``UnauthorizedError`` (401),
  ``NotFoundError`` (404), ``TooManyRequestsError`` (429), ``InternalServerError`` (500),
  ``ServiceUnavailableError`` (503), ``GatewayTimeoutError`` (504), plain ``ApiError`` otherwise.

Example::

    with FakeCohereServer(latency_s=0.05) as server:
        server.inject("429", retry_after_ms=10)
        co = cohere.ClientV2(api_key="k", base_url=server.url)
        co.chat(model="command-a-vision-07-2025", messages=[...])
        assert server.count() == 2 and server.successes() == 1
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import http.server
import json
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "FAULT_KINDS",
    "FakeCohereServer",
    "Fault",
    "RecordedRequest",
    "default_key",
    "default_responder",
    "image_key",
    "image_urls",
    "main",
    "prompt_text",
    "request_key",
]

#: Fault kinds besides plain HTTP status codes ("400".."599", e.g. "429", "500", "503").
FAULT_KINDS = ("timeout", "malformed", "invalid_caption", "drop")

CHAT_PATH = "/v2/chat"
ADMIN_PREFIX = "/_fake/"
MAX_IMAGES = 20
MAX_IMAGE_BYTES = 20 * 1024 * 1024
IMAGE_DETAILS = ("auto", "low", "high")
ROLES = ("user", "assistant", "system", "tool")

# Token accounting, after Cohere's published vision rules (DESIGN 6.5): a "low" image is 256 tokens,
# a "high" one 256 per 512x512 tile plus a 256-token preview, longest side scaled to <= 2048; "auto"
# is "high" when a side exceeds 768 px. Text is estimated at 4 characters per token.
IMAGE_TILE_TOKENS = 256
CHARS_PER_TOKEN = 4

_DATA_URI = re.compile(r"^data:(image/(?:png|jpeg|jpg|webp|gif));base64,(.*)$", re.DOTALL | re.IGNORECASE)

Responder = Callable[[dict[str, Any]], "str | dict[str, Any]"]
KeyFunction = Callable[[dict[str, Any]], "str | None"]


# ---------------------------------------------------------------------------------------------------
# Reading a v2 chat body
# ---------------------------------------------------------------------------------------------------


def _content_items(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def prompt_text(body: Mapping[str, Any]) -> str:
    """All text of all messages, in order, joined by newlines (system and user turns alike).

    ``prompt_text({"messages": [{"role": "user", "content": "hola"}]}) == "hola"``
    """
    texts = []
    for message in body.get("messages") or []:
        for item in _content_items(message):
            if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
                texts.append(item["text"])
    return "\n".join(texts)


def image_urls(body: Mapping[str, Any]) -> list[str]:
    """The ``image_url.url`` of every image content item, in message order."""
    urls = []
    for message in body.get("messages") or []:
        for item in _content_items(message):
            if isinstance(item, dict) and item.get("type") == "image_url":
                image = item.get("image_url")
                if isinstance(image, dict) and isinstance(image.get("url"), str):
                    urls.append(image["url"])
    return urls


def request_key(image_url: str | None, prompt: str) -> str:
    """The default per-request key: sha256 of the first image's URL (the data URI) and the prompt text.

    Tests that know what the client sends can compute the key a request will be counted under.
    """
    return hashlib.sha256(f"{image_url or ''}\x00{prompt}".encode()).hexdigest()


def default_key(body: Mapping[str, Any]) -> str:
    """Key = ``request_key(first image data URI, prompt_text(body))``: one key per (image, prompt)."""
    urls = image_urls(body)
    return request_key(urls[0] if urls else None, prompt_text(body))


def _decode_data_uri(url: str) -> tuple[str, bytes] | None:
    match = _DATA_URI.match(url)
    if match is None:
        return None
    try:
        return match.group(1).lower(), base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None


def image_key(body: Mapping[str, Any]) -> str | None:
    """Key = sha256 hex of the first image's decoded bytes (of its URL if it is not a data URI).

    Workspace image ids are the SHA-256 of the stored bytes, so with this key function
    ``server.count(record.id)`` counts the calls made for one image, whatever the prompt.
    """
    urls = image_urls(body)
    if not urls:
        return None
    decoded = _decode_data_uri(urls[0])
    return hashlib.sha256(decoded[1] if decoded else urls[0].encode()).hexdigest()


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, JPEG or WEBP header; None when the bytes are none of these."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
            if chunk == b"VP8 ":
                width, height = struct.unpack("<HH", data[26:30])
                return width & 0x3FFF, height & 0x3FFF
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            return None
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
                    i += 1 if marker == 0xFF else 2
                    continue
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                    return width, height
                i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    except struct.error:
        return None
    return None


def _image_tokens(size: tuple[int, int] | None, detail: str | None) -> int:
    if size is None or detail == "low":
        return IMAGE_TILE_TOKENS
    width, height = size
    if (detail or "auto") == "auto" and max(width, height) <= 768:
        return IMAGE_TILE_TOKENS
    scale = min(1.0, 2048 / max(width, height, 1))
    tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    return IMAGE_TILE_TOKENS * tiles + IMAGE_TILE_TOKENS


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


# ---------------------------------------------------------------------------------------------------
# The default responder: a plausible, deterministic JSON caption
# ---------------------------------------------------------------------------------------------------

_LANGUAGE_HINT = re.compile(
    r"(?i)\b(?:language|lang|idioma|l[íi]ngua|llengua|hizkuntza)\s*[:=]\s*[\"'`]?([a-z]{2,3}(?:[-_][a-z0-9]{2,8})*)\b"
)
_TAG_HINT = re.compile(r"\b([a-z]{2,3})-([A-Z]{2}|419)\b")
_STRATEGY_HINT = re.compile(r"(?i)\b(?:strategy|estrategia|estrat[ée]gia)\s*[:=]\s*[\"'`]?([\w-]+)")
_COUNTRY_HINT = re.compile(r"(?i)\b(?:country|pa[íi]s)\s*[:=]\s*[\"'`]?([a-z]{2})\b")

_CAPTIONS = {
    "es": "Imagen {digest}: una escena de la vida cotidiana{where}, con objetos y costumbres de la cultura local.",
    "pt": "Imagem {digest}: uma cena do cotidiano{where}, com objetos e costumes da cultura local.",
    "ca": "Imatge {digest}: una escena de la vida quotidiana{where}, amb objectes i costums de la cultura local.",
    "gl": "Imaxe {digest}: unha escena da vida cotiá{where}, con obxectos e costumes da cultura local.",
    "eu": "{digest} irudia: eguneroko bizitzako eszena bat{where}, tokiko kulturako objektu eta ohiturekin.",
    "en": "Image {digest}: an everyday scene{where}, with objects and customs of the local culture.",
}
_TERMS = {
    "es": ("mercado", "artesanía", "fiesta patronal", "rebozo", "azulejo", "comal"),
    "pt": ("feira", "azulejo", "festa junina", "renda de bilros", "chimarrão"),
    "ca": ("castellers", "mercat", "sardana", "porró"),
    "gl": ("romaría", "hórreo", "gaita", "empanada"),
    "eu": ("txalaparta", "baserri", "pilota", "txapela"),
    "qu": ("ayllu", "away", "raymi", "chakitaqlla"),
    "gn": ("tereré", "ñandutí", "mbeju", "jeroky"),
}


def _normalise_tag(tag: str) -> str:
    parts = tag.replace("_", "-").split("-")
    rest = [
        p.upper() if len(p) == 2 or p.isdigit() else p.title() if len(p) == 4 else p.lower()
        for p in parts[1:]
    ]
    return "-".join([parts[0].lower(), *rest])


def default_responder(body: dict[str, Any]) -> str:
    """A JSON caption object derived deterministically from the request.

    ``{"caption", "cultural_terms", "language", "confidence": 0.8}``. The caption names the first 8 hex
    digits of :func:`image_key` (so a test can tell which image an answer belongs to) and echoes hints
    found in the prompt: ``language: pt-BR`` (or the first tag such as ``es-MX``; default ``es``),
    ``country: MX`` and ``strategy: NAME`` (appended as ``[NAME]``, so strategies give distinct
    candidates).
    """
    prompt = prompt_text(body)
    match = _LANGUAGE_HINT.search(prompt)
    if match:
        language = _normalise_tag(match.group(1))
    else:
        tag = _TAG_HINT.search(prompt)
        language = f"{tag.group(1)}-{tag.group(2)}" if tag else "es"
    primary = language.split("-")[0]
    digest = (image_key(body) or hashlib.sha256(prompt.encode()).hexdigest())[:8]
    country = _COUNTRY_HINT.search(prompt)
    where = f" ({country.group(1).upper()})" if country else ""
    caption = _CAPTIONS.get(primary, _CAPTIONS["es"]).format(digest=digest, where=where)
    strategy = _STRATEGY_HINT.search(prompt)
    if strategy:
        caption += f" [{strategy.group(1)}]"
    terms = _TERMS.get(primary, _TERMS["es"])
    start = int(digest, 16) % len(terms)
    cultural_terms = [terms[start], terms[(start + 1) % len(terms)]]
    payload = {"caption": caption, "cultural_terms": cultural_terms, "language": language, "confidence": 0.8}
    return json.dumps(payload, ensure_ascii=False)


_INVALID_CAPTION_TEXT = (
    "¡Claro! Aquí tienes una descripción de la imagen: una plaza con puestos de mercado, "
    "gente comprando fruta y un toldo de colores al fondo."
)


# ---------------------------------------------------------------------------------------------------
# Records and faults
# ---------------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One HTTP request the server received (admin ``/_fake/`` calls are not recorded).

    ``status``/``fault``/``text``/``usage`` are filled in just *before* the response is written, so a
    client that has its answer always sees a complete record.
    """

    index: int
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased; ``authorization`` kept verbatim so tests can check it
    body: Any  # parsed JSON, or None when absent or not JSON
    raw_size: int
    received_at: float  # time.time()
    received_monotonic: float
    key: str | None
    status: int | None = None  # HTTP status written; None when the connection was closed without one
    fault: str | None = None  # the injected fault kind, if any
    responded_monotonic: float | None = None
    text: str | None = None  # assistant text of a 200
    usage: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """A 200 carrying a normal (non-faulted) answer: what a paid, useful call looks like."""
        return self.status == 200 and self.fault is None

    @property
    def api_key(self) -> str | None:
        """The bearer token sent, if any."""
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def prompt(self) -> str:
        return prompt_text(self.body) if isinstance(self.body, dict) else ""

    @property
    def images(self) -> list[str]:
        return image_urls(self.body) if isinstance(self.body, dict) else []


@dataclass(eq=False)  # identity-hashable, so a Fault can key set_fault_rates()
class Fault:
    """What to do instead of a normal answer.

    ``kind``: an HTTP status ("429", "500", "503", any of "400".."599") answered at once with a
    Cohere-like JSON error body; ``"timeout"`` (hold the request ``seconds``, then close without a
    response: set the client timeout lower); ``"drop"`` (close the connection without a response);
    ``"malformed"`` (200 whose body is truncated JSON); ``"invalid_caption"`` (200, valid v2 envelope,
    but the text is prose instead of the JSON caption).

    Rate-limit headers (only sent when set): ``retry_after`` -> ``Retry-After`` verbatim (the SDK only
    honours whole seconds), ``retry_after_ms`` -> ``retry-after-ms``, ``ratelimit_reset_s`` ->
    ``X-RateLimit-Reset: now + s`` (unix seconds). ``headers`` adds any others; ``message`` replaces the
    error message.
    """

    kind: str
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    ratelimit_reset_s: float | None = None
    seconds: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.status is None and self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}: use an HTTP status 400-599 or one of {FAULT_KINDS}"
            )

    @property
    def status(self) -> int | None:
        """The HTTP status of a status fault, None for the other kinds."""
        return int(self.kind) if self.kind.isdigit() and 400 <= int(self.kind) <= 599 else None

    def response_headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            value = self.retry_after
            headers["Retry-After"] = (
                str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            )
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{self.retry_after_ms:g}"
        if self.ratelimit_reset_s is not None:
            headers["X-RateLimit-Reset"] = str(math.ceil(time.time() + self.ratelimit_reset_s))
        headers.update(self.headers)
        return headers


_STATUS_MESSAGES = {
    400: "invalid request",
    401: "invalid api token",
    404: "not found",
    408: "request timeout",
    429: "You are past the per-minute request limit, please wait and try again later.",
    500: "internal server error, this has been reported to our developers",
    502: "bad gateway",
    503: "service unavailable, please try again later",
    504: "gateway timeout",
}


@dataclass
class _Scripted:
    fault: Fault
    key: str | None
    remaining: int | None  # None: every matching request until cleared


@dataclass
class _Image:
    size: tuple[int, int] | None  # None for http(s) URLs, which this server does not fetch
    detail: str | None
    nbytes: int


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------


class FakeCohereServer:
    """A Cohere v2 chat endpoint on ``http://127.0.0.1:<port>``, served from a background thread.

    Nothing happens at construction; ``start()`` (or ``with``) binds the socket. All settings are plain
    attributes that may be changed while requests are in flight (``server.latency_s = 0.5``).

    Args:
        latency_s: seconds each answered chat request is held before its answer (status faults,
            drops and auth/validation errors are answered at once), so concurrency is measurable.
        api_key: the only accepted bearer token; None accepts any non-empty one.
        responder: ``body -> str | dict`` producing the assistant text (a dict is JSON-encoded).
        key_fn: ``body -> str | None``, the key each chat request is counted under.
        models: accepted model names (others get 404 like the real API); None accepts any.
        host, port: where to listen; port 0 picks a free one.
        input_overhead_tokens, output_overhead_tokens: added to ``usage.tokens`` but not to
            ``usage.billed_units``, as the real API does (its tokens include the prompt template), so
            cost code that reads the wrong field is caught.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        api_key: str | None = None,
        responder: Responder = default_responder,
        key_fn: KeyFunction = default_key,
        models: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        input_overhead_tokens: int = 64,
        output_overhead_tokens: int = 2,
    ) -> None:
        self.latency_s = latency_s
        self.api_key = api_key
        self.responder = responder
        self.key_fn = key_fn
        self.models = set(models) if models is not None else None
        self.host = host
        self.port = port
        self.input_overhead_tokens = input_overhead_tokens
        self.output_overhead_tokens = output_overhead_tokens
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._script: list[_Scripted] = []
        self._rates: list[tuple[Fault, float]] = []
        self._rng = random.Random(0)
        self._in_flight = 0
        self.max_in_flight = 0
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeCohereServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-cohere", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake held requests and close open connections. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    close = stop

    def __enter__(self) -> FakeCohereServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The ``base_url`` to give the Cohere client."""
        if self._httpd is None:
            raise RuntimeError("server not started: use `with FakeCohereServer() as server` or .start()")
        return f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:
        where = self.url if self._httpd else "stopped"
        return f"<FakeCohereServer {where} requests={len(self._requests)} latency_s={self.latency_s}>"

    # -- what was received -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == CHAT_PATH]

    def count(self, key: str | None = None, *, status: int | None = None) -> int:
        """Chat requests received (under ``key`` if given; with HTTP ``status`` if given)."""
        return sum(
            1
            for r in self.chat_requests
            if (key is None or r.key == key) and (status is None or r.status == status)
        )

    def successes(self, key: str | None = None) -> int:
        """Requests answered 200 with a normal answer (``RecordedRequest.ok``)."""
        return sum(1 for r in self.chat_requests if r.ok and (key is None or r.key == key))

    def counts_by_key(self) -> dict[str | None, int]:
        return dict(Counter(r.key for r in self.chat_requests))

    def successes_by_key(self) -> dict[str | None, int]:
        return dict(Counter(r.key for r in self.chat_requests if r.ok))

    def repeated_successes(self) -> dict[str | None, int]:
        """Keys answered successfully more than once: a paid call that was repeated. Should be ``{}``."""
        return {k: n for k, n in self.successes_by_key().items() if n > 1}

    @property
    def in_flight(self) -> int:
        """Chat requests currently being handled (``max_in_flight`` keeps the peak)."""
        return self._in_flight

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` chat requests have arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(1 for r in self._requests if r.path == CHAT_PATH) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def reset(self) -> None:
        """Forget recorded requests, scripted and random faults and the in-flight peak."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._rates.clear()
            self.max_in_flight = self._in_flight

    # -- faults ------------------------------------------------------------------------------------

    def inject(
        self, kind: str | int | Fault, *, times: int | None = 1, key: str | None = None, **params: Any
    ) -> Fault:
        """Queue a fault for the next ``times`` chat requests (None: all, until ``clear_faults``).

        With ``key`` only requests under that key consume it. Faults are consumed in the order they were
        injected. ``params`` are :class:`Fault` fields: ``inject("429", retry_after=1)``,
        ``inject("timeout", seconds=5)``, ``inject("500", key=k, times=None)``.
        """
        fault = kind if isinstance(kind, Fault) else Fault(str(kind), **params)
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._script.append(_Scripted(fault, key, times))
        return fault

    def set_fault_rates(self, rates: Mapping[str | Fault, float], *, seed: int = 0) -> None:
        """Random faults for soak tests: each chat request not hit by a scripted fault draws one uniform
        number from ``random.Random(seed)`` and gets kind K with probability ``rates[K]``.

        Keys are kinds (default parameters) or :class:`Fault` instances. An empty mapping turns it off.
        Draw order follows arrival order, so concurrent runs are reproducible only in distribution.
        """
        parsed = [(k if isinstance(k, Fault) else Fault(str(k)), float(p)) for k, p in rates.items()]
        if any(p < 0 for _, p in parsed) or sum(p for _, p in parsed) > 1:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1, got {dict(rates)}")
        with self._lock:
            self._rates = parsed
            self._rng = random.Random(seed)

    def clear_faults(self) -> None:
        with self._lock:
            self._script.clear()
            self._rates = []

    @property
    def pending_faults(self) -> int:
        """Scripted faults not yet consumed (a ``times=None`` fault counts as one)."""
        with self._lock:
            return sum(1 if s.remaining is None else s.remaining for s in self._script)

    def _next_fault(self, key: str | None) -> Fault | None:
        with self._lock:
            for i, scripted in enumerate(self._script):
                if scripted.key is None or scripted.key == key:
                    if scripted.remaining is not None:
                        scripted.remaining -= 1
                        if scripted.remaining == 0:
                            del self._script[i]
                    return scripted.fault
            if self._rates:
                draw = self._rng.random()
                for fault, rate in self._rates:
                    if draw < rate:
                        return fault
                    draw -= rate
        return None

    # -- request handling (called from handler threads) -------------------------------------------

    def _record(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        key = None
        if path == CHAT_PATH and isinstance(body, dict):
            try:
                key = self.key_fn(body)
            except Exception:  # a broken key function must not break the server; the key is just None
                traceback.print_exc()
        with self._changed:
            record = RecordedRequest(
                index=len(self._requests),
                method=method,
                path=path,
                headers=headers,
                body=body,
                raw_size=len(raw),
                received_at=time.time(),
                received_monotonic=time.monotonic(),
                key=key,
            )
            self._requests.append(record)
            self._changed.notify_all()
        return record

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _check_auth(self, headers: Mapping[str, str]) -> None:
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or (self.api_key is not None and token != self.api_key):
            raise _BadRequest("invalid api token", status=401)

    def _validate(self, body: Any) -> list[_Image]:
        """Check the body like the real API; returns (size, detail) per image for token accounting."""
        if not isinstance(body, dict):
            raise _BadRequest("invalid request: the body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("invalid request: model must be a non-empty string")
        if self.models is not None and model not in self.models:
            raise _BadRequest(f"model '{model}' not found, make sure the model name is correct", status=404)
        if body.get("stream"):
            raise _BadRequest("invalid request: this fake server does not implement streaming (stream=true)")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("invalid request: messages must be a non-empty list")
        images: list[_Image] = []
        total_bytes = 0
        for m, message in enumerate(messages):
            where = f"messages[{m}]"
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise _BadRequest(f"invalid request: {where}.role must be one of {', '.join(ROLES)}")
            if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
                raise _BadRequest(f"invalid request: {where}.tool_call_id is required for tool messages")
            content = message.get("content")
            if content is None and message["role"] == "assistant":
                continue
            if isinstance(content, str):
                continue
            if not isinstance(content, list):
                raise _BadRequest(
                    f"invalid request: {where}.content must be a string or a list of content items"
                )
            for c, item in enumerate(content):
                where_item = f"{where}.content[{c}]"
                kind = item.get("type") if isinstance(item, dict) else None
                if kind == "text":
                    if not isinstance(item.get("text"), str):
                        raise _BadRequest(f"invalid request: {where_item}.text must be a string")
                elif kind == "image_url":
                    if message["role"] != "user":
                        raise _BadRequest(
                            f"invalid request: {where_item}: images are only allowed in user messages"
                        )
                    images.append(self._validate_image(item.get("image_url"), where_item))
                    total_bytes += images[-1].nbytes
                elif kind in ("document", "thinking"):
                    continue
                else:
                    raise _BadRequest(
                        f"invalid request: {where_item}.type must be 'text' or 'image_url', got {kind!r}"
                    )
        if len(images) > MAX_IMAGES:
            raise _BadRequest(f"invalid request: at most {MAX_IMAGES} images per request, got {len(images)}")
        if total_bytes > MAX_IMAGE_BYTES:
            raise _BadRequest(
                f"invalid request: images total {total_bytes} bytes, more than {MAX_IMAGE_BYTES}"
            )
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _BadRequest("invalid request: max_tokens must be a positive integer")
        temperature = body.get("temperature")
        if temperature is not None and (not isinstance(temperature, int | float) or temperature < 0):
            raise _BadRequest("invalid request: temperature must be a non-negative number")
        response_format = body.get("response_format")
        if response_format is not None and (
            not isinstance(response_format, dict)
            or response_format.get("type") not in ("text", "json_object")
        ):
            raise _BadRequest("invalid request: response_format.type must be 'text' or 'json_object'")
        return images

    def _validate_image(self, image: Any, where: str) -> _Image:
        if not isinstance(image, dict) or not isinstance(image.get("url"), str):
            raise _BadRequest(f"invalid request: {where}.image_url must be an object with a string 'url'")
        detail = image.get("detail")
        if detail is not None and detail not in IMAGE_DETAILS:
            raise _BadRequest(
                f"invalid request: {where}.image_url.detail must be one of {', '.join(IMAGE_DETAILS)}"
            )
        url = image["url"]
        if url.startswith(("http://", "https://")):
            return _Image(None, detail, 0)
        if not url.startswith("data:"):
            raise _BadRequest(f"invalid request: {where}.image_url.url must be a data URI or an http(s) URL")
        decoded = _decode_data_uri(url)
        if decoded is None:
            raise _BadRequest(
                f"invalid request: {where}.image_url.url must be data:image/(png|jpeg|webp|gif);base64,<valid base64>"
            )
        data = decoded[1]
        size = _image_size(data)
        if size is None:
            raise _BadRequest(
                f"invalid request: {where}: could not decode the image (not PNG, JPEG, WEBP or GIF)"
            )
        return _Image(size, detail, len(data))

    def _usage(self, body: dict[str, Any], images: list[_Image], text: str) -> dict:
        billed_in = _text_tokens(prompt_text(body)) + sum(_image_tokens(i.size, i.detail) for i in images)
        billed_out = max(1, _text_tokens(text))
        return {
            "billed_units": {"input_tokens": billed_in, "output_tokens": billed_out},
            "tokens": {
                "input_tokens": billed_in + self.input_overhead_tokens,
                "output_tokens": billed_out + self.output_overhead_tokens,
            },
        }

    def _chat_response(
        self, body: dict[str, Any], images: list[_Image], text: str
    ) -> tuple[dict[str, Any], str]:
        finish_reason = "COMPLETE"
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and _text_tokens(text) > max_tokens:
            text, finish_reason = text[: max_tokens * CHARS_PER_TOKEN], "MAX_TOKENS"
        response = {
            "id": str(uuid.uuid4()),
            "finish_reason": finish_reason,
            "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            "usage": self._usage(body, images, text),
        }
        return response, text

    def _hold(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _stats(self) -> dict[str, Any]:
        chats = self.chat_requests
        return {
            "requests": len(chats),
            "successes": sum(r.ok for r in chats),
            "by_status": {str(k): n for k, n in Counter(r.status for r in chats).items()},
            "by_key": {str(k): n for k, n in Counter(r.key for r in chats).items()},
            "successes_by_key": {str(k): n for k, n in Counter(r.key for r in chats if r.ok).items()},
            "in_flight": self._in_flight,
            "max_in_flight": self.max_in_flight,
            "pending_faults": self.pending_faults,
            "latency_s": self.latency_s,
        }


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, fake: FakeCohereServer) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every response carries Content-Length
    server_version = "FakeCohere/1.0"
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK adds ~40 ms to
    # every keep-alive request, which would swamp injected latencies and benchmark numbers.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the records instead
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # -- plumbing ----------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self, status: int, payload: Any, *, headers: Mapping[str, str] | None = None, raw: bytes | None = None
    ) -> None:
        data = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up (e.g. its timeout fired): nothing to tell it
            self.close_connection = True

    def _error(self, record: RecordedRequest | None, status: int, message: str, **kw: Any) -> None:
        if record is not None:
            record.status, record.responded_monotonic = status, time.monotonic()
        self._send(status, {"id": str(uuid.uuid4()), "message": message}, **kw)

    def _close_without_response(self, record: RecordedRequest) -> None:
        record.status, record.responded_monotonic = None, time.monotonic()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- verbs -------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path.startswith(ADMIN_PREFIX):
            self._admin(b"")
            return
        self._chat_or_404(self._read_body())

    def do_POST(self) -> None:
        raw = self._read_body()
        if self.path.startswith(ADMIN_PREFIX):
            self._admin(raw)
            return
        self._chat_or_404(raw)

    def _chat_or_404(self, raw: bytes) -> None:
        fake = self.server.fake
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = fake._record(self.command, self.path.split("?")[0], headers, raw)
        if record.path != CHAT_PATH or self.command != "POST":
            self._error(
                record, 404, f"{self.command} {self.path}: not found (this fake serves POST {CHAT_PATH})"
            )
            return
        fake._enter()
        try:
            self._chat(fake, record)
        finally:
            fake._leave()

    def _chat(self, fake: FakeCohereServer, record: RecordedRequest) -> None:
        try:
            fake._check_auth(record.headers)
            if record.body is None:
                raise _BadRequest("invalid request: the body must be valid JSON")
            images = fake._validate(record.body)
        except _BadRequest as exc:
            self._error(record, exc.status, str(exc))
            return
        body: dict[str, Any] = record.body

        fault = fake._next_fault(record.key)
        if fault is not None:
            record.fault = fault.kind
            if fault.status is not None:
                message = fault.message or _STATUS_MESSAGES.get(fault.status, "error")
                self._error(record, fault.status, message, headers=fault.response_headers())
                return
            if fault.kind == "drop":
                self._close_without_response(record)
                return
            if fault.kind == "timeout":
                fake._hold(fault.seconds)
                self._close_without_response(record)
                return

        fake._hold(fake.latency_s)
        if fault is not None and fault.kind == "malformed":
            response, _ = fake._chat_response(body, images, default_responder(body))
            raw = json.dumps(response).encode()
            record.status, record.responded_monotonic = 200, time.monotonic()
            self._send(200, None, raw=raw[: len(raw) // 2], headers=fault.headers)
            return
        if fault is not None and fault.kind == "invalid_caption":
            text = fault.message or _INVALID_CAPTION_TEXT
        else:
            try:
                produced = fake.responder(body)
                text = produced if isinstance(produced, str) else json.dumps(produced, ensure_ascii=False)
            except Exception as exc:  # show the test author what broke, as a 500 the SDK maps cleanly
                traceback.print_exc()
                record.fault = "responder_error"
                self._error(record, 500, f"fake responder raised {type(exc).__name__}: {exc}")
                return
        response, record.text = fake._chat_response(body, images, text)
        record.usage = response["usage"]
        record.status, record.responded_monotonic = 200, time.monotonic()
        self._send(200, response, headers={"x-request-id": response["id"]})

    def _admin(self, raw: bytes) -> None:
        """``GET /_fake/stats``; ``POST /_fake/inject`` ``{"kind", "times", "key", ...Fault fields}``;
        ``POST /_fake/latency`` ``{"latency_s"}``; ``POST /_fake/reset``. For a server in another process.
        """
        fake = self.server.fake
        action = self.path[len(ADMIN_PREFIX) :].split("?")[0]
        try:
            args = json.loads(raw) if raw else {}
            if action == "stats" and self.command == "GET":
                self._send(200, fake._stats())
            elif action == "inject" and self.command == "POST":
                fault = fake.inject(
                    args.pop("kind"), times=args.pop("times", 1), key=args.pop("key", None), **args
                )
                self._send(200, {"injected": asdict(fault)})
            elif action == "latency" and self.command == "POST":
                fake.latency_s = float(args["latency_s"])
                self._send(200, {"latency_s": fake.latency_s})
            elif action == "reset" and self.command == "POST":
                fake.reset()
                self._send(200, {"reset": True})
            else:
                self._send(404, {"message": f"unknown admin call {self.command} {self.path}"})
        except (KeyError, TypeError, ValueError) as exc:
            self._send(400, {"message": f"bad admin call: {exc!r}"})


# ---------------------------------------------------------------------------------------------------
# CLI: a server in its own process
# ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; the first stdout line is the URL.

    ``python -m tests.fakes.cohere_server --port 0 --latency 0.2 --fault-rate 429=0.05 --seed 1``
    Stats: ``curl $URL/_fake/stats``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.cohere_server", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each answered request is held")
    parser.add_argument("--api-key", default=None, help="only accept this bearer token (default: any)")
    parser.add_argument("--model", action="append", dest="models", help="accepted model (repeatable)")
    parser.add_argument(
        "--fault-rate", action="append", default=[], metavar="KIND=RATE", help="e.g. 429=0.05"
    )
    parser.add_argument("--retry-after-ms", type=float, default=None, help="retry-after-ms on random faults")
    parser.add_argument("--timeout-seconds", type=float, default=30.0, help="hold time of random timeouts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--responder", default=None, metavar="MODULE:FUNCTION", help="answer with this body -> text function"
    )
    args = parser.parse_args(argv)

    responder: Responder = default_responder
    if args.responder:
        import importlib

        module, _, name = args.responder.partition(":")
        responder = getattr(importlib.import_module(module), name)
    server = FakeCohereServer(
        latency_s=args.latency, api_key=args.api_key, models=args.models, host=args.host, port=args.port,
        responder=responder,
    )  # fmt: skip
    rates: dict[str | Fault, float] = {}
    for spec in args.fault_rate:
        kind, _, rate = spec.partition("=")
        rates[Fault(kind, retry_after_ms=args.retry_after_ms, seconds=args.timeout_seconds)] = float(rate)
    if rates:
        server.set_fault_rates(rates, seed=args.seed)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    print(server.url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        print(json.dumps(server._stats()), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
