"""The logprob scorer: the length-normalised log-probability of each response under a causal LM.

An RRHF-trained model is also a reward model (the paper's point): `rrhf score --backend logprob --model out/`.
The tokenisation, packing and lean log-prob head are the train stage's own.
"""

from __future__ import annotations

from collections.abc import Sequence

from rrhf_cli.console import quiet_libraries
from rrhf_cli.errors import Location
from rrhf_cli.schema import Record
from stages.score.apply import ScoreFailure
from stages.score.batching import fitting_length, load_device_dtype, on_device, score_queries
from stages.score.config import ScoreConfig
from stages.train.data import build_queries
from stages.train.head import lean_head_or_none
from stages.train.logprobs import response_logprobs
from stages.train.packing import packing_verdict


class LogprobScorer:
    """p = sum of response-token log-probs (EOS included) / |y|^alpha, as in the RRHF loss."""

    def __init__(self, config: ScoreConfig) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_libraries()
        self.config = config
        self.device, dtype = load_device_dtype(config.bf16)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        self.model = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype).to(self.device).eval()
        self.head = lean_head_or_none(self.model, "score")
        self.packed: bool | None = None
        self.max_length = fitting_length(config.max_length, self.model.config)

    def _forward(self, batch: dict) -> object:
        return response_logprobs(self.model, batch, self.head)

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | ScoreFailure]]:
        sums, lengths = self.logprob_sums(records, locations)
        alpha = self.config.length_penalty
        return [[s / n**alpha for s, n in zip(ss, ns, strict=True)] for ss, ns in zip(sums, lengths, strict=True)]

    def logprob_sums(
        self, records: Sequence[Record], locations: Sequence[Location]
    ) -> tuple[list[list[float]], list[list[int]]]:
        """Per response: the summed log-prob of its tokens and EOS, and how many tokens that is."""
        queries, _ = build_queries(records, locations, self.tokenizer, self.max_length, rewards=False)
        if self.packed is None:
            self.packed = packing_verdict(
                queries, self.config.pack_prompt, "score", on_device(self._forward, self.device), self.model.config
            )
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        sums = score_queries(
            queries, self._forward, self.config.batch_size, self.packed, self.config.sort_by_length, pad, self.device
        )
        return sums, [[len(r) for r in q.responses] for q in queries]
