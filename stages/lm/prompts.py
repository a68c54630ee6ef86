"""A record's prompt in the form each consumer takes: token ids, chat messages, plain data or text. Pure."""

from __future__ import annotations

from typing import Any

from stages.core.errors import UsageError
from stages.core.schema import Prompt


def as_plain(prompt: Prompt) -> str | list[dict[str, Any]]:
    """The prompt as plain data: a string, or messages as dicts with all their fields (vLLM chat, user code)."""
    return prompt if isinstance(prompt, str) else [m.model_dump() for m in prompt]


def as_messages(prompt: Prompt, all_fields: bool = True) -> list[dict[str, Any]]:
    """Chat messages: a string prompt becomes one user turn. `all_fields=False` keeps only role and content,
    as strict API servers want them."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if all_fields:
        return [m.model_dump() for m in prompt]
    return [{"role": m.role, "content": m.content} for m in prompt]


def as_text(prompt: Prompt, capitalize: bool = False, separator: str = "\n") -> str:
    """The prompt as text: a string as it is, messages as `role: content` turns (`Role:` with `capitalize`)."""
    if isinstance(prompt, str):
        return prompt
    return separator.join(f"{m.role.capitalize() if capitalize else m.role}: {m.content}" for m in prompt)


def render_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of a prompt: a string verbatim, messages through the tokenizer's chat template."""
    if isinstance(prompt, str):
        ids = list(tokenizer(prompt)["input_ids"])
    else:
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError("the model's tokenizer has no chat template, which message prompts need")
        rendered = tokenizer.apply_chat_template(as_plain(prompt), add_generation_prompt=True, tokenize=True)
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
