"""Retries of API calls: which failures are retried, how long each wait is, and what a failure says."""

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx2
import openai
import pytest

from stages.contract.errors import RrhfError
from stages.engines.openai_api import RequestFailed, RetryPolicy, call_with_retries, retry_after, scrub

REQUEST = httpx2.Request("POST", "http://127.0.0.1:1/v1/completions")


def _status(code, headers=None, message="boom"):
    response = httpx2.Response(code, headers=headers or {}, request=REQUEST)
    return openai.APIStatusError(f"Error code: {code} - {message}", response=response, body=None)


def _run(failures, policy, secret=None):
    """Call a function that raises `failures` in turn, then returns "ok"; returns (result, waits, calls)."""
    waits, calls = [], []

    async def fake_sleep(seconds):
        waits.append(seconds)

    async def call():
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "ok"

    async def main():
        return await call_with_retries(call, policy, "prompt x", secret, random.Random(0))

    original = asyncio.sleep
    asyncio.sleep = fake_sleep
    try:
        return asyncio.run(main()), waits, len(calls)
    finally:
        asyncio.sleep = original


def test_retryable_failures_are_retried_with_growing_jittered_waits():
    failures = [
        _status(500),
        _status(503),
        openai.APITimeoutError(request=REQUEST),
        openai.APIConnectionError(request=REQUEST),
    ]
    result, waits, calls = _run(failures, RetryPolicy(max_retries=5, backoff=1.0))
    assert (result, calls) == ("ok", 5)
    # Retry n waits between half and all of backoff * 2**n.
    for n, wait in enumerate(waits):
        assert 0.5 * 2**n <= wait <= 2**n


def test_retry_after_is_honoured_in_seconds_milliseconds_or_as_a_date():
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    failures = [
        _status(429, {"Retry-After": "7"}),
        _status(503, {"retry-after-ms": "1500"}),
        _status(429, {"Retry-After": date}),
    ]
    _, waits, _ = _run(failures, RetryPolicy(max_retries=3, backoff=0.01))
    assert waits[:2] == [7.0, 1.5]
    assert 25 <= waits[2] <= 30
    assert retry_after(httpx2.Headers({"Retry-After": "soon"})) is None
    assert RetryPolicy(max_backoff=60).delay(0, 3600, random.Random(0)) == 60  # a server's hour is capped


def test_a_request_out_of_retries_fails_with_the_last_reason():
    with pytest.raises(RequestFailed, match=r"^HTTP 500: .*boom after 3 attempts$"):
        _run([_status(500)] * 5, RetryPolicy(max_retries=2, backoff=0.01))


@pytest.mark.parametrize("code", [400, 422])
def test_a_bad_request_is_not_retried(code):
    with pytest.raises(RequestFailed, match=f"^HTTP {code}"):
        _run([_status(code)], RetryPolicy(max_retries=5))


@pytest.mark.parametrize("code", [401, 403, 404])
def test_credentials_or_a_wrong_model_stop_the_whole_run(code):
    secret = "key-that-was-refused-42"
    with pytest.raises(RrhfError, match=f"the server refused the request \\(HTTP {code}") as failure:
        _run([_status(code, message=f"bad key {secret}")], RetryPolicy(max_retries=5), secret=secret)
    assert secret not in str(failure.value)


def test_failure_messages_never_carry_the_key():
    secret = "my-very-secret-key-123"
    with pytest.raises(RequestFailed) as failure:
        _run([_status(400, message=f"invalid key {secret}")], RetryPolicy(), secret=secret)
    assert secret not in str(failure.value) and "<redacted>" in str(failure.value)
    assert scrub("nothing here", secret) == "nothing here"
