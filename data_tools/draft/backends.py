"""Vision-model backends behind one async interface: Cohere (default), OpenAI-compatible, local.

Each backend turns a :class:`ChatRequest` into a :class:`ChatResponse` with usage, or raises a
:class:`BackendError` whose ``kind`` tells the runner what to do (retry after a pause, give up on
this candidate, or stop the run). Clients are passed in (DESIGN §4b.8): a backend never reads the
environment or opens connections in its constructor, and never puts a secret into an error text.

The Cohere SDK's own retries are switched off per request (``max_retries=0``): the runner retries
every backend the same way and writes every HTTP attempt, 429s included, to the ledger. (The SDK
would otherwise retry 429/5xx up to twice on its own, ignore fractional ``Retry-After`` values,
and not retry timeouts or dropped connections at all.)
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx


@dataclass(frozen=True)
class ChatRequest:
    system: str
    prompt: str
    image: bytes
    image_mime: str
    detail: str
    temperature: float
    max_tokens: int
    seed: int | None
    json_mode: bool = False
    timeout_s: float = 120.0


@dataclass(frozen=True)
class ChatResponse:
    text: str
    input_tokens: int | None
    output_tokens: int | None
    billed_input_tokens: int | None
    billed_output_tokens: int | None
    http_status: int = 200


class BackendError(Exception):
    """A failed call. ``kind``: rate_limited, server_error, timeout, connection_error, invalid_response,
    client_error (this request is wrong; retrying will not help) or auth_error (stop the run)."""

    def __init__(
        self, kind: str, message: str, *, http_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.http_status = http_status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.kind in {
            "rate_limited",
            "server_error",
            "timeout",
            "connection_error",
            "invalid_response",
        }


class Backend(Protocol):
    name: str
    model: str

    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    async def aclose(self) -> None: ...


def data_uri(image: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or date) or ``x-ratelimit-reset``."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        if "retry-after" in lowered:
            value = lowered["retry-after"]
            try:
                return max(0.0, float(value))
            except ValueError:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        if "x-ratelimit-reset" in lowered:
            value = float(lowered["x-ratelimit-reset"])
            return max(0.0, value - time.time()) if value > 1e9 else max(0.0, value)
    except (TypeError, ValueError):
        return None
    return None


def _kind_for_status(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth_error"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    return "client_error"


def _short(body: Any) -> str:
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or body
    text = str(body)
    return text if len(text) <= 200 else text[:197] + "..."


class CohereBackend:
    """Cohere's v2 chat API through the official SDK's ``AsyncClientV2`` (passed in)."""

    name = "cohere"

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model

    async def chat(self, request: ChatRequest) -> ChatResponse:
        from cohere.core.api_error import ApiError

        content = [
            {"type": "text", "text": request.prompt},
            {
                "type": "image_url",
                "image_url": {"url": data_uri(request.image, request.image_mime), "detail": request.detail},
            },
        ]
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": content}],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "request_options": {"max_retries": 0, "timeout_in_seconds": request.timeout_s},
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        try:
            response = await self.client.chat(**kwargs)
        except ApiError as exc:
            status = exc.status_code or 0
            if status == 200:  # a 2xx body the SDK could not parse
                raise BackendError(
                    "invalid_response", f"unparseable response body: {_short(exc.body)}", http_status=200
                ) from None
            kind = _kind_for_status(status)
            raise BackendError(
                kind,
                f"HTTP {status}: {_short(exc.body)}",
                http_status=status,
                retry_after=retry_after_seconds(exc.headers),
            ) from None
        except httpx.TimeoutException:
            raise BackendError("timeout", f"no answer within {request.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise BackendError("connection_error", f"{type(exc).__name__}: {exc}") from None
        except (ValueError, TypeError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
            raise BackendError("invalid_response", f"unexpected response shape: {exc}") from None
        text = "".join(
            getattr(item, "text", "") or ""
            for item in (response.message.content or [])
            if getattr(item, "type", "") == "text"
        )
        usage = response.usage
        billed = getattr(usage, "billed_units", None)
        tokens = getattr(usage, "tokens", None)
        return ChatResponse(
            text=text,
            input_tokens=_int(getattr(tokens, "input_tokens", None)),
            output_tokens=_int(getattr(tokens, "output_tokens", None)),
            billed_input_tokens=_int(getattr(billed, "input_tokens", None)),
            billed_output_tokens=_int(getattr(billed, "output_tokens", None)),
        )

    async def aclose(self) -> None:
        wrapper = getattr(self.client, "_client_wrapper", None)
        httpx_client = getattr(getattr(wrapper, "httpx_client", None), "httpx_client", None)
        if httpx_client is not None:
            await httpx_client.aclose()


def _int(value: Any) -> int | None:
    return None if value is None else round(float(value))


class OpenAIBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint with image input (vLLM, TGI, …)."""

    name = "openai"

    def __init__(
        self, client: httpx.AsyncClient, model: str, base_url: str, api_key: str | None = None
    ) -> None:
        self.client = client
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def chat(self, request: ChatRequest) -> ChatResponse:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": request.system},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": request.prompt},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": data_uri(request.image, request.image_mime),
                                "detail": request.detail,
                            },
                        },
                    ],
                },
            ],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            response = await self.client.post(
                self.url, json=body, headers=self._headers, timeout=request.timeout_s
            )
        except httpx.TimeoutException:
            raise BackendError("timeout", f"no answer within {request.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise BackendError("connection_error", f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise BackendError(
                _kind_for_status(response.status_code),
                f"HTTP {response.status_code}: {_short(response.text)}",
                http_status=response.status_code,
                retry_after=retry_after_seconds(response.headers),
            )
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"] or ""
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise BackendError(
                "invalid_response", f"unexpected response body: {_short(response.text)}", http_status=200
            ) from None
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return ChatResponse(text, prompt_tokens, completion_tokens, prompt_tokens, completion_tokens)

    async def aclose(self) -> None:
        await self.client.aclose()


