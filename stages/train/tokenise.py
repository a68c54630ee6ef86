"""Queries tokenised a batch at a time: two fast-tokenizer calls per batch (prompts, responses), in this process for
a small input and in worker processes, one per core, for a large one."""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import astuple, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow as pa

from stages.contract.errors import RrhfError, UsageError
from stages.lm.queries import Query, fit, response_ids
from stages.train.data import Candidates, PlainPrompt

SCHEMA = pa.schema([
    ("prompt", pa.list_(pa.int32())),
    ("responses", pa.list_(pa.list_(pa.int32()))),
    ("rewards", pa.list_(pa.float64())),
    ("pairs", pa.list_(pa.list_(pa.int32()))),  # null: every pair whose rewards differ
    ("refs", pa.list_(pa.float64())),  # null: the loss reads no reference log-probs
    ("sft_targets", pa.list_(pa.bool_())),  # null: the SFT term learns every query's best response
])
POOL_BYTES = 8 * 2**20  # a smaller file (a few thousand records) is tokenised here, with the tokenizer's threads
MAX_WORKERS = 8  # beyond this many, reading and validating the input is the bottleneck



@dataclass(frozen=True)
class Counts:
    """What tokenising counted over queries: ranking pairs of one epoch, prompts and responses cut to fit the
    length, responses the sampler's token limit cut (learned without EOS), responses from the sources `--sft-sources`
    names and queries whose best response the SFT term learns (every query without it), and the tokens fed
    unpacked and packed (as `packing.token_counts` counts them)."""

    queries: int = 0
    responses: int = 0
    pairs: int = 0
    prompts_truncated: int = 0
    responses_truncated: int = 0
    responses_unended: int = 0
    responses_sft: int = 0
    queries_sft: int = 0
    tokens_unpacked: int = 0
    tokens_packed: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


Tokenised = tuple[pa.RecordBatch, Counts]


def tokenise(batch: Sequence[Candidates], tokenizer: Any, max_length: int) -> Tokenised:
    """A batch of queries as a record batch of SCHEMA, and its Counts. The prompt is what `render_ids` gives, each
    response what `response_ids` gives, cut to fit as `fit` cuts them."""
    prompts = _prompt_ids(tokenizer, [c.prompt for c in batch])
    encoded = iter(response_ids(tokenizer, [text for candidate in batch for text in candidate.texts],
                                [done for candidate in batch for done in candidate.endings()]))
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    counts = Counts()
    for candidate, prompt in zip(batch, prompts, strict=True):
        responses = [next(encoded) for _ in candidate.texts]
        prompt, responses, (prompt_cut, responses_cut) = fit(prompt, responses, max_length)
        query = Query(prompt, responses, candidate.rewards, candidate.pairs, candidate.refs, candidate.sft_targets)
        response_tokens = sum(map(len, responses))
        counts += Counts(queries=1, responses=len(responses), pairs=len(query.ranking_pairs()),
                         prompts_truncated=int(prompt_cut), responses_truncated=responses_cut,
                         responses_unended=candidate.endings().count(False),
                         responses_sft=sum(candidate.sft_targets or []), queries_sft=int(candidate.learns_best()),
                         tokens_unpacked=len(prompt) * len(responses) + response_tokens,
                         tokens_packed=len(prompt) + response_tokens)
        columns["prompt"].append(prompt)
        columns["responses"].append(responses)
        columns["rewards"].append(candidate.rewards)
        columns["pairs"].append(None if candidate.pairs is None else [list(p) for p in candidate.pairs])
        columns["refs"].append(candidate.refs)
        columns["sft_targets"].append(candidate.sft_targets)
    return pa.RecordBatch.from_pydict(columns, schema=SCHEMA), counts


