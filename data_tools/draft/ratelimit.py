"""A client-side limiter for requests and tokens per minute, shared by all concurrent requests.

Strict pacing (generic cell rate algorithm): each request is given the earliest start time that
keeps both rates, with no bursts, so a run holds the configured rate closely instead of bursting
into the provider's 429s. A 429 with Retry-After pauses everyone (``pause``), not just the caller.
"""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    def __init__(self, requests_per_minute: float = 0, tokens_per_minute: float = 0) -> None:
        self.request_interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.token_interval = 60.0 / tokens_per_minute if tokens_per_minute else 0.0
        self._next_request = 0.0
        self._next_token = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.request_interval or self.token_interval)

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of ``tokens`` estimated tokens may start."""
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._paused_until, self._next_request, self._next_token)
            if self.request_interval:
                self._next_request = start + self.request_interval
            if self.token_interval:
                self._next_token = start + tokens * self.token_interval
            delay = start - now
        if delay > 0:
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (the server asked us to back off)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
