"""The draft stage's ``local`` backend: chat requests gathered into batches for the shared generator.

    captioner = LocalCaptioner("Qwen/Qwen2.5-VL-7B-Instruct", adapter="runs/sft", batch_size=8)
    response = await captioner.chat(request)   # a data_tools.draft.backends.ChatRequest

Why this shape: the draft runner sends one request per candidate from ``limits.concurrency``
concurrent tasks, and a GPU wants them together. Requests are queued; a single drain task takes
whatever has arrived (up to ``batch_size`` with the same decoding settings), runs one batched
``generate`` in a worker thread and resolves each request's future. With concurrency at or above the
batch size the batches fill; with concurrency 1 it degrades to one image at a time, never worse.
The model comes from the shared loading layer (registry image budget, chat-template fallback,
4-bit, adapters), loads on the first request, and a load failure is remembered and reported for
every request instead of being retried per candidate. Sampled batches use the seed of their first
request, so a sampled draft is reproducible for the same batch composition only (greedy always is).

``data_tools`` reaches this module only through the ``"module:Class"`` string in
:data:`data_tools.draft.backends.LOCAL_CAPTIONER`, so the base layer never imports ``vlm``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from typing import Any

from data_tools.draft.backends import BackendError, ChatRequest, ChatResponse
from data_tools.errors import one_line
from vlm.generate.config import Decoding, device_dtype
from vlm.generate.hf import generate_batch

log = logging.getLogger("vlm.generate")


class LocalCaptioner:
    """Batched local generation behind the draft backends' async ``chat`` interface."""

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        quantization: str = "none",
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
    ) -> None:
        self.model_name = model
        self.adapter = adapter
        self.quantization = quantization
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.batches: list[int] = []  # sizes of the batches run so far (the benchmark and tests read it)
        self._loaded: Any = None
        self._load_error: BackendError | None = None
        self._load_lock = threading.Lock()
        self._queue: list[tuple[ChatRequest, asyncio.Future[ChatResponse]]] = []
        self._drain_task: asyncio.Task[None] | None = None

    # -- loading ---------------------------------------------------------------------------------
    def _load(self) -> Any:
        with self._load_lock:
            if self._load_error is not None:
                raise self._load_error
            if self._loaded is None:
                try:
                    from vlm.models import load_for_inference

                    loaded = load_for_inference(
                        self.model_name, adapters=[self.adapter] if self.adapter else (),
                        adapter_names=["draft"] if self.adapter else None, quantization=self.quantization,
                        dtype=device_dtype(self.dtype), padding_side="left",
                    )  # fmt: skip
                    if self.device not in ("auto", str(loaded.model.device)) and self.quantization == "none":
                        loaded.model.to(self.device)
                except Exception as exc:
                    # missing folder, not a VLM, wrong base: every request gets the same one-line reason
                    self._load_error = BackendError(
                        "client_error", f"cannot load local model {self.model_name}: {one_line(exc)[:300]}"
                    )
                    raise self._load_error from None
                loaded.model.eval()
                self._loaded = loaded
        return self._loaded

    # -- batching --------------------------------------------------------------------------------
    async def chat(self, request: ChatRequest) -> ChatResponse:
        future: asyncio.Future[ChatResponse] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.create_task(self._drain())
        return await future

    def _take_batch(self) -> list[tuple[ChatRequest, asyncio.Future[ChatResponse]]]:
        first = self._queue[0][0]
        same = [
            entry for entry in self._queue
            if (entry[0].max_tokens, entry[0].temperature) == (first.max_tokens, first.temperature)
        ][: self.batch_size]  # fmt: skip
        taken = {id(entry) for entry in same}
        self._queue = [entry for entry in self._queue if id(entry) not in taken]
        return same

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the other workers of this tick enqueue their requests first
        while self._queue:
            batch = self._take_batch()
            try:
                results = await asyncio.to_thread(self._generate, [request for request, _ in batch])
            except BaseException as exc:
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            await asyncio.sleep(0)

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse | BaseException]:
        loaded = self._load()
        try:
            return list(self._run(loaded, requests))
        except BackendError:
            raise
        except Exception as exc:
            if len(requests) == 1:
                return [
                    BackendError(
                        "client_error", f"the local model refused this request: {one_line(exc)[:300]}"
                    )
                ]
            # one bad image must not fail its batch-mates: retry one by one
            return [self._generate([request])[0] for request in requests]

    def _run(self, loaded: Any, requests: list[ChatRequest]) -> list[ChatResponse]:
        from PIL import Image

        first = requests[0]
        decoding = Decoding(
            max_new_tokens=first.max_tokens, do_sample=first.temperature > 0,
            temperature=first.temperature if first.temperature > 0 else 1.0, seed=first.seed or 0,
        )  # fmt: skip
        images = [Image.open(io.BytesIO(request.image)).convert("RGB") for request in requests]
        # The system text is folded into the user turn: not every VLM chat template has a system role.
        texts = [f"{r.system}\n\n{r.prompt}" if r.system else r.prompt for r in requests]
        outputs = generate_batch(loaded.model, loaded.processor, loaded.spec, texts, images, decoding)
        self.batches.append(len(requests))
        return [ChatResponse(o.text, o.prompt_tokens, o.tokens, o.prompt_tokens, o.tokens) for o in outputs]

    async def aclose(self) -> None:
        self._loaded = None
