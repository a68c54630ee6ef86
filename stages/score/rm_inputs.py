"""Reward-model inputs as token ids: one prompt and its k responses in the chosen format, cut to fit.

Both reward-model engines (transformers and vLLM) build their inputs here, so they score the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stages.contract.errors import UsageError
from stages.contract.schema import Record
from stages.lm.prompts import as_messages, as_text
from stages.lm.queries import Query, fit_left
from stages.score.config import RmFormat


def check_one_output(num_labels: int, model: str) -> None:
    """A reward model gives one value per sequence; anything else is a usage error."""
    if num_labels != 1:
        raise UsageError(f"--model {model}: a reward model has one output, this one has {num_labels}")


def reward_query(tokenizer: Any, record: Record, rm_format: RmFormat, max_length: int) -> Query:
    """The record's prompt and responses as ids. chat and concat ids are complete sequences (prompt + response);
    pair ids leave out the special tokens, which `PairTemplate` puts around them at forward time."""
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


_PROMPT, _RESPONSE = "prompt", "response"  # where a pair's ids go in a PairTemplate


@dataclass(frozen=True)
class PairTemplate:
    """A tokenizer's text-pair encoding as a template around ids: its special tokens and token types before the
    prompt, between prompt and response and after the response, so a pair is encoded from ids, never re-tokenised."""

    pieces: tuple[tuple[str | int, int], ...]  # (_PROMPT, _RESPONSE or a special token's id, token type)
    token_types: bool  # whether the tokenizer's encoding has token_type_ids (its model takes them)

    @classmethod
    def of(cls, tokenizer: Any) -> PairTemplate:
        """Read the template off the tokenizer's own encoding of a probe pair. Fast tokenizers in transformers 5
        have no `prepare_for_model`; this works for them and for Python tokenizers alike."""
        probe = ("a", "b")
        lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in probe]
        pair = tokenizer(*probe, return_special_tokens_mask=True)
        types = pair.get("token_type_ids") or [0] * len(pair["input_ids"])
        pieces: list[tuple[str | int, int]] = []
        content = 0  # tokens of the probe texts met so far
        for token, special, type_id in zip(pair["input_ids"], pair["special_tokens_mask"], types, strict=True):
            if special:
                pieces.append((token, type_id))
                continue
            part = _PROMPT if content < lengths[0] else _RESPONSE
            if not pieces or pieces[-1][0] != part:
                pieces.append((part, type_id))
            content += 1
        if content != sum(lengths) or min(lengths) == 0:
            raise UsageError(
                f"{tokenizer.name_or_path}: its text-pair encoding is not the two texts' own tokens between special "
                "tokens, so --rm-format pair cannot encode from ids; try --rm-format concat"
            )
        return cls(pieces=tuple(pieces), token_types="token_type_ids" in pair)

    def encode(self, prompt: list[int], response: list[int]) -> dict[str, list[int]]:
        """The pair's model input, as the tokenizer encodes the pair's texts; pad a batch with `tokenizer.pad`."""
        ids: list[int] = []
        types: list[int] = []
        for piece, type_id in self.pieces:
            part = prompt if piece == _PROMPT else response if piece == _RESPONSE else [int(piece)]
            ids += part
            types += [type_id] * len(part)
        return {"input_ids": ids, "token_type_ids": types} if self.token_types else {"input_ids": ids}
