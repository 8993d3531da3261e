"""A scripted judge for the local Cohere-compatible server, with planted agreement and position bias.

The responder reads the two captions the judge prompt shows (between ``<<<`` and ``>>>``) and
answers as a judge with known properties would:

* ``bias`` of the pairs (chosen by a hash of the unordered pair, so both orders agree on it) get
  "A" whatever the order: pure position bias, which both-order judging must turn into ties;
* of the other pairs, ``agreement`` pick the caption ``better`` names, the rest the other one.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from tests.fakes.cohere_server import prompt_text

_CAPTION = re.compile(r"<<<(.*?)>>>", re.DOTALL)


def draw(*parts: str) -> float:
    """A deterministic uniform number in [0, 1) from ``parts``."""
    return int(hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12], 16) / 16**12


class ScriptedJudge:
    def __init__(self, better: dict[frozenset[str], str], *, agreement: float = 1.0, bias: float = 0.0,
                 style: str = "ok", seed: str = "s") -> None:  # fmt: skip
        self.better = better
        self.agreement = agreement
        self.bias = bias
        self.style = style  # ok | tie | malformed | fenced
        self.seed = seed

    def is_biased(self, a: str, b: str) -> bool:
        return draw(self.seed, "bias", *sorted((a, b))) < self.bias

    def agrees(self, a: str, b: str) -> bool:
        return draw(self.seed, "agree", *sorted((a, b))) < self.agreement

    def __call__(self, body: dict[str, Any]) -> str:
        captions = _CAPTION.findall(prompt_text(body))
        if self.style == "malformed":
            return "I think the first caption is better because it names the dish."
        if len(captions) == 1:  # rubric
            return json.dumps({"scores": dict.fromkeys(("cultural_accuracy", "specificity", "respect",
                               "faithfulness", "fluency"), 4), "reason": "ok"})  # fmt: skip
        a, b = captions[0], captions[1]
        if self.style == "tie":
            winner = "tie"
        elif self.is_biased(a, b):
            winner = "A"
        else:
            best = self.better[frozenset((a, b))]
            if not self.agrees(a, b):
                best = b if best == a else a
            winner = "A" if best == a else "B"
        answer = json.dumps(
            {"criteria": {"cultural_accuracy": winner}, "winner": winner, "reason": "scripted"}
        )
        return f"```json\n{answer}\n```" if self.style == "fenced" else answer


def first_wins(body: dict[str, Any]) -> str:
    """A valid verdict for any request (the benchmark's server answers with it): always the first caption."""
    return json.dumps({"criteria": {"respect": "A"}, "winner": "A", "reason": "benchmark"})
