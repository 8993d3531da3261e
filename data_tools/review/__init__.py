"""The review stage: people rank, accept and correct drafted captions in Argilla (or via JSONL)."""
