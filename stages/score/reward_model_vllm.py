"""The reward-model scorer on vLLM's pooling runner (`--engine vllm`), written against the offline API of
vLLM 0.11.1 and later: `LLM(model, runner="pooling")`, `LLM.classify`, and `LLM.score` for text pairs.

vLLM applies an activation to a classifier's output unless told not to (a sigmoid for one label), so the
scorer asks for the raw value with `PoolingParams(use_activation=False)`: that is the logit the
transformers engine returns, and a score means the same on either engine. chat and concat inputs are the
transformers engine's token ids; the k responses of a prompt share its encoding through prefix caching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from stages.contract.errors import Location
from stages.contract.schema import Record
from stages.engines import vllm_engine
from stages.engines.vllm_engine import import_vllm
from stages.lm.loading import fitting_length, load_pretrained, pick_device, pick_dtype
from stages.runtime.runs import Failure
from stages.score.backends import per_record
from stages.score.config import ScoreConfig
from stages.score.rm_inputs import check_one_output, reward_query


class VllmRewardScorer:
    """Scores with a one-label sequence-classification model in an in-process `vllm.LLM`."""

    def __init__(self, config: ScoreConfig) -> None:
        from transformers import AutoConfig, AutoTokenizer

        model = config.model or ""
        # Checked before vLLM is even imported, from the model's config alone.
        model_config = load_pretrained(AutoConfig.from_pretrained, model)
        check_one_output(model_config.num_labels, model)
        vllm = import_vllm("--engine vllm")
        self.config = config
        self.max_length = fitting_length(config.max_length, model_config)
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model)
        engine = {
            "runner": "pooling",
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "enforce_eager": config.enforce_eager,
            "max_model_len": self.max_length,  # no scored sequence is longer
            # As the transformers engine: bf16 on a GPU, fp32 on the CPU, unless --bf16/--no-bf16 says.
            "dtype": str(pick_dtype(pick_device(), config.bf16)).removeprefix("torch."),
            "seed": config.seed,
        }
        if config.pack_prompt != "auto":  # auto: vLLM's own default for the model
            engine["enable_prefix_caching"] = config.pack_prompt == "on"
        self.raw = vllm.PoolingParams(use_activation=False)
        self._resources = ExitStack()
        self.engine = self._resources.enter_context(vllm_engine.open_engine(vllm, model, **engine))

    def close(self) -> None:
        """Shut the engine down."""
        self._resources.close()

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | Failure]]:
        """All responses of the batch in one engine call; vLLM schedules them itself. A response vLLM refuses
        fails alone (see `VllmEngine.run_each`)."""
        fmt = self.config.rm_format
        queries = [reward_query(self.tokenizer, record, fmt, self.max_length) for record in records]
        pairs = [(q.prompt, r) for q in queries for r in q.responses]
        call = self._pair_outputs(pairs) if fmt == "pair" else self._classify_outputs(pairs)
        flat = [o if isinstance(o, Failure) else _value(o, fmt) for o in self.engine.run_each(call, len(pairs))]
        return per_record(flat, (len(q.responses) for q in queries))

    def _classify_outputs(self, pairs: list[tuple[list[int], list[int]]]) -> Callable[[list[int]], list[Any]]:
        def call(items: list[int]) -> list[Any]:
            prompts = [{"prompt_token_ids": pairs[j][0] + pairs[j][1]} for j in items]
            return self.engine.llm.classify(prompts, pooling_params=self.raw, use_tqdm=False)

        return call

    def _pair_outputs(self, pairs: list[tuple[list[int], list[int]]]) -> Callable[[list[int]], list[Any]]:
        # vLLM's cross-encoder scoring encodes each pair itself, special tokens and token types included.
        decode = self.tokenizer.decode
        firsts, seconds = [decode(p) for p, _ in pairs], [decode(r) for _, r in pairs]

        def call(items: list[int]) -> list[Any]:
            return self.engine.llm.score([firsts[j] for j in items], [seconds[j] for j in items],
                                         pooling_params=self.raw, use_tqdm=False)

        return call


def _value(output: Any, fmt: str) -> float | Failure:
    # A request vLLM failed comes back with `error` set and an empty or zero output: a failure, never a score.
    error = getattr(output, "error", None)
    if error:
        return Failure(error=f"vLLM failed the request: {' '.join(str(error).split())[:300]}")
    return float(output.outputs.score if fmt == "pair" else output.outputs.probs[0])
