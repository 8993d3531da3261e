"""Training stage: QLoRA SFT, DPO and KTO of vision-language models through TRL's own trainers.

Importing this package is free (no torch, no TRL); the pieces live in submodules:
``cli`` (``mirada train`` / ``python -m vlm.train``), ``trainer`` (library code the CLI and tests
call), ``sft_config`` / ``dpo_config`` / ``kto_config`` (TRL's configs with Mirada's defaults),
``model_config`` (model, LoRA and 4-bit), ``script_args`` (data and run options), ``data`` (loading
and over-long-row filtering) and ``card`` (the Model Card).
"""
