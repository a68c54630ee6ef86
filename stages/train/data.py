"""Records into tokenised training queries: responses, rewards and ranking pairs, then the policy's tokens.

A scored file means every pair of a prompt's responses whose scores differ (the paper's loss). A ranked
file's `pairs` are the pairs `rrhf rank` chose. Preference rows (TRL, Anthropic HH) that share a prompt
form one query: its responses are the rows' distinct texts and its pairs the rows' (chosen, rejected).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stages.core.errors import BadInput, Location
from stages.core.schema import Prompt, Record
from stages.lm.queries import Query, policy_query

PREFERENCE_FORMATS = ("trl-preference", "hh")


@dataclass
class Candidates:
    """One query before tokenisation: a prompt, its response texts, their rewards and chosen pairs, if any."""

    prompt: Prompt
    texts: list[str]
    rewards: list[float]
    pairs: list[tuple[int, int]] | None = None


def listwise_candidates(record: Record, where: Location) -> Candidates:
    """A scored or ranked record as one query: its scores, and its `pairs` when `rrhf rank` chose them."""
    if not record.responses:
        raise BadInput(where, "has no responses to train on")
    pairs = _pairs_field(record.extra.get("pairs"), len(record.responses), where)
    scores = [r.score for r in record.responses]
    if all(s is not None for s in scores):
        rewards: list[float] = scores  # type: ignore[assignment]
    elif pairs is not None:
        rewards = net_wins(len(record.responses), pairs)
    elif sorted(r.source for r in record.responses) == ["chosen", "rejected"] and all(s is None for s in scores):
        # An unscored preference pair: its order is in `source`.
        rewards = [1.0 if r.source == "chosen" else 0.0 for r in record.responses]
    else:
        missing = scores.index(None)
        raise BadInput(where, f"'responses[{missing}]' has no score; run `rrhf score` on this file first")
    return Candidates(record.prompt, [r.text for r in record.responses], rewards, pairs)


def preference_candidates(records: Sequence[Record], locations: Sequence[Location]) -> list[Candidates]:
    """Preference rows grouped by prompt (`prompt_id` where rows carry it): one query per prompt, in order of
    first appearance, with each row's (chosen, rejected) as a pair. Rewards are the scores where every row
    has them, else each response's wins minus losses, so SFT learns the most preferred response."""
    groups: dict[str, list[tuple[Record, Location]]] = {}
    for record, where in zip(records, locations, strict=True):
        key = str(record.extra.get("prompt_id") or json.dumps(record.model_dump(mode="json")["prompt"]))
        groups.setdefault(key, []).append((record, where))
    out = []
    for rows in groups.values():
        texts: list[str] = []
        scores: dict[int, float | None] = {}
        pairs: list[tuple[int, int]] = []
        for record, where in rows:
            by_source = {r.source: r for r in record.responses}
            if set(by_source) != {"chosen", "rejected"} or len(record.responses) != 2:
                raise BadInput(where, "a preference row needs one chosen and one rejected response")
            indices = []
            for name in ("chosen", "rejected"):
                response = by_source[name]
                if response.text not in texts:
                    texts.append(response.text)
                index = texts.index(response.text)
                scores.setdefault(index, response.score)
                indices.append(index)
            if indices[0] != indices[1]:  # a row whose two texts are equal carries no preference
                pairs.append((indices[0], indices[1]))
        known = [scores[i] for i in range(len(texts))]
        rewards = known if all(s is not None for s in known) else net_wins(len(texts), pairs)
        out.append(Candidates(rows[0][0].prompt, texts, rewards, pairs))  # type: ignore[arg-type]
    return out


def net_wins(n: int, pairs: Sequence[tuple[int, int]]) -> list[float]:
    """Each response's wins minus losses over the pairs: a reward that ranks as the pairs do."""
    wins = [0.0] * n
    for better, worse in pairs:
        wins[better] += 1.0
        wins[worse] -= 1.0
    return wins


def build_queries(
    records: Sequence[Record],
    locations: Sequence[Location],
    tokenizer: Any,
    max_length: int,
    fmt: str = "rrhf",
) -> tuple[list[Query], Counter[str]]:
    """Tokenise every query with its rewards and pairs; counts the ranking pairs the loss sees in one epoch, the
    prompts left-truncated and the responses cut to fit `max_length`."""
    if fmt in PREFERENCE_FORMATS:
        candidates = preference_candidates(records, locations)
    else:
        candidates = [listwise_candidates(r, where) for r, where in zip(records, locations, strict=True)]
    counts: Counter[str] = Counter()
    queries = []
    for candidate in candidates:
        query, prompt_cut, responses_cut = policy_query(tokenizer, candidate.prompt, candidate.texts, max_length)
        query.rewards, query.pairs = candidate.rewards, candidate.pairs
        counts["pairs"] += len(query.ranking_pairs())
        counts["prompts_truncated"] += int(prompt_cut)
        counts["responses_truncated"] += responses_cut
        queries.append(query)
    return queries, counts


def _pairs_field(value: Any, n: int, where: Location) -> list[tuple[int, int]] | None:
    # A ranked file's `pairs`: [better, worse] indices into the record's responses.
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadInput(where, "'pairs' must be a list of [better, worse] response indices")
    pairs = []
    for i, pair in enumerate(value):
        ok = isinstance(pair, list | tuple) and len(pair) == 2 and all(type(x) is int for x in pair)
        if not ok or not all(0 <= x < n for x in pair) or pair[0] == pair[1]:
            raise BadInput(where, f"'pairs[{i}]' must be two different response indices below {n}, got {pair!r}")
        pairs.append((pair[0], pair[1]))
    return pairs
