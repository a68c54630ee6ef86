"""Batches of tokenised queries, for training and scoring: one row per (prompt, response) or one packed row
per query.

Packed: `[prompt, y_1, ..., y_k]` with position ids restarting after the prompt for every y_i, and the layout
the shared-prompt attention (shared_prompt.py) needs, in which each y_i sees the prompt and its own earlier
tokens only, so the prompt is encoded once. Both layouts also carry where each learned token is predicted
from, so one gather serves both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from stages.lm import shared_prompt
from stages.lm.cost import forward_work
from stages.lm.queries import Query
from stages.runtime.console import log


def collate(queries: list[Query], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
    """The model inputs plus the gather plan: for learned token n, `gather_rows[n], gather_cols[n]` is the position
    whose output predicts `target_ids[n]`, which belongs to response `target_response[n]`. `rewards` and the
    ranking `pairs` (better, worse batch indices) are there when every query carries rewards, `ref_logps` (each
    response's reference log-prob) and `sft_targets` (whether each may be the SFT target) when every query carries
    them."""
    rows: list[list[int]] = []
    positions: list[list[int]] = []
    response_cols: list[list[int]] = []  # where each response's tokens sit in its row (packed layout only)
    gather_rows: list[int] = []
    gather_cols: list[int] = []
    targets: list[int] = []
    target_response: list[int] = []
    response_query: list[int] = []
    lengths: list[int] = []
    end_rows: list[int] = []  # where each response's final token sits (reward models read it)
    end_cols: list[int] = []
    for q, query in enumerate(queries):
        n_prompt = len(query.prompt)
        if packed:
            row, pos = list(query.prompt), list(range(n_prompt))
        for response in query.responses:
            r = len(lengths)
            if packed:
                start = len(row)
                row += response
                pos += range(n_prompt, n_prompt + len(response))
                response_cols.append(list(range(start, start + len(response))))
                # The first token is predicted from the last prompt token, the rest from their predecessor.
                cols = [n_prompt - 1, *range(start, start + len(response) - 1)]
                row_index = len(rows)
            else:
                rows.append(query.prompt + response)
                positions.append(list(range(n_prompt + len(response))))
                cols = list(range(n_prompt - 1, n_prompt + len(response) - 1))
                row_index = len(rows) - 1
            end_rows.append(row_index)
            end_cols.append((start if packed else n_prompt) + len(response) - 1)
            gather_rows += [row_index] * len(response)
            gather_cols += cols
            targets += response
            target_response += [r] * len(response)
            response_query.append(q)
            lengths.append(len(response))
        if packed:
            rows.append(row)
            positions.append(pos)

    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    present = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, (row, pos) in enumerate(zip(rows, positions, strict=True)):
        input_ids[b, : len(row)] = torch.tensor(row)
        position_ids[b, : len(row)] = torch.tensor(pos)
        present[b, : len(row)] = True
    batch = {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "gather_rows": torch.tensor(gather_rows),
        "gather_cols": torch.tensor(gather_cols),
        "target_ids": torch.tensor(targets),
        "target_response": torch.tensor(target_response),
        "response_query": torch.tensor(response_query),
        "lengths": torch.tensor(lengths),
        "end_rows": torch.tensor(end_rows),
        "end_cols": torch.tensor(end_cols),
    }
    if all(query.rewards is not None for query in queries):
        rewards = [value for query in queries for value in query.rewards or []]
        batch["rewards"] = torch.tensor(rewards, dtype=torch.float32)
        pairs, first = [], 0
        for query in queries:
            pairs += [(first + better, first + worse) for better, worse in query.ranking_pairs()]
            first += len(query.responses)
        batch["pairs"] = torch.tensor(pairs, dtype=torch.long).view(-1, 2)  # (P, 2) batch indices
    if queries and all(query.refs is not None for query in queries):
        batch["ref_logps"] = torch.tensor([value for query in queries for value in query.refs or []])
    if queries and all(query.sft_targets is not None for query in queries):
        batch["sft_targets"] = torch.tensor([value for query in queries for value in query.sft_targets or []])
    if packed:
        prompts = [len(query.prompt) for query in queries]
        batch |= shared_prompt.layout(end_rows, response_cols, prompts, width)
    else:
        batch["attention_mask"] = present.long()
    return batch


def token_counts(queries: list[Query]) -> tuple[int, int]:
    """Tokens a dataset feeds the model unpacked and packed: packing saves (k - 1) prompts per query."""
    unpacked = sum(len(q.prompt) * len(q.responses) + sum(map(len, q.responses)) for q in queries)
    packed = sum(len(q.prompt) + sum(map(len, q.responses)) for q in queries)
    return unpacked, packed


def compute_estimate(queries: list[Query], config: Any, head: bool) -> tuple[float, float]:
    """Forward cost unpacked and packed (`cost.forward_work`), in token-equivalents (one token through the
    layers): every token, attention over every (query, key) pair, and with `head` the vocabulary head at each
    learned token, which packing does not shrink. Packed, the prompt attends to itself once and each response,
    padded to the query's longest, to the prompt and itself."""
    work = forward_work(config, head)
    pair, learned = work.pair / work.token, work.learned / work.token
    unpacked = packed = 0.0
    for q in queries:
        n_prompt, longest = len(q.prompt), max(map(len, q.responses), default=0)
        head_cost = learned * sum(map(len, q.responses))
        unpacked += head_cost + sum(n + pair * n * n for n in (n_prompt + len(r) for r in q.responses))
        pairs = n_prompt * n_prompt + len(q.responses) * longest * (n_prompt + longest)
        packed += head_cost + n_prompt + sum(map(len, q.responses)) + pair * pairs
    return unpacked, packed


def saves_enough(unpacked: float, packed: float) -> bool:
    """`auto`'s rule: pack when packing saves at least a tenth of the cost."""
    # Why a tenth and not any saving: packing is not free (a different layout, responses padded to the longest,
    # a probe forward to check the model honours it), and the estimate counts multiply-adds only (not memory
    # traffic, kernel launches or a kernel's causal skipping), so it is good to about a tenth; a smaller
    # predicted saving may be none at all.
    return packed <= 0.9 * unpacked


def packing_verdict(
    queries: list[Query],
    mode: str,
    stage: str,
    probe: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    model: Any,
    tokens: tuple[int, int] | None = None,
) -> bool:
    """Whether to pack: when asked, or under `auto` when it saves at least a tenth of the estimated compute
    (`compute_estimate`; of the tokens, where the model's width is unknown), and only if `model` takes the
    shared-prompt attention and `probe` (its per-response output on a batch) agrees packed and unpacked; one
    log line says why not. A model that packs keeps the shared-prompt attention installed. `queries` may be a
    sample of the data, whose (unpacked, packed) token counts `tokens` then gives for the log line."""
    if mode == "off":
        return False
    tokens_unpacked, tokens_packed = token_counts(queries)
    known = isinstance(getattr(model.config, "hidden_size", None), int)
    unpacked, packed = (
        compute_estimate(queries, model.config, _has_vocabulary_head(model)) if known
        else (tokens_unpacked, tokens_packed)
    )
    if mode == "auto" and not saves_enough(unpacked, packed):
        saved = 100 * (1 - packed / unpacked)
        what = "compute (tokens, attention and vocabulary head)" if known else "tokens"
        log.info("%s: prompts not packed: it would save only %.0f%% of the %s", stage, saved, what)
        return False
    reason = shared_prompt.install(model) or _probe_problem(queries, probe)
    if reason:
        shared_prompt.uninstall(model)
        level = logging.WARNING if mode == "on" else logging.INFO
        log.log(level, "%s: prompts not packed: %s", stage, reason)
        return False
    tokens_unpacked, tokens_packed = tokens or (tokens_unpacked, tokens_packed)
    log.info("%s: prompts packed: %d tokens instead of %d", stage, tokens_packed, tokens_unpacked)
    return True


def _has_vocabulary_head(model: Any) -> bool:
    get = getattr(model, "get_output_embeddings", None)
    return callable(get) and get() is not None


def _probe_problem(queries: list[Query], probe: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> str | None:
    # Probe with a real query: packed and unpacked outputs must agree, or the model bypasses the attention
    # interface (remote code, say) and would let responses see each other.
    sample = next((q for q in queries if len(q.responses) > 1), None)
    if sample is None:
        return "no query has two responses"
    sample = Query(prompt=sample.prompt[-32:], responses=[r[:16] for r in sample.responses[:2]])
    try:
        with torch.no_grad():
            packed = probe(collate([sample], 0, packed=True))
            plain = probe(collate([sample], 0, packed=False))
    except Exception as err:  # a model that rejects the layout may raise anything
        return f"the model rejected the shared-prompt attention ({type(err).__name__}: {err})"
    if not torch.allclose(packed.float(), plain.float(), atol=1e-3, rtol=1e-3):
        return "the model does not honour the shared-prompt attention"
    return None
