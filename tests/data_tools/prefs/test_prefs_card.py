"""The Dataset Card parses back with ``DatasetCard.load`` and its numbers are the data's; the CLI end to end."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

from data_tools.config import load_config
from data_tools.prefs.build import build_prefs, kto_weights
from data_tools.prefs.card import size_category
from data_tools.prefs.cli import main
from data_tools.prefs.config import PrefsConfig
from data_tools.prefs.publish import export_all, hub_repo_ids
from data_tools.workspace import Workspace
from tests.data_tools.prefs.prefs_helpers import Answer, Scenario, four, tacos

PLACES = [("MX", "es-MX", "food", "CC-BY-4.0"), ("MX", "es-MX", "festival", "CC0-1.0"), ("PE", "es-PE", "craft", "CC0-1.0"),
          ("BR", "pt-BR", "food", "CC-BY-SA-4.0"), ("ES", "ca", "festival", "CC0-1.0"), ("AR", "es-AR", "food", "CC0-1.0"),
          ("MX", "es-MX", "food", "CC0-1.0"), ("PT", "pt-PT", "architecture", "CC-BY-4.0")]  # fmt: skip


def fill(ws, users=("ana", "bruno")) -> Scenario:
    scenario = Scenario(ws)
    tacos(scenario)
    for index, (country, language, category, license) in enumerate(PLACES):
        disagree = index % 3 == 1
        answers = [Answer(users[0], ["A", "B", "C", "D"], {"A", "B"}),
                   Answer(users[1], ["B", "A", "D", "C"] if disagree else ["A", "B", "C", "D"], {"A"} if disagree else {"A", "B"})]  # fmt: skip
        scenario.image(four(f"Foto{index}"), answers, country=country, language=language, category=category,
                       license=license, author=None if index == 2 else "Autora", perturbations={"D": "stereotype"})  # fmt: skip
    scenario.aggregate()
    return scenario


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One reviewed workspace exported in all three formats, shared by the read-only tests (charts cost ~1 s)."""
    with Workspace.open(tmp_path_factory.mktemp("card") / "ws") as workspace:
        fill(workspace)
        config = load_config(PrefsConfig, None, ["splits.test_size=0.25", "name=fotos"])
        result = build_prefs(workspace, config)
        yield workspace, result, {e.fmt: e for e in export_all(workspace, config, result, base_name="fotos")}


