"""The draft stage: caption candidates per image from a vision model (Cohere by default).

Light on import: the stage's command line lives in :mod:`data_tools.draft.cli`.
"""
