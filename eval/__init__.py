"""Mirada's cultural caption evaluation: metrics, LLM judge and per-country reports."""
