"""The Dataset Card states only facts, as a reader sees them: escaped metadata, project links, no local
paths, a readable example, countries left out said with why, varieties without a draft template
counted, and charts whose legends never cover a bar and whose count axes have integer ticks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib.figure
import pytest

from data_tools.config import load_config
from data_tools.prefs.build import build_prefs
from data_tools.prefs.config import PrefsConfig
from data_tools.prefs.publish import export_all
from data_tools.workspace import Workspace
from tests.data_tools.prefs.prefs_helpers import Answer, Scenario, four, tacos

HOSTILE = '<img src=x onerror="alert(1)">'


def two_annotators(index: int) -> list[Answer]:
    return [
        Answer("ana", ["A", "B", "C", "D"], {"A", "B"}),
        Answer("bruno", ["A", "B", "C", "D"], {"A", "B"}),
    ]


def build(workspace: Workspace, *overrides: str) -> dict:
    config = load_config(
        PrefsConfig, None, ["splits.test_size=0.25", "name=fotos", "formats=[dpo]", *overrides]
    )
    result = build_prefs(workspace, config)
    return {e.fmt: e for e in export_all(workspace, config, result, base_name="fotos")}


def card(exports: dict, fmt: str = "dpo") -> str:
    return (exports[fmt].path / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def reviewed(workspace: Workspace) -> Scenario:
    scenario = Scenario(workspace)
    tacos(scenario)
    for index, (country, category) in enumerate([("PE", "craft"), ("AR", HOSTILE), ("ES", "festival")]):
        scenario.image(four(f"Foto{index}"), two_annotators(index), country=country, category=category,
                       language={"PE": "es-PE", "AR": "es-AR", "ES": "es-ES"}[country])  # fmt: skip
    return scenario


def test_metadata_is_rendered_as_text_in_tables_and_bullets(workspace, reviewed):
    reviewed.aggregate()
    text = card(build(workspace))
    assert "<img" not in text and "onerror=" in text  # shown as characters, never as an element
    assert "&lt;img src=x onerror=" in text


def test_project_settings_link_the_card_and_unset_ones_warn(workspace, reviewed, caplog):
    reviewed.aggregate()
    with caplog.at_level(logging.WARNING, logger="data_tools.prefs"):
        text = card(build(workspace))
    assert any("mirada project set owner=" in r.getMessage() for r in caplog.records)
    root = str(workspace.root.resolve().parent)
    assert root not in text and "/tmp/" not in text
    assert 'load_from_disk("ws/exports/prefs/fotos_image_dpo")' in text

    workspace.set_project(owner="equipo-andino", code_url="https://github.com/equipo-andino/mirada-fotos")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="data_tools.prefs"):
        text = card(build(workspace))
    assert not any("mirada project set" in r.getMessage() for r in caplog.records)
    assert 'load_dataset("equipo-andino/fotos_image_dpo")' in text
    assert "code: <https://github.com/equipo-andino/mirada-fotos>" in text


def test_no_local_path_from_any_run_config_reaches_the_card(workspace, reviewed, tmp_path):
    photos = tmp_path / "fotos_de_ana"
    workspace.finish_run(workspace.start_run("collect", {"sources": [f"folder:{photos}"], "metadata_file": None}),
                         "completed", {})  # fmt: skip
    reviewed.aggregate()
    text = card(build(workspace))
    assert "folder:fotos_de_ana" in text
    assert str(tmp_path) not in text and "/tmp/" not in text


def test_example_row_shows_readable_text(workspace):
    scenario = Scenario(workspace)
    noise = {
        name: (strategy, f"\ufffd fgF\ufffd Atu\ufffdTraDes {name}")
        for name, (strategy, _) in four("x").items()
    }
    scenario.image(noise, two_annotators(0))
    scenario.image(four("Ceviche"), two_annotators(1), country="PE", language="es-PE")
    scenario.aggregate()
    text = card(build(workspace, "splits.test_size=0"))
    example = text[text.index("An example") : text.index("## How it was made")]
    assert "\ufffd" not in example and "Ceviche" in example

    with Workspace.open(workspace.root.parent / "noise") as only_noise:
        scenario = Scenario(only_noise)
        for index in range(2):
            scenario.image({k: (s, f"{c} {index}") for k, (s, c) in noise.items()}, two_annotators(index))
        scenario.aggregate()
        text = card(build(only_noise, "splits.test_size=0"))
    assert "No row of this dataset has readable text" in text


def test_countries_collected_but_left_out_are_said_with_why(workspace, reviewed):
    # Chile: drafted but never reviewed; Brazil: an unpublishable licence; Bolivia: never collected.
    scenario = reviewed
    scenario.image(four("Empanadas"), [], country="CL", language="es-CL", datasets=())
    scenario.image(four("Feijoada"), two_annotators(5), country="BR", language="pt-BR", license=None)
    # Colombia: reviewed and kept, but a single candidate makes no DPO pair.
    single = [Answer(user, ["A"], {"A"}) for user in ("ana", "bruno")]
    scenario.image({"A": ("cultural", "Arepas de choclo recién hechas en Medellín.")}, single, country="CO",
                   language="es-CO")  # fmt: skip
    scenario.aggregate()
    text = card(build(workspace))
    missing = next(line for line in text.splitlines() if "**Missing countries:**" in line)
    assert "BO (Bolivia)" in missing and "BR (Brazil)" not in missing and "CL (Chile)" not in missing
    left = next(line for line in text.splitlines() if "**Collected but not in this dataset:**" in line)
    assert "BR (Brazil): 1 image (licence not publishable)" in left
    assert "CL (Chile): 1 image (not reviewed yet)" in left
    assert "CO (Colombia): 1 image (made no DPO row" in left


def test_images_without_a_draft_template_are_counted_in_prefs_and_the_card(workspace, reviewed, capsys):
    from data_tools.prefs.cli import main

    reviewed.image(four("Chuño"), [], country="BO", language="ay", datasets=())
    reviewed.aggregate()
    assert main(["--workspace", str(workspace.root), "--format", "dpo", "--name", "fotos"]) == 0
    assert "1 collected image(s) in ay were never drafted" in capsys.readouterr().out
    report = json.loads((workspace.exports_dir / "prefs" / "report.json").read_text(encoding="utf-8"))
    assert report["untemplated"] == {"ay": 1}
    text = (workspace.exports_dir / "prefs" / "fotos_image_dpo" / "README.md").read_text(encoding="utf-8")
    assert "1 image in ay could not be drafted: no draft template exists" in text
    left = next(line for line in text.splitlines() if "**Collected but not in this dataset:**" in line)
    assert "BO (Bolivia): 1 image (no draft template for ay)" in left


def test_charts_have_integer_count_ticks_and_legends_beside_the_bars(workspace, reviewed, monkeypatch):
    reviewed.aggregate()
    seen: dict[str, tuple[list[tuple[str, list[float]]], bool]] = {}
    original = matplotlib.figure.Figure.savefig

    def measure(fig, *args, **kwargs):
        """Ticks and legend placement as drawn, taken just before the chart is written."""
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        ticks = []
        for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
            low, high = sorted(axis.get_view_interval())
            ticks.append((label, [t for t in axis.get_ticklocs() if low <= t <= high]))
        legend = ax.get_legend()
        beside = legend is None or legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
        seen[Path(str(args[0])).stem] = (ticks, beside)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", measure)
    build(workspace)
    assert set(seen) >= {"countries", "strategies", "caption_length", "agreement"}
    for name, (ticks, beside) in seen.items():
        assert beside, f"{name}: the legend overlaps the plot"
        assert any("(count)" in label for label, _ in ticks), name
        for label, locations in ticks:
            if "(count)" in label or "(words)" in label:
                assert all(float(t).is_integer() for t in locations), (name, label, locations)
