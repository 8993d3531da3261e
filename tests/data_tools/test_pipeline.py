"""``mirada run``: steps in order, skip what finished unchanged, resume after the runner is killed mid-step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.pipeline import load_pipeline, main
from data_tools.stage_args import UserError

ROOT = Path(__file__).resolve().parents[2]

STEP = """
import os, signal, sys
from pathlib import Path
name, root = sys.argv[1], Path(sys.argv[2])
with open(root / "log.txt", "a") as log:
    log.write(" ".join(sys.argv[1:3] + sys.argv[4:]) + "\\n")
(root / "out").mkdir(exist_ok=True)
(root / "out" / name).write_text("done")
if name == "b" and not (root / "killed-once").exists():
    (root / "killed-once").write_text("")
    os.kill(os.getppid(), signal.SIGKILL)   # the runner dies while this step runs
"""


def write_pipeline(tmp_path: Path) -> Path:
    (tmp_path / "step.py").write_text(STEP)
    (tmp_path / "c.yaml").write_text("setting: 1\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"""
vars: {{root: {tmp_path}}}
workspace: "{{root}}/ws"
steps:
  - name: a
    run: python {{root}}/step.py a {{root}}
  - name: b
    run: python {{root}}/step.py b {{root}} {{root}}/c.yaml
    resume: ["--resume"]
  - name: c
    run: python {{root}}/step.py c {{root}} {{root}}/c.yaml
    clean: ["{{root}}/out/c"]
""")
    return path


def runner(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "data_tools.pipeline", str(path)], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


def log(tmp_path: Path) -> list[str]:
    return (tmp_path / "log.txt").read_text().splitlines()


def test_resumes_after_kill_then_skips_then_reruns_what_changed(tmp_path):
    path = write_pipeline(tmp_path)
    killed = runner(path)
    assert killed.returncode == -9
    assert log(tmp_path) == ["a " + str(tmp_path), "b " + str(tmp_path)]
    resumed = runner(path)
    assert resumed.returncode == 0, resumed.stderr
    assert "[skip] a" in resumed.stdout
    # b continues the interrupted attempt with its resume arguments; c runs for the first time
    assert log(tmp_path)[2:] == [f"b {tmp_path} --resume", f"c {tmp_path}"]
    again = runner(path)
    assert again.returncode == 0 and "0 step(s) ran, 3 skipped" in again.stdout
    (tmp_path / "out" / "c").write_text("stale")
    (tmp_path / "c.yaml").write_text("setting: 2\n")  # a config named by b and c changed: both rerun, afresh
    main([str(path)])
    assert log(tmp_path)[4:] == [f"b {tmp_path}", f"c {tmp_path}"]
    assert (tmp_path / "out" / "c").read_text() == "done"


def test_force_from_and_dry_run(tmp_path, capsys):
    path = write_pipeline(tmp_path)
    (tmp_path / "killed-once").write_text("")
    assert main([str(path)]) == 0
    assert main([str(path), "--from", "b", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[skip] a" in out and "[would run] b" in out and "[would run] c" in out
    assert len(log(tmp_path)) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workspace: w\nsteps: [{run: nonsense --x}]", "'nonsense' is not a mirada command"),
        ("steps: [{run: status}]", "'workspace:' is required"),
        ("workspace: '{nowhere}'\nsteps: [{run: status}]", "unknown variable {nowhere}"),
        ("workspace: w\nsteps: [{run: status, retry: 3}]", "unknown keys ['retry']"),
        ("workspace: w\nsteps: [{name: x, run: status}, {name: x, run: status}]", "two steps are named 'x'"),
    ],
)
def test_bad_pipeline_files_are_one_line(tmp_path, text, message, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("{", r"\{")):
        load_pipeline(path)
    assert main([str(path)]) == 2
    assert message in capsys.readouterr().err


def test_shipped_pipeline_parses_with_every_step_a_real_command():
    pipeline = load_pipeline(ROOT / "configs" / "pipeline.yaml", {"root": "r"})
    names = [step.name for step in pipeline.steps]
    assert names[:2] == ["sample", "collect"] and "prefs" in names and "publish-dry-run" in names
    assert pipeline.workspace == Path("r/workspace")
