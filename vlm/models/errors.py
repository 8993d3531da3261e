"""The loading layer's one error type."""

from __future__ import annotations

from data_tools.errors import UserError

__all__ = ["ModelLoadError"]


class ModelLoadError(UserError):
    """A model, processor or adapter that cannot be loaded as asked; the message is one line saying why."""
