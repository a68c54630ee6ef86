"""From generated text or token ids to a response: end tokens and stop strings. Pure."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any


def trim_at_stop(text: str, stops: Sequence[str]) -> str:
    """The text before the earliest stop string, as OpenAI-compatible servers return it."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def decode_response(tokenizer: Any, tokens: Sequence[int], eos: Collection[int], stops: Sequence[str]) -> str:
    """Response text from generated ids: up to the first end-of-response token, special tokens dropped, cut
    at a stop string."""
    end = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
    return trim_at_stop(tokenizer.decode(list(tokens[:end]), skip_special_tokens=True), stops)


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a response: the generation config's (often several for chat models) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
