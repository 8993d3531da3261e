"""Keep API keys out of logs, errors, the workspace and cards.

Stages register each secret they read (``register_secret``); every log record and every error
text written to the workspace passes through ``redact``. Keys are only ever read from the
environment, never from YAML, so configs recorded in the workspace cannot contain them.
"""

from __future__ import annotations

import logging

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(record.getMessage())
            record.args = ()
        return True
