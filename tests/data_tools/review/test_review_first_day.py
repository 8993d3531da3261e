"""Review from a new team's side: nothing left out without a word, answers as people write them, a readable chart."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert len(err) == 1 and "nothing to review" in err[0] and names[0] in err[0] and "ay: 1" in err[0]


def test_review_chart_explains_itself_with_whole_counts_and_uncovered_bars(tmp_path):
    from data_tools.review.agreement import plot_review, review_figure

    progress_summary = {"records": 3, "complete": 1, "complete_fraction": 1 / 3,
                        "per_annotator": {"ana": {"submitted": 1}, "bruno": {"submitted": 2, "draft": 1}}}  # fmt: skip
    agreement_summary = {"overlap_records": 1, "ranking_alpha_ordinal": 0.7, "acceptable_alpha_nominal": None,
                         "problems_alpha_nominal": -0.2, "acceptable_fleiss_kappa": None}  # fmt: skip
    fig = review_figure(progress_summary, agreement_summary)
    fig.canvas.draw()
    left, right = fig.axes
    ticks = [t for t in left.get_yticks() if left.get_ylim()[0] <= t <= left.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # 3 responses: no 0.5 ticks
    assert "count" in left.get_ylabel() and left.get_xlabel() == "annotator"
    assert "chance" in right.get_ylabel()
    legend = [t.get_text() for t in right.get_legend().get_texts()]
    assert any(t.startswith("0.8: ") for t in legend) and any(t.startswith("0.667: ") for t in legend)
    assert "lines" not in right.get_title()
    shown = [t.get_text() for t in right.texts]
    assert shown.count("n/a\n(too few answers)") == 2 and "0.70" in shown and "-0.20" in shown
    renderer = fig.canvas.get_renderer()
    for axes in (left, right):
        box = axes.get_legend().get_window_extent(renderer)
        for bar in axes.patches:
            assert not box.overlaps(bar.get_window_extent(renderer)), (
                f"legend covers a bar in {axes.get_title()}"
            )
    path = plot_review(progress_summary, agreement_summary, tmp_path / "chart.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_import_from_the_command_line_names_a_missing_user_and_takes_spanish_statuses(
    drafted, tmp_path, capsys
):
    tasks = tmp_path / "tasks.jsonl"
    assert review_main(["export", "--workspace", str(drafted.root), "--file", str(tasks)]) == 0
    first, second = [json.loads(line) for line in tasks.read_text(encoding="utf-8").splitlines()[:2]]
    answers = [
        {"dataset": first["dataset"], "record_id": first["record_id"], "user": "ana", "status": "enviado",
         "ranking": "2,1,3,4", "problems": ["estereotipo"]},
        {"dataset": second["dataset"], "record_id": second["record_id"], "status": "descartado"},
    ]  # fmt: skip
    path = tmp_path / "respuestas.jsonl"
    path.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers), encoding="utf-8")
    capsys.readouterr()
    assert review_main(["import", "--workspace", str(drafted.root), "--file", str(path)]) != 0
    err = capsys.readouterr().err
    assert "1 problem(s); nothing was imported" in err and "line 2: 'user' is missing" in err
    assert drafted.review_responses() == []
    answers[1]["user"] = "bruno"
    path.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers), encoding="utf-8")
    assert review_main(["import", "--workspace", str(drafted.root), "--file", str(path)]) == 0
    stored = {r.username: r for r in drafted.review_responses()}
    assert stored["ana"].status == "submitted" and stored["ana"].problems == ["stereotype"]
    assert stored["bruno"].status == "discarded"


def test_export_names_images_whose_drafts_failed_or_never_ran(collected: Workspace, server, tmp_path, capsys):
    from tests.data_tools.draft.draft_helpers import run_draft

    run_draft(collected, server, limit=2)
    server.inject("invalid_caption", times=None)
    run_draft(collected, server, "limits.max_invalid_outputs=1", limit=3)
    server.clear_faults()
    failed = {d.image_id for d in collected.drafts(status="failed")}
    done = {d.image_id for d in collected.drafts(status="done")}
    assert failed and done and not failed & done
    names = {
        i.id: Path(collected.image_sources(i.id)[0]["input_key"]).name for i in collected.images(status="ok")
    }
    capsys.readouterr()
    assert (
        review_main(["export", "--workspace", str(collected.root), "--file", str(tmp_path / "t.jsonl")]) == 0
    )
    out = capsys.readouterr().out
    assert f"exported {len(done)} review tasks" in out
    (failed_line,) = [line for line in out.splitlines() if "every draft of theirs failed" in line]
    assert f"{len(failed)} image(s)" in failed_line and "invalid_output" in failed_line
    assert all(names[i] in failed_line for i in failed)
    (undrafted_line,) = [line for line in out.splitlines() if "not drafted yet" in line]
    assert f"{len(names) - len(failed) - len(done)} image(s)" in undrafted_line


def test_round_trip_shows_in_status_and_agreement_is_read_out(drafted, tmp_path, capsys):
    from data_tools.review.simulate import simulate_responses
    from data_tools.status import main as status_main

    root = str(drafted.root)
    assert review_main(["export", "--workspace", root, "--file", str(tmp_path / "tasks.jsonl")]) == 0
    answers = tmp_path / "answers.jsonl"
    simulate_responses(drafted, answers)
    assert review_main(["import", "--workspace", root, "--file", str(answers)]) == 0
    capsys.readouterr()
    assert review_main(["status", "--workspace", root]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "ranking_alpha_ordinal" not in out and "ranking (Krippendorff α, ordinal)" in out
    assert any(word in out for word in ("reliable (≥ 0.8)", "tentative (0.667–0.8)", "low (< 0.667)"))
    assert status_main(["--workspace", root, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    responses = drafted.review_responses()
    assert summary["review"]["records"] == 11 and summary["review"]["responses"] == len(responses) > 0
    assert summary["review"]["annotators"] == len({r.username for r in responses})
    assert sum(summary["review"]["decisions"].values()) == len(drafted.review_decisions())
    stages = [run["stage"] for run in summary["runs"]]
    assert "review-export" in stages and "review-import" in stages
    (exported,) = [run for run in summary["runs"] if run["stage"] == "review-export"]
    assert "tasks 11" in exported["result"]


def test_review_status_before_any_answer_says_so_and_draws_the_chart(drafted, capsys):
    from matplotlib.colors import to_hex

    from data_tools.review.agreement import STATUS_COLORS, review_figure

    assert review_main(["export", "--workspace", str(drafted.root)]) == 0
    capsys.readouterr()
    assert review_main(["status", "--workspace", str(drafted.root)]) == 0  # every measure undefined: no crash
    out = " ".join(capsys.readouterr().out.split())
    assert "0/11 records complete" in out and "too few shared answers to tell" in out and "none yet" in out
    assert (drafted.exports_dir / "review_status.png").stat().st_size > 0
    empty = {"records": 0, "complete": 0, "complete_fraction": 0.0, "per_annotator": {}}
    fig = review_figure(empty, {"overlap_records": 0})
    left = fig.axes[0]
    assert list(left.get_xticks()) == [] and "no answers yet" in [t.get_text() for t in left.texts]
    colors = {t.get_text(): to_hex(h.get_facecolor()) for t, h in zip(left.get_legend().get_texts(),
              left.get_legend().legend_handles, strict=True)}  # fmt: skip
    assert colors == STATUS_COLORS  # the legend keeps its colours with no bar to copy them from


def test_collect_report_names_near_duplicates_by_file_and_keeps_the_status_command_whole(
    sample_dir, tmp_path, capsys, monkeypatch
):
    from data_tools.collect import main as collect_main

    monkeypatch.setenv("COLUMNS", "120")  # narrower than the command: rich would otherwise cut it in two
    ws = tmp_path / "a_rather_long_workspace_folder_name_for_a_narrow_terminal"
    assert collect_main([str(sample_dir), "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "tacos_al_pastor.jpg (" in out and "tacos_copia_whatsapp.jpg (" in out  # what the person named
    assert f"`mirada status --workspace {ws}` for totals" in out.replace("\n", "")
    assert f"`mirada status --workspace {ws}`" in out  # on one line: it can be copied and run


def test_import_mistakes_a_new_user_makes_are_one_clear_line_each(drafted, tmp_path, capsys):
    root = str(drafted.root)
    tasks = tmp_path / "tasks.jsonl"
    assert review_main(["export", "--workspace", root, "--file", str(tasks)]) == 0
    empty = tmp_path / "vacio.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    capsys.readouterr()
    for path, expected in (
        (tmp_path / "no_existe.jsonl", "cannot read the file: No such file or directory"),
        (empty, "the file has no answers"),
    ):
        assert review_main(["import", "--workspace", root, "--file", str(path)]) != 0
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert str(path) in line and expected in line and line.endswith("nothing was imported")
    assert review_main(["import", "--workspace", root, "--file", str(tasks)]) != 0  # the tasks, unanswered
    err = capsys.readouterr().err
    assert "11 problem(s)" in err and err.count("this is an exported task, not an answer") == 11
    assert "'user' is missing" not in err and drafted.review_responses() == []
