"""The vLLM backend: a thin adapter over the offline `vllm.LLM` API (written against vLLM 0.33).

Sampling sends `SamplingParams(n=k)` per prompt, so with prefix caching on vLLM prefills each prompt once
for its k samples; message prompts go through `LLM.chat`; beam search through `LLM.beam_search`.
"""

from __future__ import annotations

from typing import Any

from rrhf_cli.errors import UsageError
from rrhf_cli.schema import Prompt
from stages.engines.vllm_engine import import_vllm, start_llm
from stages.lm.prompts import as_plain, cut_left, render_ids
from stages.sample.backends import SampleRequest, SampleResult
from stages.sample.config import SampleConfig
from stages.sample.decoding import decode_response, trim_at_stop


class VllmSampler:
    """k responses per prompt from an in-process `vllm.LLM`."""

    def __init__(self, config: SampleConfig) -> None:
        self.vllm = import_vllm("the vllm backend")
        self.config = config
        engine: dict[str, Any] = {
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "enable_prefix_caching": True,
            "seed": config.seed,
        }
        if config.max_model_len is not None:
            engine["max_model_len"] = config.max_model_len
        self.llm = start_llm(self.vllm, config.model, **engine)
        self.tokenizer = self.llm.get_tokenizer()

    def prompt_lengths(self, prompts: list[Prompt]) -> list[int]:
        """Token counts before any cut, from vLLM's own tokenizer."""
        return [len(render_ids(self.tokenizer, p)) for p in prompts]

    def sample(self, requests: list[SampleRequest], batch_seed: int) -> list[SampleResult]:
        """All requests in one engine call (or two: chat and plain prompts); vLLM schedules them itself."""
        if self.config.strategy == "beam":
            return self._beam(requests)
        texts: list[list[str]] = [[] for _ in requests]
        chats, plain = [], []
        limit = self.config.max_prompt_tokens
        for index, request in enumerate(requests):
            # Rendered here only where it may need a cut; an uncut prompt goes in as text or messages. A cut
            # prompt goes in as token ids, so the cut is exactly the one counted in the meta.
            if limit is not None and len(ids := render_ids(self.tokenizer, request.prompt)) > limit:
                plain.append((index, {"prompt_token_ids": cut_left(ids, limit)}))
            elif isinstance(request.prompt, list):
                chats.append(index)
            else:
                plain.append((index, request.prompt))
        if chats:
            outputs = self.llm.chat(
                [as_plain(requests[i].prompt) for i in chats],
                sampling_params=[self._params(requests[i].seed) for i in chats],
                use_tqdm=False,
            )
            for index, output in zip(chats, outputs, strict=True):
                texts[index] = [trim_at_stop(o.text, self.config.stop) for o in output.outputs]
        if plain:
            params = [self._params(requests[i].seed) for i, _ in plain]
            outputs = self.llm.generate([p for _, p in plain], sampling_params=params, use_tqdm=False)
            for (index, _), output in zip(plain, outputs, strict=True):
                texts[index] = [trim_at_stop(o.text, self.config.stop) for o in output.outputs]
        return [self._result(t) for t in texts]

    def _params(self, seed: int) -> Any:
        c = self.config
        try:
            return self.vllm.SamplingParams(
                # Greedy decoding gives one answer; `_result` copies it k times rather than asking vLLM for n > 1.
                n=c.k if c.temperature > 0 else 1,
                temperature=c.temperature,
                top_p=c.top_p,
                max_tokens=c.max_new_tokens,
                stop=list(c.stop) or None,
                seed=seed,
            )
        except (TypeError, ValueError) as err:
            raise UsageError(f"vLLM refused the sampling settings: {err}") from None

    def _beam(self, requests: list[SampleRequest]) -> list[SampleResult]:
        c = self.config
        ids = [cut_left(render_ids(self.tokenizer, r.prompt), c.max_prompt_tokens) for r in requests]
        params = self.vllm.BeamSearchParams(
            beam_width=c.k, max_tokens=c.max_new_tokens, length_penalty=c.length_penalty
        )
        outputs = self.llm.beam_search([{"prompt_token_ids": p} for p in ids], params, use_tqdm=False)
        results, eos = [], {self.tokenizer.eos_token_id}
        for prompt_ids, output in zip(ids, outputs, strict=True):
            # A beam's tokens start with the prompt's; decode only what was generated.
            new = [seq.tokens[len(prompt_ids) :] for seq in output.sequences[: c.k]]
            results.append(self._result([decode_response(self.tokenizer, t, eos, c.stop) for t in new]))
        return results

    def _result(self, texts: list[str]) -> SampleResult:
        if len(texts) == 1 and self.config.temperature == 0 and self.config.strategy == "sample":
            texts = texts * self.config.k
        if len(texts) != self.config.k:
            return SampleResult(texts=[], error=f"vLLM returned {len(texts)} of {self.config.k} responses")
        return SampleResult(texts=texts)

    def close(self) -> None:
        """Drop the engine."""
        self.llm = None
