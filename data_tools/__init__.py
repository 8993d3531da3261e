"""Mirada's data tools: collect, draft, review and preference building on a shared workspace."""

__version__ = "0.1.0"
