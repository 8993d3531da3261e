"""Train never destroys a run (issue: reliability): each case reproduced first, then guarded.

- an ``output_dir`` holding another finished run is refused unless ``--overwrite``;
- ``--resume`` on a finished run says it is finished instead of training past ``max_steps``;
- ``max_steps`` below 1 (other than TRL's ``-1`` = use epochs) and an ``output_dir`` that is a file
  are one-line errors;
- a run killed mid-way leaves no generic TRL README ("fine-tuned version of [None]");
- a failed Hub push is one line, with no token in it.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from data_tools.errors import UserError
from vlm.train.trainer import run_training

OFF = ["eval_strategy=no", "eval_on_start=false", "load_in_4bit=false"]
CHECKPOINTS = ["save_strategy=steps", "save_steps=1"]


def test_a_finished_run_is_not_replaced_without_overwrite(settings):
    first = run_training(*settings("sft", "qwen2_5_vl", *OFF, "max_steps=1", "seed=1"))
    adapter = (first.output_dir / "adapter_model.safetensors").read_bytes()
    with pytest.raises(UserError, match=r"holds a finished run .*--overwrite") as info:
        run_training(*settings("sft", "qwen2_5_vl", *OFF, "max_steps=1", "seed=2"))
    assert "\n" not in str(info.value)
    assert (first.output_dir / "adapter_model.safetensors").read_bytes() == adapter  # untouched
    replaced = run_training(*settings("sft", "qwen2_5_vl", *OFF, "max_steps=1", "seed=2", "--overwrite"))
    assert replaced.global_step == 1
    assert (replaced.output_dir / "adapter_model.safetensors").read_bytes() != adapter
    sessions = (replaced.output_dir / "mirada_sessions.jsonl").read_text().splitlines()
    assert len(sessions) == 1  # the replaced run's history is gone with it, not mixed in


def test_resume_on_a_finished_run_says_so_and_trains_nothing(settings):
    first = run_training(*settings("sft", "qwen2_5_vl", *OFF, *CHECKPOINTS, "max_steps=2"))
    assert first.global_step == 2
    state = (first.output_dir / "trainer_state.json").read_text()
    with pytest.raises(UserError, match=r"already finished: 2 of max_steps=2") as info:
        run_training(*settings("sft", "qwen2_5_vl", *OFF, *CHECKPOINTS, "max_steps=2", "--resume"))
    assert "\n" not in str(info.value)
    assert (first.output_dir / "trainer_state.json").read_text() == state
    assert not (first.output_dir / "checkpoint-3").exists()


@pytest.mark.parametrize("steps", ["0", "-2"])
def test_max_steps_below_one_is_one_line(settings, steps):
    with pytest.raises(UserError, match=r"max_steps") as info:
        run_training(*settings("sft", "qwen2_5_vl", *OFF, f"max_steps={steps}"))
    assert "\n" not in str(info.value)


def test_an_output_dir_that_is_a_file_is_one_line(settings, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    with pytest.raises(UserError, match=r"output_dir .*a-file is a file") as info:
        run_training(*settings("sft", "qwen2_5_vl", *OFF, f"output_dir={target}"))
    assert "\n" not in str(info.value)
    assert target.read_text() == "not a folder"


class _DieAfterFirstCheckpoint(TrainerCallback):
    """Stands in for a kill right after the first checkpoint is written (what a real kill leaves)."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt


def test_a_killed_run_leaves_no_generic_trl_readme(settings):
    script, args, model_args = settings(
        "sft", "qwen2_5_vl", *OFF, *CHECKPOINTS, "max_steps=3", "model_card=true"
    )
    with pytest.raises(KeyboardInterrupt):
        run_training(script, args, model_args, callbacks=[_DieAfterFirstCheckpoint()])
    output = Path(args.output_dir)
    assert (output / "checkpoint-1").is_dir()
    readmes = [p for p in output.rglob("README.md")]
    assert not any("fine-tuned version of" in p.read_text() for p in readmes), readmes


class _EchoingHub(http.server.BaseHTTPRequestHandler):
    """A Hub endpoint that fails every request and echoes the Authorization header back (as some proxies do)."""

    status = 401

    def _fail(self) -> None:
        body = json.dumps(
            {"error": f"Invalid credentials in Authorization header: {self.headers.get('Authorization')}"}
        )
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_PUT = do_HEAD = _fail

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("status", [401, 500])
def test_a_failed_push_is_one_redacted_line(tiny_model, pref_data, tmp_path, monkeypatch, capsys, status):
    from data_tools.cli import main as mirada
    from tests.vlm.train.train_helpers import FAST

    handler = type("Hub", (_EchoingHub,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "hf_ECHOtoken0123456789abcdefSECRET"
    monkeypatch.setenv("HF_TOKEN", token)
    import huggingface_hub.constants

    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_OFFLINE", False
    )  # the tests' default; this server is local
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        code = mirada(
            [
                "train",
                "method=sft",
                f"model_name_or_path={tiny_model('qwen2_5_vl')}",
                f"dataset_name={pref_data('sft')}",
                f"output_dir={tmp_path / 'run'}",
                *FAST,
                *OFF,
                "--push_to_hub",
                "--hub_model_id",
                "org/mirada-test",
            ]
        )
    finally:
        server.shutdown()
    out = capsys.readouterr()
    errors = [line for line in out.err.splitlines() if "error:" in line]
    assert code == 2
    assert (
        len(errors) == 1 and f"HTTP {status}" in errors[0] and "push to org/mirada-test failed" in errors[0]
    )
    assert "Traceback" not in out.err
    assert "Authorization header: Bearer ***" in errors[0]  # the echo reached the message, redacted
    assert token not in out.out + out.err
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()  # the run is kept
