"""The openai backend: any OpenAI-compatible server (OpenAI, vllm serve, transformers serve, llama.cpp).

Prompts run concurrently; each asks for n=k choices and, because some servers ignore `n`, asks again for
whatever is missing until it has k. A request that keeps failing marks its prompt failed, never dropped.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from stages.contract.ids import derive_seed
from stages.contract.schema import Prompt
from stages.engines.openai_api import RequestFailed, RetryPolicy, api_key, call_with_retries, make_client
from stages.lm.prompts import as_messages
from stages.runtime.runs import Failure
from stages.sample.backends import SampleRequest, SampleResult
from stages.sample.config import SampleConfig
from stages.sample.decoding import Completion, completion


class OpenAISampler:
    """k responses per prompt from an OpenAI-compatible HTTP API, `concurrency` requests at a time."""

    prompt_limit = None  # no tokenizer here: the server sees the whole prompt

    def __init__(self, config: SampleConfig) -> None:
        self.config = config
        self.key = api_key(config.api_key_env, config.base_url)
        self.policy = RetryPolicy(max_retries=config.max_retries, backoff=config.backoff)

    def prompt_lengths(self, prompts: list[Prompt]) -> None:
        """No tokenizer here: prompts keep their input order."""
        return None

    def sample(self, requests: list[SampleRequest], batch_seed: int) -> list[SampleResult]:
        """All requests of the batch concurrently; one result per request, in order."""
        return asyncio.run(self._sample_all(requests))

    async def _sample_all(self, requests: list[SampleRequest]) -> list[SampleResult]:
        # A client per batch: its connection pool belongs to this event loop.
        client = make_client(self.config.base_url, self.key, self.config.timeout)
        slots = asyncio.Semaphore(self.config.concurrency)
        try:
            return list(await asyncio.gather(*(self._answer(client, slots, r) for r in requests)))
        finally:
            await client.close()

    async def _answer(self, client: Any, slots: asyncio.Semaphore, request: SampleRequest) -> SampleResult:
        k = self.config.k
        answers: list[Completion] = []
        rng = random.Random(request.seed)
        calls = 0
        try:
            while len(answers) < k:
                need = k - len(answers)
                # Each follow-up request gets its own seed: a server that ignores `n` but honours `seed`
                # would otherwise return the same text every time.
                seed = derive_seed(request.seed, calls)

                async def once(need: int = need, seed: int = seed) -> list[Completion]:
                    async with slots:
                        return await self._request(client, request.prompt, need, seed)

                choices = await call_with_retries(once, self.policy, f"prompt {request.id}", self.key, rng)
                if not choices:
                    raise RequestFailed("the server returned no choices")
                answers.extend(choices[:need])
                calls += 1
        except RequestFailed as err:
            return Failure(error=str(err))
        return answers

    async def _request(self, client: Any, prompt: Prompt, n: int, seed: int) -> list[Completion]:
        c = self.config
        params: dict[str, Any] = {
            "model": c.model,
            "n": n,
            "max_tokens": c.max_new_tokens,
            "temperature": c.temperature,
            "top_p": c.top_p,
            "seed": seed,
        }
        if c.stop:
            params["stop"] = list(c.stop)
        if c.endpoint == "chat" or (c.endpoint == "auto" and isinstance(prompt, list)):
            response = await client.chat.completions.create(messages=as_messages(prompt, all_fields=False), **params)
            choices = sorted(response.choices, key=lambda choice: choice.index or 0)
            return [completion(choice.message.content or "", c.stop, choice.finish_reason)
                    for choice in choices]
        response = await client.completions.create(prompt=prompt, **params)
        choices = sorted(response.choices, key=lambda choice: choice.index or 0)
        return [completion(choice.text or "", c.stop, choice.finish_reason) for choice in choices]

    def close(self) -> None:
        """Nothing held between batches."""
