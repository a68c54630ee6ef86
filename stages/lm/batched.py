"""Running a model over tokenised queries in micro-batches, packed or not, sorted by length or not."""

from __future__ import annotations

from collections.abc import Callable

import torch

from stages.lm.packing import collate
from stages.lm.queries import Query

Forward = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # a collated batch -> one value per response


def on_device(forward: Forward, device: torch.device | str) -> Forward:
    """`forward` taking a batch built on the CPU (as `collate` and the packing probe build them)."""
    return lambda batch: forward({k: v.to(device) for k, v in batch.items()})


def score_queries(
    queries: list[Query], forward: Forward, batch_size: int, packed: bool, sort_by_length: bool, pad_id: int,
    device: torch.device | str,
) -> list[list[float]]:
    """Values for every response of every query, in input order; about `batch_size` sequences per forward."""
    if packed:
        units = [(query, [(i, j) for j in range(len(query.responses))]) for i, query in enumerate(queries)]
    else:
        units = [
            (Query(prompt=query.prompt, responses=[response]), [(i, j)])
            for i, query in enumerate(queries)
            for j, response in enumerate(query.responses)
        ]
    order = list(range(len(units)))
    if sort_by_length:
        # Similar lengths share a batch, so little of each forward is padding.
        order.sort(key=lambda u: len(units[u][0].prompt) + sum(map(len, units[u][0].responses)))
    values: list[list[float]] = [[0.0] * len(query.responses) for query in queries]
    forward = on_device(forward, device)
    start = 0
    while start < len(order):
        taken, sequences = [], 0
        while start < len(order) and (not taken or sequences + len(units[order[start]][1]) <= batch_size):
            taken.append(order[start])
            sequences += len(units[order[start]][1])
            start += 1
        batch = collate([units[u][0] for u in taken], pad_id, packed)
        with torch.no_grad():
            out = forward(batch).float().cpu().tolist()
        slots = [slot for u in taken for slot in units[u][1]]
        for (i, j), value in zip(slots, out, strict=True):
            values[i][j] = value
    return values
