"""Reward-model inputs as token ids: one prompt and its k responses in the chosen format, cut to fit.

Both reward-model engines (transformers and vLLM) build their inputs here, so they score the same tokens.
"""

from __future__ import annotations

from typing import Any

from rrhf_cli.schema import Record
from stages.score.config import RmFormat
from stages.train.packing import Query


def plain_prompt(prompt: Any) -> str:
    """A prompt as text for pair and concat formats: strings as they are, messages as `role: content` lines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.role}: {m.content}" for m in prompt)


def fit_left(prompt: list[int], responses: list[list[int]], max_length: int) -> tuple[list[int], list[list[int]]]:
    """Cut the shared prompt on the left so the longest response fits; a response longer than `max_length`
    keeps its end, which is where a reward model reads."""
    responses = [r[-max_length:] for r in responses]
    keep = max(0, max_length - max(len(r) for r in responses))
    return prompt[len(prompt) - min(keep, len(prompt)) :], responses


def reward_query(tokenizer: Any, record: Record, rm_format: RmFormat, max_length: int) -> Query:
    """The record's prompt and responses as ids. chat and concat ids are complete sequences (prompt + response);
    pair ids leave out the special tokens, which the tokenizer's pair encoding adds at forward time."""
    tok, texts = tokenizer, [r.text for r in record.responses]
    if rm_format == "chat":
        messages = (
            [{"role": "user", "content": record.prompt}]
            if isinstance(record.prompt, str)
            else [m.model_dump() for m in record.prompt]
        )
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
        prompt = tok(plain_prompt(record.prompt), add_special_tokens=True)["input_ids"]
        responses = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    else:
        prompt = tok(plain_prompt(record.prompt), add_special_tokens=False)["input_ids"]
        responses = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        max_length -= tok.num_special_tokens_to_add(pair=True)
    prompt, responses = fit_left(prompt, responses, max_length)
    return Query(prompt=prompt, responses=responses, rewards=[0.0] * len(responses))