def table_after(text: str, heading: str) -> list[list[str]]:
    """The first markdown table after ``heading``, as rows of cells (header row first)."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not all(set(c) <= {"-"} for c in cells):
            rows.append(cells)
    return rows


def as_dict(table: list[list[str]], value_column: str) -> dict[str, str]:
    header = table[0]
    return {row[0]: row[header.index(value_column)] for row in table[1:]}


def all_rows(path: Path) -> list[dict]:
    loaded = datasets.load_from_disk(str(path))
    return [row for split in loaded for row in loaded[split].remove_columns("images").to_list()]


def test_outputs_have_hackathon_names_and_load(exported):
    workspace, result, exports = exported
    assert sorted(e.name for e in exports.values()) == [
        "fotos_image_dpo",
        "fotos_image_kto",
        "fotos_image_sft",
    ]
    for export in exports.values():
        loaded = datasets.load_from_disk(str(export.path))
        assert sum(len(loaded[s]) for s in loaded) == len(result.rows[export.fmt])
        assert (export.path / "README.md").is_file() and (export.path / "prefs_config.yaml").is_file()
        assert (export.path / "guidelines" / "guidelines_es.md").is_file()
        assert (export.path / "guidelines" / "guidelines_pt.md").is_file()  # pt-BR and pt-PT images
    assert (workspace.exports_dir / "prefs" / "report.json").is_file()


@pytest.mark.parametrize("fmt", ["dpo", "kto", "sft"])
def test_card_parses_back_and_numbers_match_the_data(exported, fmt):
    workspace, result, exports = exported
    export = exports[fmt]
    card = DatasetCard.load(export.path / "README.md")
    rows = all_rows(export.path)
    images = {r["image_id"]: r for r in rows}
    header = card.data.to_dict()
    assert header["license"] == "apache-2.0"
    assert header["language"] == sorted({r["language"].split("-")[0] for r in rows})
    assert header["size_categories"] == [size_category(len(rows))] == ["n<1K"]
    assert "image-text-to-text" in header["task_categories"] and header["pretty_name"]
    assert {fmt, "image"} <= set(header["tags"]) and header["annotations_creators"] == ["expert-generated"]
    text = card.text

    loaded = datasets.load_from_disk(str(export.path))
    splits = table_after(text, "## Dataset structure")
    assert {r[0]: (int(r[1]), int(r[2])) for r in splits[1:]} == {
        s: (len(loaded[s]), len(set(loaded[s]["image_id"]))) for s in loaded
    }
    for column, heading in (("country", "### By country"), ("language", "### By language variety"),
                            ("category", "### By category")):  # fmt: skip
        table = table_after(text, heading)
        assert {k: int(v) for k, v in as_dict(table, "rows").items()} == Counter(r[column] for r in rows)
        assert {k: int(v) for k, v in as_dict(table, "images").items()} == Counter(
            i[column] for i in images.values()
        )

    strategies = table_after(text, "### By candidate strategy")
    if fmt == "dpo":
        assert {k: int(v) for k, v in as_dict(strategies, "chosen").items() if int(v)} == Counter(
            r["chosen_strategy"] for r in rows
        )
        assert {k: int(v) for k, v in as_dict(strategies, "rejected").items() if int(v)} == Counter(r["rejected_strategy"] for r in rows)  # fmt: skip
    elif fmt == "kto":
        assert {k: int(v) for k, v in as_dict(strategies, "desirable").items() if int(v)} == Counter(r["strategy"] for r in rows if r["label"])  # fmt: skip
        train = loaded["train"]["label"]
        weights = kto_weights(sum(train), len(train) - sum(train))
        assert f"desirable_weight={weights['desirable_weight']}," in text
        assert f"undesirable_weight={weights['undesirable_weight']}," in text
    else:
        assert {k: int(v) for k, v in as_dict(strategies, "rows").items()} == Counter(
            r["strategy"] for r in rows
        )

    filters = {(r[0], r[1]): int(r[3]) for r in table_after(text, "### Filters")[1:]}
    assert {k[1]: v for k, v in filters.items() if k[0] == "record"} == result.report["records"]["dropped"]
    assert {k[1]: v for k, v in filters.items() if k[0] == "caption"} == result.report["captions"]["dropped"]
    assert {k[1]: v for k, v in filters.items() if k[0] not in ("record", "caption")} == result.report[fmt][
        "dropped"
    ]

    licences = as_dict(table_after(text, "## Licences"), "images")
    assert {k: int(v) for k, v in licences.items()} == Counter(i["license"] for i in images.values())
    assert "ShareAlike" in text and "attribution" in text and "1 images have no recorded author" in text

    lengths = table_after(text, "### Caption length")
    assert int(lengths[1][1]) == (len(rows) if fmt != "kto" else sum(r["label"] for r in rows))

    agreement = as_dict(table_after(text, "**Per-image agreement**"), "value")
    values = [i["agreement"] for i in images.values() if i["agreement"] is not None]
    assert int(agreement["images with 2+ annotators"]) == len(values)
    assert float(agreement["mean agreement"]) == pytest.approx(sum(values) / len(values), abs=5e-4)
    assert int(agreement["images with full agreement"]) == sum(v == 1 for v in values)

    for chart in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (export.path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(re.findall(r"!\[", text)) == 6
    for placeholder in ("[More Information Needed]", "TODO", "{{", "| None |", "WORKSPACE", "<PATH"):
        assert placeholder not in text
    assert "SIMULATED" not in text and str(workspace.root.parent) not in text  # no local absolute paths
    assert "bruno" not in text  # annotators are A1, A2… in the card
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    compile(snippet, "card-snippet", "exec")
    assert "Missing countries" in text and "BO (Bolivia)" in text  # computed from the expected-country list
    assert "**Countries:**" in text and "over-represented: MX (Mexico)" in text


def test_simulated_annotators_are_flagged(workspace):
    fill(workspace, users=("simulated-ana", "simulated-bruno"))
    config = load_config(PrefsConfig, None, ["formats=[sft]"])
    export = export_all(workspace, config, build_prefs(workspace, config), base_name="sim")[0]
    card = DatasetCard.load(export.path / "README.md")
    assert "SIMULATED" in card.text and "The review answers are simulated" in card.text
    assert "in this build they were simulated" in card.text
    assert card.data.annotations_creators == ["machine-generated"]


def test_cli_end_to_end_records_the_run(workspace, capsys):
    fill(workspace)
    code = main(
        [
            "--workspace",
            str(workspace.root),
            "--format",
            "dpo,kto",
            "--name",
            "otra",
            "--set",
            "splits.seed=3",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "otra_image_dpo" in out and "low_agreement" in out and "suggested desirable_weight=" in out
    root = workspace.exports_dir / "prefs"
    assert (root / "otra_image_dpo").is_dir() and (root / "otra_image_kto").is_dir()
    assert not (root / "otra_image_sft").exists() and not list(root.glob(".*partial"))
    run = workspace.runs("prefs")[-1]
    assert run["status"] == "completed" and run["config"]["formats"] == ["dpo", "kto"]
    assert run["config"]["splits"]["seed"] == 3 and run["summary"]["dpo"]["rows"] > 0


def test_cli_errors_are_one_clear_line(workspace, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["--workspace", str(workspace.root)]) == 2
    assert "run `mirada review pull`" in capsys.readouterr().err
    assert workspace.runs("prefs")[-1]["status"] == "failed"
    fill(workspace)
    assert main(["--workspace", str(workspace.root), "--push-to-hub", "org/fotos"]) == 2
    err = capsys.readouterr().err
    assert "HF_TOKEN" in err and "nothing was built" in err
    assert not (workspace.exports_dir / "prefs").exists()
    assert main(["--workspace", str(workspace.root), "--format", "dpo,ppo"]) == 2
    assert "--format" in capsys.readouterr().err
    assert main(["--workspace", str(workspace.root), "--name", "bad name!"]) == 2
    assert main(["--workspace", str(workspace.root), "--set", "filters.min_agreement=2"]) == 2
    assert main(["--workspace", str(workspace.root), "--set", "filters.max_caption_chars=5"]) == 2
    captured = capsys.readouterr()
    assert "no rows passed the filters" in captured.err and "too_long_caption" in captured.out
    with pytest.raises(SystemExit) as done:
        main(["--help-config"])
    assert done.value.code == 0 and "max_pairs_per_image: 4" in capsys.readouterr().out


def test_push_sends_data_then_card_and_charts(workspace, monkeypatch, capsys):
    """No network: the two Hub calls are recorded, and the pushed card points at the repository."""
    fill(workspace)
    calls = []
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_123")
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub",
                        lambda self, repo_id, **kw: calls.append(("data", repo_id, sorted(self), kw["token"])))  # fmt: skip
    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder",
                        lambda self, **kw: calls.append(("card", kw["repo_id"], sorted(kw["allow_patterns"]), kw["folder_path"])))  # fmt: skip
    assert (
        main(["--workspace", str(workspace.root), "--format", "kto", "--push-to-hub", "org/fotos_image_kto"])
        == 0
    )
    assert [c[:3] for c in calls] == [("data", "org/fotos_image_kto", ["test", "train"]),
                                      ("card", "org/fotos_image_kto", ["README.md", "charts/*", "guidelines/*", "prefs_config.yaml"])]  # fmt: skip
    card = DatasetCard.load(Path(calls[1][3]) / "README.md")
    assert 'load_dataset("org/fotos_image_kto")' in card.text
    assert card.data.to_dict()["configs"][0]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    assert "https://huggingface.co/datasets/org/fotos_image_kto" in capsys.readouterr().out
    assert "hf_test_token_123" not in str(workspace.runs("prefs")[-1])


def test_hub_repo_ids():
    assert hub_repo_ids("org", "tacos", ["dpo", "kto"]) == {
        "dpo": "org/tacos_image_dpo",
        "kto": "org/tacos_image_kto",
    }
    assert hub_repo_ids("org/comida_image_sft", "x", ["sft"]) == {"sft": "org/comida_image_sft"}
    with pytest.raises(ValueError, match="OWNER"):
        hub_repo_ids("a/b/c", "x", ["dpo"])
