"""Records into tokenised training queries: rewards from scores (or preference order) and the policy's tokens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rrhf_cli.errors import BadInput, Location
from rrhf_cli.schema import Record
from stages.lm.queries import Query, policy_query

# Preference rows carry their order in `source` when they have no scores.
_PREFERENCE_REWARDS = {"chosen": 1.0, "rejected": 0.0}


def rewards_of(record: Record, where: Location) -> list[float]:
    """The record's rewards: its scores, or 1/0 for an unscored chosen/rejected pair."""
    if not record.responses:
        raise BadInput(where, "has no responses to train on")
    scores = [r.score for r in record.responses]
    if all(s is not None for s in scores):
        return scores  # type: ignore[return-value]
    sources = [r.source for r in record.responses]
    if all(s is None for s in scores) and sorted(sources) == ["chosen", "rejected"]:
        return [_PREFERENCE_REWARDS[s] for s in sources]
    missing = scores.index(None)
    raise BadInput(where, f"'responses[{missing}]' has no score; run `rrhf score` on this file first")


def build_queries(
    records: Sequence[Record], locations: Sequence[Location], tokenizer: Any, max_length: int
) -> tuple[list[Query], Counter[str]]:
    """Tokenise every record with its rewards; counts how many prompts were left-truncated and responses cut to
    fit `max_length`."""
    counts: Counter[str] = Counter()
    queries = []
    for record, where in zip(records, locations, strict=True):
        rewards = rewards_of(record, where)
        query, prompt_cut, responses_cut = policy_query(
            tokenizer, record.prompt, [r.text for r in record.responses], max_length
        )
        counts["prompts_truncated"] += int(prompt_cut)
        counts["responses_truncated"] += responses_cut
        query.rewards = rewards
        queries.append(query)
    return queries, counts
