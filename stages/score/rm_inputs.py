"""Reward-model inputs as token ids: one prompt and its k responses in the chosen format, cut to fit.

Both reward-model engines (transformers and vLLM) build their inputs here, so they score the same tokens.
"""

from __future__ import annotations

from typing import Any

from rrhf_cli.errors import UsageError
from rrhf_cli.schema import Record
from stages.lm.prompts import as_messages, as_text
from stages.lm.queries import Query, fit_left
from stages.score.config import RmFormat


def check_one_output(num_labels: int, model: str) -> None:
    """A reward model gives one value per sequence; anything else is a usage error."""
    if num_labels != 1:
        raise UsageError(f"--model {model}: a reward model has one output, this one has {num_labels}")


def reward_query(tokenizer: Any, record: Record, rm_format: RmFormat, max_length: int) -> Query:
    """The record's prompt and responses as ids. chat and concat ids are complete sequences (prompt + response);
    pair ids leave out the special tokens, which the tokenizer's pair encoding adds at forward time."""
    tok, texts = tokenizer, [r.text for r in record.responses]
    if rm_format == "chat":
        messages = as_messages(record.prompt)
        prefix = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        fulls = [
            tok.apply_chat_template([*messages, {"role": "assistant", "content": t}], tokenize=False) for t in texts
        ]
        if all(full.startswith(prefix) for full in fulls):
            prompt = tok(prefix, add_special_tokens=False)["input_ids"]
            responses = [tok(full[len(prefix) :], add_special_tokens=False)["input_ids"] for full in fulls]
        else:  # a template that rewrites earlier turns: no shared prefix to pack
            prompt, responses = [], [tok(full, add_special_tokens=False)["input_ids"] for full in fulls]
    elif rm_format == "concat":
        prompt = tok(as_text(record.prompt), add_special_tokens=True)["input_ids"]
        responses = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    else:
        prompt = tok(as_text(record.prompt), add_special_tokens=False)["input_ids"]
        responses = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        max_length -= tok.num_special_tokens_to_add(pair=True)
    prompt, responses = fit_left(prompt, responses, max_length)
    return Query(prompt=prompt, responses=responses)
