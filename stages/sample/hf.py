"""The transformers backend: batched `generate` with left padding, each prompt prefilled once for its k answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stages.contract.schema import Prompt
from stages.lm.kv_cache import generate_k, left_pad
from stages.lm.loading import load_causal_lm, pad_id, pick_device, pick_dtype
from stages.lm.prompts import render_tail, token_counts
from stages.sample.backends import SampleRequest, SampleResult
from stages.sample.config import SampleConfig
from stages.sample.decoding import Completion, decode_response, eos_ids
from stages.sample.diverse_beam import group_beam_search

if TYPE_CHECKING:
    import torch


class HfSampler:
    """k responses per prompt with transformers, on CUDA in bf16 when available, else on CPU in fp32."""

    def __init__(self, config: SampleConfig) -> None:
        self.config = config
        self.device = pick_device(config.device)
        self.tokenizer, self.model = load_causal_lm(config.model, self.device, pick_dtype(self.device))
        self.pad_id = pad_id(self.tokenizer)
        self.prompt_limit = prompt_limit(config, context_length(self.model.config))
        self.eos = eos_ids(self.model, self.tokenizer)

    def prompt_lengths(self, prompts: list[Prompt]) -> list[int]:
        """Token counts before any cut, used to batch prompts of similar length together; a prompt longer than
        `prompt_limit` counts as one token more (it is not tokenised whole)."""
        return token_counts(self.tokenizer, prompts, self.prompt_limit)

    def sample(self, requests: list[SampleRequest], batch_seed: int) -> list[SampleResult]:
        """k responses for each request, in one padded batch."""
        import torch

        ids = [render_tail(self.tokenizer, r.prompt, self.prompt_limit)[0] for r in requests]
        input_ids, mask = left_pad(ids, self.pad_id, self.device)
        k = self.config.k
        torch.manual_seed(batch_seed)
        if self.config.strategy == "diverse-beam":
            sequences = self._diverse(input_ids, mask)
        else:
            kwargs = self.generate_kwargs()
            copies = kwargs["num_return_sequences"]
            out = generate_k(self.model, input_ids, mask, **kwargs)
            new = out[:, input_ids.shape[1] :].tolist()
            # Greedy decoding gives one answer per prompt; its k copies are what k greedy runs would give.
            sequences = [new[i * copies : (i + 1) * copies] * (k // copies) for i in range(len(requests))]
        return [[self.decode(seq) for seq in per_prompt] for per_prompt in sequences]

    def generate_kwargs(self) -> dict[str, Any]:
        """The `generate` arguments of this run's strategy."""
        c = self.config
        kwargs: dict[str, Any] = {
            "max_new_tokens": c.max_new_tokens,
            "num_return_sequences": c.k,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos),
        }
        if c.stop:
            kwargs |= {"stop_strings": list(c.stop), "tokenizer": self.tokenizer}
        if c.strategy == "beam":
            return kwargs | {"do_sample": False, "num_beams": c.k, "length_penalty": c.length_penalty}
        if c.temperature == 0:
            return kwargs | {"do_sample": False, "num_return_sequences": 1}
        # top_k=0 switches off a top-k cut a model's generation config may carry, so --top-p means what it says.
        return kwargs | {"do_sample": True, "temperature": c.temperature, "top_p": c.top_p, "top_k": 0}

    def decode(self, tokens: list[int]) -> Completion:
        """The response in generated ids, as `decode_response` reads them."""
        return decode_response(self.tokenizer, tokens, self.eos, self.config.stop, self.config.max_new_tokens)

    def _diverse(self, input_ids: torch.Tensor, mask: torch.Tensor) -> list[list[list[int]]]:
        c = self.config
        stops = list(c.stop)

        def hits_stop(tokens: list[int]) -> bool:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            return any(s in text for s in stops)

        return group_beam_search(
            self.model,
            input_ids,
            mask,
            groups=c.k,
            beams_per_group=c.beams_per_group,
            max_new_tokens=c.max_new_tokens,
            diversity_penalty=c.diversity_penalty,
            length_penalty=c.length_penalty,
            eos=self.eos,
            hits_stop=hits_stop if stops else None,
        )

    def close(self) -> None:
        """Drop the model so its memory can be reused."""
        self.model = None


def context_length(model_config: Any) -> int | None:
    """The positions the model was built for, where its config says (Llama-style or GPT-2-style names)."""
    context = getattr(model_config, "max_position_embeddings", None) or getattr(model_config, "n_positions", None)
    return context if isinstance(context, int) and context > 0 else None


def prompt_limit(config: SampleConfig, context: int | None) -> int | None:
    """The most prompt tokens kept: --max-prompt-tokens, and, as vLLM cuts, what the context leaves room for
    beside --max-new-tokens (at least half of it); the run counts and reports the prompts cut to that room."""
    if context is None:
        return config.max_prompt_tokens
    room = max(context - config.max_new_tokens, context // 2)
    return min(room, config.max_prompt_tokens or room)
