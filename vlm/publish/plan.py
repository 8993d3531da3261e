"""What ``mirada publish`` sends where: every repository staged as a folder that is exactly its content.

    plan = plan_publish(workspace, PublishOptions(owner="somosnlp-hackathon-2026", name="tacos",
                                                  runs=[Path("runs/qwen-dpo")], code_url="https://github.com/o/r"))
    plan.describe()          # every repository and file (what --dry-run prints)
    push_plan(plan, token=os.environ["HF_TOKEN"])

Why stage first: the dry run and the push then read the same folders, so what a team checks is what
lands on the Hub; cards are rewritten for their repositories (Hub ids instead of local paths, links
between model, datasets and Space) in the staged copy, never in the workspace's exports.

Layout (hackathon naming: preference datasets carry the algorithm and ``image``):
- ``OWNER/NAME_image_{dpo,kto,sft}``: the prefs exports, pushed with :func:`data_tools.prefs.publish.push_all`
  (data through ``datasets``, then card and charts), then notebooks/, configs/ and reproduce.md.
- ``OWNER/NAME_images`` (optional): the collected images dataset and its card.
- ``OWNER/<run folder>`` per trained run: adapter, processor, Model Card with links, curves, emissions,
  ``eval/`` (the eval report and charts), notebooks/, configs/, reproduce.md; ``…_merged`` on request.
- ``spaces/OWNER/NAME_demo``: the demo Space exported for the pushed adapters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_tools.cards import scrub_local_paths
from data_tools.prefs.config import FORMATS, dataset_name, portable
from data_tools.prefs.publish import CARD_FILES, Export, push_all
from data_tools.workspace import Workspace

log = logging.getLogger("vlm.publish")

RUN_SKIP = re.compile(r"^(checkpoint-\d+|merged|runs|training_args\.bin|mirada_sessions\.jsonl)$")
LINKS_HEADING = "## Related repositories"
OWNER_PLACEHOLDER = "OWNER"


@dataclass
class PublishOptions:
    """What to publish; unset owner/code URL fall back to the workspace project settings (then warn)."""

    owner: str | None = None
    name: str | None = None  # base name of the prefs datasets (default: the one prefs exported)
    runs: list[Path] = field(default_factory=list)
    model_names: list[str] = field(default_factory=list)  # repo names per run (default: run folder name)
    eval_names: list[str] | None = None  # exports/eval/<name>; None = every report there
    images: bool = False
    merged: bool = False
    space: bool = True
    base_model_id: str | None = None  # Hub id of the base when runs were trained from a local copy
    code_url: str | None = None
    notebooks: Path | None = None
    private: bool = False


@dataclass
class RepoPlan:
    """One repository: its id, type, role and the staged folder holding exactly its files."""

    repo_id: str
    repo_type: str  # "model" | "dataset" | "space"
    role: str
    folder: Path
    export: Export | None = None  # prefs data, pushed with datasets first

    @property
    def url(self) -> str:
        prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[self.repo_type]
        return f"https://huggingface.co/{prefix}{self.repo_id}"

    def files(self) -> list[str]:
        """Every path in the repository (prefs data as the parquet shards ``datasets`` will write)."""
        names = sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())
        if self.export is None:
            return names
        card_like = [n for n in names if any(Path(n).match(pattern) for pattern in CARD_FILES)]
        extras = [n for n in names if n.startswith(("notebooks/", "configs/")) or n == "reproduce.md"]
        index = self.folder / "dataset_dict.json"  # a DatasetDict; a single Dataset pushes as "train"
        splits = json.loads(index.read_text())["splits"] if index.is_file() else ["train"]
        return sorted({*card_like, *extras, *(f"data/{s}-*.parquet" for s in splits)})


@dataclass
class PublishPlan:
    repos: list[RepoPlan]
    warnings: list[str]
    root: Path

    def describe(self) -> str:
        lines = []
        for repo in self.repos:
            lines.append(f"{repo.repo_type:8} {repo.repo_id}  ({repo.role})  {repo.url}")
            lines += [f"           {name}" for name in repo.files()]
        return "\n".join(lines)


def _prefs_exports(workspace: Workspace, name: str | None) -> tuple[str | None, list[Path]]:
    root = workspace.exports_dir / "prefs"
    folders = (
        sorted(p for p in root.glob("*_image_*") if (p / "dataset_dict.json").is_file())
        if root.is_dir()
        else []
    )
    names = sorted({p.name.rsplit("_image_", 1)[0] for p in folders})
    base = name or (names[0] if len(names) == 1 else None)
    if base is None and names:
        raise ValueError(f"several prefs exports ({', '.join(names)}): choose one with --name")
    return base, [p for p in folders if p.name.rsplit("_image_", 1)[0] == base]


def _link(target: Path, source: Path) -> None:
    """Hard link (cheap for large arrow files), else copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _copy_tree(source: Path, target: Path, skip: re.Pattern[str] | None = None) -> None:
    for path in sorted(source.iterdir()):
        if skip and skip.match(path.name):
            continue
        if path.is_dir():
            _copy_tree(path, target / path.name)
        else:
            _link(target / path.name, path)


