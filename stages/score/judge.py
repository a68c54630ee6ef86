"""The judge scorer: an LLM behind any OpenAI-compatible API grades responses, pointwise or listwise.

Key handling, retries and backoff are the shared API client's (stages/engines/openai_api.py). One semaphore
bounds every request of a batch, so `--concurrency` requests are in flight. Transport retries and re-asking
for an unreadable answer are separate budgets per judged item; when either runs out the item is a
Failure keeping the judge's raw text, and the run reports it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any

from stages.contract.errors import Location
from stages.contract.ids import derive_seed
from stages.contract.schema import Record
from stages.engines.openai_api import (
    RequestFailed,
    RetryBudget,
    RetryPolicy,
    api_key,
    call_with_retries,
    make_client,
)
from stages.runtime.runs import Failure
from stages.score.backends import per_record
from stages.score.config import ScoreConfig
from stages.score.judge_orders import Order, averaged, judge_orders, shown
from stages.score.judge_parse import parse_listwise, parse_pointwise
from stages.score.judge_prompts import load_template, render
from stages.score.judge_request import adapted, initial_params, request_kwargs

_REMINDER = "Your answer could not be read. Reply again, ending with the score in the format asked for."


class JudgeScorer:
    """Grades with chat completions; `--judge-mode listwise` sends all k responses of a prompt in one call."""

    def __init__(self, config: ScoreConfig) -> None:
        self.config = config
        self.listwise = config.judge_mode == "listwise"
        self.template = load_template(config.judge_template, self.listwise)
        self.key = api_key(config.api_key_env, config.base_url)
        self.policy = RetryPolicy(max_retries=config.max_retries, backoff=config.backoff)
        self.params = initial_params(config.judge_max_tokens_param, config.judge_temperature)
        self.rng = random.Random(config.seed)

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | Failure]]:
        return asyncio.run(self._score(records))

    def close(self) -> None:
        """Nothing to release: each batch opens and closes its own client."""

    async def _score(self, records: Sequence[Record]) -> list[list[float | Failure]]:
        client = make_client(self.config.base_url, self.key, self.config.timeout)
        gate = asyncio.Semaphore(self.config.concurrency)
        try:
            if self.listwise:
                return list(await asyncio.gather(*(self._listwise(client, gate, r) for r in records)))
            # Every response of the batch at once: the gate, not the record, bounds what is in flight.
            flat = await asyncio.gather(
                *(self._pointwise(client, gate, r, i) for r in records for i in range(len(r.responses)))
            )
        finally:
            await client.close()
        return per_record(flat, (len(record.responses) for record in records))

    async def _pointwise(
        self, client: Any, gate: asyncio.Semaphore, record: Record, index: int
    ) -> float | Failure:
        text = render(self.template, record.prompt, [record.responses[index].text])
        return await self._ask(client, gate, text, parse_pointwise, f"{record.id} responses[{index}]")

    async def _listwise(self, client: Any, gate: asyncio.Semaphore, record: Record) -> list[float | Failure]:
        k = len(record.responses)
        if k == 0:
            return []
        seed = derive_seed(self.config.seed, record.id, "judge-order")
        orders = judge_orders(k, self.config.judge_orders, seed, self.config.judge_shuffle)
        results = await asyncio.gather(*(self._one_order(client, gate, record, order) for order in orders))
        failed = [r for r in results if isinstance(r, Failure)]
        if failed:
            return [failed[0]] * k
        return list(averaged(orders, results))  # type: ignore[arg-type]

    async def _one_order(
        self, client: Any, gate: asyncio.Semaphore, record: Record, order: Order
    ) -> list[float] | Failure:
        texts = shown([r.text for r in record.responses], order)
        text = render(self.template, record.prompt, texts)
        return await self._ask(client, gate, text, lambda answer: parse_listwise(answer, len(texts)), record.id)

    async def _ask(
        self, client: Any, gate: asyncio.Semaphore, text: str, parse: Callable[[str], Any], what: str
    ) -> Any:
        messages: list[dict[str, str]] = [{"role": "user", "content": text}]
        budget = RetryBudget(self.config.max_retries)  # transport retries, shared by every re-ask
        answer, reason = "", ""
        for _ in range(self.config.judge_reasks + 1):
            try:
                answer = await call_with_retries(
                    lambda sent=messages: self._complete(client, gate, sent), self.policy, what, self.key, self.rng,
                    budget,
                )
            except RequestFailed as err:
                return Failure(error=f"judge request failed: {err}")
            try:
                return parse(answer)
            except ValueError as err:
                reason = str(err)
                messages = [
                    messages[0], {"role": "assistant", "content": answer}, {"role": "user", "content": _REMINDER}
                ]
        return Failure(error=f"unreadable judge answer: {reason}", raw=answer)

    async def _complete(self, client: Any, gate: asyncio.Semaphore, messages: list[dict[str, str]]) -> str:
        import openai

        async with gate:  # held for the request alone, not for backoff waits between retries
            while True:
                params = self.params
                try:
                    response = await client.chat.completions.create(
                        model=self.config.model, messages=messages, seed=self.config.seed,
                        **request_kwargs(params, self.config.max_tokens),
                    )
                    return response.choices[0].message.content or ""
                except openai.BadRequestError as err:
                    # A reasoning model refusing max_tokens or a temperature: adapt once, for the whole run.
                    changed = adapted(params, str(err)) if params == self.params else self.params
                    if changed is None:
                        raise
                    self.params = changed
