"""The judge: a vision-language model that compares captions while seeing the image, calibrated
against the team's own reviews before its win rates are trusted.

Modules: ``prompts`` (judge prompts as versioned data), ``schema`` (validated verdicts),
``pairs`` (both-order verdicts, win rates), ``calibrate`` (agreement with the annotators and the
human ceiling), ``runner`` (the draft stage's runner, ledger and budget, reused for verdicts),
``report`` (judge.json, markdown, charts) and ``cli`` (``mirada judge``).
"""
