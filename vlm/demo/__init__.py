"""A Gradio demo of a base VLM and its Mirada adapters side by side, and its export as a Hugging Face Space.

    mirada demo --model Qwen/Qwen2.5-VL-7B-Instruct --adapter runs/qwen-dpo --workspace ws
    mirada demo --model Qwen/Qwen2.5-VL-7B-Instruct --adapter org/qwen-dpo --export-space space/

The UI is built around *injected* captioners (``name -> callable(image, metadata) -> caption``), so the
same Blocks serve the CLI (captioners over the shared loader, :mod:`vlm.models`), the exported Space
(the same, wrapped in ``@spaces.GPU`` on ZeroGPU) and the tests (plain functions, no model).
"""

from vlm.demo.app import Captioner, Example, build_demo, examples_from_workspace

__all__ = ["Captioner", "Example", "build_demo", "examples_from_workspace"]
