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

import base64
import importlib
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
        # No system turn when there is no system text: generation prompts as training did (user turn only).
        system = [{"role": "system", "content": request.system}] if request.system else []
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                *system,
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


# The implementation lives in the vlm layer; data_tools names it as a string and imports it on first use
# (the lazy "module:function" pattern of data_tools/cli.py), so the base layer never imports vlm.
LOCAL_CAPTIONER = "vlm.generate.draft:LocalCaptioner"


class LocalBackend:
    """A Hugging Face VLM (optionally with a LoRA adapter) through Mirada's batched generator.

    Thin by design: requests go to :data:`LOCAL_CAPTIONER`, which loads the model through the shared
    loading layer on the first request (registry image budget, chat-template fallback, 4-bit, adapter)
    and runs concurrent requests as batches. Any ``AutoModelForImageTextToText`` works: a Hub id for
    real users, or a tiny offline model in tests and ``make demo``.
    """

    name = "local"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        adapter: str | None = None,
        quantization: str = "none",
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self._options = {"device": device, "dtype": dtype, "adapter": adapter, "quantization": quantization,
                         "batch_size": batch_size}  # fmt: skip
        self._captioner: Any = None

    def _impl(self) -> Any:
        if self._captioner is None:
            module_name, class_name = LOCAL_CAPTIONER.split(":")
            try:
                captioner = getattr(importlib.import_module(module_name), class_name)
            except ImportError as exc:
                raise BackendError(
                    "client_error", f"the local backend needs the model extras ({exc.name} is missing): "
                    "pip install 'mirada[train]'"
                ) from None  # fmt: skip
            self._captioner = captioner(self.model, **self._options)
        return self._captioner

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self._impl().chat(request)

    async def aclose(self) -> None:
        if self._captioner is not None:
            await self._captioner.aclose()
            self._captioner = None
