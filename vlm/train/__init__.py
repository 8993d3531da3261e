"""Training stage: QLoRA SFT, DPO and KTO of vision-language models through TRL's own trainers.

Importing this package is free (no torch, no TRL); the pieces live in submodules, one concern each:
``cli`` (``mirada train`` / ``python -m vlm.train``), ``trainer`` (the run), ``validation`` (every
cross-field check, before loading), ``modeling`` (settings -> 4-bit and LoRA configs; the loading
itself is :mod:`vlm.models`), ``preparation`` and ``data`` (splits, format, over-long rows),
``callbacks`` (repack guard, frozen ViT, emissions), ``outputs`` (metrics, curves, push),
``card`` (the Model Card), ``sft_config`` / ``dpo_config`` / ``kto_config`` (TRL's configs with
Mirada's defaults), ``model_config`` (model, LoRA and 4-bit) and ``script_args`` (data and run options).
"""
