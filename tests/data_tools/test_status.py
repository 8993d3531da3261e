"""``mirada status`` as a user reads it: every run of every stage, whole paths and reasons, and no
stale rejection of an input that was fixed since."""

from __future__ import annotations

import json
import re

from data_tools.collect import CollectConfig, Collector
from data_tools.config import load_config
from data_tools.status import main
from tests.helpers import draw_image, encode


def column(output: str, title: str, index: int) -> str:
    """One column of the rich table printed under ``title``: its folded pieces joined, spaces removed."""
    lines = output[output.index(title) :].splitlines()
    body = []
    for line in lines[1:]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            body.append(line.split("│")[index].strip())
    return squeeze("".join(body))


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_status_lists_every_stage_whole_reasons_and_forgets_fixed_inputs(
    workspace, tmp_path, capsys, monkeypatch
):
    folder = tmp_path / "una_carpeta_con_un_nombre_bastante_largo_para_una_terminal" / "fotos_de_la_fiesta"
    folder.mkdir(parents=True)
    for i in range(2):
        (folder / f"foto_{i}.jpg").write_bytes(encode(draw_image(i, (200, 160))))
    sidecar = folder / "metadata.csv"
    sidecar.write_text(
        "archivo,país,idioma\nfoto_0.jpg,Perú,es-PE\nfoto_1.jpg,Narnia,es-PE\n", encoding="utf-8"
    )
    config = load_config(CollectConfig, None, ["workers=1"])
    Collector(workspace, config).run([str(folder)])
    for stage in ("review-push", "train", "eval"):  # later stages record their runs in the same table
        workspace.finish_run(workspace.start_run(stage, {}), "completed", {"records": 7, "steps": 10})

    monkeypatch.setenv("COLUMNS", "90")
    assert main(["--workspace", str(workspace.root)]) == 0
    shown = capsys.readouterr().out
    assert "…" not in shown  # nothing cut short
    assert squeeze("field 'country' has invalid value 'Narnia'") in column(shown, "rejected inputs (fix", 3)
    assert f"{folder}/foto_1.jpg" in column(shown, "rejected inputs (fix", 1)
    assert column(shown, "runs of every stage", 2) == "collectreview-pushtraineval"
    assert "records7;steps10" in column(shown, "runs of every stage", 6)

    sidecar.write_text(
        "archivo,país,idioma\nfoto_0.jpg,Perú,es-PE\nfoto_1.jpg,Bolivia,es-BO\n", encoding="utf-8"
    )
    summary = Collector(workspace, config).run([str(folder)])
    assert summary.new == 1 and not summary.rejections
    assert main(["--workspace", str(workspace.root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["rejections"] == [] and status["rejected_by_reason"] == {}
    assert status["images"] == 2


def test_a_fixed_sidecar_line_is_no_longer_reported(workspace, tmp_path):
    folder = tmp_path / "fotos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(encode(draw_image(3, (200, 160))))
    config = load_config(CollectConfig, None, ["workers=1"])
    (folder / "metadata.jsonl").write_text(
        '{"file_name": "a.jpg", "language": "es"}\n{broken\n', encoding="utf-8"
    )
    first = Collector(workspace, config).run([str(folder)])
    assert first.rejected == {"invalid_metadata": 1}
    (folder / "metadata.jsonl").write_text('{"file_name": "a.jpg", "language": "es"}\n', encoding="utf-8")
    second = Collector(workspace, config).run([str(folder)])
    assert second.cleared == 1 and workspace.rejections() == []
