"""The judge scorer: an LLM behind any OpenAI-compatible API grades responses, pointwise or listwise.

Key handling, retries and backoff are the shared API client's (stages/engines/openai_api.py).
An unreadable answer is asked again; when retries run out the response is a ScoreFailure keeping the
judge's raw text, and the run reports it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from rrhf_cli.errors import Location
from rrhf_cli.schema import Record
from stages.engines.openai_api import RequestFailed, RetryPolicy, api_key, call_with_retries, make_client
from stages.score.apply import ScoreFailure
from stages.score.config import ScoreConfig
from stages.score.judge_parse import parse_listwise, parse_pointwise
from stages.score.judge_prompts import load_template, render

_REMINDER = "Your answer could not be read. Reply again, ending with the score in the format asked for."


class JudgeScorer:
    """Grades with chat completions; `--judge-mode listwise` sends all k responses of a prompt in one call."""

    def __init__(self, config: ScoreConfig) -> None:
        self.config = config
        self.listwise = config.judge_mode == "listwise"
        self.template = load_template(config.judge_template, self.listwise)
        self.key = api_key(config.api_key_env, config.base_url)
        self.policy = RetryPolicy(max_retries=config.max_retries, backoff=config.backoff)
        self.rng = random.Random(config.seed)

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | ScoreFailure]]:
        return asyncio.run(self._score(records))

    async def _score(self, records: Sequence[Record]) -> list[list[float | ScoreFailure]]:
        client = make_client(self.config.base_url, self.key, self.config.timeout)
        gate = asyncio.Semaphore(self.config.concurrency)
        try:
            if self.listwise:
                return list(await asyncio.gather(*(self._listwise(client, gate, r) for r in records)))
            jobs = [[self._pointwise(client, gate, r, i) for i in range(len(r.responses))] for r in records]
            return [list(await asyncio.gather(*row)) for row in jobs]
        finally:
            await client.close()

    async def _pointwise(
        self, client: Any, gate: asyncio.Semaphore, record: Record, index: int
    ) -> float | ScoreFailure:
        text = render(self.template, record.prompt, [record.responses[index].text])
        result = await self._ask(client, gate, text, parse_pointwise, f"{record.id} responses[{index}]")
        return result[0] if isinstance(result, list) else result

    async def _listwise(self, client: Any, gate: asyncio.Semaphore, record: Record) -> list[float | ScoreFailure]:
        k = len(record.responses)
        if k == 0:
            return []
        text = render(self.template, record.prompt, [r.text for r in record.responses])
        result = await self._ask(client, gate, text, lambda answer: parse_listwise(answer, k), record.id)
        return result if isinstance(result, list) else [result] * k

    async def _ask(self, client: Any, gate: asyncio.Semaphore, text: str, parse: Any, what: str) -> Any:
        messages: list[dict[str, str]] = [{"role": "user", "content": text}]
        answer, reason = "", ""
        for _ in range(self.config.max_retries + 1):
            try:
                async with gate:
                    answer = await call_with_retries(
                        lambda sent=messages: self._complete(client, sent), self.policy, what, self.key, self.rng
                    )
            except RequestFailed as err:
                return ScoreFailure(f"judge request failed: {err}")
            try:
                value = parse(answer)
            except ValueError as err:
                reason = str(err)
                messages = [
                    messages[0], {"role": "assistant", "content": answer}, {"role": "user", "content": _REMINDER}
                ]
                continue
            return value if isinstance(value, list) else [value]
        return ScoreFailure(f"unreadable judge answer: {reason}", raw=answer)

    async def _complete(self, client: Any, messages: list[dict[str, str]]) -> str:
        response = await client.chat.completions.create(
            model=self.config.model, messages=messages, temperature=0.0, max_tokens=self.config.max_tokens,
            seed=self.config.seed,
        )
        return response.choices[0].message.content or ""
