"""Reference log-probs computed in-process (`--reference-model`): each response's summed log-prob under the
reference model, over the prepared queries (the very tokens trained on), before training starts; the model is
let go once done. Every process of a launch computes them all: one pass of the reference forward."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from stages.contract.errors import UsageError
from stages.contract.meta import read_meta
from stages.lm.queries import Query
from stages.runtime.console import log, progress

CHUNK = 1000  # queries built and scored at a time, so the pass holds a few batches, not the whole data
HOPS = 8  # metas followed back from the training input to the score run that wrote the reference


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


def scored_max_length(source: Path, name: str) -> tuple[int, Path] | None:
    """The --max-length the score run that wrote scores.NAME read its sequences under, and the file it wrote,
    found by following the metas from `source` back through single inputs; None where no meta says."""
    path = source
    for _ in range(HOPS):
        meta = read_meta(path)
        if meta is None:
            return None
        if meta.stage == "score" and meta.config.get("as_name") == name:
            length = meta.config.get("max_length")
            return (length, path) if isinstance(length, int) else None
        if len(meta.inputs) != 1:
            return None
        path = Path(meta.inputs[0].path)
    return None


def cut_mismatch(name: str, scored: tuple[int, Path] | None, max_length: int, cut: int) -> tuple[bool, str] | None:
    """(refuse, message) where scores.NAME may be log-probs of other tokens than training reads: `scored` is what
    `scored_max_length` found, `cut` how many prompts and responses training cut to `max_length`; None where
    they read the same tokens.

    >>> cut_mismatch("ref", (1024, Path("s.jsonl")), 1024, 5) is None
    True
    >>> cut_mismatch("ref", (2048, Path("s.jsonl")), 1024, 0) is None  # nothing reached either length
    True
    >>> cut_mismatch("ref", (2048, Path("s.jsonl")), 1024, 3)[0]
    True
    >>> cut_mismatch("ref", (512, Path("s.jsonl")), 1024, 0)[0]  # what training keeps whole, scoring may have cut
    False
    >>> cut_mismatch("ref", None, 1024, 3)[0]
    False
    """
    again = f"rrhf score --max-length {max_length} ... --as {name}"
    if scored is None:
        if not cut:
            return None
        return False, (f"{cut} prompts or responses were cut to --max-length {max_length}; their scores.{name} must "
                       f"have been computed on the same cut ({again}), or the loss compares log-probs of other tokens")
    length, path = scored
    if length == max_length or (length > max_length and not cut):
        return None
    if cut:
        return True, (f"scores.{name} were computed at --max-length {length} ({path}) and {cut} prompts or responses "
                      f"are cut to --max-length {max_length} here: the loss would compare log-probs of other tokens; "
                      f"train with --max-length {length}, or score again: {again}")
    return False, (f"scores.{name} were computed at --max-length {length} ({path}), below train's {max_length}: a "
                   f"sequence longer than {length} tokens was cut when scored and is whole here")