def _replace_card(folder: Path) -> str:
    """Read a staged card and unlink it, so the rewritten text never edits the workspace's own file."""
    path = folder / "README.md"
    text = path.read_text(encoding="utf-8")
    path.unlink()
    return text


def _links_section(plan_links: dict[str, list[str]], code_url: str | None, reproduce: bool) -> str:
    lines = ["", LINKS_HEADING, ""]
    for label, urls in plan_links.items():
        lines += [f"- {label}: " + ", ".join(urls)] if urls else []
    lines.append(f"- Code: <{code_url}>" if code_url else "- Code: not published yet")
    if reproduce:
        lines.append("- Notebooks (`notebooks/`), the resolved configuration of every stage (`configs/`) and the "
                     "exact commands (`reproduce.md`) are in this repository.")  # fmt: skip
    return "\n".join(lines) + "\n"


def _with_links(card_text: str, section: str) -> str:
    """Append (or replace) the related-repositories section at the end of a card."""
    head = card_text.split("\n" + LINKS_HEADING + "\n", 1)[0].rstrip("\n")
    return head + "\n" + section


def retarget_dataset_card(text: str, repo_id: str, splits: list[str]) -> str:
    """A prefs card rendered for a local folder, made to describe the Hub repository ``repo_id``.

    The loading snippet becomes ``load_dataset("repo_id")`` and the header gets the ``configs`` block
    the Hub viewer needs (the same ones ``mirada prefs --push-to-hub`` writes).
    """
    from huggingface_hub import DatasetCard

    card = DatasetCard(text)
    card.text = re.sub(r'load_from_disk\("[^"]*"\)', f'load_dataset("{repo_id}")', card.text)
    card.text = card.text.replace("from datasets import load_from_disk", "from datasets import load_dataset")
    card.data.configs = [{"config_name": "default",
                          "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}]  # fmt: skip
    return str(card)


CONFIG_STAGES = ("collect", "draft", "prefs")  # stages whose --config takes the recorded settings as they are


def _resolved_configs(workspace: Workspace, runs: list[Path], target: Path) -> list[dict[str, Any]]:
    """``configs/NNN_<stage>.yaml`` per recorded stage run (portable paths) + ``configs/runs.yaml`` index.

    Each file holds the settings the stage's ``--config`` accepts (collect records them under
    ``config`` beside its sources); the index keeps status, times and the sources.
    """
    target.mkdir(parents=True, exist_ok=True)
    written, index = [], []
    for run in workspace.runs():
        if run["stage"] in ("publish", "pipeline") or run["status"] == "running":  # not stage settings
            continue
        recorded = portable(run["config"] or {})
        nested = run["stage"] == "collect" and isinstance(recorded.get("config"), dict)
        settings = recorded["config"] if nested else recorded
        name = f"{run['id']:03d}_{run['stage']}.yaml"
        (target / name).write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
        entry = {"file": f"configs/{name}", "stage": run["stage"], "status": run["status"],
                 "started_at": run["started_at"], "finished_at": run.get("finished_at")}  # fmt: skip
        if nested:
            entry["sources"] = recorded.get("sources") or []
        index.append(entry)
        written.append(entry)
    for run_dir in runs:
        source = run_dir / "mirada_train_config.json"
        if source.is_file():
            name = f"train_{run_dir.name}.yaml"
            sections = portable(json.loads(source.read_text()))  # {"script": …, "training": …, "model": …}
            config = {
                k: v for section in sections.values() if isinstance(section, dict) for k, v in section.items()
            }
            (target / name).write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
            written.append({"file": f"configs/{name}", "stage": "train", "status": "completed"})
    (target / "runs.yaml").write_text(yaml.safe_dump(index, sort_keys=False, allow_unicode=True))
    return written


def reproduce_text(
    configs: list[dict[str, Any]], workspace_name: str, pipeline_commands: list[str] | None
) -> str:
    """``reproduce.md``: the commands in the order the stages ran, each with the configuration it recorded."""
    lines = [
        "# Reproduce",
        "",
        "Install Mirada (see the code link in the card), then run from the project folder.",
        "",
    ]
    if pipeline_commands:
        lines += [
            "The pipeline ran these commands (`mirada run`):",
            "",
            "```bash",
            *pipeline_commands,
            "```",
            "",
        ]
    lines += ["Stage by stage, each with the resolved configuration its run recorded (`configs/`; status and "
              "times in `configs/runs.yaml`):", "", "```bash"]  # fmt: skip
    for entry in configs:
        stage, file = entry["stage"], entry["file"]
        if entry["status"] != "completed":
            lines.append(f"# {stage} ({file}) ended {entry['status']}")
        elif stage == "train":
            lines.append(f"mirada train --config {file}")
        elif stage == "collect":
            sources = " ".join(entry.get("sources") or ["SOURCES"])
            lines.append(f"mirada collect {sources} --workspace {workspace_name} --config {file}")
        elif stage in CONFIG_STAGES:
            lines.append(f"mirada {stage} --workspace {workspace_name} --config {file}")
        else:
            lines.append(f"mirada {stage} --workspace {workspace_name}  # recorded settings: {file}")
    lines += ["```", ""]
    return "\n".join(lines)


def plan_publish(workspace: Workspace, options: PublishOptions, *, staging: Path | None = None,
                 pipeline_commands: list[str] | None = None) -> PublishPlan:  # fmt: skip
    """Stage every repository under ``exports/publish/`` and collect warnings; pushes nothing."""
    project = workspace.project()  # {"owner", "dataset_name", "code_url"} as set with `mirada project set`
    warnings: list[str] = []
    owner = options.owner or project.get("owner")
    code_url = options.code_url or project.get("code_url")
    if not owner:
        warnings.append("no Hub owner (--owner, or `mirada project set owner=…`): repository ids below use "
                        f"{OWNER_PLACEHOLDER!r}")  # fmt: skip
        owner = OWNER_PLACEHOLDER
    if not code_url:
        warnings.append(
            "no code URL (--code-url, or `mirada project set code_url=…`): cards cannot link to the code"
        )
    base, prefs_folders = _prefs_exports(workspace, options.name or project.get("dataset_name"))
    if not prefs_folders:
        warnings.append(
            "no prefs datasets in the workspace (run `mirada prefs`): no *_image_dpo/kto/sft to push"
        )
    root = staging or workspace.exports_dir / "publish"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    name = base or "mirada"

    # repository ids first, so every card can link to every other repository
    dataset_ids = {folder.name.rsplit("_image_", 1)[1]: f"{owner}/{folder.name}" for folder in prefs_folders}
    images = workspace.exports_dir / "images"
    images_id = (
        f"{owner}/{name}_images" if options.images and (images / "dataset_info.json").is_file() else None
    )
    if options.images and images_id is None:
        warnings.append("--images: no exported images dataset (run `mirada export`); skipped")
    model_names = options.model_names or [run.name for run in options.runs]
    if len(model_names) != len(options.runs):
        raise ValueError("give one --model-name per --run (or none)")
    model_ids = [f"{owner}/{m}" for m in model_names]
    space_id = f"{owner}/{name}_demo" if options.space and options.runs else None
    links = {
        "Datasets": [f"[{d}](https://huggingface.co/datasets/{d})" for d in [*dataset_ids.values(), *([images_id] if images_id else [])]],
        "Models": [f"[{m}](https://huggingface.co/{m})" for m in model_ids],
        "Demo": [f"[{space_id}](https://huggingface.co/spaces/{space_id})"] if space_id else [],
    }  # fmt: skip
    section = _links_section(links, code_url, reproduce=True)

    shared = root / "_shared"
    configs = _resolved_configs(workspace, options.runs, shared / "configs")
    (shared / "reproduce.md").write_text(
        reproduce_text(configs, _as_typed(workspace.root), pipeline_commands)
    )
    notebooks = options.notebooks if options.notebooks is not None else Path("notebooks")
    notebook_files = sorted(notebooks.glob("*.ipynb")) if notebooks.is_dir() else []
    if not notebook_files:
        warnings.append(f"no notebooks found in {notebooks}: the hackathon asks for them in the repositories")
    for path in notebook_files:
        _link(shared / "notebooks" / path.name, path)

    repos: list[RepoPlan] = []
    for fmt in FORMATS:
        folder = next((f for f in prefs_folders if f.name == dataset_name(name, fmt)), None)
        if folder is None:
            continue
        repo_id = dataset_ids[fmt]
        target = root / "datasets" / folder.name
        _copy_tree(folder, target)
        _copy_tree(shared, target)
        splits = json.loads((folder / "dataset_dict.json").read_text())["splits"]
        card = retarget_dataset_card(_replace_card(target), repo_id, splits)
        (target / "README.md").write_text(scrub_local_paths(_with_links(card, section)), encoding="utf-8")
        export = Export(fmt, folder.name, target, {}, repo_id)
        role = "SFT image-caption data" if fmt == "sft" else f"{fmt.upper()} preference data"
        repos.append(RepoPlan(repo_id, "dataset", role, target, export))

    if images_id:
        import datasets

        from vlm.publish.images_card import render_images_card

        target = root / "datasets" / images_id.split("/")[1]
        _copy_tree(images, target)
        _copy_tree(shared, target)
        card = render_images_card(
            workspace, datasets.load_from_disk(str(images)), repo_id=images_id, name=name
        )
        (target / "README.md").write_text(scrub_local_paths(_with_links(card, section)), encoding="utf-8")
        export = Export("images", images_id.split("/")[1], target, {}, images_id)
        repos.append(RepoPlan(images_id, "dataset", "collected images", target, export))

    for run_dir, repo_id in zip(options.runs, model_ids, strict=True):
        if not (run_dir / "adapter_config.json").is_file():
            raise ValueError(f"{run_dir}: not a trained run folder (no adapter_config.json)")
        target = root / "models" / repo_id.split("/")[1]
        _copy_tree(run_dir, target, RUN_SKIP)
        _copy_tree(shared, target)
        evals = _stage_eval(workspace, options.eval_names, target / "eval", warnings)
        _portable_json(target / "mirada_train_config.json")
        _portable_json(target / "adapter_config.json",
                       {"base_model_name_or_path": options.base_model_id} if options.base_model_id else None)  # fmt: skip
        card = _replace_card(target) if (target / "README.md").is_file() else f"# {repo_id}\n"
        card = _model_card_links(
            card, [*dataset_ids.values()], options.base_model_id, repo_id, _base_of(run_dir)
        )
        paths = ["eval/report.md"] if len(evals) == 1 else [f"eval/{n}/report.md" for n in evals]
        reports = [f"[`{path}`]({path})" for path in paths]
        model_section = section + (f"- Evaluation report: {', '.join(reports)}\n" if reports else "")
        (target / "README.md").write_text(
            scrub_local_paths(_with_links(card, model_section)), encoding="utf-8"
        )
        repos.append(RepoPlan(repo_id, "model", "LoRA adapter", target))
        if options.merged:
            merged = run_dir / "merged"
            merged_target = root / "models" / f"{repo_id.split('/')[1]}_merged"
            if merged.is_dir():
                _copy_tree(merged, merged_target)
            else:
                merged_target.mkdir(parents=True)
                from vlm.models import merge_adapter  # the shared loader's merge (unquantised base, on CPU)

                merge_adapter(run_dir, None, merged_target)
            (merged_target / "README.md").write_text(
                scrub_local_paths(_with_links(card, section)), encoding="utf-8"
            )
            repos.append(RepoPlan(f"{repo_id}_merged", "model", "merged weights", merged_target))

    if space_id:
        from vlm.demo.app import examples_from_workspace
        from vlm.demo.space import export_space

        base_model = options.base_model_id or _base_of(options.runs[0])
        target = root / "spaces" / space_id.split("/")[1]
        warnings += export_space(target, base_model=base_model, adapters=model_ids, datasets=list(dataset_ids.values()),
                                 examples=examples_from_workspace(workspace), code_url=code_url,
                                 title=f"{name}: Mirada demo")  # fmt: skip
        repos.append(RepoPlan(space_id, "space", "Gradio demo", target))
    return PublishPlan(repos, list(dict.fromkeys(warnings)), root)


def _portable_json(path: Path, updates: dict[str, Any] | None = None) -> None:
    """Rewrite a staged JSON file without local absolute paths (and with ``updates``), leaving the run's own."""
    if not path.is_file():
        return
    data = portable(json.loads(path.read_text()))
    data.update(updates or {})
    path.unlink()  # a hard link to the run's file: replace, never edit in place
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _as_typed(path: Path) -> str:
    """The workspace as a user would type it here: relative to the working directory, else its name."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def _base_of(run_dir: Path) -> str:
    config = json.loads((run_dir / "adapter_config.json").read_text())
    return str(config.get("base_model_name_or_path") or "")


def _model_card_links(
    text: str,
    datasets: list[str],
    base_model_id: str | None,
    repo_id: str | None = None,
    local_base: str = "",
) -> str:
    """Header fields the Hub turns into links: ``datasets`` and (when it is a Hub id) ``base_model``.

    The train card's usage snippet loads the run from a placeholder (``path/to/this/run``) and a local
    base by its folder name; once the repository ids are known, the snippet loads them from the Hub.
    """
    from huggingface_hub import ModelCard

    if repo_id:
        text = text.replace('"path/to/this/run"', f'"{repo_id}"')
    base_name = Path(local_base).name
    if base_model_id and base_name and base_name != base_model_id:
        text = text.replace(f'from_pretrained("{base_name}"', f'from_pretrained("{base_model_id}"')
        text = text.replace(f"`{base_name}` (a local checkpoint, not on the Hub)",
                            f"[{base_model_id}](https://huggingface.co/{base_model_id})")  # fmt: skip
    card = ModelCard(text)
    if datasets:
        card.data.datasets = datasets
    if base_model_id:
        card.data.base_model = base_model_id
    return str(card)


def _stage_eval(
    workspace: Workspace, names: list[str] | None, target: Path, warnings: list[str]
) -> list[str]:
    """Copy the chosen eval reports into the model repository (``eval/``, or ``eval/<name>/`` for several)."""
    root = workspace.exports_dir / "eval"
    available = (
        sorted(p.name for p in root.iterdir() if (p / "report.json").is_file()) if root.is_dir() else []
    )
    chosen = available if names is None else names
    missing = [n for n in chosen if n not in available]
    if missing:
        raise ValueError(
            f"no eval report {', '.join(missing)} under exports/eval (have: {', '.join(available) or 'none'})"
        )
    if not chosen:
        warnings.append("no eval report (run `mirada eval`): the model repository will have no eval/ folder")
    for name in chosen:
        _copy_tree(root / name, target / name if len(chosen) > 1 else target)
    return chosen


def push_plan(plan: PublishPlan, *, token: str, private: bool = False) -> dict[str, str]:
    """Create and fill every repository of the plan, datasets first; returns ``repo_id -> URL``."""
    from data_tools.hub import upload_folder
    from vlm.demo.space import push_space

    if any(repo.repo_id.startswith(OWNER_PLACEHOLDER + "/") for repo in plan.repos):
        raise ValueError("no Hub owner: pass --owner (or set the project's Hub owner); nothing was pushed")
    urls = {}
    for repo in plan.repos:
        if repo.export is not None:
            push_all([repo.export], token=token, private=private)
            upload_folder(repo.repo_id, repo.folder, repo_type="dataset", token=token, create=False,
                          allow_patterns=["notebooks/*", "configs/*", "reproduce.md"],
                          message="Notebooks, resolved configs and reproduce.md (mirada publish)")  # fmt: skip
        elif repo.repo_type == "space":
            push_space(repo.folder, repo.repo_id, token=token, private=private)
        else:
            upload_folder(repo.repo_id, repo.folder, repo_type=repo.repo_type, token=token, private=private,
                          message=f"{repo.role} (mirada publish)")  # fmt: skip
        urls[repo.repo_id] = repo.url
        log.info("pushed %s", repo.url)
    return urls
