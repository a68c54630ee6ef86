"""The orders a listwise judge sees a prompt's responses in, and mapping its scores back. Pure functions.

LLM judges favour some positions, so each prompt's responses are shown in a seeded shuffled order (and
`--judge-orders N` averages N different orders); scores come back in the order shown and are mapped back.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

Order = tuple[int, ...]  # order[j] = the index (in the record) of the response shown at position j


def judge_orders(k: int, n: int, seed: int, shuffle: bool = True) -> list[Order]:
    """`n` different orders of k responses (all k! of them where n is larger), drawn from `seed`;
    without `shuffle`, the input order alone."""
    if not shuffle or k < 2:
        return [tuple(range(k))]
    rng = random.Random(seed)
    total = math.factorial(k)
    if total <= max(n, 720):  # few enough to list: sample without replacement
        return rng.sample(list(itertools.permutations(range(k))), min(n, total))
    orders: list[Order] = []
    while len(orders) < n:  # n is far below k! here, so repeats are rare
        order = tuple(rng.sample(range(k), k))
        if order not in orders:
            orders.append(order)
    return orders


def shown(items: Sequence[str], order: Order) -> list[str]:
    """The items in the order the judge sees them."""
    return [items[index] for index in order]


def in_input_order(order: Order, scores: Sequence[float]) -> list[float]:
    """Scores the judge gave by position, moved back to the responses they belong to."""
    out = [0.0] * len(order)
    for position, index in enumerate(order):
        out[index] = scores[position]
    return out


def averaged(orders: Sequence[Order], scores_by_order: Sequence[Sequence[float]]) -> list[float]:
    """Each response's mean score over every order it was shown in."""
    mapped = [in_input_order(order, scores) for order, scores in zip(orders, scores_by_order, strict=True)]
    return [sum(column) / len(mapped) for column in zip(*mapped, strict=True)]
