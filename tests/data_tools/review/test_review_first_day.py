"""Review from a new team's side: nothing left out without a word, answers as people write them, a readable chart."""

from __future__ import annotations

import json

from data_tools.review.cli import main as review_main
from data_tools.workspace import Workspace
from tests.data_tools.test_collect_sidecars import collect, photos


def test_export_names_images_that_no_draft_template_covers(collected: Workspace, server, tmp_path, capsys):
    from tests.data_tools.draft.draft_helpers import run_draft

    folder = tmp_path / "aymara"
    names = photos(folder, 2, start=40)
    lines = ["archivo,país,idioma", f"{names[0]},Bolivia,ay", f"{names[1]},Perú,ay"]
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    collect(collected, folder)
    run_draft(collected, server)
    capsys.readouterr()
    tasks = tmp_path / "tasks.jsonl"
    assert review_main(["export", "--workspace", str(collected.root), "--file", str(tasks)]) == 0
    out = capsys.readouterr().out
    exported = [json.loads(line) for line in tasks.read_text(encoding="utf-8").splitlines()]
    assert len(exported) == 11 and not any(t["language"] == "ay" for t in exported)
    (warning,) = [line for line in out.splitlines() if line.startswith("warning:")]
    assert "2 image(s)" in warning and "ay: 2" in warning and "draft template" in warning
    assert names[0] in warning and names[1] in warning  # the fix is named
    assert "configs/prompts/draft/v1/ay.yaml" in warning


def test_export_with_only_untemplated_images_says_why_nothing_is_there(tmp_path, capsys):
    folder = tmp_path / "fotos"
    names = photos(folder, 1)
    (folder / "metadata.csv").write_text(f"archivo,país,idioma\n{names[0]},Bolivia,ay\n", encoding="utf-8")
    with Workspace.open(tmp_path / "ws") as ws:
        collect(ws, folder)
    capsys.readouterr()
    assert review_main(["export", "--workspace", str(tmp_path / "ws")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run `mirada draft` first" in err[0] and names[0] in err[0] and "ay: 1" in err[0]
