"""Tokenised queries: one prompt and its k responses as token ids, cut to fit a length. No torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stages.contract.errors import UsageError
from stages.contract.schema import Prompt, Response
from stages.lm.prompts import render_ids


@dataclass
class Query:
    """Token ids of a prompt and of each response; `rewards` (one per response) where a loss needs them,
    `pairs`, (better, worse) response indices, where the ranking pairs were chosen rather than all, `refs`,
    each response's summed log-prob under a reference model, where the loss reads one, and `sft_targets`, whether
    each response may be the SFT term's target (its source is one `--sft-sources` names), where that is limited."""

    prompt: list[int]
    responses: list[list[int]]
    rewards: list[float] | None = None
    pairs: list[tuple[int, int]] | None = None
    refs: list[float] | None = None
    sft_targets: list[bool] | None = None

    def ranking_pairs(self) -> list[tuple[int, int]]:
        """The (better, worse) pairs the ranking loss sees: the chosen ones, or every pair whose rewards differ."""
        if self.pairs is not None:
            return list(self.pairs)
        rewards = self.rewards or []
        return [(j, i) for i, low in enumerate(rewards) for j, high in enumerate(rewards) if low < high]


def policy_query(tokenizer: Any, prompt: Prompt, responses: Sequence[Response],
                 max_length: int) -> tuple[Query, bool, int]:
    """A prompt and responses as a policy reads them: the prompt exactly as the sample stage fed it, each
    response as `response_ids` gives it. Returns the query, whether the prompt was cut and how many responses were."""
    ids = response_ids(tokenizer, [r.text for r in responses], [r.ended for r in responses])
    prompt_ids, ids, (prompt_cut, responses_cut) = fit(render_ids(tokenizer, prompt), ids, max_length)
    return Query(prompt=prompt_ids, responses=ids), prompt_cut, responses_cut


def response_ids(tokenizer: Any, texts: Sequence[str], ended: Sequence[bool]) -> list[list[int]]:
    """Each response's token ids, then EOS where it `ended`: a response the sampler's token limit cut has no end
    to read or to learn, so it stops at its last token (an empty one keeps EOS, so it has a token)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UsageError(f"{tokenizer.name_or_path}: the tokenizer has no EOS token, which ends every response")
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    return [[*ids, eos] if done or not ids else list(ids) for ids, done in zip(encoded, ended, strict=True)]


def fit(
    prompt: list[int], responses: list[list[int]], max_length: int
) -> tuple[list[int], list[list[int]], tuple[bool, int]]:
    """Make every prompt + response fit `max_length`: keep the prompt's end (at least half the budget when
    responses are long), then cut responses at the end. Returns the pieces and (prompt cut?, responses cut)."""
    longest = max((len(r) for r in responses), default=0)
    if len(prompt) + longest <= max_length:
        return prompt, responses, (False, 0)
    keep = min(len(prompt), max(max_length - longest, max_length // 2))
    kept_prompt = prompt[len(prompt) - keep :]
    room = max_length - len(kept_prompt)
    cut_responses = sum(1 for r in responses if len(r) > room)
    return kept_prompt, [r[:room] for r in responses], (keep < len(prompt), cut_responses)


def fit_left(prompt: list[int], responses: list[list[int]], max_length: int) -> tuple[list[int], list[list[int]]]:
    """Cut the shared prompt on the left so the longest response fits; a response longer than `max_length`
    keeps its end, which is where a reward model reads."""
    responses = [r[-max_length:] for r in responses]
    keep = max(0, max_length - max(len(r) for r in responses))
    return prompt[len(prompt) - min(keep, len(prompt)) :], responses
