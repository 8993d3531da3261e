"""What a run leaves behind: metrics, the resolved config, curves, emissions totals, the sessions log, the push.

Everything here is written by the main process only, so the same code runs on one GPU or under
``accelerate launch``. Every number the Model Card states is read from these files or from
:class:`TrainResult`, never recomputed elsewhere.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_tools.stage_args import UserError
from vlm.train.data import DataSummary
from vlm.train.model_config import MiradaModelConfig
from vlm.train.script_args import TrainScriptArguments
from vlm.train.validation import HF_TOKEN_ENV

if TYPE_CHECKING:
    from transformers import TrainingArguments

log = logging.getLogger("vlm.train")

__all__ = [
    "CONFIG_FILE",
    "CURVES_FILE",
    "METHOD_METRICS",
    "SESSIONS_FILE",
    "EmissionsSummary",
    "TrainResult",
    "describe_hardware",
    "finite",
    "push_run",
    "read_emissions",
    "read_sessions",
    "resolved_config",
    "save_curves",
    "write_run_files",
]

METHOD_METRICS: dict[str, tuple[str, ...]] = {
    "dpo": ("rewards/accuracies", "rewards/margins"),
    "kto": ("rewards/chosen", "rewards/rejected", "kl"),
    "sft": ("mean_token_accuracy",),
}
"""Per-method metrics worth a curve and a row in the card, besides the loss."""

CURVES_FILE = "training_curves.png"
SESSIONS_FILE = "mirada_sessions.jsonl"
CONFIG_FILE = "mirada_train_config.json"


def save_curves(log_history: list[dict[str, Any]], path: str | Path, method: str) -> Path | None:
    """Loss, gradient norm and the method's own metrics against the step, train and eval, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss", "loss"), ("grad_norm", "gradient norm")]
    panels += [(key, key) for key in METHOD_METRICS.get(method, ())]

    def series(key: str) -> tuple[list[float], list[float]]:
        points = [(h["step"], h[key]) for h in log_history if key in h and "step" in h and finite(h[key])]
        return [p[0] for p in points], [p[1] for p in points]

    present = [(k, t) for k, t in panels if series(k)[0] or series(f"eval_{k}")[0]]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], present, strict=True):
        for prefix, style, label in (("", "-", "train"), ("eval_", "o--", "eval (test split)")):
            xs, ys = series(prefix + key)
            if xs:
                ax.plot(xs, ys, style, label=label, markersize=4)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass
class EmissionsSummary:
    """Totals over every session recorded in a run's emissions.csv (a resumed run has several rows)."""

    emissions_kg: float
    energy_kwh: float
    duration_s: float
    country: str
    sessions: int
    hardware: str


def read_emissions(path: str | Path) -> EmissionsSummary | None:
    """Sum CodeCarbon's ``emissions.csv`` rows; ``None`` when the file is absent."""
    import csv

    path = Path(path)
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    last = rows[-1]
    gpu = f"{last.get('gpu_count') or 0} × {last.get('gpu_model')}" if last.get("gpu_model") else ""
    return EmissionsSummary(
        emissions_kg=sum(float(r["emissions"]) for r in rows),
        energy_kwh=sum(float(r["energy_consumed"]) for r in rows),
        duration_s=sum(float(r["duration"]) for r in rows),
        country=last.get("country_name") or last.get("country_iso_code", ""),
        sessions=len(rows),
        hardware=gpu or f"{last.get('cpu_count')} × {last.get('cpu_model')} (CPU)",
    )


def describe_hardware() -> str:
    """What trained the model, for the card: GPU model × count and memory, else the CPU."""
    import platform

    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"{torch.cuda.device_count()} × {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    cpu = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, no GPU"


@dataclass
class TrainResult:
    """What a run produced; every number in the Model Card comes from here."""

    output_dir: Path
    method: str
    family: str
    global_step: int
    train_metrics: dict[str, float]
    eval_metrics: dict[str, float] | None
    log_history: list[dict[str, Any]]
    data: DataSummary
    image_tokens: int
    hardware: str
    train_seconds: float
    resumed_from: str | None = None
    emissions: EmissionsSummary | None = None
    curves: Path | None = None
    card: Path | None = None
    merged: Path | None = None
    pushed_to: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


def resolved_config(
    script: TrainScriptArguments, args: TrainingArguments, model_args: MiradaModelConfig
) -> dict[str, Any]:
    """The full resolved configuration, JSON-safe and with every ``*_token`` field removed."""
    training = {k: v for k, v in args.to_dict().items() if not k.endswith("_token")}
    return {
        "script": asdict(script),
        "training": json.loads(json.dumps(training, default=str)),
        "model": json.loads(json.dumps(asdict(model_args), default=str)),
    }


def read_sessions(output_dir: Path) -> list[dict[str, Any]]:
    path = output_dir / SESSIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_run_files(result: TrainResult, started: float) -> None:
    """Metrics, the resolved config and this session's line in the sessions log, beside the adapter."""
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_results.json").write_text(json.dumps(result.train_metrics, indent=2), encoding="utf-8")
    if result.eval_metrics is not None:
        (out / "eval_results.json").write_text(json.dumps(result.eval_metrics, indent=2), encoding="utf-8")
    (out / CONFIG_FILE).write_text(json.dumps(result.config, indent=2, default=str), encoding="utf-8")
    session = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(result.train_seconds, 3),
        "resumed_from": Path(result.resumed_from).name if result.resumed_from else None,
        "final_step": result.global_step,
    }
    with (out / SESSIONS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(session) + "\n")
    result.train_seconds = sum(s["seconds"] for s in read_sessions(out))


def push_run(output_dir: str | Path, repo_id: str, token: str | None, *, private: bool = False) -> str:
    """Upload adapter, processor, card, curves, metrics and emissions (not checkpoints) to ``repo_id``.

    A failed push (bad token, server error, no network) is one redacted line: the Hub's error text
    can echo the request's ``Authorization`` header, and a traceback would print it. The run itself
    is already saved, so the message says how to push it again. ``HF_ENDPOINT`` is read at call time.
    """
    from data_tools.hub import upload_folder

    if not token:
        raise UserError(f"push_to_hub needs {HF_TOKEN_ENV} in the environment")
    url = upload_folder(
        repo_id,
        output_dir,
        token=token,
        private=private,
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "merged/**", "runs/**"],
        message="mirada train: adapter, Model Card, curves and emissions",
        retry_hint=f"The run is saved in {output_dir}: push it later with `hf upload {repo_id} {output_dir}`",
    )
    log.info("pushed to %s", url)
    return url