def tokenised(
    batches: Iterable[Sequence[Candidates]], tokenizer: Any, max_length: int, workers: int = 1
) -> Iterator[Tokenised]:
    """`tokenise` over every batch, in order: here, or by `workers` forked processes a few batches ahead of the one
    written (a process that dies, out of memory say, ends the run in one line)."""
    if workers < 2:
        yield from (tokenise(batch, tokenizer, max_length) for batch in batches)
        return
    # Forked before this process tokenises anything, and all at once before the pool starts its own thread, so no
    # thread is forked. A worker tokenises on one thread: the processes are the parallelism, and a tokenizer whose
    # threads ran before a fork would otherwise turn them off with a warning.
    configured = "TOKENIZERS_PARALLELISM" in os.environ
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    pool = ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_start_worker,
                               initargs=(tokenizer, max_length))
    pending: deque[Future[Tokenised]] = deque()
    try:
        for batch in batches:
            pending.append(pool.submit(_work, [_portable(c) for c in batch]))
            if len(pending) >= 2 * workers:  # bounded: the input is read only as fast as it is tokenised
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise RrhfError("train: a process tokenising the training data ended abruptly (out of memory?)") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if not configured:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)


def worker_count(spec: str) -> int:
    """How many processes to tokenise a file with: one per core (up to MAX_WORKERS) for a file of POOL_BYTES or
    more (or an `hf:` dataset), where fork is safe to use (Linux); else 1, this process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    path = Path(spec)
    large = not path.is_file() or path.stat().st_size >= POOL_BYTES
    return min(MAX_WORKERS, cores) if large and sys.platform == "linux" else 1


def as_query(row: dict[str, Any]) -> Query:
    """One row of SCHEMA as the Query the collator takes."""
    pairs = row["pairs"]
    return Query(prompt=row["prompt"], responses=row["responses"], rewards=row["rewards"],
                 pairs=None if pairs is None else [(better, worse) for better, worse in pairs], refs=row.get("refs"),
                 sft_targets=row.get("sft_targets"))


_worker: dict[str, Any] = {}


def _start_worker(tokenizer: Any, max_length: int) -> None:
    # Ctrl-C and SIGTERM are the main process's to handle: it ends the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker.update(tokenizer=tokenizer, max_length=max_length)


def _work(batch: list[Candidates]) -> Tokenised:
    return tokenise(batch, _worker["tokenizer"], _worker["max_length"])


def _portable(candidate: Candidates) -> Candidates:
    # Plain data crosses to a worker faster than pydantic messages do, and renders the same.
    prompt = candidate.prompt if isinstance(candidate.prompt, str) else _messages(candidate.prompt)
    return replace(candidate, prompt=prompt)


def _prompt_ids(tokenizer: Any, prompts: Sequence[Any]) -> list[list[int]]:
    # What render_ids gives each prompt, with one tokenizer call for the strings and one for the conversations.
    plain = [p if isinstance(p, str) else _messages(p) for p in prompts]
    ids: list[list[int]] = [[] for _ in plain]
    strings = [i for i, p in enumerate(plain) if isinstance(p, str)]
    chats = [i for i, p in enumerate(plain) if not isinstance(p, str)]
    if strings:
        for i, encoded in zip(strings, tokenizer([plain[i] for i in strings])["input_ids"], strict=True):
            ids[i] = list(encoded)
    if chats:
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError("the model's tokenizer has no chat template, which message prompts need")
        rendered = tokenizer.apply_chat_template([plain[i] for i in chats], add_generation_prompt=True, tokenize=True)
        # transformers 5 returns a BatchEncoding here, 4.x a plain list.
        rendered = rendered["input_ids"] if hasattr(rendered, "keys") else rendered
        for i, encoded in zip(chats, rendered, strict=True):
            ids[i] = list(encoded)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return [prompt or [start] for prompt in ids]  # nothing to condition on: begin as an empty chat would


def _messages(prompt: Any) -> PlainPrompt:
    # Messages as dicts with all their fields, from a record (pydantic) or from the JSON of a grouped row.
    return [m if isinstance(m, dict) else m.model_dump() for m in prompt]
