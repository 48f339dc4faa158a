"""Retries with exponential backoff and jitter, shared by the HTTP backends.

Why our own and not the SDKs': the SDK retry loops are hidden, so tests could
not count attempts or bound the time spent, and each SDK classifies failures
differently. Backends set the SDK's ``max_retries=0``, turn every failed
attempt into a `TransientError` (retry it) or a `ModelError` (give up now),
and call `call_with_retries`. After the last attempt a `TransientError`
becomes a `ModelError` of the same kind, which the rollout records as its
exit reason.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from oec.models.base import ModelError, ModelErrorKind

T = TypeVar("T")

#: how servers say the prompt does not fit (OpenAI, vLLM, SGLang, llama.cpp, Anthropic)
_CONTEXT_LENGTH = re.compile(
    r"context[_ ]length|maximum context|context window|context limit|prompt is too long"
    r"|too many tokens|exceeds? the (?:model'?s? )?(?:maximum|max)", re.IGNORECASE)


class TransientError(Exception):
    """One attempt failed in a way worth retrying (rate limit, 5xx, timeout, bad body)."""

    def __init__(self, kind: ModelErrorKind, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: ModelErrorKind = kind
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries after the first attempt; delays double from `base_s`, capped at `max_s`."""

    max_retries: int = 5
    base_s: float = 1.0
    max_s: float = 60.0

    def delay(self, retry_index: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry_index` (0-based).

        "Equal jitter": half the exponential delay is fixed, half random, so
        many rollouts hitting one rate limit spread out but still back off.
        A server's Retry-After is a floor (capped at `max_s` so a bogus value
        cannot stall a run).
        """
        exp = min(self.max_s, self.base_s * (2 ** retry_index))
        wait = exp * (0.5 + 0.5 * (rng or random).random())
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_s))
        return wait


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent/invalid.

    `headers` must be case-insensitive (httpx headers are).
    """
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify_status(status: int, message: str, headers: Mapping[str, str] | None = None) -> Exception:
    """Map an HTTP error status to a `TransientError` (retry) or a final `ModelError`."""
    if status == 429:
        return TransientError("rate_limit", f"HTTP 429: {message}", parse_retry_after(headers))
    if status >= 500 or status in (408, 409):
        kind: ModelErrorKind = "timeout" if status == 408 else "server"
        return TransientError(kind, f"HTTP {status}: {message}", parse_retry_after(headers))
    if status in (400, 413, 422) and is_context_length_message(message):
        return ModelError("context_length", f"HTTP {status}: {message}")
    if status in (401, 403):
        return ModelError("auth", f"HTTP {status}: {message}")
    return ModelError("other", f"HTTP {status}: {message}")


def is_context_length_message(message: str) -> bool:
    """Whether an error text says the prompt (plus max tokens) exceeds the model's context."""
    return bool(_CONTEXT_LENGTH.search(message))


async def call_with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy, *,
                            attempt_timeout_s: float | None = None,
                            sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                            rng: random.Random | None = None) -> T:
    """Run `attempt` until it succeeds, raises a `ModelError`, or retries run out.

    `attempt_timeout_s` is a safety net around each attempt, on top of the
    HTTP client's own timeouts (which bound each read, not the whole call).
    """
    last: TransientError | None = None
    for i in range(policy.max_retries + 1):
        if i:
            await sleep(policy.delay(i - 1, last.retry_after if last else None, rng))
        try:
            if attempt_timeout_s is None:
                return await attempt()
            return await asyncio.wait_for(attempt(), attempt_timeout_s)
        except TransientError as exc:
            last = exc
        except asyncio.TimeoutError:
            last = TransientError("timeout", f"no answer within {attempt_timeout_s:.1f}s")
    assert last is not None
    raise ModelError(last.kind, f"{last.message} (gave up after {policy.max_retries + 1} attempts)")


class PerLoop(Generic[T]):
    """A value built once per event loop.

    Why: asyncio semaphores and the SDKs' HTTP connection pools are bound to
    the loop that first used them, while one model instance may outlive a
    loop (a CLI that calls ``asyncio.run`` for collect and again for eval).
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._value is None:
            self._value, self._loop = self._make(), loop
        return self._value
