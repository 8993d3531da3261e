"""References are human-written only; expected culture terms come from reviewers' decisions and metadata."""

from __future__ import annotations

from data_tools.workspace import DraftRecord
from eval.inputs import load_inputs
from tests.eval.builders import image_id, predictions, write_jsonl


def draft(key: str, image: str, caption: str, terms: list[str]) -> DraftRecord:
    return DraftRecord(
        cache_key=key, image_id=image, strategy="cultural", variant=0, backend="cohere", model="m",
        prompt_version="v1", prompt_language="es", prompt_sha256="0", params={}, status="done", caption=caption,
        cultural_terms=terms,
    )  # fmt: skip


def test_corrections_are_references_drafts_are_not_and_accepted_terms_are_expected(eval_ws, tmp_path):
    peru = image_id(0)
    run = eval_ws.start_run("draft", {})
    eval_ws.save_draft(draft("k-good", peru, "Ceviche con camote.", ["camote", "ají limo"]), run)
    eval_ws.save_draft(draft("k-bad", peru, "Tacos al pastor.", ["tacos al pastor"]), run)
    decision = {"status": "decided", "acceptable": {"k-good": True, "k-bad": False},
                "corrections": ["Ceviche de corvina con camote y choclo."]}  # fmt: skip
    eval_ws.save_review_decisions([("tacos", "r1", peru, decision)], {})
    inputs = load_inputs(
        eval_ws, prediction_files=[write_jsonl(tmp_path / "p.jsonl", predictions())], split="all"
    )
    refs = inputs.references[peru]
    assert "Ceviche de corvina con camote y choclo." in refs
    assert "Ceviche con camote." not in refs and "Tacos al pastor." not in refs
    expected = inputs.expected_terms[peru]
    assert {"camote", "aji limo", "lima"} <= expected  # accepted draft's terms + region
    assert "tacos al pastor" not in expected  # a rejected candidate's term is not expected
    assert "tacos al pastor" in inputs.vocabulary  # but it is a known culture term (precision counts it)
