"""``mirada review import`` with answer files as people write them: every problem reported at once, never a crash.

Each test writes the file a reviewer would (Spanish labels, ``"2,1,3,4"`` rankings, typos, hostile
values) and checks what the user sees: the labels stored, or every bad line named in one error and
nothing imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.review.config import ReviewConfig
from data_tools.review.items import problems_by_slot
from data_tools.review.service import ReviewError, ReviewService

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def exported(collected, server, tmp_path):
    """A drafted workspace whose review tasks were exported; returns it with two records' ids."""
    from tests.data_tools.draft.draft_helpers import run_draft

    run_draft(collected, server)
    ReviewService(collected, ReviewConfig()).export_jsonl(tmp_path / "tasks.jsonl")
    items = sorted(collected.review_items().values(), key=lambda item: item.record_id)
    return collected, items


def write(path: Path, lines: list[object | bytes]) -> Path:
    with path.open("wb") as handle:
        for line in lines:
            handle.write(
                (line if isinstance(line, bytes) else json.dumps(line, ensure_ascii=False).encode()) + b"\n"
            )
    return path


def base(item, user: str = "ana") -> dict:
    return {"dataset": item.dataset, "record_id": item.record_id, "user": user}


def test_spanish_and_portuguese_words_are_accepted(exported, tmp_path):
    ws, items = exported
    first, second, third = items[:3]
    answers = write(
        tmp_path / "respuestas.jsonl",
        [
            {**base(first), "status": "Enviado", "ranking": "2,1,3,4", "appropriate": ["candidato_2"],
             "problems": ["estereotipo", "Variedad incorrecta"], "correction": None},
            {**base(second), "status": "descartado", "ranking": ["candidato 3", "Candidato_1"],
             "problems": "país equivocado; alucinación"},
            {**base(third, "bea"), "status": "enviada", "ranking": "candidato_4 > candidato_2",
             "problems": {"candidato_4": ["estereótipo"], "candidate_2": ["variedade incorreta"]},
             "appropriate": "4"},
        ],
    )  # fmt: skip
    summary = ReviewService(ws, ReviewConfig()).import_jsonl(answers)
    assert summary.responses == 3 and summary.by_status == {"submitted": 2, "discarded": 1}
    stored = {(r.record_id, r.username): r for r in ws.review_responses()}
    one = stored[(first.record_id, "ana")]
    assert sorted(one.problems) == ["stereotype", "wrong_variety"]  # not [] as before: the flag is kept
    slots = first.slots
    assert one.ranking == {slots["candidate_2"]: 1, slots["candidate_1"]: 2, slots["candidate_3"]: 3,
                           slots["candidate_4"]: 4}  # fmt: skip
    assert one.acceptable == {key: slot == "candidate_2" for slot, key in slots.items()}
    two = stored[(second.record_id, "ana")]
    assert two.status == "discarded" and sorted(two.problems) == ["hallucination", "wrong_culture"]
    assert two.ranking == {second.slots["candidate_3"]: 1, second.slots["candidate_1"]: 2}
    three = stored[(third.record_id, "bea")]
    assert sorted(three.problems) == ["stereotype", "wrong_variety"]
    # which caption has which problem, in the form the aggregation reads (as Argilla stores it)
    assert problems_by_slot(three.raw["values"]) == {
        "candidate_4": ["stereotype"],
        "candidate_2": ["wrong_variety"],
    }
    assert three.acceptable[third.slots["candidate_4"]] is True


def test_every_malformed_line_is_reported_at_once_and_nothing_is_imported(exported, tmp_path):
    ws, items = exported
    item = items[0]
    good = {**base(item), "ranking": ["candidate_1", "candidate_2"]}
    lines: list[object | bytes] = [
        good,  # 1: fine on its own
        {**good, "ranking": {"candidate_1": "first"}},  # 2: ranking object with a word as rank
        json.dumps(good)[:-1].encode() + b', "ranking": NaN}',  # 3: NaN
        {**good, "ranking": 3},  # 4: a number
        {**good, "ranking": [{"rank": 1}, {"rank": 2}]},  # 5: ranks without values
        {**good, "appropriate": 2},  # 6: a number
        {**good, "record_id": [item.record_id]},  # 7: a list as record_id
        json.dumps({**good, "user": "caro"}).encode().replace(b"caro", b"c\xe9ro"),  # 8: Latin-1 byte
        {**good, "user": "dani", "ranking": ["candidate_1", "candidate_1"]},  # 9: duplicated slot
        {**good, "user": "eva", "ranking": ["candidate_9"]},  # 10: unknown slot
        {**good, "user": "fer", "ranking": {"candidate_1": -1}},  # 11: negative rank
        {**good, "user": "gus", "ranking": {"candidate_1": 10**30}},  # 12: huge rank
        good,  # 13: the same user again for the same record
        {**good, "user": "hugo", "problems": ["feo"]},  # 14: unknown label
        {"dataset": item.dataset, "record_id": item.record_id, "ranking": ["candidate_1"]},  # 15: no user
        {**good, "user": "ines", "status": "quizás"},  # 16: unknown status
        {**good, "user": "juan", "correction": 5},  # 17: correction as a number
        [good],  # 18: not an object
        b"[" * 100_000,  # 19: nested too deeply
        b'{"dataset": "x", "record_id": "y", "user": "z", "ranking": '
        + b"9" * 5000
        + b"}",  # 20: 5,000 digits
        b"{broken",  # 21
    ]
    path = write(tmp_path / "answers.jsonl", lines)
    with pytest.raises(ReviewError) as info:
        ReviewService(ws, ReviewConfig()).import_jsonl(path)
    message = str(info.value)
    assert "nothing was imported" in message
    for number in range(2, 22):
        assert f"line {number}:" in message, (number, message)
    assert "line 1:" not in message
    for fragment in ("NaN", "must be a list", "without a candidate", "record_id",
                     "UTF-8", "candidate_1 appears twice", "unknown candidate 'candidate_9'", "outside 1..4",
                     "first on line 1", "unknown label 'feo'", "stereotype (estereotipo", "'user' is missing",
                     "'quizás'", "correction must be text", "nested too deeply"):  # fmt: skip
        assert fragment in message, fragment
    assert ws.review_responses() == []


def test_cli_import_lists_every_problem_in_one_error(exported, tmp_path):
    ws, items = exported
    path = write(
        tmp_path / "answers.jsonl",
        [{**base(items[0]), "ranking": "2,2"}, {**base(items[1]), "problems": ["bonito"]}, b"\xff\xfe"],
    )
    result = subprocess.run(
        [sys.executable, "-m", "data_tools.cli", "review", "import", "-w", str(ws.root), "--file", str(path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "3 problem(s)" in result.stderr
    assert all(f"line {n}:" in result.stderr for n in (1, 2, 3))
    assert ws.review_responses() == []
