"""``mirada run PIPELINE.yaml``: run a project's stages in order; a rerun skips what is finished and unchanged.

    mirada run configs/pipeline.yaml                       # the whole chain
    mirada run configs/pipeline.yaml --var root=demo2       # override a variable used in the steps
    mirada run configs/pipeline.yaml --from prefs           # force prefs and everything after it
    mirada run configs/pipeline.yaml --dry-run              # show what would run and what would be skipped

The file lists ``steps``; each is one ``mirada`` command (or ``python -m …``) with ``{variables}``:

    vars: {root: demo}
    workspace: "{root}/workspace"
    steps:
      - name: collect
        run: collect {root}/sample --workspace {workspace} --config configs/collect.yaml
        inputs: ["{root}/sample"]                      # optional: files/folders whose change reruns it
      - name: train
        run: train --config configs/train/x.yaml output_dir={root}/runs/x
        clean: ["{root}/runs/x"]      # inputs changed: start afresh (the old run describes other data)
        resume: ["resume=true"]       # killed mid-way, same inputs: continue from the last checkpoint

Why fingerprints and not timestamps: a step is skipped when its command, the content of every file
its command names (configs, prompt files…), its declared inputs, and everything before it are the
same as when it last *completed*. Once a step runs, every later step runs too, because its inputs
(the workspace) may have changed; the stages themselves are idempotent (drafts are cached, nothing
is paid twice), so a rerun is cheap. State lives in ``WORKSPACE/pipeline_state.json``, written after
each step, so a killed run resumes at the step that did not finish. ``mirada`` steps run in this
process (one start-up for the chain); ``python`` steps in a child process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_tools.stage_args import UserError, run_stage

STATE_FILE = "pipeline_state.json"


@dataclass
class Step:
    name: str
    argv: list[str]
    inputs: list[str] = field(default_factory=list)
    clean: list[str] = field(default_factory=list)  # removed before a run with changed inputs (stale outputs)
    resume: list[str] = field(default_factory=list)  # appended when continuing the same, interrupted attempt

    @property
    def command(self) -> str:
        """As a user would type it: ``mirada collect …`` or ``python -m vlm.tiny …``."""
        head = [] if self.argv[0] == "python" else ["mirada"]
        return shlex.join([*head, *self.argv])


@dataclass
class Pipeline:
    path: Path
    workspace: Path
    steps: list[Step]


def _fill(text: str, variables: dict[str, str], where: str) -> str:
    try:
        return text.format(**variables)
    except KeyError as exc:
        raise UserError(
            f"{where}: unknown variable {{{exc.args[0]}}} (known: {', '.join(sorted(variables))})"
        ) from exc


def load_pipeline(path: Path, overrides: dict[str, str] | None = None) -> Pipeline:
    """Parse and validate the pipeline file; every problem is one line naming the step."""
    from data_tools.cli import COMMANDS

    if not path.is_file():
        raise UserError(f"pipeline file not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
        raise UserError(f"{path}: expected 'steps:' with a list of {{name, run}} entries")
    unknown = set(data) - {"vars", "workspace", "steps"}
    if unknown:
        raise UserError(f"{path}: unknown keys {sorted(unknown)} (allowed: vars, workspace, steps)")
    variables = {str(k): str(v) for k, v in (data.get("vars") or {}).items()}
    variables.update(overrides or {})
    if "workspace" not in data:
        raise UserError(f"{path}: 'workspace:' is required (where the state of the run is kept)")
    variables["workspace"] = _fill(str(data["workspace"]), variables, f"{path}: workspace")
    steps, names = [], set()
    for index, raw in enumerate(data["steps"], 1):
        if not isinstance(raw, dict) or "run" not in raw:
            raise UserError(f"{path}: step {index} needs 'run:' (a mirada command)")
        name = str(raw.get("name") or f"step{index}")
        if name in names:
            raise UserError(f"{path}: two steps are named {name!r}")
        names.add(name)
        run = raw["run"]
        argv = [_fill(str(a), variables, f"step {name}") for a in run] if isinstance(run, list) else shlex.split(
            _fill(str(run), variables, f"step {name}"))  # fmt: skip
        if argv and argv[0] == "mirada":
            argv = argv[1:]
        if not argv or (argv[0] != "python" and argv[0] not in COMMANDS):
            raise UserError(f"step {name}: {argv[0] if argv else '(empty)'!r} is not a mirada command "
                            f"(choose from {', '.join(COMMANDS)}, or python -m …)")  # fmt: skip
        if argv[0] == "run":
            raise UserError(f"step {name}: a pipeline cannot run another pipeline")
        unknown = set(raw) - {"name", "run", "inputs", "clean", "resume"}
        if unknown:
            raise UserError(
                f"step {name}: unknown keys {sorted(unknown)} (allowed: name, run, inputs, clean, resume)"
            )
        lists = {key: [_fill(str(i), variables, f"step {name}") for i in raw.get(key) or []]
                 for key in ("inputs", "clean", "resume")}  # fmt: skip
        steps.append(Step(name, argv, **lists))
    return Pipeline(path, Path(variables["workspace"]), steps)


def _hash_path(path: Path, digest: Any) -> None:
    """Content hash of a file, or of every file under a folder (names + bytes), in a stable order."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)


