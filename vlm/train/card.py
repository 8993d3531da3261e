"""The Model Card of a training run, written with ``huggingface_hub.ModelCard``.

The hackathon grades the card (motivation and impact, the training process with libraries and tests,
licence, biases, environmental impact, links to data and code), so every section is generated from
facts of *this* run: the resolved configuration, the trainer's log, the data counts, CodeCarbon's
emissions.csv and the hardware. Nothing is a placeholder; a fact that is absent (no evaluation split,
emissions off) is stated as absent. The trade-off: the text is generic where only people can be
specific (what the model gets wrong culturally); the card says so and points at the eval stage.

:func:`card_facts` gathers the facts (needs the run objects); :func:`build_card` only formats them, so
tests can check formatting against known numbers.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_tools.cards import HUB_URL, language_tags, library_versions, md_table, scrub_local_paths

if TYPE_CHECKING:
    from huggingface_hub import ModelCard
    from transformers import TrainingArguments

    from vlm.registry import ModelSpec
    from vlm.train.model_config import MiradaModelConfig
    from vlm.train.outputs import EmissionsSummary, TrainResult
    from vlm.train.script_args import TrainScriptArguments

__all__ = ["CardFacts", "build_card", "card_facts", "data_origin", "data_sentence", "fmt", "write_card"]

METHOD_NAMES = {
    "dpo": "Direct Preference Optimization (DPO)",
    "kto": "Kahneman-Tversky Optimization (KTO)",
    "sft": "supervised fine-tuning (SFT)",
}
LIBRARIES = ("transformers", "trl", "peft", "bitsandbytes", "torch", "datasets", "accelerate", "codecarbon")
PROMPTS = {
    "es": "Describe la imagen con su contexto cultural.",
    "pt": "Descreva a imagem com o seu contexto cultural.",
    "ca": "Descriu la imatge amb el seu context cultural.",
    "gl": "Describe a imaxe co seu contexto cultural.",
    "eu": "Deskribatu irudia bere testuinguru kulturalarekin.",
}
_HUB = HUB_URL
# A model in the Hub's download cache: ``…/models--Qwen--Qwen2.5-VL-7B-Instruct/snapshots/<commit>``.
_HUB_CACHE = re.compile(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]")


def fmt(value: float) -> str:
    """How every metric appears in the card's text (tests format the run's numbers the same way)."""
    return f"{value:.4g}"


@dataclass
class CardFacts:
    """Everything the card states, each taken from the run."""

    model_name: str
    repo_id: str | None
    base_model: str
    base_is_hub: bool
    family: str
    grid_sync: bool  # LLaVA-NeXT: the model config must take the processor's (possibly pruned) anyres grids
    method: str
    dataset: str
    dataset_link: str | None
    license: str
    base_license: str
    languages: list[str]
    rows: dict[str, int]
    dropped: dict[str, int]
    max_tokens: int | None
    image_tokens: int
    countries: dict[str, int]
    language_counts: dict[str, int]
    labels: dict[str, int]
    hyperparameters: dict[str, Any]
    config: dict[str, Any]
    hardware: str
    train_seconds: float
    sessions: int
    global_step: int
    epoch: float | None
    train_loss: float | None
    eval_metrics: dict[str, float] | None
    eval_split: str | None
    emissions: EmissionsSummary | None
    emissions_country: str
    curves: str | None
    libraries: dict[str, str] = field(default_factory=dict)
    code_url: str | None = None
    command: str | None = None
    data_origin: str = (
        "unknown"  # people | simulated | machine | unknown: who judged the captions (the data's card)
    )
    random_base: bool = False  # the base is a tiny random model (vlm.tiny): the outputs are noise


SIMULATED_MARK = "review answers behind this dataset are SIMULATED"
"""The warning `mirada prefs` puts in a Dataset Card built from `mirada review simulate` answers."""


def data_origin(dataset_name: str) -> str:
    """Who judged the training captions, from the dataset's own card: ``people``, ``simulated``, ``machine`` or
    ``unknown`` (no local card, e.g. a Hub dataset read offline). Read from ``annotations_creators``."""
    readme = Path(dataset_name).expanduser() / "README.md"
    if not readme.is_file():
        return "unknown"
    from huggingface_hub import DatasetCard

    try:
        card = DatasetCard.load(readme)
    except (OSError, ValueError):
        return "unknown"
    creators = set(getattr(card.data, "annotations_creators", None) or [])
    if SIMULATED_MARK in card.text:
        return "simulated"
    if creators & {"expert-generated", "crowdsourced"}:
        return "people"
    return "machine" if "machine-generated" in creators else "unknown"


def public_name(model: str | None) -> str | None:
    """How a card names a model or adapter: its Hub id when known, else only its folder's name.

    A card is published, so it must not carry ``/tmp/…`` or someone's home directory. A Hub id stays as
    it is; a copy in the Hub's download cache (``…/models--Qwen--Qwen2.5-VL-3B-Instruct/snapshots/…``)
    is named by the id it came from; any other local folder by its last part.
    ``public_name("/tmp/x/tiny-qwen") == "tiny-qwen"``.
    """
    from vlm.models.family import is_hub_id

    if not model or is_hub_id(model):
        return model
    cached = _HUB_CACHE.search(str(model))
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    return Path(model).expanduser().resolve().name or model


def portable_command(command: str) -> str:
    """The command line as a card may quote it: repository files relative to the repository, other paths by name.

    ``--config /home/ana/mirada/configs/train/x.yaml`` → ``--config configs/train/x.yaml`` (still runs from a
    checkout); ``dataset_name=/tmp/ws/exports/prefs/t_image_dpo`` → ``dataset_name=t_image_dpo``.
    """
    from data_tools.prefs.config import portable

    def one(token: str) -> str:
        key, sep, value = token.rpartition("=") if "=" in token else ("", "", token)
        return f"{key}{sep}{portable(value)}"

    return scrub_local_paths(" ".join(one(token) for token in command.split(" ")))


def workspace_project(dataset_name: str) -> tuple[dict[str, Any], str | None]:
    """The project settings of the workspace a local prefs export lives in, and the export's folder name.

    `mirada prefs` writes ``WS/exports/prefs/<name>``, so the workspace is three folders up; a dataset
    anywhere else (or on the Hub) has no workspace and gives ``({}, None)``. Opening the workspace read
    only what ``project()`` returns; a folder that is not a workspace is not created.
    """
    from data_tools.workspace import Workspace
    from data_tools.workspace.store import workspace_of_export

    folder = Path(dataset_name).expanduser()
    root = workspace_of_export(folder)
    if not (folder / "README.md").is_file() or folder.parent.name != "prefs" or root is None:
        return {}, None
    try:
        with Workspace.open(root, create=False) as workspace:
            return workspace.project(), folder.resolve().name
    except (OSError, RuntimeError, sqlite3.Error):  # a locked or broken workspace must not fail the run
        return {}, None


def _hyperparameters(
    script: TrainScriptArguments, args: TrainingArguments, model_args: MiradaModelConfig, spec: ModelSpec
) -> dict[str, Any]:
    """The settings that shape the result, in reading order; the card also embeds the full config."""
    quant = "none (full precision base)"
    if model_args.load_in_4bit:
        quant = (
            f"4-bit {model_args.bnb_4bit_quant_type}"
            + (" + double quantisation" if model_args.use_bnb_nested_quant else "")
            + f", {model_args.bnb_4bit_compute_dtype} compute; unquantised: "
            + ", ".join(model_args.skip_modules or spec.skip_modules)
        )
    elif model_args.load_in_8bit:
        quant = "8-bit (LLM.int8)"
    hp: dict[str, Any] = {
        "method": script.method.upper(),
        "learning rate": args.learning_rate,
        "lr scheduler": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "warm-up steps": args.warmup_steps,
        "epochs": args.num_train_epochs,
        "max steps": args.max_steps if args.max_steps and args.max_steps > 0 else "not set (epochs decide)",
        "batch size per device": args.per_device_train_batch_size,
        "gradient accumulation steps": args.gradient_accumulation_steps,
        "optimizer": str(getattr(args.optim, "value", args.optim)),
        "weight decay": args.weight_decay,
        "max grad norm": args.max_grad_norm,
        "seed": args.seed,
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "activation checkpointing": bool(args.activation_checkpointing),
        "max_length (truncation)": args.max_length,
        "max_tokens (rows longer are dropped)": script.max_tokens,
        "image tokens per image (budget)": model_args.max_image_tokens or spec.default_max_image_tokens,
        "quantisation": quant,
    }
    if script.method == "dpo":
        hp["beta"] = args.beta
        hp["loss type"] = ", ".join(args.loss_type)
    elif script.method == "kto":
        hp["beta"] = args.beta
        hp["loss type"] = args.loss_type
        hp["desirable / undesirable weight"] = f"{args.desirable_weight} / {args.undesirable_weight}"
    else:
        hp["assistant-only loss"] = bool(args.assistant_only_loss)
    if model_args.adapter_name_or_path:
        hp["starting adapter"] = public_name(model_args.adapter_name_or_path)
    else:
        hp["LoRA r / alpha / dropout"] = (
            f"{model_args.lora_r} / {model_args.lora_alpha} / {model_args.lora_dropout}"
        )
        hp["LoRA targets"] = model_args.lora_target_modules or spec.lora_targets
    return hp


def card_facts(
    result: TrainResult,
    script: TrainScriptArguments,
    args: TrainingArguments,
    model_args: MiradaModelConfig,
    spec: ModelSpec,
    repo_id: str | None = None,
    command: str | None = None,
) -> CardFacts:
    """Collect the facts of a finished run (see :class:`CardFacts`); ``command`` is the CLI line, if any."""
    from data_tools.prefs.config import portable
    from vlm.models.family import is_hub_id
    from vlm.tiny import is_tiny_random
    from vlm.train.outputs import CURVES_FILE, read_sessions

    base = model_args.model_name_or_path
    project, export_name = workspace_project(script.dataset_name)
    dataset_hub = script.dataset_hub_id or (script.dataset_name if is_hub_id(script.dataset_name) else None)
    if not dataset_hub and export_name and project.get("owner"):  # where `mirada prefs` pushes it
        dataset_hub = f"{project['owner']}/{export_name}"
    language_counts = dict(result.data.languages)
    languages = script.languages or language_tags(language_counts) or ["es", "pt"]
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    epochs = [h["epoch"] for h in result.log_history if "epoch" in h]
    train_split = script.dataset_train_split
    eval_split = script.dataset_test_split if result.eval_metrics is not None else None
    return CardFacts(
        model_name=repo_id.split("/")[-1] if repo_id else Path(args.output_dir).resolve().name,
        repo_id=repo_id,
        base_model=public_name(base) or base,
        base_is_hub=is_hub_id(base) or bool(_HUB_CACHE.search(base)),
        family=spec.display_name,
        grid_sync=spec.syncs_image_grids,
        method=script.method,
        dataset=dataset_hub or Path(script.dataset_name).name,
        dataset_link=f"{_HUB}/datasets/{dataset_hub}" if dataset_hub else None,
        license=script.license or spec.license,
        base_license=spec.license,
        languages=languages,
        rows={("train" if k == train_split else "test"): v for k, v in result.data.rows.items()},
        dropped={
            ("train" if k == train_split else "test"): v for k, v in result.data.dropped_overlong.items()
        },
        max_tokens=script.max_tokens,
        image_tokens=result.image_tokens,
        countries=dict(result.data.countries.most_common()),
        language_counts=dict(sorted(language_counts.items(), key=lambda kv: -kv[1])),
        labels=dict(result.data.labels),
        hyperparameters=_hyperparameters(script, args, model_args, spec),
        config=portable(result.config),
        hardware=result.hardware,
        train_seconds=result.train_seconds,
        sessions=len(read_sessions(result.output_dir)) or 1,
        global_step=result.global_step,
        epoch=epochs[-1] if epochs else None,
        train_loss=losses[-1] if losses else None,
        eval_metrics=result.eval_metrics,
        eval_split=eval_split,
        emissions=result.emissions,
        emissions_country=script.emissions_country,
        curves=CURVES_FILE if result.curves else None,
        libraries=library_versions(LIBRARIES),
        code_url=script.code_url or project.get("code_url"),
        command=portable_command(command) if command else None,
        data_origin=data_origin(script.dataset_name),
        random_base=is_tiny_random(base),
    )


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def _link_model(facts: CardFacts) -> str:
    if facts.base_is_hub:
        return f"[{facts.base_model}]({_HUB}/{facts.base_model})"
    return f"`{facts.base_model}` (a local checkpoint, not on the Hub)"


def _metadata(facts: CardFacts) -> Any:
    from huggingface_hub import EvalResult, ModelCardData

    tags = ["mirada", "trl", facts.method, "lora", "vision-language", "image-captioning", "cultural-context"]
    if "4-bit" in str(facts.hyperparameters.get("quantisation")):
        tags.insert(3, "qlora")
    extra: dict[str, Any] = {}
    if facts.emissions is not None:
        extra["co2_eq_emissions"] = {
            "emissions": facts.emissions.emissions_kg * 1000.0,  # the Hub's field is in grams
            "source": "CodeCarbon (offline tracker)",
            "training_type": "fine-tuning",
            "geographical_location": facts.emissions.country,
            "hardware_used": facts.hardware,
        }
    eval_results = None
    if facts.eval_metrics:
        eval_results = [
            EvalResult(
                task_type="image-text-to-text",
                task_name="Culturally grounded image description",
                dataset_type=facts.dataset,
                dataset_name=facts.dataset,
                dataset_split=facts.eval_split,
                metric_type=key.removeprefix("eval_"),
                metric_name=key.removeprefix("eval_"),
                metric_value=value,
            )
            for key, value in facts.eval_metrics.items()
            if key
            in ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_mean_token_accuracy")
        ]
    return ModelCardData(
        model_name=facts.model_name,
        base_model=facts.base_model if facts.base_is_hub else None,
        datasets=[facts.dataset] if facts.dataset_link else None,
        language=facts.languages,
        license=facts.license,
        library_name="peft",
        pipeline_tag="image-text-to-text",
        tags=tags,
        eval_results=eval_results or None,
        **extra,
    )


def _table(rows: dict[str, Any], header: tuple[str, str]) -> str:
    return md_table(header, rows.items(), number=fmt)


def _counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{k} {v} ({100 * v / total:.0f}%)" for k, v in counts.items()) if total else ""


def _usage(facts: CardFacts) -> str:
    adapter = facts.repo_id or "path/to/this/run"
    base = facts.base_model
    prompt = PROMPTS.get(facts.languages[0], PROMPTS["es"]) if facts.languages else PROMPTS["es"]
    sync = (
        "base.config.image_grid_pinpoints = processor.image_processor.image_grid_pinpoints  # the grids trained with\n"
        if facts.grid_sync
        else ""
    )
    return f'''```python
import torch
from peft import PeftModel
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

base = AutoModelForImageTextToText.from_pretrained("{base}", dtype=torch.bfloat16, device_map="auto")
model = PeftModel.from_pretrained(base, "{adapter}")  # or load the merged model, if one was published
processor = AutoProcessor.from_pretrained("{adapter}")  # keeps the image budget used in training
{sync}
messages = [
    {{
        "role": "user",
        "content": [
            {{"type": "image", "image": Image.open("foto.jpg")}},
            {{"type": "text", "text": "{prompt}"}},
        ],
    }}
]
inputs = processor.apply_chat_template(
    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
).to(model.device)
output = model.generate(**inputs, max_new_tokens=200)
print(processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```'''


def _reference(method: str, continued: bool) -> str:
    if method == "sft":
        return "."
    if continued:
        return "; the reference model is the starting adapter, frozen (TRL keeps a copy of it, not of the model)."
    return "; the reference model is the base with the adapter disabled (no second copy in memory)."


def data_sentence(method: str, origin: str) -> str:
    """What the card may say about who judged the data: only what the dataset's own card records."""
    judged = "reviewed and accepted or corrected" if method == "sft" else "reviewed and ranked"
    if origin == "people":
        return (
            f"The training data are candidate captions that people {judged}, so the model learns their "
            "preferences rather than a stereotype."
        )
    if origin == "simulated":
        return (
            "The training data are model-drafted candidate captions whose review answers were simulated for a demo, "
            "so this run shows the pipeline, not what people prefer."
        )
    if origin == "machine":
        return "The training data are candidate captions judged by a machine, not by people."
    return "The training data's card does not record who judged its captions."


