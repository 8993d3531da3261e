"""How the Model Card names models and command lines: Hub ids kept, local folders by name only."""

from __future__ import annotations

from vlm.train.card import portable_command, public_name


def test_public_name_keeps_hub_ids_and_shortens_local_folders(tmp_path):
    local = tmp_path / "models" / "tiny-qwen"
    local.mkdir(parents=True)
    assert public_name("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert public_name(str(local)) == "tiny-qwen"
    cached = tmp_path / "hub" / "models--Qwen--Qwen2.5-VL-3B-Instruct" / "snapshots" / "abc123"
    cached.mkdir(parents=True)
    assert public_name(str(cached)) == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert public_name(None) is None


def test_portable_command_drops_directories_but_keeps_urls_and_settings(tmp_path):
    line = (f"mirada train model_name_or_path={tmp_path}/m/tiny --output_dir={tmp_path}/runs/r1 "
            "code_url=https://github.com/a/b max_steps=2")  # fmt: skip
    shown = portable_command(line)
    assert str(tmp_path) not in shown
    assert (
        shown
        == "mirada train model_name_or_path=tiny --output_dir=r1 code_url=https://github.com/a/b max_steps=2"
    )
