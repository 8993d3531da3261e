"""The run behind ``mirada train``: QLoRA SFT/DPO/KTO of a VLM through TRL's own trainers.

The CLI parses three dataclasses and calls :func:`run_training`. Each concern lives in its own module:
:mod:`vlm.train.validation` (every cross-field check, before anything heavy loads), :mod:`vlm.models`
(the one loading layer: family, processor and image budget, 4-bit, guards, merging),
:mod:`vlm.train.modeling` (settings → bitsandbytes/LoRA configs), :mod:`vlm.train.preparation` (splits,
format, over-long rows), :mod:`vlm.train.callbacks` (repack guard, frozen ViT, emissions) and
:mod:`vlm.train.outputs` (metrics, curves, sessions, push); the Model Card is :mod:`vlm.train.card`.
Outputs are written by the main process only, so the same code runs on one GPU or under
``accelerate launch`` (DDP, FSDP, DeepSpeed).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainingArguments

from data_tools.secrets import register_secret
from data_tools.workspace import RunRecord
from vlm.models import disable_cpu_repack, load_model, merge_adapter, prepare_processor, read_config
from vlm.registry import sync_model_to_processor
from vlm.train.callbacks import CpuRepackGuard, EmissionsCallback, FrozenVisionInputs
from vlm.train.model_config import MiradaModelConfig
from vlm.train.modeling import build_lora_config, build_quantization_config
from vlm.train.outputs import (
    CURVES_FILE,
    TrainResult,
    describe_hardware,
    finite,
    push_run,
    read_emissions,
    resolved_config,
    save_curves,
    write_run_files,
)
from vlm.train.preparation import prepare_data, sft_collator
from vlm.train.script_args import TrainScriptArguments
from vlm.train.validation import (
    HF_TOKEN_ENV,
    check_process_group,
    clear_output_dir,
    iso3,
    resume_checkpoint,
    validate,
)

log = logging.getLogger("vlm.train")

__all__ = ["TRAINERS", "run_training", "without_trl_card"]

TRAINERS: dict[str, str] = {"sft": "SFTTrainer", "dpo": "DPOTrainer", "kto": "KTOTrainer"}
"""Method → TRL trainer class name (imported lazily from ``trl``)."""


def without_trl_card(trainer_cls: type) -> type:
    """``trainer_cls`` without TRL's generic README on every checkpoint.

    TRL writes a template card ("fine-tuned version of [None]" for a local base) into output_dir at
    each checkpoint save; a run killed before Mirada writes its own card left it behind, and a
    resumed run overwrote Mirada's card with it. The Model Card is Mirada's (:mod:`vlm.train.card`).
    """

    def create_model_card(self: Any, *args: Any, **kwargs: Any) -> None:
        log.debug("TRL's template model card skipped; Mirada writes the Model Card")

    return type(f"Mirada{trainer_cls.__name__}", (trainer_cls,), {"create_model_card": create_model_card})


def run_training(
    script: TrainScriptArguments,
    args: TrainingArguments,
    model_args: MiradaModelConfig,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    command: str | None = None,
) -> TrainResult:
    """Train (see :func:`_run_training`), recorded as a ``train`` run in the dataset's workspace if it has one.

    A prefs export (``WS/exports/prefs/NAME``) knows its workspace, so `mirada status` lists the
    training runs made from it, interrupted and failed ones included, without a ``--workspace`` flag.
    """
    from accelerate import PartialState

    with ExitStack() as stack:
        record = _workspace_run(stack, script, args, model_args) if PartialState().is_main_process else None
        result = _run_training(script, args, model_args, callbacks=callbacks, command=command)
        if record is not None:
            record.summary = {
                "run": Path(args.output_dir).resolve().name,
                "method": script.method,
                "global_step": result.global_step,
                "rows": dict(result.data.rows),
                "train_seconds": round(result.train_seconds, 1),
            }
        return result


def _workspace_run(
    stack: ExitStack, script: TrainScriptArguments, args: TrainingArguments, model_args: MiradaModelConfig
) -> RunRecord | None:
    from data_tools.workspace import Workspace
    from data_tools.workspace.store import workspace_of_export

    root = workspace_of_export(script.dataset_name) if script.dataset_name else None
    if root is None:
        return None
    try:
        workspace = stack.enter_context(Workspace.open(root, create=False))
    except Exception as exc:  # a locked or broken workspace must not stop a training run
        log.warning("this run is not recorded in the workspace %s: %s", root.name, exc)
        return None
    config = {
        "output_dir": Path(args.output_dir).name,
        "dataset": Path(script.dataset_name).name,
        "method": script.method,
        "model": Path(model_args.model_name_or_path).name,
    }
    return stack.enter_context(workspace.run("train", config))


def _run_training(
    script: TrainScriptArguments,
    args: TrainingArguments,
    model_args: MiradaModelConfig,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    command: str | None = None,
) -> TrainResult:
    """Validate, load, train, evaluate, save, plot, merge, write the card and push. Same code on 1 or N GPUs.

    ``command`` is the command line to quote in the card (the CLI passes it; secrets never appear in
    it because tokens are only read from the environment).
    """
    import torch
    import trl
    from accelerate import PartialState
    from transformers import set_seed

    spec = validate(script, args, model_args)
    state = PartialState()
    check_process_group(state.num_processes)
    if not state.is_local_main_process:
        logging.getLogger("vlm").setLevel(logging.WARNING)  # one copy of the progress logs per machine
    token = os.environ.get(HF_TOKEN_ENV)
    register_secret(token)
    push, args.push_to_hub = args.push_to_hub, False  # Mirada pushes itself, adapter and card together
    resume_from = resume_checkpoint(script, args)
    if state.is_main_process:
        clear_output_dir(script, args)
    state.wait_for_everyone()
    output_dir = Path(args.output_dir)
    set_seed(args.seed)

    source = model_args.model_name_or_path
    config = read_config(source, revision=model_args.model_revision, trust_remote_code=args.trust_remote_code)
    processor, image_tokens = prepare_processor(
        source,
        max_image_tokens=model_args.max_image_tokens,
        spec=spec,
        config=config,
        revision=model_args.model_revision,
        trust_remote_code=args.trust_remote_code,
    )
    data_collator = sft_collator(spec, script.method, processor)
    train_ds, eval_ds, data = prepare_data(script, args, processor, data_collator)
    log.info(
        "%s %s on %s: %s",
        script.method.upper(),
        spec.display_name,
        script.dataset_name,
        ", ".join(f"{k}={v} rows" for k, v in data.rows.items()),
    )

    model = load_model(
        source,
        dtype=model_args.dtype or "auto",
        for_training=True,
        spec=spec,
        config=config,
        revision=model_args.model_revision,
        trust_remote_code=args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        quantization_config=build_quantization_config(model_args, spec),
    )
    for key in sync_model_to_processor(model, processor):
        log.info("model config %s follows the processor's image budget", key)
    peft_config = build_lora_config(model_args, spec)
    if model_args.adapter_name_or_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, model_args.adapter_name_or_path, is_trainable=True)
        log.info("continuing adapter %s (its LoRA settings win over lora_*)", model_args.adapter_name_or_path)

    emissions = EmissionsCallback(output_dir, iso3(script.emissions_country)) if script.emissions else None
    all_callbacks: list[TrainerCallback] = [CpuRepackGuard(), FrozenVisionInputs(spec)]
    all_callbacks += [emissions] if emissions else []
    all_callbacks += list(callbacks)
    trainer_cls = without_trl_card(getattr(trl, TRAINERS[script.method]))
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=all_callbacks,
        **({"data_collator": data_collator} if data_collator is not None else {}),
    )
    started = time.time()
    try:
        train_output = trainer.train(resume_from_checkpoint=resume_from)
    finally:
        if emissions:
            emissions.stop()
    train_seconds = time.time() - started
    train_metrics = {k: float(v) for k, v in train_output.metrics.items() if finite(v)}

    eval_metrics = None
    if eval_ds is not None:
        last_eval = [h for h in trainer.state.log_history if "eval_loss" in h]
        if last_eval and last_eval[-1].get("step") == trainer.state.global_step:
            eval_metrics = {
                k: float(v) for k, v in last_eval[-1].items() if finite(v) and k.startswith("eval_")
            }
        else:
            eval_metrics = {k: float(v) for k, v in trainer.evaluate().items() if finite(v)}
        disable_cpu_repack(trainer.model)

    trainer.save_model(str(output_dir))
    trainer.save_state()  # trainer_state.json: the log history the card and curves are built from
    result = TrainResult(
        output_dir=output_dir,
        method=script.method,
        family=spec.name,
        global_step=trainer.state.global_step,
        train_metrics=train_metrics,
        eval_metrics=eval_metrics,
        log_history=list(trainer.state.log_history),
        data=data,
        image_tokens=image_tokens,
        hardware=describe_hardware(),
        train_seconds=train_seconds,
        resumed_from=resume_from,
        config=resolved_config(script, args, model_args),
    )
    result.config["training"]["push_to_hub"] = push  # as asked, though the Trainer itself never pushes
    if state.is_main_process:
        processor.save_pretrained(str(output_dir))
        write_run_files(result, started)
        if script.curves:
            result.curves = save_curves(result.log_history, output_dir / CURVES_FILE, script.method)
        result.emissions = read_emissions(output_dir / "emissions.csv")
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if state.is_main_process:
        if script.merge:
            result.merged = merge_adapter(
                output_dir,
                source,
                output_dir / "merged",
                dtype=script.merge_dtype,
                trust_remote_code=args.trust_remote_code,
            )
        if script.model_card:
            from vlm.train.card import card_facts, write_card

            repo_id = args.hub_model_id if push else None
            facts = card_facts(result, script, args, model_args, spec, repo_id, command)
            result.card = write_card(facts, output_dir)
        if push:
            result.pushed_to = push_run(
                output_dir, args.hub_model_id, token, private=bool(args.hub_private_repo)
            )
    state.wait_for_everyone()
    return result
