"""The reward-model scorer on vLLM's pooling runner (`--engine vllm`), written against the offline API of
vLLM 0.11.1 and later: `LLM(model, runner="pooling")`, `LLM.classify`, and `LLM.score` for text pairs.

vLLM applies an activation to a classifier's output unless told not to (a sigmoid for one label), so the
scorer asks for the raw value with `PoolingParams(use_activation=False)`: that is the logit the
transformers engine returns, and a score means the same on either engine. chat and concat inputs are the
transformers engine's token ids; the k responses of a prompt share its encoding through prefix caching.
"""

from __future__ import annotations

from collections.abc import Sequence

from rrhf_cli.errors import Location, RrhfError, first_line
from rrhf_cli.schema import Record
from stages.engines.vllm_engine import import_vllm, start_llm
from stages.lm.loading import fitting_length, load_pretrained
from stages.lm.queries import Query
from stages.score.apply import ScoreFailure
from stages.score.config import ScoreConfig
from stages.score.rm_inputs import check_one_output, reward_query


class VllmRewardScorer:
    """Scores with a one-label sequence-classification model in an in-process `vllm.LLM`."""

    def __init__(self, config: ScoreConfig) -> None:
        from transformers import AutoConfig, AutoTokenizer

        vllm = import_vllm("--engine vllm")
        model = config.model or ""
        # Checked before vLLM reserves the GPU, from the model's config alone.
        model_config = load_pretrained(AutoConfig.from_pretrained, model)
        check_one_output(model_config.num_labels, model)
        self.config = config
        self.max_length = fitting_length(config.max_length, model_config)
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model)
        engine = {
            "runner": "pooling",
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "max_model_len": self.max_length,  # no scored sequence is longer
            "dtype": "float32" if config.bf16 is False else "bfloat16",
            "seed": config.seed,
        }
        if config.pack_prompt != "auto":  # auto: vLLM's own default for the model
            engine["enable_prefix_caching"] = config.pack_prompt == "on"
        self.llm = start_llm(vllm, model, **engine)
        self.raw = vllm.PoolingParams(use_activation=False)

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | ScoreFailure]]:
        """All responses of the batch in one engine call; vLLM schedules them itself."""
        fmt = self.config.rm_format
        queries = [reward_query(self.tokenizer, record, fmt, self.max_length) for record in records]
        try:
            flat = self._pair_scores(queries) if fmt == "pair" else self._classify_scores(queries)
        except ValueError as err:  # e.g. a model vLLM loads for another pooling task than classification
            raise RrhfError(f"vLLM could not score with {self.config.model}: {first_line(err)}") from None
        values: list[list[float | ScoreFailure]] = []
        start = 0
        for q in queries:
            values.append(list(flat[start : start + len(q.responses)]))
            start += len(q.responses)
        return values

    def _classify_scores(self, queries: list[Query]) -> list[float]:
        prompts = [{"prompt_token_ids": q.prompt + r} for q in queries for r in q.responses]
        outputs = self.llm.classify(prompts, pooling_params=self.raw, use_tqdm=False)
        return [float(o.outputs.probs[0]) for o in outputs]

    def _pair_scores(self, queries: list[Query]) -> list[float]:
        # vLLM's cross-encoder scoring encodes each pair itself, special tokens and token types included.
        decode = self.tokenizer.decode
        firsts = [decode(q.prompt) for q in queries for _ in q.responses]
        seconds = [decode(r) for q in queries for r in q.responses]
        outputs = self.llm.score(firsts, seconds, pooling_params=self.raw, use_tqdm=False)
        return [float(o.outputs.score) for o in outputs]
