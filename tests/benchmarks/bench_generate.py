"""Benchmark caption generation: one image at a time vs batched (HF), and vLLM when installed, same run.

    .venv/bin/python tests/benchmarks/bench_generate.py                  # CPU: tiny Qwen2.5-VL, same code path
    .venv/bin/python tests/benchmarks/bench_generate.py --real-arch      # GPU: real Qwen2.5-VL-7B architecture
    .venv/bin/python tests/benchmarks/bench_generate.py --real-arch --images 64 --batch 16 --new-tokens 64

Both HF configurations call the stage's own generator (:func:`vlm.generate.hf.generate_batch`) on the
same model loaded once through the shared loading layer (``vlm.models.load_for_inference``, left
padding, greedy): ``sequential`` feeds one image per ``generate`` call, ``batched`` --batch images.
With --real-arch the model is the published Qwen2.5-VL-7B-Instruct architecture with random weights,
built offline and saved once by ``bench_train.build_full_model`` (bf16, no Hub access); images are
--image-side px squares (448 px = 256 image tokens with 14 px patches and 2x2 merging). Random
weights rarely emit the stop token, so nearly every caption runs to --new-tokens; tokens/s counts
the tokens actually generated (up to and including a stop token). vLLM, when importable, captions
the same prompts through the stage's vllm backend (its own continuous batching).

Printed: captions/s and generated tokens/s per configuration and the batched/sequential ratio.
Goal (GPU, real architecture, batch 16): batched >= 4x sequential in captions/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]
GOAL_SPEEDUP = 4.0
INSTRUCTION = "Describe esta imagen teniendo en cuenta su contexto cultural."


def _images(count: int, side: int) -> list[Any]:
    from data_tools.sample import random_picture

    return [random_picture(seed, (side, side)) for seed in range(count)]


def _time(label: str, loaded: Any, images: list[Any], batch: int, decoding: Any, sync: Any) -> dict[str, Any]:
    from vlm.generate.hf import generate_batch

    run = lambda chunk: generate_batch(  # noqa: E731
        loaded.model, loaded.processor, loaded.spec, [INSTRUCTION] * len(chunk), chunk, decoding
    )
    run(images[:batch])  # warm-up: kernels, caches, allocator
    sync()
    started = time.perf_counter()
    tokens = 0
    for start in range(0, len(images), batch):
        tokens += sum(out.tokens for out in run(images[start : start + batch]))
    sync()
    seconds = time.perf_counter() - started
    result = {"config": label, "batch": batch, "images": len(images), "seconds": round(seconds, 3),
              "captions_per_s": round(len(images) / seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
              "tokens": tokens}  # fmt: skip
    print(f"{label:>10}  batch {batch:>3}: {result['captions_per_s']:8.2f} captions/s  "
          f"{result['tokens_per_s']:9.1f} tokens/s  ({len(images)} captions, {tokens} tokens, {seconds:.1f} s)",
          flush=True)  # fmt: skip
    return result


def _vllm(model: Path, images: list[Any], new_tokens: int) -> dict[str, Any] | None:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        print("      vllm: not installed (pip install vllm on a CUDA machine to include it)")
        return None
    from vlm.generate.backends import System, VLLMBackend
    from vlm.generate.config import GenerateConfig
    from vlm.generate.items import Item

    config = GenerateConfig(backend="vllm", decoding={"max_new_tokens": new_tokens}, batch_size=len(images))
    backend = VLLMBackend(str(model), [System("base")], config)
    items = [Item(f"img{i}", Path("unused"), "es", None, INSTRUCTION) for i in range(len(images))]
    backend.caption(System("base"), items[:4], images[:4])  # warm-up
    started = time.perf_counter()
    outputs = backend.caption(System("base"), items, images)
    seconds = time.perf_counter() - started
    tokens = sum(o.tokens for o in outputs)
    print(
        f"{'vllm':>10}  continuous: {len(images) / seconds:8.2f} captions/s  {tokens / seconds:9.1f} tokens/s"
    )
    return {"config": "vllm", "images": len(images), "seconds": round(seconds, 3),
            "captions_per_s": round(len(images) / seconds, 3), "tokens_per_s": round(tokens / seconds, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--real-arch", action="store_true", help="random Qwen2.5-VL-7B architecture (needs a GPU)"
    )
    parser.add_argument("--images", type=int, help="captions per configuration (default: 32; --real-arch 64)")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the batched configuration")
    parser.add_argument(
        "--new-tokens", type=int, help="max new tokens per caption (default: 32; --real-arch 64)"
    )
    parser.add_argument("--image-side", type=int, help="image side in px (default: 64; --real-arch 448)")
    parser.add_argument("--workdir", type=Path, help="cache for the built model (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    opts = parser.parse_args(argv)
    images_n = opts.images or (64 if opts.real_arch else 32)
    new_tokens = opts.new_tokens or (64 if opts.real_arch else 32)
    side = opts.image_side or (448 if opts.real_arch else 64)

    import torch

    from vlm.generate.config import Decoding
    from vlm.models import load_for_inference

    if opts.real_arch and not torch.cuda.is_available():
        print(
            "no CUDA GPU: --real-arch needs one (about 17 GiB in bf16); run without it on CPU",
            file=sys.stderr,
        )
        return 2
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="bench_generate_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if opts.real_arch:
        from bench_train import build_full_model

        model = build_full_model(workdir)
    else:
        from vlm.tiny import build_tiny_vlm

        model = workdir / "tiny-qwen2_5_vl"
        if not (model / "config.json").exists():
            build_tiny_vlm("qwen2_5_vl", model)
    loaded = load_for_inference(model, dtype="bfloat16" if opts.real_arch else "float32", padding_side="left")
    if opts.real_arch:
        loaded.model.to("cuda")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    images = _images(images_n, side)
    decoding = Decoding(max_new_tokens=new_tokens)
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"{'Qwen2.5-VL-7B architecture, random bf16' if opts.real_arch else 'tiny Qwen2.5-VL, fp32'} on {device}; "
          f"{images_n} images of {side}px, greedy, up to {new_tokens} new tokens", flush=True)  # fmt: skip
    results = [
        _time("sequential", loaded, images, 1, decoding, sync),
        _time("batched", loaded, images, opts.batch, decoding, sync),
    ]
    ratio = results[1]["captions_per_s"] / results[0]["captions_per_s"]
    verdict = "meets" if ratio >= GOAL_SPEEDUP else "below"
    scope = (
        ""
        if opts.real_arch and torch.cuda.is_available()
        else " (the goal is for a GPU; CPU figures exercise the path)"
    )
    print(
        f"batched / sequential = {ratio:.2f}x at batch {opts.batch}; goal >= {GOAL_SPEEDUP:.0f}x: {verdict}{scope}"
    )
    del loaded
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    vllm = _vllm(model, images, new_tokens) if torch.cuda.is_available() else None
    if vllm:
        results.append(vllm)
    if opts.json:
        opts.json.write_text(json.dumps({"ratio": round(ratio, 3), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
