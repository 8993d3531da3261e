"""The one base class for failures the user can fix.

Why this exists: every stage raises its own typed error (``ConfigError``, ``PrefsError``,
``ReviewError``, ``SourceError``, ``ModelLoadError``…) so callers can tell them apart, but every
command-line boundary must treat them alike: one actionable line, exit status 2, no traceback
unless ``--verbose``. Subclassing one base lets a boundary write ``except UserError`` once instead
of a tuple that drifts out of date each time a stage adds an error type.

    >>> from data_tools.errors import UserError
    >>> class BudgetTooLow(UserError): ...
    >>> issubclass(BudgetTooLow, Exception)
    True
"""

from __future__ import annotations

__all__ = ["UserError", "one_line"]


class UserError(Exception):
    """A failure the user can fix (bad input, a missing file, an impossible setting); shown as one line."""


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (library errors often append pages of detail)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