def _body(facts: CardFacts) -> str:
    hp = facts.hyperparameters
    method = METHOD_NAMES[facts.method]
    parts: list[str] = [f"# {facts.model_name}"]
    if facts.random_base:
        parts.append(
            "> **Warning: the base model is a tiny model with random weights** (`python -m vlm.tiny`), so this "
            "adapter's outputs are noise. The run demonstrates the training pipeline; it is not a captioning model."
        )
    if facts.data_origin == "simulated":
        parts.append(
            "> **Warning: the review answers behind the training data are SIMULATED** (`mirada review simulate`, "
            "demo only). No person judged these captions, so the model learned no human preferences."
        )
    elif facts.data_origin == "machine":
        parts.append(
            "> **Note: the training data's judgements are machine-generated** (its Dataset Card says so), not "
            "people's reviews."
        )
    parts.append(
        f"A LoRA adapter for {_link_model(facts)} ({facts.family}) trained with {method} to describe images "
        "**with their cultural context** in the languages of Latin America and the Iberian Peninsula "
        f"({', '.join(facts.languages)}). It was built with Mirada for the SomosNLP hackathon (option B: a "
        "multimodal model that describes images taking cultural context into account)."
    )
    parts.append(
        "**Motivation and impact.** General-purpose vision-language models describe a *tamal*, a *diablada* "
        "costume or a *festa junina* as generic food, a costume or a party, often in a single variety of Spanish "
        "or Portuguese. Captions that name what is shown, where it comes from and why it matters make images "
        "accessible (alt text, archives, education) and keep local knowledge visible. "
        + data_sentence(facts.method, facts.data_origin)
    )

    lora = hp.get("LoRA r / alpha / dropout")
    if lora:
        r, alpha, dropout = lora.split(" / ")
        adapter = f"LoRA r={r}, alpha={alpha}, dropout={dropout} on the language model's attention and MLP projections"
    else:
        adapter = (
            f"continued from the adapter `{hp.get('starting adapter')}` (also the frozen reference model)"
        )
    details = [
        f"- **Base model:** {_link_model(facts)}",
        f"- **Method:** {method} with TRL's `{facts.method.upper()}Trainer`"
        + (", QLoRA" if "4-bit" in str(hp.get("quantisation")) else ", LoRA")
        + _reference(facts.method, lora is None),
        f"- **Adapter:** {adapter}; the vision tower, projector and `lm_head` are frozen and unquantised.",
        f"- **Languages:** {', '.join(facts.languages)}",
        f"- **Licence:** {facts.license}",
    ]
    if facts.license != "apache-2.0":
        details.append(
            f"  The adapter is a derivative of the base model, whose licence is `{facts.base_license}`; it is "
            "released under the same terms instead of Apache-2.0."
        )
    details.append(
        "- **Code:** "
        + (f"[{facts.code_url}]({facts.code_url})" if facts.code_url else "Mirada (`mirada train`)")
        + (f"; command: `{facts.command}`" if facts.command else "")
    )
    parts.append("## Model details\n\n" + "\n".join(details))

    data = [
        "- **Dataset:** "
        + (
            f"[{facts.dataset}]({facts.dataset_link})"
            if facts.dataset_link
            else f"`{facts.dataset}` (local export)"
        ),
        "- **Rows used:** " + ", ".join(f"{split} {n}" for split, n in facts.rows.items()),
    ]
    dropped = {k: v for k, v in facts.dropped.items() if v}
    data.append(
        f"- **Over-long rows dropped** (longer than {facts.max_tokens} tokens, image tokens included): "
        + (", ".join(f"{split} {n}" for split, n in dropped.items()) if dropped else "none")
    )
    data.append(f"- **Image tokens per image:** at most {facts.image_tokens}")
    if facts.countries:
        data.append(f"- **Countries (train):** {_counts(facts.countries)}")
    if facts.language_counts:
        data.append(f"- **Language varieties (train):** {_counts(facts.language_counts)}")
    if facts.labels:
        data.append(f"- **KTO labels (train):** {_counts(facts.labels)}")
    parts.append("## Training data\n\n" + "\n".join(data))

    procedure = ["## Training procedure", "### Hyperparameters", _table(hp, ("setting", "value"))]
    procedure.append(
        "<details><summary>Full resolved configuration</summary>\n\n```json\n"
        + json.dumps(facts.config, indent=1, default=str)
        + "\n```\n</details>"
    )
    minutes = facts.train_seconds / 60
    procedure.append(
        "### Hardware and time\n\n"
        f"- **Hardware:** {facts.hardware}\n"
        f"- **Training time:** {facts.train_seconds:.1f} s ({minutes:.1f} min) over {facts.sessions} session(s)\n"
        f"- **Optimiser steps:** {facts.global_step}"
        + (f" ({fmt(facts.epoch)} epochs)" if facts.epoch is not None else "")
        + (f"\n- **Final training loss:** {fmt(facts.train_loss)}" if facts.train_loss is not None else "")
    )
    if facts.curves:
        procedure.append(f"### Training curves\n\n![Training curves]({facts.curves})")
    parts.append("\n\n".join(procedure))

    if facts.eval_metrics:
        shown = {
            k.removeprefix("eval_"): v
            for k, v in facts.eval_metrics.items()
            if "runtime" not in k and "per_second" not in k and k != "epoch"
        }
        parts.append(
            f"## Evaluation\n\nOn the `{facts.eval_split}` split ({facts.rows.get('test', 0)} rows) at step "
            f"{facts.global_step}:\n\n"
            + _table(shown, ("metric", "value"))
            + "\n\nThese are training-objective metrics, not caption quality. `mirada eval` (reference and "
            "cultural metrics per country) and `mirada judge` (win rates from a judge calibrated against the "
            "annotators) add their own sections to this card when they are run with `--card`."
        )
    else:
        parts.append("## Evaluation\n\nNo evaluation split was used in this run (eval_strategy=no).")

    if facts.emissions is not None:
        e = facts.emissions
        parts.append(
            "## Environmental impact\n\n"
            f"- **Emissions:** {fmt(e.emissions_kg)} kg CO2eq ({fmt(e.emissions_kg * 1000)} g)\n"
            f"- **Energy:** {fmt(e.energy_kwh)} kWh over {e.duration_s:.1f} s ({e.sessions} tracked session(s))\n"
            f"- **Grid:** {e.country} (`emissions_country={facts.emissions_country}`)\n"
            f"- **Measured on:** {e.hardware}\n\n"
            "Measured with CodeCarbon's offline tracker around training (not evaluation, merging or upload); "
            "`emissions.csv` is in this repository."
        )
    else:
        parts.append("## Environmental impact\n\nEmissions were not tracked in this run (emissions=false).")

    parts.append(
        "## Intended use\n\n"
        "Describing photographs of food, festivals, crafts, clothing, architecture, landmarks and everyday "
        "objects from Latin America and the Iberian Peninsula, in the variety of the request, as a draft for "
        "alt text, archives or teaching material that a person reviews. Not for identifying people, judging "
        "authenticity, or decisions about individuals."
    )
    bias = [
        "## Bias, risks and limitations\n",
        "- The model only knows the cultures, regions and varieties present in its data; elsewhere it falls back "
        "to the base model's (often generic or stereotyped) descriptions.",
    ]
    if facts.countries:
        top, top_n = next(iter(facts.countries.items()))
        share = 100 * top_n / sum(facts.countries.values())
        bias.append(
            f"- The training data are not balanced: {top} alone is {share:.0f}% of the rows, and countries absent "
            "from the list above are not represented at all."
        )
    else:
        bias.append(
            "- The dataset carries no `country` column, so its geographic balance could not be reported."
        )
    bias += [
        "- Preferences come from a small group of reviewers and from drafts by a commercial model; their blind "
        "spots and tastes are learnt too.",
        "- It can state wrong places, names or dates with confidence; captions must be reviewed before use.",
        f"- {facts.family} can also misread images (small text, crowded scenes); the adapter does not change the "
        "vision tower.",
    ]
    parts.append("\n".join(bias))
    parts.append("## How to use\n\n" + _usage(facts))
    libraries = ", ".join(f"{k} {v}" for k, v in facts.libraries.items())
    parts.append(
        "## Libraries and tests\n\n"
        f"Trained with {libraries}. Mirada's test suite runs SFT, DPO and KTO with LoRA and 4-bit QLoRA on tiny "
        "randomly initialised models of several families on CPU (finite losses, non-zero gradients after an "
        "evaluation, resuming, reloading and merging the adapter, this card's numbers) before any GPU run."
    )
    return "\n\n".join(parts) + "\n"


def build_card(facts: CardFacts) -> ModelCard:
    """The card as a ``ModelCard`` (YAML metadata + Markdown body)."""
    from huggingface_hub import ModelCard

    # The facts already name models by Hub id or folder; this last pass catches a path inside any other
    # string (an error text, a config value) so no local directory reaches a published card.
    return ModelCard(scrub_local_paths(f"---\n{_metadata(facts).to_yaml()}\n---\n\n{_body(facts)}"))


def write_card(facts: CardFacts, output_dir: str | Path) -> Path:
    """Write ``README.md`` (replacing the one PEFT writes) and return its path."""
    path = Path(output_dir) / "README.md"
    build_card(facts).save(path)
    return path