def fingerprint(step: Step, previous: str) -> str:
    """Hash of the command, the content of every existing file it names, its declared inputs, and ``previous``."""
    digest = hashlib.sha256(previous.encode())
    digest.update(json.dumps(step.argv).encode())
    for token in [*step.argv, *step.inputs]:
        for candidate in {token, token.split("=", 1)[-1]}:
            path = Path(candidate)
            if candidate and path.exists() and (path.is_file() or candidate in step.inputs):
                _hash_path(path, digest)
    return digest.hexdigest()


def _read_state(pipeline: Pipeline) -> dict[str, Any]:
    path = pipeline.workspace / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"steps": {}}


def _write_state(pipeline: Pipeline, state: dict[str, Any]) -> None:
    pipeline.workspace.mkdir(parents=True, exist_ok=True)
    path = pipeline.workspace / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def _execute(step: Step) -> int:
    if step.argv[0] == "python":
        return subprocess.run([sys.executable, *step.argv[1:]], check=False).returncode
    from data_tools.cli import main as mirada

    return mirada(step.argv)


def run_pipeline(
    pipeline: Pipeline, *, force_from: str | None = None, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Run the steps; returns ``[{name, command, action: ran|skipped|would run, seconds}]``. Stops at a failure."""
    if force_from and force_from not in {s.name for s in pipeline.steps}:
        raise UserError(
            f"--from {force_from!r}: no such step (steps: {', '.join(s.name for s in pipeline.steps)})"
        )
    state = _read_state(pipeline)
    previous, dirty, report = "", False, []
    for step in pipeline.steps:
        dirty = dirty or step.name == force_from
        key = fingerprint(step, previous)
        done = state["steps"].get(step.name, {})
        if not dirty and done.get("fingerprint") == key and done.get("status") == "completed":
            report.append({"name": step.name, "command": step.command, "action": "skipped", "seconds": 0.0})
            print(f"[skip] {step.name}: finished, inputs unchanged")
            previous = key
            continue
        dirty = True
        if dry_run:
            report.append({"name": step.name, "command": step.command, "action": "would run", "seconds": 0.0})
            print(f"[would run] {step.name}: {step.command}")
            previous = key
            continue
        same_attempt = done.get("fingerprint") == key and done.get("status") in ("running", "failed")
        planned = step  # the fingerprint is the planned command's, with or without resume arguments
        if same_attempt and step.resume:
            step = Step(step.name, [*step.argv, *step.resume], step.inputs, step.clean, step.resume)
        elif step.clean:
            for target in map(Path, step.clean):
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        print(f"[run] {step.name}: {step.command}", flush=True)
        state["steps"][step.name] = {"fingerprint": key, "status": "running", "command": step.command}
        if pipeline.workspace.exists():
            _write_state(pipeline, state)
        start = time.perf_counter()
        code = _execute(step)
        seconds = round(time.perf_counter() - start, 2)
        status = "completed" if code == 0 else "failed"
        if (
            code == 0
        ):  # recomputed: files the command names that it wrote itself are part of "unchanged" next time
            key = fingerprint(planned, previous)
        state["steps"][step.name] = {"fingerprint": key, "status": status, "command": step.command,
                                     "seconds": seconds, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        _write_state(pipeline, state)
        report.append({"name": step.name, "command": step.command, "action": "ran", "seconds": seconds})
        if code != 0:
            raise UserError(f"step {step.name} failed (exit {code}): {step.command}; fix it and rerun "
                            f"`mirada run {pipeline.path}` to continue from there")  # fmt: skip
        previous = key
    return report


def main(argv: Sequence[str] | None = None, prog: str = "python -m data_tools.pipeline") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    parser.add_argument("pipeline", type=Path, help="pipeline YAML (see configs/pipeline.yaml)")
    parser.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="override a variable"
    )
    parser.add_argument("--from", dest="force_from", metavar="STEP", help="rerun this step and all after it")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would run or be skipped; run nothing"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="only warnings and the summary")
    parser.add_argument("--verbose", "-v", action="store_true", help="full tracebacks")

    def body(args: argparse.Namespace) -> int:
        overrides = {}
        for item in args.var:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise UserError(f"--var {item!r}: expected NAME=VALUE")
            overrides[name] = value
        pipeline = load_pipeline(args.pipeline, overrides)
        started = time.perf_counter()
        report = run_pipeline(pipeline, force_from=args.force_from, dry_run=args.dry_run)
        if not args.dry_run:
            _record(pipeline, report)
        ran = sum(r["action"] == "ran" for r in report)
        print(f"pipeline: {ran} step(s) ran, {sum(r['action'] == 'skipped' for r in report)} skipped, "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        return 0

    return run_stage(body, parser, argv)


def _record(pipeline: Pipeline, report: list[dict[str, Any]]) -> None:
    """A ``pipeline`` run in the workspace with the commands, which ``mirada publish`` puts in reproduce.md."""
    if not (pipeline.workspace / "mirada.db").is_file():
        return
    from data_tools.workspace import Workspace

    with (
        Workspace.open(pipeline.workspace, create=False) as workspace,
        workspace.run(
            "pipeline", {"file": str(pipeline.path), "steps": [s.name for s in pipeline.steps]}
        ) as run,
    ):
        run.summary["commands"] = [r["command"] for r in report]
        run.summary["actions"] = {r["name"]: r["action"] for r in report}


if __name__ == "__main__":
    raise SystemExit(main())
