"""URL lists (CSV or JSONL with a ``url`` column plus metadata) and a polite, defensive downloader.

Downloads stream with a byte cap (a server cannot make us read 10 GB), check the declared
content type and then the magic bytes (a server cannot pass HTML off as a JPEG), retry transient
failures with backoff that honours ``Retry-After``, and run a bounded number at a time so we do not
hammer a museum's server. Fetching happens in collect's worker threads; this module holds no state.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field

from data_tools import __version__
from data_tools.config import StageConfig
from data_tools.records import METADATA_FIELDS
from data_tools.secrets import public_url, redact
from data_tools.sources.base import SourceConfig, SourceError, SourceItem, fingerprint_of, map_columns

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadConfig(StageConfig):
    """How URL sources are downloaded."""

    concurrency: int = Field(
        4, ge=1, le=64, description="downloads in flight at once (be polite to small servers)"
    )
    timeout_s: float = Field(20.0, gt=0, description="connect/read timeout per request, in seconds")
    max_bytes: int = Field(30_000_000, ge=1, description="downloads larger than this are aborted")
    retries: int = Field(3, ge=0, description="extra attempts on timeouts, connection errors, 429 and 5xx")
    backoff_s: float = Field(
        1.0, ge=0, description="first retry delay; doubles each attempt unless Retry-After says otherwise"
    )
    max_retry_after_s: float = Field(60.0, ge=0, description="longest Retry-After we are willing to wait")
    user_agent: str = Field(
        f"Mirada/{__version__} (cultural image collection)", description="User-Agent header sent"
    )


def sniff_image_type(head: bytes) -> str | None:
    """Image type from the first bytes, or None: ``sniff_image_type(b'\\x89PNG\\r\\n\\x1a\\n…') == 'png'``."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def download(client: httpx.Client, url: str, config: DownloadConfig) -> bytes:
    """Fetch one image URL under the caps in ``config``; raise :class:`SourceError` with a reason."""
    last = "no attempt made"
    for attempt in range(config.retries + 1):
        delay = config.backoff_s * (2**attempt)
        try:
            with client.stream("GET", url) as response:
                if response.status_code in _RETRY_STATUS:
                    last = f"HTTP {response.status_code}"
                    hinted = _retry_after(response)
                    if hinted is not None:
                        if hinted > config.max_retry_after_s:
                            raise SourceError(
                                "download_failed", f"{last}, Retry-After {hinted:.0f}s is too long"
                            )
                        delay = hinted
                elif response.status_code >= 400:  # 404, 403…: final, not retried now or on a rerun
                    raise SourceError("http_error", f"HTTP {response.status_code}")
                else:
                    return _read_body(response, config)
        except httpx.TimeoutException:
            last = f"timed out after {config.timeout_s}s"
        except httpx.TransportError as exc:
            last = redact(f"{type(exc).__name__}: {exc}")  # never a signed URL's credentials
        if attempt < config.retries:
            time.sleep(delay)
    raise SourceError("download_failed", f"{last} after {config.retries + 1} attempts")


def _read_body(response: httpx.Response, config: DownloadConfig) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > config.max_bytes:
        raise SourceError("file_too_large", f"Content-Length {declared} exceeds max_bytes={config.max_bytes}")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise SourceError("not_an_image", f"the server says Content-Type {content_type!r}")
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > config.max_bytes:
            raise SourceError("file_too_large", f"more than max_bytes={config.max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if sniff_image_type(body[:16]) is None:
        raise SourceError("not_an_image", f"the body does not start with an image signature ({body[:8]!r})")
    return body


def make_client(config: DownloadConfig) -> httpx.Client:
    """An HTTP client whose pool matches the concurrency limit; the caller closes it."""
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    return httpx.Client(
        timeout=config.timeout_s,
        limits=limits,
        follow_redirects=True,
        headers={"User-Agent": config.user_agent},
    )


def _read_list(path: Path) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    if path.suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"{path.name} line {number}", None, f"not valid JSON: {exc}"
                    continue
                if isinstance(row, dict):
                    yield f"{path.name} line {number}", row, None
                else:
                    yield f"{path.name} line {number}", None, "each line must be a JSON object"
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield f"{path.name} row {number}", dict(row), None


def iter_url_list(
    path: Path, config: SourceConfig, config_sig: str, client: httpx.Client, download_config: DownloadConfig
) -> Iterator[SourceItem]:
    """One item per listed URL; fetching downloads it (collect runs fetches concurrently)."""
    path = path.resolve()
    source = f"urls:{path}"
    url_column = config.columns.get("url", "url")
    for origin, row, error in _read_list(path):
        if error or row is None:
            yield SourceItem(
                input_key=f"{source}#{origin}",
                source=source,
                display=origin,
                fingerprint=fingerprint_of(error),
                fetch=None,
                error=SourceError("invalid_metadata", error or "unreadable"),
            )
            continue
        url = str(row.get(url_column) or "").strip()
        if not url.startswith(("http://", "https://")):
            yield SourceItem(
                input_key=f"{source}#{origin}",
                source=source,
                display=origin,
                fingerprint=fingerprint_of(url),
                fetch=None,
                error=SourceError("invalid_url", f"{url_column}={public_url(url)!r} is not an http(s) URL"),
            )
            continue
        meta = map_columns(row, config, METADATA_FIELDS)
        # The full URL (user:password@, a pre-signed query) is only used to fetch; what is stored,
        # logged and exported is the public part, so credentials never reach an export or a card.
        shown = public_url(url)
        meta["source_url"] = public_url(str(meta.get("source_url") or url))
        yield SourceItem(
            input_key=f"url:{shown}",
            source=source,
            display=shown,
            fingerprint=fingerprint_of(shown, meta, config_sig),
            fetch=lambda u=url: download(client, u, download_config),
            metadata=meta,
            origin=origin,
        )
