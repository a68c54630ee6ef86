"""The log-probability of responses under a causal LM: summed over each response's tokens and its EOS (none
after a response the sampler's token limit cut).

What the logprob scorer grades with (an RRHF-trained model is also a reward model) and what evaluation
measures reference perplexity with; the tokenisation, packing and lean head are the training loss's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from stages.contract.schema import Record
from stages.lm.batched import on_device, score_queries
from stages.lm.head import lean_head_or_none
from stages.lm.loading import fitting_length, load_causal_lm, pad_id, pick_device, pick_dtype
from stages.lm.logprobs import response_logprobs
from stages.lm.packing import packing_verdict
from stages.lm.queries import policy_query


class PolicyLogprobs:
    """A causal LM that gives each response its summed log-prob and token count, in micro-batches."""

    def __init__(
        self, model: str, max_length: int, batch_size: int, pack_prompt: Literal["auto", "on", "off"] = "auto",
        bf16: bool | None = None, sort_by_length: bool = True, stage: str = "score",
    ) -> None:
        self.device = pick_device()
        self.tokenizer, self.model = load_causal_lm(model, self.device, pick_dtype(self.device, bf16))
        self.head = lean_head_or_none(self.model, stage)
        self.max_length = fitting_length(max_length, self.model.config)
        self.batch_size, self.pack_prompt, self.stage = batch_size, pack_prompt, stage
        self.sort_by_length = sort_by_length
        self.packed: bool | None = None

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return response_logprobs(self.model, batch, self.head)

    def sums(self, records: Sequence[Record]) -> tuple[list[list[float]], list[list[int]]]:
        """Per response: the summed log-prob of its tokens and EOS (where it ended), and how many tokens that is."""
        queries = [
            policy_query(self.tokenizer, r.prompt, r.responses, self.max_length)[0] for r in records
        ]
        if self.packed is None:
            probe = on_device(self._forward, self.device)
            self.packed = packing_verdict(queries, self.pack_prompt, self.stage, probe, self.model)
        values = score_queries(
            queries, self._forward, self.batch_size, self.packed, self.sort_by_length, pad_id(self.tokenizer),
            self.device,
        )
        return values, [[len(r) for r in q.responses] for q in queries]
