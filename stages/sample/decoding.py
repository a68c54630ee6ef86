"""From generated text or token ids to a response: end tokens and stop strings. Pure."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Completion:
    """One generated response: its text and why generation stopped ("length": the token limit cut it; a server
    may give its own reason, such as "content_filter")."""

    text: str
    finish_reason: str = "stop"


def trim_at_stop(text: str, stops: Sequence[str]) -> str:
    """The text before the earliest stop string, as OpenAI-compatible servers return it."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def completion(text: str, stops: Sequence[str], reason: str | None) -> Completion:
    """`text` cut at a stop string, with the engine's finish `reason` ("length" where the token limit stopped
    it): "stop" where a stop string ended the text first or the engine gave none, every engine alike."""
    trimmed = trim_at_stop(text, stops)
    return Completion(trimmed, reason if reason and trimmed == text else "stop")


def decode_response(tokenizer: Any, tokens: Sequence[int], eos: Collection[int], stops: Sequence[str],
                    limit: int) -> Completion:
    """The response in generated ids: up to the first end-of-response token, special tokens dropped, cut at a
    stop string; "length" where neither ended it and `limit` tokens were generated."""
    end = next((i for i, t in enumerate(tokens) if t in eos), None)
    text = tokenizer.decode(list(tokens[:end]), skip_special_tokens=True)
    return completion(text, stops, "length" if end is None and len(tokens) >= limit else "stop")


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a response: the generation config's (often several for chat models) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
