"""Records into tokenised training queries: prompt rendering, EOS, rewards and truncation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rrhf_cli.errors import BadInput, Location
from rrhf_cli.schema import Record
from stages.sample.prompts import prompt_of, render_ids
from stages.train.packing import Query

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
    records: Sequence[Record], locations: Sequence[Location], tokenizer: Any, max_length: int, rewards: bool = True
) -> tuple[list[Query], Counter[str]]:
    """Tokenise every record (with its rewards, or zeros when `rewards` is False, for scoring); counts how many
    prompts were left-truncated and responses cut to fit `max_length`."""
    if tokenizer.eos_token_id is None:
        raise BadInput(str(getattr(tokenizer, "name_or_path", "tokenizer")), "the tokenizer has no EOS token")
    counts: Counter[str] = Counter()
    queries = []
    for record, where in zip(records, locations, strict=True):
        values = rewards_of(record, where) if rewards else [0.0] * len(record.responses)
        # Exactly the tokens the sample stage fed the policy.
        prompt = render_ids(tokenizer, prompt_of(record))
        responses = [
            tokenizer(r.text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            for r in record.responses
        ]
        prompt, responses, cut = fit(prompt, responses, max_length)
        counts["prompts_truncated"] += int(cut[0])
        counts["responses_truncated"] += cut[1]
        queries.append(Query(prompt=prompt, responses=responses, rewards=values))
    return queries, counts


def fit(
    prompt: list[int], responses: list[list[int]], max_length: int
) -> tuple[list[int], list[list[int]], tuple[bool, int]]:
    """Make every prompt + response fit `max_length`: keep the prompt's end (at least half the budget when
    responses are long), then cut responses at the end. Returns the pieces and (prompt cut?, responses cut)."""
    longest = max(len(r) for r in responses)
    if len(prompt) + longest <= max_length:
        return prompt, responses, (False, 0)
    keep = min(len(prompt), max(max_length - longest, max_length // 2))
    kept_prompt = prompt[len(prompt) - keep :]
    room = max_length - len(kept_prompt)
    cut_responses = sum(1 for r in responses if len(r) > room)
    return kept_prompt, [r[:room] for r in responses], (keep < len(prompt), cut_responses)