class LocalBackend:
    """A Hugging Face VLM through transformers, run in a worker thread one request at a time.

    The model loads on the first request (not in the constructor). Any ``AutoModelForImageTextToText``
    works: a Hub id for real users, or a tiny offline model in tests and ``make demo``.
    """

    name = "local"

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "auto") -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor, ProcessorMixin

            device = (
                ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
            )
            dtype = (
                getattr(torch, self.dtype)
                if self.dtype != "auto"
                else (torch.bfloat16 if device == "cuda" else torch.float32)
            )
            processor = AutoProcessor.from_pretrained(self.model)
            if not isinstance(processor, ProcessorMixin):  # AutoProcessor silently falls back to a tokenizer
                raise BackendError(
                    "client_error",
                    f"{self.model} has no multimodal processor; is it a vision-language model?",
                )
            model = AutoModelForImageTextToText.from_pretrained(self.model, dtype=dtype).to(device).eval()
            self._loaded = (model, processor)
        return self._loaded

    def _generate(self, request: ChatRequest) -> ChatResponse:
        import torch
        from PIL import Image

        with self._lock:
            model, processor = self._load()
            image = Image.open(io.BytesIO(request.image)).convert("RGB")
            # The system text is folded into the user turn: not every VLM chat template has a system role.
            messages = [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "image": image},
                        {"type": "text", "text": f"{request.system}\n\n{request.prompt}"},
                    ],
                }
            ]
            inputs = processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            ).to(model.device)
            if request.seed is not None:
                torch.manual_seed(request.seed)
            with torch.inference_mode():
                output = model.generate(
                    **inputs,
                    max_new_tokens=request.max_tokens,
                    do_sample=request.temperature > 0,
                    temperature=request.temperature or None,
                )
            prompt_length = inputs["input_ids"].shape[1]
            new_tokens = output[0, prompt_length:]
            text = processor.decode(new_tokens, skip_special_tokens=True)
            return ChatResponse(
                text, prompt_length, int(new_tokens.shape[0]), prompt_length, int(new_tokens.shape[0])
            )

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.to_thread(self._generate, request)

    async def aclose(self) -> None:
        self._loaded = None
