"""The reward-model scorer: a transformers sequence-classification model with one output, or a causal LM
checkpoint with a value head (TRL, OpenRLHF; see value_head.py).

Decoder reward models (Llama, Qwen, Mistral, ...) are read at each response's last token, and may score
the k responses of a prompt as one packed sequence with the prompt encoded once (the train stage's
packing). Other models (DeBERTa cross-encoders) run their own forward and pooling, unpacked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stages.contract.errors import Location, UsageError
from stages.contract.schema import Record
from stages.lm.batched import on_device, score_queries
from stages.lm.loading import fitting_length, load_pretrained, pad_id, pick_device, pick_dtype
from stages.lm.logprobs import model_inputs
from stages.lm.packing import packing_verdict
from stages.runtime.runs import Failure
from stages.score.backends import Scorer
from stages.score.config import ScoreConfig
from stages.score.rm_inputs import PairTemplate, check_one_output, reward_query
from stages.score.value_head import head_prefix_of, load_value_head, model_folder


def reward_model_scorer(config: ScoreConfig) -> Scorer:
    """The reward-model scorer on the engine `config.engine` names."""
    if config.engine == "vllm":
        from stages.score.reward_model_vllm import VllmRewardScorer

        return VllmRewardScorer(config)
    return RewardModelScorer(config)


class RewardModelScorer:
    """Scores with `AutoModelForSequenceClassification` (num_labels = 1), or a base model and its value head,
    in the chosen input format."""

    def __init__(self, config: ScoreConfig) -> None:
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        self.config = config
        model = config.model or ""
        self.device = pick_device()
        dtype = pick_dtype(self.device, config.bf16)
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model)
        prefix = _value_head_prefix(config)
        if prefix is not None:
            self.model = load_pretrained(AutoModel.from_pretrained, model, dtype=dtype)
            self.head = load_value_head(model_folder(model), prefix).to(self.device, dtype)
        else:
            self.model = load_pretrained(AutoModelForSequenceClassification.from_pretrained, model, dtype=dtype)
            check_one_output(self.model.config.num_labels, model)
            self.head = getattr(self.model, "score", None)
        self.model.to(self.device).eval()
        self.max_length = fitting_length(config.max_length, self.model.config)
        # Decoder reward models: base model + a Linear head read at the last token.
        self.decoder = isinstance(self.head, torch.nn.Linear) and config.rm_format != "pair"
        self.pad_id = pad_id(self.tokenizer)
        self.packed: bool | None = None if self.decoder else False
        self.pair_template = PairTemplate.of(self.tokenizer) if config.rm_format == "pair" else None

    def close(self) -> None:
        """Drop the model, so its memory is free for a next stage in this process."""
        self.model = self.head = None

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | Failure]]:
        fmt = self.config.rm_format
        queries = [reward_query(self.tokenizer, record, fmt, self.max_length) for record in records]
        if self.packed is None:
            probe = on_device(self._decoder_forward, self.device)
            self.packed = packing_verdict(queries, self.config.pack_prompt, "score", probe, self.model)
        forward = self._decoder_forward if self.decoder else self._model_forward
        return score_queries(  # type: ignore[return-value]
            queries, forward, self.config.batch_size, bool(self.packed), self.config.sort_by_length, self.pad_id,
            self.device,
        )

    def _decoder_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return decoder_rewards(self.model, self.head, batch)

    def _model_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # Models with their own pooling (cross-encoders) get their own encoding of each (prompt, response): the
        # tokenizer's text-pair layout around the ids, or the concatenated ids. Either way the ids are used as
        # they are, never decoded and tokenised again, so the model reads the tokens the query was cut to.
        ids = batch["input_ids"].tolist()
        ends = (batch["end_cols"] + 1).tolist()
        splits = [(row[: end - n], row[end - n : end]) for row, end, n in zip(ids, ends, batch["lengths"].tolist(),
                                                                              strict=True)]
        if self.pair_template is not None:
            features = [self.pair_template.encode(p, r) for p, r in splits]
        else:
            features = [{"input_ids": p + r} for p, r in splits]
        encoded = self.tokenizer.pad(features, return_tensors="pt")
        return self.model(**encoded.to(self.device)).logits[:, 0]


def _value_head_prefix(config: ScoreConfig) -> str | None:
    """The value head's key prefix where `--rm-head` asks for one (or, under auto, the checkpoint has one)."""
    if config.rm_head == "classifier":
        return None
    if config.rm_head == "auto" and _is_classifier(config.model or ""):
        return None  # no need to look through the weights
    prefix = head_prefix_of(model_folder(config.model or ""))
    if prefix is None and config.rm_head == "value-head":
        raise UsageError(
            f"--model {config.model}: --rm-head value-head, but the checkpoint has no value head "
            "(v_head.summary.weight or value_head.weight)"
        )
    return prefix


def _is_classifier(model: str) -> bool:
    from transformers import AutoConfig

    architectures = load_pretrained(AutoConfig.from_pretrained, model).architectures or []
    return any(name.endswith("ForSequenceClassification") for name in architectures)


def decoder_rewards(model: torch.nn.Module, head: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(R,) a decoder reward model's output at each response's last token, packed or not."""
    hidden = model.base_model(**model_inputs(model, batch), use_cache=False).last_hidden_state
    return head(hidden[batch["end_rows"], batch["end_cols"]]).squeeze(-1)
