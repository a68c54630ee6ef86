"""Small pure helpers shared by the backends: rendering prompts to token ids, cutting them, stops, seeds."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any

from rrhf_cli.errors import UsageError
from rrhf_cli.schema import Record
from stages.sample.backends import Prompt


def prompt_of(record: Record) -> Prompt:
    """The prompt as backends take it: a string, or messages as plain dicts."""
    prompt = record.prompt
    return prompt if isinstance(prompt, str) else [m.model_dump() for m in prompt]


def render_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of a prompt: a string verbatim, messages through the tokenizer's chat template."""
    if isinstance(prompt, str):
        ids = list(tokenizer(prompt)["input_ids"])
    else:
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError("the model's tokenizer has no chat template, which message prompts need")
        rendered = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        # transformers 5 returns a BatchEncoding here, 4.x a plain list.
        ids = list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)
    if not ids:
        # Nothing to condition on: start from the model's begin-of-text token like an empty chat would.
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        ids = [start]
    return ids


def cut_left(ids: list[int], limit: int | None) -> list[int]:
    """Keep the last `limit` tokens: the end of a prompt is what the response continues."""
    return ids if limit is None or len(ids) <= limit else ids[-limit:]


def trim_at_stop(text: str, stops: Sequence[str]) -> str:
    """The text before the earliest stop string, as OpenAI-compatible servers return it."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def decode_response(tokenizer: Any, tokens: Sequence[int], eos: Collection[int], stops: Sequence[str]) -> str:
    """Response text from generated ids: up to the first end-of-response token, special tokens dropped, cut
    at a stop string."""
    end = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
    return trim_at_stop(tokenizer.decode(list(tokens[:end]), skip_special_tokens=True), stops)


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from the run's seed and names, stable across processes (unlike `hash`)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def chat_messages(prompt: Prompt) -> list[dict[str, Any]]:
    """The messages an API chat endpoint takes: a string prompt becomes one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]
