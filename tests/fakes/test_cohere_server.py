"""The fake Cohere server, driven through the real cohere SDK (nothing in the SDK is mocked).

These tests also pin down the SDK's retry behaviour (cohere 7.3.1, ``cohere/core/http_client.py``) that
the drafting code relies on: 3 attempts, which statuses and headers, no retry on timeouts or drops.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import cohere
import httpx
import pytest
from cohere.core.api_error import ApiError
from PIL import Image

from .cohere_server import FakeCohereServer, Fault, image_key, request_key

MODEL = "command-a-vision-07-2025"
REPO_ROOT = Path(__file__).resolve().parents[2]


def data_uri(
    color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (64, 48), fmt: str = "PNG"
) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode()}"


def messages(
    uri: str, prompt: str = "Describe la imagen. language: es-MX", detail: str = "low"
) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": uri, "detail": detail}},
            ],
        }
    ]


@pytest.fixture
def server():
    with FakeCohereServer() as srv:
        yield srv


@pytest.fixture
def co(server):
    with cohere.ClientV2(api_key="test-key", base_url=server.url) as client:
        yield client


def test_sync_chat_with_image_returns_parsed_text_and_usage(server, co):
    uri = data_uri()
    prompt = "Describe la imagen. language: es-MX strategy: cultural"

    response = co.chat(model=MODEL, messages=messages(uri, prompt), temperature=0.3)

    assert response.finish_reason == "COMPLETE"
    caption = json.loads(response.message.content[0].text)
    assert caption["language"] == "es-MX"
    assert caption["confidence"] == 0.8
    assert caption["caption"].startswith("Imagen ") and caption["caption"].endswith("[cultural]")
    assert len(caption["cultural_terms"]) == 2
    # low detail = 256 image tokens + text at ~4 chars/token; tokens include a template overhead.
    billed, tokens = response.usage.billed_units, response.usage.tokens
    assert billed.input_tokens == 256 + -(-len(prompt) // 4)
    assert billed.output_tokens == -(-len(response.message.content[0].text) // 4)
    assert tokens.input_tokens > billed.input_tokens and tokens.output_tokens > billed.output_tokens

    (recorded,) = server.requests
    assert recorded.path == "/v2/chat" and recorded.status == 200 and recorded.ok
    assert recorded.headers["authorization"] == "Bearer test-key" and recorded.api_key == "test-key"
    assert recorded.body["model"] == MODEL and recorded.body["stream"] is False
    assert recorded.images == [uri] and recorded.prompt == prompt
    assert recorded.key == request_key(uri, prompt)
    assert recorded.usage == response.usage.model_dump(include={"billed_units", "tokens"}, exclude_none=True)


def test_high_detail_image_tokens_follow_tile_rule(server, co):
    # 1000x600, high: tiles ceil(1000/512) * ceil(600/512) = 4 -> 4*256 + 256 preview.
    response = co.chat(model=MODEL, messages=messages(data_uri(size=(1000, 600), fmt="JPEG"), "x", "high"))
    assert response.usage.billed_units.input_tokens == 5 * 256 + 1
    # auto with both sides <= 768 px costs like low.
    response = co.chat(model=MODEL, messages=messages(data_uri(size=(700, 700)), "x", "auto"))
    assert response.usage.billed_units.input_tokens == 256 + 1


def test_async_client_runs_16_requests_concurrently():
    async def run(url: str) -> list[str]:
        async with cohere.AsyncClientV2(api_key="k", base_url=url) as client:
            calls = [client.chat(model=MODEL, messages=messages(data_uri((i, 0, 0)))) for i in range(16)]
            return [r.message.content[0].text for r in await asyncio.gather(*calls)]

    with FakeCohereServer(latency_s=0.2) as server:
        start = time.monotonic()
        texts = asyncio.run(run(server.url))
        elapsed = time.monotonic() - start

    assert len(set(texts)) == 16  # one distinct caption per image
    assert elapsed < 1.2, f"16 x 0.2 s took {elapsed:.2f} s: requests were not concurrent"
    assert server.max_in_flight == 16 and server.successes() == 16


def test_429_with_retry_after_is_retried_after_the_given_seconds(server, co):
    server.inject("429", retry_after=1)
    start = time.monotonic()
    co.chat(model=MODEL, messages=messages(data_uri()))
    waited = time.monotonic() - start

    assert [r.status for r in server.requests] == [429, 200]
    assert server.count() == 2 and server.successes() == 1
    assert 0.95 <= waited < 1.5  # exactly Retry-After, no jitter


def test_sdk_makes_3_attempts_then_raises_too_many_requests(server, co):
    server.inject("429", times=None, retry_after_ms=20)
    with pytest.raises(cohere.TooManyRequestsError) as info:
        co.chat(model=MODEL, messages=messages(data_uri()))
    assert server.count() == 3  # max_retries defaults to 2
    assert info.value.status_code == 429 and "per-minute" in info.value.body["message"]
    assert info.value.headers["retry-after-ms"] == "20"


def test_fractional_retry_after_is_ignored_by_the_sdk(server, co):
    # The SDK parses Retry-After as whole seconds or an HTTP date; "0.05" matches neither, so it falls
    # back to its exponential backoff (1 s +-10 % on the first retry).
    server.inject("429", retry_after=0.05)
    start = time.monotonic()
    co.chat(model=MODEL, messages=messages(data_uri()))
    assert server.count() == 2
    assert time.monotonic() - start >= 0.85


def test_500_is_retried_with_default_backoff_then_succeeds(server, co):
    server.inject("500")
    start = time.monotonic()
    co.chat(model=MODEL, messages=messages(data_uri()))
    assert [r.status for r in server.requests] == [500, 200]
    assert 0.85 <= time.monotonic() - start < 1.5  # 1 s +-10 % symmetric jitter


@pytest.mark.parametrize(
    ("status", "error"), [("500", cohere.InternalServerError), ("503", cohere.ServiceUnavailableError)]
)
def test_persistent_5xx_raises_after_3_attempts(server, co, status, error):
    server.inject(status, times=None, retry_after_ms=5)
    with pytest.raises(error):
        co.chat(model=MODEL, messages=messages(data_uri()))
    assert server.count(status=int(status)) == 3 and server.successes() == 0


def test_max_retries_0_makes_one_attempt(server):
    server.inject("503")
    with (
        cohere.ClientV2(api_key="k", base_url=server.url, max_retries=0) as client,
        pytest.raises(cohere.ServiceUnavailableError),
    ):
        client.chat(model=MODEL, messages=messages(data_uri()))
    assert server.count() == 1


def test_malformed_body_raises_api_error_with_status_200_and_no_retry(server, co):
    server.inject("malformed")
    with pytest.raises(ApiError) as info:
        co.chat(model=MODEL, messages=messages(data_uri()))
    assert type(info.value) is ApiError and info.value.status_code == 200
    assert info.value.body.startswith('{"id"')  # the raw text, truncated JSON
    assert server.count() == 1 and server.successes() == 0


def test_invalid_caption_is_a_valid_envelope_with_prose_text(server, co):
    server.inject("invalid_caption")
    response = co.chat(model=MODEL, messages=messages(data_uri()))
    text = response.message.content[0].text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert response.usage.billed_units.output_tokens > 0  # still billed
    assert server.count(status=200) == 1 and server.successes() == 0  # not counted as a useful answer
    json.loads(co.chat(model=MODEL, messages=messages(data_uri())).message.content[0].text)


def test_timeout_raises_httpx_read_timeout_without_retry(server):
    server.inject("timeout", seconds=5)
    start = time.monotonic()
    with (
        cohere.ClientV2(api_key="k", base_url=server.url, timeout=0.3) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.chat(model=MODEL, messages=messages(data_uri()))
    assert time.monotonic() - start < 1.0
    assert server.count() == 1  # timeouts are not retried by the SDK


def test_dropped_connection_is_not_retried_unless_opted_in(server, co):
    server.inject("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        co.chat(model=MODEL, messages=messages(data_uri()))
    assert server.count() == 1 and server.requests[0].status is None

    server.inject("drop")
    co.chat(
        model=MODEL, messages=messages(data_uri()), request_options={"retry_remote_protocol_errors": True}
    )
    assert [r.status for r in server.requests] == [None, None, 200]


def test_latency_and_stop_do_not_hang_on_held_requests():
    server = FakeCohereServer().start()
    server.inject("timeout", seconds=60)
    client = cohere.ClientV2(api_key="k", base_url=server.url, timeout=0.2)
    with pytest.raises(httpx.ReadTimeout):
        client.chat(model=MODEL, messages=messages(data_uri()))
    start = time.monotonic()
    server.stop()
    server.stop()  # idempotent
    assert time.monotonic() - start < 1.0
    with pytest.raises(RuntimeError):
        _ = server.url


def test_per_key_counting_and_per_key_faults(server, co):
    a, b = data_uri((1, 2, 3)), data_uri((4, 5, 6))
    prompt_x, prompt_y = "language: es-MX strategy: literal", "language: es-MX strategy: cultural"
    server.inject("500", key=request_key(b, prompt_x), times=None, retry_after_ms=1)

    co.chat(model=MODEL, messages=messages(a, prompt_x))
    co.chat(model=MODEL, messages=messages(a, prompt_y))
    with pytest.raises(cohere.InternalServerError):
        co.chat(model=MODEL, messages=messages(b, prompt_x))
    co.chat(model=MODEL, messages=messages(b, prompt_y))  # the keyed fault does not touch other keys

    assert server.count(request_key(a, prompt_x)) == 1
    assert server.count(request_key(b, prompt_x)) == 3 and server.successes(request_key(b, prompt_x)) == 0
    assert server.successes_by_key() == {
        request_key(a, prompt_x): 1,
        request_key(a, prompt_y): 1,
        request_key(b, prompt_y): 1,
    }
    assert server.repeated_successes() == {}
    co.chat(model=MODEL, messages=messages(a, prompt_x))  # a repeated paid call is visible
    assert server.repeated_successes() == {request_key(a, prompt_x): 2}


def test_image_key_counts_per_image_bytes():
    uri = data_uri((9, 9, 9))
    image_id = hashlib.sha256(base64.b64decode(uri.split(",", 1)[1])).hexdigest()
    with FakeCohereServer(key_fn=image_key) as server, cohere.ClientV2(api_key="k", base_url=server.url) as c:
        c.chat(model=MODEL, messages=messages(uri, "strategy: a"))
        c.chat(model=MODEL, messages=messages(uri, "strategy: b"))
        assert server.count(image_id) == 2 and server.successes_by_key() == {image_id: 2}


def test_bad_api_key_raises_unauthorized(server):
    server.api_key = "right"
    with (
        cohere.ClientV2(api_key="wrong", base_url=server.url) as client,
        pytest.raises(cohere.UnauthorizedError) as info,
    ):
        client.chat(model=MODEL, messages=messages(data_uri()))
    assert info.value.body["message"] == "invalid api token"
    assert server.count(status=401) == 1  # not retried

    missing = httpx.post(f"{server.url}/v2/chat", json={"model": MODEL, "messages": messages(data_uri())})
    assert missing.status_code == 401


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!"}}],
            },
            "base64",
        ),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}, "data URI"),
        (
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": data_uri(), "detail": "max"}}],
            },
            "detail",
        ),
        ({"role": "user", "content": [{"type": "image", "url": "x"}]}, "type"),
        ({"role": "robot", "content": "hola"}, "role"),
        (
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}],
            },
            "could not decode",
        ),
    ],
)
def test_malformed_requests_get_400_with_a_message(server, co, message, expected):
    with pytest.raises(cohere.BadRequestError) as info:
        co.chat(model=MODEL, messages=[message])
    assert expected in info.value.body["message"]
    assert server.count(status=400) == 1 and server.successes() == 0


def test_model_allowlist_and_max_tokens(co, server):
    server.models = {MODEL}
    with pytest.raises(cohere.NotFoundError):
        co.chat(model="command-nope", messages=messages(data_uri()))
    response = co.chat(model=MODEL, messages=messages(data_uri()), max_tokens=5)
    assert response.finish_reason == "MAX_TOKENS" and len(response.message.content[0].text) == 20


def test_custom_responder_and_latency_change_at_run_time(server, co):
    server.responder = lambda body: {"caption": body["model"], "cultural_terms": [], "language": "qu"}
    server.latency_s = 0.15
    start = time.monotonic()
    text = co.chat(model=MODEL, messages=messages(data_uri())).message.content[0].text
    assert json.loads(text)["caption"] == MODEL and time.monotonic() - start >= 0.15


def test_random_faults_are_seeded_and_reproducible(server):
    def run() -> list[int | None]:
        server.reset()
        server.set_fault_rates({Fault("429", retry_after_ms=1): 0.3, "500": 0.1}, seed=7)
        body = {"model": MODEL, "messages": messages(data_uri())}
        with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}) as client:
            return [client.post("/v2/chat", json=body).status_code for _ in range(60)]

    first, second = run(), run()
    assert first == second
    assert {429, 500, 200} == set(first) and 8 <= first.count(429) <= 30
    with pytest.raises(ValueError, match="sum to <= 1"):
        server.set_fault_rates({"429": 0.7, "500": 0.5})
    with pytest.raises(ValueError, match="unknown fault kind"):
        server.inject("slow")


def test_cli_serves_in_its_own_process_with_admin_endpoints():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.cohere_server", "--port", "0", "--latency", "0.01"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        httpx.post(f"{url}/_fake/inject", json={"kind": "429", "retry_after_ms": 5}).raise_for_status()
        with cohere.ClientV2(api_key="k", base_url=url) as client:
            json.loads(client.chat(model=MODEL, messages=messages(data_uri())).message.content[0].text)
        stats = httpx.get(f"{url}/_fake/stats").json()
        assert (
            stats["requests"] == 2 and stats["successes"] == 1 and stats["by_status"] == {"429": 1, "200": 1}
        )
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert json.loads(err.strip().splitlines()[-1])["requests"] == 2
