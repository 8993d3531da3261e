"""Keep API keys and credentials out of logs, errors, the workspace and cards.

Stages register each secret they read (``register_secret``); every log record, every error text
written to the workspace and every stage error printed passes through ``redact``. Keys are only
ever read from the environment, never from YAML, so configs recorded in the workspace cannot
contain them.

URLs carry credentials of their own that nobody registered: ``https://user:password@host/…`` and
pre-signed links (S3 ``X-Amz-Signature``, GCS ``X-Goog-Signature``, Azure SAS ``sig``, ``token=…``).
``public_url`` strips them before a URL is stored (sources, ``source_url``), so they never reach an
export or a card; ``redact`` strips them from any URL inside a message as well.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRETS: set[str] = set()

# Query parameters that authenticate a request (compared case-insensitively). Dropping a harmless
# one costs nothing: the stored URL says where an image came from, it is not used to fetch it again.
_SECRET_PARAMS = frozenset(
    name.lower()
    for name in (
        # AWS S3 / CloudFront pre-signed URLs
        "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "AWSAccessKeyId", "Signature",
        "Policy", "Key-Pair-Id",
        # Google Cloud Storage signed URLs
        "X-Goog-Signature", "X-Goog-Credential", "GoogleAccessId",
        # Azure SAS, generic tokens and keys
        "sig", "signature", "token", "access_token", "id_token", "refresh_token", "auth", "authorization",
        "api_key", "apikey", "key", "password", "passwd", "pwd", "secret", "client_secret", "session",
        "hf_token", "code",
    )
)  # fmt: skip
# An Authorization value echoed back in an error body: "Bearer <token>", "Basic <base64 user:password>".
_AUTH_VALUE = re.compile(r"\b(Bearer|Basic)(\s+)[A-Za-z0-9+/=._~-]{8,}", re.IGNORECASE)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{}]+")


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        _SECRETS.add(value)


def public_url(url: str) -> str:
    """``url`` without user info and without authenticating query parameters.

    ``public_url("https://u:p@h.org/a.jpg?X-Amz-Signature=f00&w=2") == "https://h.org/a.jpg?w=2"``.
    Text that is not a URL with a host comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 literal: keep only what cannot hold a secret
        return "(a URL with credentials)" if "@" in url else url.split("?", 1)[0]
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]  # drop user:password@
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(name, value) for name, value in pairs if name.lower() not in _SECRET_PARAMS]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing to hide: keep it byte for byte (it is part of collect's input keys)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` and every URL made public."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    if "://" in text:
        text = _URL.sub(lambda match: public_url(match.group(0)), text)
    return _AUTH_VALUE.sub(r"\1\2***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True
