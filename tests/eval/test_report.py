"""End to end: mirada eval on a workspace, its report, reruns, bad inputs and the stored-generations path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_tools.cli import main as mirada
from data_tools.workspace import Workspace
from eval.cli import run_eval
from eval.config import EvalConfig
from tests.eval.builders import build_workspace, image_id, predictions, write_jsonl


def config(**kwargs: object) -> EvalConfig:
    settings = {
        "split": "all",
        "min_group_size": 3,
        "bootstrap": {"resamples": 100},
        "charts": False,
        **kwargs,
    }
    return EvalConfig.model_validate(settings)


def read(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def test_report_shows_the_aligned_system_better_and_a_rerun_is_identical(eval_ws, predictions_file):
    folder, report = run_eval(eval_ws, config(charts=True), predictions=[predictions_file])
    assert sorted(p.name for p in folder.iterdir()) == [
        "charts",
        "per_image.jsonl",
        "report.json",
        "report.md",
    ]
    assert sorted(p.name for p in (folder / "charts").iterdir()) == [
        "differences.png", "language_fidelity.png", "per_country.png", "wins_losses.png",
    ]  # fmt: skip
    assert report["systems"] == ["aligned", "base"] and report["base_system"] == "base"
    overall = {s: report["results"][s]["overall"]["metrics"] for s in report["systems"]}
    assert overall["aligned"]["chrf++"]["value"] > overall["base"]["chrf++"]["value"]
    assert overall["base"]["wrong_culture"]["value"] == pytest.approx(50.0)  # the PE and ES images
    assert overall["aligned"]["wrong_culture"]["value"] == 0.0
    assert overall["base"]["language_fidelity"]["value"] == pytest.approx(75.0)  # Spanish for pt-BR images
    chrf = overall["aligned"]["chrf++"]
    assert chrf["ci_low"] <= chrf["value"] <= chrf["ci_high"]
    [comparison] = report["comparisons"]
    diff = comparison["groups"]["overall"]["metrics"]["chrf++"]
    assert diff["difference"] > 0 and diff["ci_low"] > 0 and diff["p_value"] < 0.05
    assert set(report["results"]["base"]["by_country"]) == {"BR", "ES", "MX", "PE"}
    assert all(
        not e["small"] for e in report["results"]["base"]["by_country"].values()
    )  # 3 images... >= 4? no
    markdown = (folder / "report.md").read_text(encoding="utf-8")
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in markdown and "not comparable" in markdown
    rows = [
        json.loads(line) for line in (folder / "per_image.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rows) == 24 and {r["system"] for r in rows} == {"aligned", "base"}
    pe_base = next(r for r in rows if r["system"] == "base" and r["country"] == "PE")
    assert pe_base["wrong_culture_terms"] == ["mexicano"]

    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    run_eval(eval_ws, config(charts=True), predictions=[predictions_file])
    after = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert [r["status"] for r in eval_ws.runs("eval")] == ["completed", "completed"]


def test_mirada_eval_command_prints_signatures_and_flags_small_groups(tmp_path, capsys):
    build_workspace(tmp_path / "ws", copies=2).close()
    preds = write_jsonl(tmp_path / "p.jsonl", predictions(copies=2))
    rc = mirada(["eval", "-w", str(tmp_path / "ws"), "--predictions", str(preds), "--split", "all", "--name", "demo",
                 "--set", "bootstrap.resamples=50"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "BLEU signature: nrefs:1" in out and "aligned vs base" in out
    report = read(tmp_path / "ws" / "exports" / "eval" / "demo")
    assert all(
        entry["small"] for entry in report["results"]["aligned"]["by_country"].values()
    )  # 2 < 10 images
    assert "⚠ small" in (tmp_path / "ws" / "exports" / "eval" / "demo" / "report.md").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_id", "name images this workspace does not have"),
        ("broken_line", "preds.jsonl:3: not valid JSON"),
        ("no_references", "none of the 12 images has a reference caption"),
        ("split_without_prefs", "no recorded prefs splits"),
        ("missing_system", "no captions for system(s) dpo"),
    ],
)
def test_bad_inputs_give_one_clear_line_and_write_nothing(tmp_path, capsys, case, message):
    build_workspace(tmp_path / "ws", references=case != "no_references").close()
    rows = predictions()
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if case == "unknown_id":
        lines.append(json.dumps({"image_id": "f" * 64, "system": "base", "caption": "x"}))
    if case == "broken_line":
        lines[2] = '{"image_id": "abc", "system": '
    (tmp_path / "preds.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["eval", "-w", str(tmp_path / "ws"), "--predictions", str(tmp_path / "preds.jsonl")]
    argv += [] if case == "split_without_prefs" else ["--split", "all"]
    argv += ["--systems", "base,dpo"] if case == "missing_system" else []
    assert mirada(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ws" / "exports" / "eval").exists()
    with Workspace.open(tmp_path / "ws", create=False) as ws:
        assert ws.runs("eval") == []


def test_one_system_is_said_plainly_and_still_scored(eval_ws, tmp_path):
    preds = write_jsonl(tmp_path / "one.jsonl", predictions(systems=("aligned",)))
    _, report = run_eval(eval_ws, config(), predictions=[preds])
    assert report["comparisons"] == [] and report["base_system"] is None
    assert any("only one system (aligned)" in note for note in report["notes"])


def test_systems_covering_different_images_are_compared_on_the_common_ones(eval_ws, tmp_path):
    rows = [r for r in predictions() if not (r["system"] == "base" and r["image_id"] == image_id(0))]
    rows.append({"file_name": "plato_0.jpg", "system": "other", "caption": ""})
    rows += [{**r, "system": "other"} for r in predictions() if r["system"] == "aligned"][1:]
    _, report = run_eval(eval_ws, config(), predictions=[write_jsonl(tmp_path / "p.jsonl", rows)])
    assert report["images"] == 11
    assert any("aligned: 1 image(s) that not every system has" in n for n in report["notes"])
    assert report["systems"] == ["aligned", "base", "other"]


def test_a_failure_while_writing_leaves_the_previous_report_untouched(eval_ws, predictions_file, monkeypatch):
    folder, _ = run_eval(eval_ws, config(charts=True), predictions=[predictions_file])
    before = (folder / "report.json").read_bytes()

    def broken(*args: object, **kwargs: object) -> list[str]:
        raise OSError("disk full")

    monkeypatch.setattr("eval.charts.write_charts", broken)
    with pytest.raises(OSError, match="disk full"):
        run_eval(eval_ws, config(charts=True, bootstrap={"seed": 5}), predictions=[predictions_file])
    assert (folder / "report.json").read_bytes() == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["all"]
    assert eval_ws.runs("eval")[-1]["status"] == "failed"


def test_eval_reads_the_captions_mirada_generate_stored_on_the_split_prefs_recorded(
    tmp_path, tiny_model, capsys
):
    """generate -> eval end to end through the workspace's real generations and split tables."""
    from data_tools.workspace.generations import Generation
    from vlm.generate.cli import main as generate

    ws = build_workspace(tmp_path / "ws")
    try:
        ws.record_splits("fotos", {image_id(n): ("test" if n < 8 else "train") for n in range(12)}, None)
        status = generate(["-w", str(ws.root), "--model", str(tiny_model("qwen2_5_vl")), "--base-name", "base",
                           "--set", "decoding.max_new_tokens=6", "--quiet"])  # fmt: skip
        assert status == 0, capsys.readouterr().err
        stored = {r["image_id"]: r["caption"].strip() for r in ws.generations(["base"])}
        assert set(stored) == {image_id(n) for n in range(8)}  # the recorded test split, nothing else
        aligned = [r for r in predictions() if r["system"] == "aligned"]
        ws.add_generations(
            [Generation(system="aligned", key=f"k{n}", image_id=r["image_id"], caption=r["caption"], model="m")
             for n, r in enumerate(aligned)], None,
        )  # fmt: skip
        folder, report = run_eval(ws, config(split="test"))
    finally:
        ws.close()
    assert report["images"] == 8 and report["split"] == "test"
    assert set(report["systems"]) == {"base", "aligned"} and report["base_system"] == "base"
    chrf = {s: report["results"][s]["overall"]["metrics"]["chrf++"]["value"] for s in ("base", "aligned")}
    assert chrf["aligned"] > 50 > chrf["base"]  # random tiny-model text vs the human-like captions
    rows = [
        json.loads(line) for line in (folder / "per_image.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {r["image_id"]: r["caption"] for r in rows if r["system"] == "base"} == stored


def test_the_number_of_worker_processes_does_not_change_the_report(eval_ws, predictions_file):
    folder, _ = run_eval(eval_ws, config(workers=1), predictions=[predictions_file])
    one = (folder / "report.json").read_bytes()
    run_eval(eval_ws, config(workers=2), predictions=[predictions_file])
    assert (folder / "report.json").read_bytes() == one
