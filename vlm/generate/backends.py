"""Where captions are computed: transformers (default), vLLM, or an OpenAI-compatible server.

Every backend answers one question, "caption these items as this system", and the runner does the
rest (cache keys, batching into the workspace, progress). A *system* is the base model or the base
plus one adapter, under a name. The trade-offs:

* ``hf`` loads the base once with every adapter attached under its name (PEFT), switches with
  ``set_adapter`` and uses ``disable_adapter()`` for the base, so N systems cost one model in memory.
  It is the reference: the same loading layer and prompt formatting as training.
* ``vllm`` is the fast path on a GPU (continuous batching, paged attention): one offline ``vllm.LLM``
  with ``enable_lora`` and a ``LoRARequest`` per adapter. Imported only when chosen.
* ``openai`` talks to any OpenAI-compatible server (``vllm serve --enable-lora --lora-modules
  name=path``) through the draft stage's HTTP client (:class:`data_tools.draft.backends.OpenAIBackend`),
  with an adapter addressed by its served name. The server formats the prompt with its own chat
  template, so this is as faithful as the server's template is to training's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from data_tools.errors import UserError
from vlm.generate.config import GenerateConfig, device_dtype
from vlm.generate.hf import Output, generate_batch, prompt_text

if TYPE_CHECKING:
    from PIL import Image

    from vlm.generate.items import Item

log = logging.getLogger("vlm.generate")


class BackendUnavailable(UserError):
    """The chosen backend cannot serve this model or family (not installed, unsupported)."""


@dataclass(frozen=True)
class System:
    """A named captioner: the base model, or the base with one adapter (``adapter`` is a local folder)."""

    name: str
    adapter: Path | None = None
    source: str | None = None  # the adapter as the user gave it (folder or Hub id)


class Backend(Protocol):
    name: str
    batch_size: int

    def caption(
        self, system: System, items: Sequence[Item], images: Sequence[Image.Image]
    ) -> list[Output]: ...

    def close(self) -> None: ...


# -- hf ----------------------------------------------------------------------------------------------


class HFBackend:
    """Batched ``model.generate`` over a model from the shared loading layer (``vlm.models``)."""

    name = "hf"

    def __init__(self, loaded: Any, config: GenerateConfig, peft_names: dict[str, str] | None = None) -> None:
        self.loaded = loaded  # vlm.models.LoadedModel
        self.config = config
        self.batch_size = config.batch_size
        self.peft_names = peft_names or {}  # system name -> adapter name inside the PeftModel
        loaded.model.eval()

    @classmethod
    def load(cls, model: str, systems: Sequence[System], config: GenerateConfig) -> HFBackend:
        from vlm.models import load_for_inference

        adapters = [s for s in systems if s.adapter is not None]
        # PEFT keeps adapters in a ModuleDict, whose keys cannot contain "." ("sft-v1.2" is a fine system name)
        peft_names = {s.name: f"a{i}_" + re.sub(r"\W", "_", s.name) for i, s in enumerate(adapters)}
        loaded = load_for_inference(
            model,
            adapters=[s.adapter for s in adapters],
            adapter_names=[peft_names[s.name] for s in adapters] if adapters else None,
            quantization=config.quantization,
            dtype=device_dtype(config.dtype),
            padding_side="left",
            max_image_tokens=config.max_image_tokens,
        )
        return cls(loaded, config, peft_names)

    @contextlib.contextmanager
    def _as(self, system: System) -> Iterator[Any]:
        model = self.loaded.model
        if not hasattr(model, "set_adapter") or not getattr(model, "peft_config", None):
            yield model
        elif system.adapter is None:
            with model.disable_adapter():
                yield model
        else:
            model.set_adapter(self.peft_names.get(system.name, system.name))
            yield model

    def caption(self, system: System, items: Sequence[Item], images: Sequence[Image.Image]) -> list[Output]:
        # each run's own processor: its saved image budget, as in training
        processor = self.loaded.processor_for(
            self.peft_names.get(system.name, system.name) if system.adapter is not None else None
        )
        with self._as(system) as model:
            return generate_batch(
                model,
                processor,
                self.loaded.spec,
                [i.instruction for i in items],
                list(images),
                self.config.decoding,
            )

    def close(self) -> None:
        self.loaded = None


# -- vllm --------------------------------------------------------------------------------------------


class VLLMBackend:
    """Offline ``vllm.LLM`` with one ``LoRARequest`` per adapter; prompts rendered by the HF processor."""

    name = "vllm"

    def __init__(self, model: str, systems: Sequence[System], config: GenerateConfig) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise BackendUnavailable(
                "the vllm backend needs vLLM on a CUDA machine: pip install vllm (or use --backend hf)"
            )
        if config.decoding.num_beams > 1:
            raise BackendUnavailable(
                "the vllm backend does not run beam search here; use num_beams=1 or --backend hf"
            )
        from vllm import LLM, SamplingParams

        from vlm.models import load_processor
        from vlm.registry import get_spec

        self.processor = load_processor(model, padding_side="left")
        model_type = _model_type(model)
        self.spec = get_spec(model_type) if model_type else None
        adapters = [s for s in systems if s.adapter is not None]
        if self.spec is not None and adapters and not self.spec.vllm_lora:
            raise BackendUnavailable(
                f"{self.spec.display_name} adapters cannot be served by vLLM's LoRA support; use --backend hf"
            )
        dtype = {"auto": "auto", "bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}[
            config.dtype
        ]
        settings = config.vllm
        self.llm = LLM(
            model=model, dtype=dtype, enable_lora=bool(adapters), max_lora_rank=settings.max_lora_rank,
            max_loras=max(1, len(adapters)), gpu_memory_utilization=settings.gpu_memory_utilization,
            max_model_len=settings.max_model_len, tensor_parallel_size=settings.tensor_parallel_size,
            limit_mm_per_prompt={"image": 1}, seed=config.decoding.seed,
        )  # fmt: skip
        d = config.decoding
        self.sampling = SamplingParams(
            max_tokens=d.max_new_tokens, temperature=d.temperature if d.do_sample else 0.0,
            top_p=d.top_p if d.do_sample else 1.0, top_k=(d.top_k or -1) if d.do_sample else -1,
            repetition_penalty=d.repetition_penalty, seed=d.seed if d.do_sample else None,
        )  # fmt: skip
        self.lora_ids = {s.name: i + 1 for i, s in enumerate(adapters)}
        self.batch_size = max(config.batch_size, 64)  # vLLM schedules its own batches; feed it plenty

    def caption(self, system: System, items: Sequence[Item], images: Sequence[Image.Image]) -> list[Output]:
        from vllm.lora.request import LoRARequest

        if self.spec is None:
            raise BackendUnavailable("cannot tell the model family for the vllm backend (no config.json)")
        prompts = [
            {
                "prompt": prompt_text(self.processor, self.spec, item.instruction),
                "multi_modal_data": {"image": image},
            }
            for item, image in zip(items, images, strict=True)
        ]
        lora = (
            LoRARequest(system.name, self.lora_ids[system.name], str(system.adapter))
            if system.adapter
            else None
        )
        results = self.llm.generate(prompts, self.sampling, lora_request=lora, use_tqdm=False)
        return [Output(r.outputs[0].text.strip(), len(r.outputs[0].token_ids)) for r in results]

    def close(self) -> None:
        self.llm = None


def _model_type(model: str) -> str | None:
    try:
        from transformers import AutoConfig

        return str(AutoConfig.from_pretrained(model).model_type)
    except Exception:  # not resolvable offline: the server knows its model, we cannot check it
        return None


# -- openai ------------------------------------------------------------------------------------------


class OpenAICaptioner:
    """Any OpenAI-compatible server, through the draft stage's HTTP client (not a copy of it).

    The base is addressed as ``openai.model`` (default: ``--model``), an adapter as its system name
    (serve it with ``--lora-modules NAME=PATH``). Transient failures are retried with the server's
    ``Retry-After`` or exponential backoff; a client error stops the run with the server's message.
    """

    name = "openai"

    def __init__(self, model: str, config: GenerateConfig, api_key: str | None) -> None:
        model_type = _model_type(model)
        if model_type:
            from vlm.registry import get_spec

            spec = get_spec(model_type)
            if spec.prefix_lm:
                raise BackendUnavailable(
                    f"{spec.display_name} is a prefix-LM trained without a chat template; an OpenAI-compatible "
                    "server would prompt it through one. Use --backend hf"
                )
        self.model = config.openai.model or model
        self.config = config
        self.api_key = api_key
        self.batch_size = config.openai.concurrency * 4

    def caption(self, system: System, items: Sequence[Item], images: Sequence[Image.Image]) -> list[Output]:
        return asyncio.run(self._caption(system, items))

    async def _caption(self, system: System, items: Sequence[Item]) -> list[Output]:
        import httpx

        from data_tools.draft.backends import OpenAIBackend

        settings = self.config.openai
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=settings.concurrency))
        served = self.model if system.source is None else system.name  # an adapter by its served name
        backend = OpenAIBackend(client, served, settings.base_url, self.api_key)
        gate = asyncio.Semaphore(settings.concurrency)
        try:
            return list(await asyncio.gather(*(self._one(backend, item, gate) for item in items)))
        finally:
            await backend.aclose()

    async def _one(self, backend: Any, item: Item, gate: asyncio.Semaphore) -> Output:
        from data_tools.draft.backends import BackendError, ChatRequest

        d, settings = self.config.decoding, self.config.openai
        mime = "image/png" if item.path.suffix.lower() == ".png" else "image/jpeg"
        request = ChatRequest(
            system="", prompt=item.instruction, image=item.path.read_bytes(), image_mime=mime, detail="auto",
            temperature=d.temperature if d.do_sample else 0.0, max_tokens=d.max_new_tokens,
            seed=d.seed if d.do_sample else None, timeout_s=settings.timeout_s,
        )  # fmt: skip
        for attempt in range(1, settings.max_attempts + 1):
            async with gate:
                try:
                    response = await backend.chat(request)
                    return Output(response.text.strip(), int(response.output_tokens or 0))
                except BackendError as exc:
                    if not exc.transient or attempt == settings.max_attempts:
                        raise UserError(f"{backend.url} ({backend.model}): {exc}") from None
                    delay = exc.retry_after if exc.retry_after is not None else min(60.0, 2 ** (attempt - 1))
            await asyncio.sleep(delay + random.uniform(0, 0.1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        pass
