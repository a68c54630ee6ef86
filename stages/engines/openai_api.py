"""Calling OpenAI-compatible servers robustly: the API key, retries with backoff, and secret-free messages.

Used by every stage that calls an LLM over HTTP (the sample stage's openai backend, the LLM judge).
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from stages.contract.errors import RrhfError, UsageError, first_line
from stages.runtime.console import log

T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})  # the same for every prompt: stop the run instead of failing each one
LOCAL_KEY = "unused"  # local servers (vllm serve, transformers serve, llama.cpp) accept any key


class RequestFailed(Exception):
    """A request that still failed after its retries, or that retrying cannot fix; the message is secret-free."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of backoff * 2**n, capped."""

    max_retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (0-based); a server's Retry-After is honoured as given."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return ceiling * (0.5 + 0.5 * rng.random())


@dataclass
class RetryBudget:
    """Retries shared by every request made for one item, so asking again never multiplies them."""

    left: int


def api_key(env_name: str, base_url: str | None) -> str:
    """The key from the named environment variable; local servers may run without one."""
    value = os.environ.get(env_name)
    if value:
        return value
    if base_url is None:
        raise UsageError(f"set {env_name} to your API key (or name another variable with --api-key-env)")
    return LOCAL_KEY


def scrub(text: str, secret: str | None) -> str:
    """The text with every occurrence of the secret replaced, for logs and error files."""
    if secret and secret != LOCAL_KEY and len(secret) >= 4:
        text = text.replace(secret, "<redacted>")
    return text


def make_client(base_url: str | None, key: str, timeout: float) -> Any:
    """An AsyncOpenAI client that does not retry by itself, so `call_with_retries` sees and counts each failure."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=0)


def classify(err: BaseException) -> tuple[str, float | None, str]:
    """How to treat a failed call: ("retry" | "fail" | "fatal", the server's Retry-After in seconds, a one-line
    reason). "fatal" failures are the same for every request, so they end the run instead of one prompt."""
    import openai

    if isinstance(err, openai.APITimeoutError):
        return "retry", None, "timed out"
    if isinstance(err, openai.APIConnectionError):
        return "retry", None, f"connection failed ({first_line(err)})"
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        kind = "fatal" if status in FATAL_STATUS else "retry" if status in RETRY_STATUS or status >= 500 else "fail"
        return kind, retry_after(err.response.headers), f"HTTP {status}: {first_line(err)}"
    return "fail", None, f"{type(err).__name__}: {first_line(err)}"


def retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), if the server sent one."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(raw).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    what: str,
    secret: str | None,
    rng: random.Random,
    budget: RetryBudget | None = None,
) -> T:
    """Await `call()`, retrying retryable failures (at most `policy.max_retries` times, or as many as `budget`
    has left); RequestFailed with the last reason when they run out."""
    budget = budget or RetryBudget(policy.max_retries)
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as err:  # classified below; anything unknown is not retried
            kind, server_wait, reason = classify(err)
            reason = scrub(reason, secret)
            if kind == "fatal":
                raise RrhfError(f"the server refused the request ({reason})") from None
            if kind == "fail" or budget.left <= 0:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise RequestFailed(f"{reason}{tries}") from None
            wait = policy.delay(attempt, server_wait, rng)
            log.debug("%s: %s; retry %d/%d in %.2fs", what, reason, attempt + 1, policy.max_retries, wait)
            await asyncio.sleep(wait)
            attempt += 1
            budget.left -= 1
