"""The logprob scorer on vLLM (`--scorer logprob --engine vllm`): each response's log-prob from vLLM's prompt
logprobs, on the token ids the transformers engine scores (`policy_query`: the prompt as sample fed it, the
response and its EOS where it ended, cut to `--max-length` alike), so a score means the same on either engine.

vLLM reads no prefix cache for a request that asks for prompt logprobs (their count would fall short), so each
response is encoded whole with its prompt and `--pack-prompt` has no effect here.
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
from stages.lm.queries import policy_query
from stages.runtime.runs import Failure
from stages.score.backends import per_record
from stages.score.config import ScoreConfig


def response_logprob(prompt_logprobs: Sequence[dict[int, Any] | None], ids: Sequence[int], start: int) -> float:
    """The summed log-prob of `ids[start:]`, read from vLLM's prompt logprobs of the whole sequence `ids`: entry p
    maps token ids to objects with `.logprob`, the log-prob of token p given the tokens before it.

    >>> from types import SimpleNamespace as L
    >>> response_logprob([None, {5: L(logprob=-1.0)}, {7: L(logprob=-0.5), 2: L(logprob=-3.0)}], [1, 5, 7], 1)
    -1.5
    """
    if start < 1:
        raise ValueError("a response needs a prompt token before it to be scored")
    return sum(prompt_logprobs[p][ids[p]].logprob for p in range(start, len(ids)))  # type: ignore[index]


class VllmLogprobScorer:
    """p = sum of response-token log-probs (EOS included) / |y|^alpha, from an in-process `vllm.LLM`."""

    def __init__(self, config: ScoreConfig) -> None:
        from transformers import AutoConfig

        model = config.model or ""
        # The length is fixed from the model's config before vLLM starts, so both engines cut alike.
        self.max_length = fitting_length(config.max_length, load_pretrained(AutoConfig.from_pretrained, model))
        self.alpha = config.length_penalty
        vllm = import_vllm("--engine vllm")
        # greedy: the one generated token is thrown away, and no request needs a generator
        self.params = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        engine = {
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "enforce_eager": config.enforce_eager,
            "max_model_len": self.max_length + 1,  # the scored sequence and the one token vLLM must generate
            # As the transformers engine: bf16 on a GPU, fp32 on the CPU, unless --bf16/--no-bf16 says.
            "dtype": str(pick_dtype(pick_device(), config.bf16)).removeprefix("torch."),
            "seed": config.seed,
        }
        with ExitStack() as resources:  # the engine is shut down if what follows its start fails
            self.engine = resources.enter_context(vllm_engine.open_engine(vllm, model, **engine))
            self.tokenizer = self.engine.llm.get_tokenizer()
            self._resources = resources.pop_all()

    def close(self) -> None:
        """Shut the engine down."""
        self._resources.close()

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | Failure]]:
        """All responses of the batch in one engine call; a response vLLM refuses fails alone."""
        queries = [policy_query(self.tokenizer, r.prompt, r.responses, self.max_length)[0]
                   for r in records]
        sequences = [(q.prompt + response, len(q.prompt)) for q in queries for response in q.responses]
        outputs = self.engine.run_each(self._call(sequences), len(sequences))
        flat = [o if isinstance(o, Failure) else _value(o, ids, n, self.alpha)
                for o, (ids, n) in zip(outputs, sequences, strict=True)]
        return per_record(flat, (len(q.responses) for q in queries))

    def _call(self, sequences: list[tuple[list[int], int]]) -> Callable[[list[int]], list[Any]]:
        def call(items: list[int]) -> list[Any]:
            prompts = [{"prompt_token_ids": sequences[j][0]} for j in items]
            return self.engine.llm.generate(prompts, self.params, use_tqdm=False)

        return call


def _value(output: Any, ids: list[int], prompt_length: int, alpha: float) -> float | Failure:
    error = getattr(output, "error", None)
    if error:  # a request vLLM failed comes back with `error` set: a failure, never a score
        return Failure(error=f"vLLM failed the request: {' '.join(str(error).split())[:300]}")
    return response_logprob(output.prompt_logprobs, ids, prompt_length) / (len(ids) - prompt_length) ** alpha
