"""Captioners for the demo: the base model and each adapter over ONE loaded model, and a Cohere draft.

The model is loaded once through the shared loading layer (:func:`vlm.models.load_for_inference`),
with every adapter attached under its own name; the base caption runs with the adapters disabled,
so N adapters cost one base model in memory, not N+1. The prompt is the training instruction of the
requested language variety (``configs/prompts/prefs/instructions.yaml``), without metadata, because
that is what the adapters were trained on; country and notes only reach the Cohere draft.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlm.demo.app import Captioner

DEFAULT_INSTRUCTIONS = (
    Path(__file__).resolve().parents[2] / "configs" / "prompts" / "prefs" / "instructions.yaml"
)
FALLBACK_INSTRUCTION = "Describe esta imagen teniendo en cuenta su contexto cultural."


def adapter_name(path_or_id: str) -> str:
    """A short, unique-enough label for an adapter: the run folder or repo name (``runs/qwen-dpo`` → ``qwen-dpo``)."""
    return Path(str(path_or_id).rstrip("/")).name or str(path_or_id)


def instruction_table(path: Path | None = None) -> dict[str, str]:
    """``variety -> instruction`` (first phrasing) from the prefs instruction file, if it is there."""
    import yaml

    source = Path(path) if path else DEFAULT_INSTRUCTIONS
    if not source.is_file():
        return {}
    table = (yaml.safe_load(source.read_text(encoding="utf-8")) or {}).get("instructions") or {}
    return {str(k): (v if isinstance(v, str) else next(iter(v))) for k, v in table.items()}


def pick_instruction(table: Mapping[str, str], language: str | None, default_language: str = "es") -> str:
    """The exact variety, then its bare language, then ``default_language``: ``es-PA`` → the ``es`` text."""
    for key in (language, (language or "").split("-")[0], default_language):
        if key and key in table:
            return table[key]
    return FALLBACK_INSTRUCTION


def model_captioners(model: str, adapters: Sequence[str] = (), *, quantization: str = "none",
                     dtype: str = "auto", max_new_tokens: int = 96, instructions: Path | None = None,
                     default_language: str = "es") -> dict[str, Captioner]:  # fmt: skip
    """``{"base": …, "<adapter>": …}`` over one model loaded by the shared loader, captioned by ``mirada generate``'s code."""
    from vlm.generate.config import Decoding
    from vlm.generate.hf import generate_batch
    from vlm.models import load_for_inference

    names = [adapter_name(a) for a in adapters]
    if len(set(names)) != len(names):
        names = [f"{i}-{n}" for i, n in enumerate(names)]
    loaded = load_for_inference(model, adapters=list(adapters), adapter_names=names or None,
                                quantization=quantization, dtype=dtype)  # fmt: skip
    table = instruction_table(instructions)
    decoding = Decoding(max_new_tokens=max_new_tokens)  # greedy: the same image gives the same caption
    lock = threading.Lock()  # one model, one request at a time (Gradio may call from several threads)

    def make(adapter: str | None) -> Captioner:
        def caption(image: Any, metadata: Mapping[str, str | None]) -> str:
            prompt = pick_instruction(table, metadata.get("language"), default_language)
            with lock:
                if adapter is None:
                    context = loaded.model.disable_adapter() if adapters else contextlib.nullcontext()
                else:
                    loaded.model.set_adapter(adapter)
                    context = contextlib.nullcontext()
                with context:  # the generate stage's own batched path, with a batch of one
                    output = generate_batch(loaded.model, loaded.processor, loaded.spec, [prompt],
                                            [image.convert("RGB")], decoding)  # fmt: skip
                    return output[0].text

        return caption

    captioners: dict[str, Captioner] = {"base": make(None)}
    for name in names:
        captioners[name] = make(name)
    return captioners


def cohere_drafter(api_key: str, *, model: str = "command-a-vision-07-2025", base_url: str | None = None,
                   prompts_dir: Path | None = None, max_tokens: int = 300) -> Captioner:  # fmt: skip
    """A Cohere caption with the draft stage's ``cultural`` prompt, which does use the country and notes."""
    import asyncio
    import io

    import cohere
    from jinja2 import Template

    from data_tools.draft.backends import ChatRequest, CohereBackend
    from data_tools.draft.prompts import PromptLibrary, country_name

    root = prompts_dir or DEFAULT_INSTRUCTIONS.parents[1] / "draft"
    library = PromptLibrary(root, "v1")

    async def ask(request: ChatRequest) -> str:
        # a client per call: each Gradio call runs its own event loop, and an async client is bound to one
        client = (
            cohere.AsyncClientV2(api_key=api_key, base_url=base_url)
            if base_url
            else cohere.AsyncClientV2(api_key)
        )
        backend = CohereBackend(client, model)
        try:
            return (await backend.chat(request)).text
        finally:
            await backend.aclose()

    def draft(image: Any, metadata: Mapping[str, str | None]) -> str:
        template = library.for_language(metadata.get("language") or "es")
        lang = template.language.split("-")[0]
        context = {"country": metadata.get("country"), "country_name": country_name(metadata.get("country"), lang),
                   "region": None, "category": None, "cultural_context": metadata.get("notes"),
                   "language": metadata.get("language"), "language_name": template.language_name}  # fmt: skip
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
        answer = Template(template.output_text).render(**context)
        request = ChatRequest(system=template.system, prompt=template.render("cultural", context) + "\n\n"
                              + answer, image=buffer.getvalue(), image_mime="image/jpeg", detail="low",
                              temperature=0.3, max_tokens=max_tokens, seed=None)  # fmt: skip
        return asyncio.run(ask(request))

    return draft
