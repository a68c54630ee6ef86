"""The reward-model scorer: a transformers sequence-classification model with one output.

Decoder reward models (Llama, Qwen, Mistral, ...) are read at each response's last token, and may score
the k responses of a prompt as one packed sequence with the prompt encoded once (the train stage's
packing). Other models (DeBERTa cross-encoders) run their own forward and pooling, unpacked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rrhf_cli.console import quiet_libraries
from rrhf_cli.errors import Location, UsageError
from rrhf_cli.schema import Record
from stages.score.apply import ScoreFailure
from stages.score.batching import load_device_dtype, score_queries
from stages.score.config import ScoreConfig
from stages.train.logprobs import model_inputs
from stages.train.packing import Query, packing_verdict


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


class RewardModelScorer:
    """Scores with `AutoModelForSequenceClassification` (num_labels = 1) in the chosen input format."""

    def __init__(self, config: ScoreConfig) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if config.engine == "vllm":
            raise UsageError("--engine vllm is not available in this release; use --engine transformers")
        quiet_libraries()
        self.config = config
        self.device, dtype = load_device_dtype(config.bf16)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        self.model = AutoModelForSequenceClassification.from_pretrained(config.model, dtype=dtype)
        self.model.to(self.device).eval()
        if self.model.config.num_labels != 1:
            raise UsageError(f"--model {config.model}: a reward model has one output, this one has "
                             f"{self.model.config.num_labels}")
        head = getattr(self.model, "score", None)
        # Decoder reward models: base model + a Linear head read at the last token.
        self.decoder = isinstance(head, torch.nn.Linear) and config.rm_format != "pair"
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        self.packed: bool | None = None if self.decoder else False

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | ScoreFailure]]:
        queries = [self._query(record) for record in records]
        if self.packed is None:
            attn = getattr(self.model.config, "_attn_implementation", None)
            self.packed = packing_verdict(queries, self.config.pack_prompt, "score", self._probe, attn)
        forward = self._decoder_forward if self.decoder else self._model_forward
        return score_queries(  # type: ignore[return-value]
            queries, forward, self.config.batch_size, bool(self.packed), self.config.sort_by_length, self.pad_id,
            self.device,
        )

    def _query(self, record: Record) -> Query:
        fmt, tok = self.config.rm_format, self.tokenizer
        texts = [r.text for r in record.responses]
        if fmt == "chat":
            messages = (
                [{"role": "user", "content": record.prompt}]
                if isinstance(record.prompt, str)
                else [m.model_dump() for m in record.prompt]
            )
            prefix = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            fulls = [
                tok.apply_chat_template([*messages, {"role": "assistant", "content": t}], tokenize=False)
                for t in texts
            ]
            if all(full.startswith(prefix) for full in fulls):
                prompt = tok(prefix, add_special_tokens=False)["input_ids"]
                responses = [tok(full[len(prefix) :], add_special_tokens=False)["input_ids"] for full in fulls]
            else:  # a template that rewrites earlier turns: no shared prefix to pack
                prompt, responses = [], [tok(full, add_special_tokens=False)["input_ids"] for full in fulls]
        elif fmt == "concat":
            prompt = tok(plain_prompt(record.prompt), add_special_tokens=True)["input_ids"]
            responses = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        else:  # pair: special tokens come from the tokenizer's pair encoding, at forward time
            prompt = tok(plain_prompt(record.prompt), add_special_tokens=False)["input_ids"]
            responses = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
            budget = self.config.max_length - tok.num_special_tokens_to_add(pair=True)
            prompt, responses = fit_left(prompt, responses, budget)
            return Query(prompt=prompt, responses=responses, rewards=[0.0] * len(responses))
        prompt, responses = fit_left(prompt, responses, self.config.max_length)
        return Query(prompt=prompt, responses=responses, rewards=[0.0] * len(responses))

    def _decoder_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model.base_model(**model_inputs(self.model, batch), use_cache=False).last_hidden_state
        return self.model.score(hidden[batch["end_rows"], batch["end_cols"]]).squeeze(-1)  # (R,)

    def _model_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # Models with their own pooling (cross-encoders) get their own encoding of each (prompt, response):
        # a text pair with the tokenizer's special tokens, or the concatenated ids.
        ids, tok = batch["input_ids"].tolist(), self.tokenizer
        ends = (batch["end_cols"] + 1).tolist()
        splits = [(row[: end - n], row[end - n : end]) for row, end, n in zip(ids, ends, batch["lengths"].tolist(),
                                                                              strict=True)]
        if self.config.rm_format == "pair":
            encoded = tok([tok.decode(p) for p, _ in splits], [tok.decode(r) for _, r in splits],
                          padding=True, return_tensors="pt")
        else:
            encoded = tok.pad({"input_ids": [p + r for p, r in splits]}, return_tensors="pt")
        return self.model(**encoded.to(self.device)).logits[:, 0]

    def _probe(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._decoder_forward({k: v.to(self.device) for k, v in batch.items()})
