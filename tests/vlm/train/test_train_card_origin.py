"""The Model Card states who judged the training data only as the data's own card records it.

Real `mirada prefs` exports (reviewed by people, or by `mirada review simulate`'s simulated
annotators) are read back by ``data_origin``; a run on the simulated export, from a tiny random
base, says both at the top of its card and never claims that people reviewed the captions.
"""

from __future__ import annotations

import pytest

from data_tools.config import load_config
from data_tools.prefs.build import build_prefs
from data_tools.prefs.config import PrefsConfig
from data_tools.prefs.publish import export_all
from tests.data_tools.prefs.prefs_helpers import Answer, Scenario, four, tacos
from vlm.train.card import data_origin, data_sentence

PEOPLE_CLAIM = "people reviewed and"


def _export(workspace, users: tuple[str, str], name: str):
    scenario = Scenario(workspace)
    tacos(scenario)
    for index, country in enumerate(("MX", "PE", "BR", "AR", "MX", "PE")):
        answers = [
            Answer(users[0], ["A", "B", "C", "D"], {"A", "B"}),
            Answer(users[1], ["A", "B", "D", "C"], {"A"}),
        ]
        scenario.image(
            four(f"Foto{index}"), answers, country=country, language="es-MX" if country != "BR" else "pt-BR"
        )
    scenario.aggregate()
    config = load_config(PrefsConfig, None, ["formats=[sft]", "splits.test_size=0.25"])
    return export_all(workspace, config, build_prefs(workspace, config), base_name=name)[0].path


def test_data_origin_reads_the_dataset_card(workspace, tmp_path):
    assert data_origin(str(_export(workspace, ("ana", "bruno"), "people"))) == "people"
    assert data_origin(str(tmp_path)) == "unknown"  # no card: nothing is claimed


def test_a_run_on_simulated_answers_from_a_tiny_base_says_so_at_the_top(workspace, tiny_model, tmp_path):
    from tests.vlm.train.train_helpers import FAST
    from vlm.train.cli import parse_args
    from vlm.train.trainer import run_training

    workspace.set_project(owner="equipo-tacos", code_url="https://github.com/equipo-tacos/mirada")
    data = _export(workspace, ("simulated-ana", "simulated-bruno"), "sim")
    assert data_origin(str(data)) == "simulated"
    settings = parse_args(
        [
            "method=sft",
            f"model_name_or_path={tiny_model('qwen2_5_vl')}",
            f"dataset_name={data}",
            f"output_dir={tmp_path / 'run'}",
            *FAST,
            "load_in_4bit=false",
            "eval_strategy=no",
            "eval_on_start=false",
            "model_card=true",
        ]
    )
    card = (run_training(*settings).output_dir / "README.md").read_text()
    body = card.split("\n---\n", 1)[1]
    top = body[: body.index("**Motivation and impact.**")]
    assert "tiny model with random weights" in top
    assert "SIMULATED" in top
    assert PEOPLE_CLAIM not in card
    # the workspace's project settings name the dataset's Hub repository and the code, not /tmp folders
    assert f"https://huggingface.co/datasets/equipo-tacos/{data.name}" in card
    assert "https://github.com/equipo-tacos/mirada" in card
    assert str(tmp_path) not in card and str(workspace.root) not in card and "/tmp/" not in card


@pytest.mark.parametrize("origin", ["people", "machine", "unknown"])
def test_only_people_reviewed_data_is_called_reviewed_by_people(origin):
    for method in ("dpo", "kto", "sft"):
        assert (PEOPLE_CLAIM in data_sentence(method, origin)) == (origin == "people")
