"""Reference log-probs computed in-process (`--reference-model`): each response's summed log-prob under the
reference model, over the prepared queries (the very tokens trained on), before training starts; the model is
let go once done. Every process of a launch computes them all: one pass of the reference forward."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Literal

from stages.contract.errors import UsageError
from stages.lm.queries import Query
from stages.runtime.console import log, progress

CHUNK = 1000  # queries built and scored at a time, so the pass holds a few batches, not the whole data


class WithReferences(Sequence[Query]):
    """The prepared queries, each with its responses' reference log-probs (`refs`)."""

    def __init__(self, queries: Sequence[Query], refs: list[list[float]]) -> None:
        self.queries, self.refs = queries, refs

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, index: int) -> Query:  # type: ignore[override]
        return replace(self.queries[index], refs=self.refs[index])


def reference_logprobs(
    name: str, queries: Sequence[Query], policy_tokenizer: Any, pack_prompt: Literal["auto", "on", "off"],
    batch_size: int,
) -> list[list[float]]:
    """Each query's responses' summed log-probs under model `name`, in fp32 on the best device; a model whose
    tokenizer is not the policy's (other ids for the same text) is refused."""
    import torch

    from stages.lm.batched import on_device, score_queries
    from stages.lm.head import lean_head_or_none
    from stages.lm.loading import load_causal_lm, pad_id, pick_device
    from stages.lm.packing import packing_verdict
    from stages.train.cache import tokenizer_fingerprint

    device = pick_device()
    tokenizer, model = load_causal_lm(name, device, torch.float32)
    if tokenizer_fingerprint(tokenizer) != tokenizer_fingerprint(policy_tokenizer):
        raise UsageError(f"--reference-model {name}: its tokenizer is not --model's, so it would read other tokens")
    head = lean_head_or_none(model, "train")
    forward = partial(_summed, model, head)
    sample = [queries[i] for i in range(min(len(queries), CHUNK))]
    packed = packing_verdict(sample, pack_prompt, "train reference", on_device(forward, device), model)
    refs: list[list[float]] = []
    clock = time.perf_counter()
    with progress(len(queries), "reference") as advance:
        for start in range(0, len(queries), CHUNK):
            chunk = [queries[i] for i in range(start, min(start + CHUNK, len(queries)))]
            refs += score_queries(chunk, forward, batch_size, packed, True, pad_id(policy_tokenizer), device)
            advance(len(chunk))
    log.info("train: reference log-probs of %d queries from %s in %.1f s", len(queries), name,
             time.perf_counter() - clock)
    del forward, head, model  # its memory goes back before the policy loads
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return refs


def _summed(model: Any, head: Any, batch: dict[str, Any]) -> Any:
    from stages.lm.logprobs import response_logprobs

    return response_logprobs(model, batch, head)
