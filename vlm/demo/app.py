"""The Gradio Blocks of the demo: one image in, one caption per system out, each with its latency.

Why captioners are injected: loading a 7B model is the slow, hardware-bound part, and it differs
between a laptop (the shared loader on CPU/GPU), a ZeroGPU Space (``@spaces.GPU`` around the call)
and a test (a plain function). The UI only needs ``name -> callable(image, metadata) -> str``.

Examples come from the workspace's *test* split (images no model was trained on), with their
country, variety, notes and reference caption, so a visitor sees the metadata the reviewers saw.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

Captioner = Callable[[Any, Mapping[str, str | None]], str]
"""``captioner(pil_image, {"country": "MX", "language": "es-MX", "notes": "…"}) -> caption``."""

EXAMPLES_FILE = "examples.jsonl"


@dataclass(frozen=True)
class Example:
    """One example image with the metadata shown next to it (paths relative to the examples folder)."""

    image: str
    country: str = ""
    language: str = ""
    notes: str = ""
    reference: str = ""


def examples_from_workspace(workspace: Any, limit: int = 8) -> list[Example]:
    """Up to ``limit`` test-split images with their metadata and first reference caption.

    The split is the one ``mirada prefs`` recorded (``workspace.image_splits()``); before prefs ran
    there is no test split and any collected image may have been trained on, so none is offered.
    """
    splits = workspace.image_splits()
    examples = []
    for image_id in sorted(i for i, split in splits.items() if split == "test")[:limit]:
        row = workspace.get_image(image_id)
        if row is None:
            continue
        refs = list(row.reference_captions or [])
        examples.append(Example(str(workspace.image_path(row)), row.country or "", row.language or "",
                                row.cultural_context or "", refs[0] if refs else ""))  # fmt: skip
    return examples


def save_examples(examples: Sequence[Example], out_dir: Path) -> list[Example]:
    """Copy the example images into ``out_dir`` and write ``examples.jsonl`` (for a Space)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    with open(out_dir / EXAMPLES_FILE, "w", encoding="utf-8") as handle:
        for example in examples:
            source = Path(example.image)
            shutil.copy2(source, out_dir / source.name)
            copy = Example(**{**asdict(example), "image": source.name})
            handle.write(json.dumps(asdict(copy), ensure_ascii=False) + "\n")
            saved.append(copy)
    return saved


def load_examples(folder: Path) -> list[Example]:
    """The examples written by :func:`save_examples`, with image paths made absolute."""
    path = Path(folder) / EXAMPLES_FILE
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Example(**{**row, "image": str(Path(folder) / row["image"])}) for row in rows]


def describe_all(captioners: Mapping[str, Captioner], image: Any, metadata: Mapping[str, str | None]
                 ) -> list[tuple[str, float]]:  # fmt: skip
    """``[(caption, seconds), ...]`` in the captioners' order; a failing system shows its error, not a crash."""
    results = []
    for name, captioner in captioners.items():
        start = time.perf_counter()
        try:
            caption = captioner(image, metadata).strip()
        except Exception as exc:  # one broken adapter must not take the other columns down
            caption = f"[{name} failed: {type(exc).__name__}: {exc}]"
        results.append((caption, time.perf_counter() - start))
    return results


def build_demo(captioners: Mapping[str, Captioner], *, examples: Sequence[Example] = (),
               drafter: Captioner | None = None, title: str = "Mirada: culturally grounded image captions",
               description: str = "") -> Any:  # fmt: skip
    """The demo's ``gr.Blocks``: inputs on the left, one caption box per system (base first) on the right.

    ``drafter`` (a Cohere draft, when a key is set) adds one more box, filled only when asked for,
    because it costs money per call. The click is exposed to ``gradio_client`` as ``/describe``.
    """
    import gradio as gr

    if not captioners:
        raise ValueError("the demo needs at least one captioner (the base model)")
    names = list(captioners)
    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"# {title}\n\n{description}".strip())
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="pil", label="Image", elem_id="image")
                country = gr.Textbox(label="Country (ISO code, optional)", elem_id="country", max_lines=1)
                language = gr.Textbox(label="Language variety (e.g. es-MX, pt-BR; optional)", elem_id="language",
                                      max_lines=1)  # fmt: skip
                notes = gr.Textbox(label="Cultural notes (optional)", elem_id="notes", lines=2)
                reference = gr.Textbox(label="Reference caption (from the dataset)", elem_id="reference",
                                       interactive=False, lines=2)  # fmt: skip
                with gr.Row():
                    button = gr.Button("Describe", variant="primary", elem_id="describe")
                    draft_box = gr.Checkbox(label="also ask Cohere (costs credits)", value=False,
                                            visible=drafter is not None, elem_id="ask_cohere")  # fmt: skip
            with gr.Column(scale=2):
                boxes, timings = [], []
                for index, name in enumerate(names):
                    boxes.append(
                        gr.Textbox(label=name, elem_id=f"caption-{index}", lines=3, interactive=False)
                    )
                    timings.append(gr.Markdown(elem_id=f"latency-{index}"))
                cohere = gr.Textbox(label="Cohere draft", elem_id="cohere", lines=3, interactive=False,
                                    visible=drafter is not None)  # fmt: skip
        if examples:
            gr.Examples(
                examples=[[e.image, e.country, e.language, e.notes, e.reference] for e in examples],
                inputs=[image, country, language, notes, reference],
                label="Examples from the test split (never trained on)",
            )

        def describe(img: Any, ctry: str, lang: str, note: str, ask: bool) -> list[str]:
            if img is None:
                raise gr.Error("upload an image or pick an example first")
            metadata = {"country": ctry.strip() or None, "language": lang.strip() or None,
                        "notes": note.strip() or None}  # fmt: skip
            results = describe_all(captioners, img, metadata)
            out: list[str] = []
            for caption, _ in results:
                out.append(caption)
            for _, seconds in results:
                out.append(f"{seconds:.2f} s")
            drafted = ""
            if drafter is not None and ask:
                drafted = describe_all({"cohere": drafter}, img, metadata)[0][0]
            return [*out, drafted]

        button.click(describe, inputs=[image, country, language, notes, draft_box],
                     outputs=[*boxes, *timings, cohere], api_name="describe")  # fmt: skip
    return demo
