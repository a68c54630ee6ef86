"""The transformers backend: batched `generate` with left padding, each prompt prefilled once for its k answers."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rrhf_cli.console import quiet_libraries
from rrhf_cli.errors import UsageError, first_line
from stages.sample.backends import Prompt, SampleRequest, SampleResult
from stages.sample.prompts import cut_left, decode_response, render_ids

if TYPE_CHECKING:
    import torch

    from stages.sample.config import SampleConfig


def left_pad(prompt_ids: list[list[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, T), padded on the left so every prompt ends at the last column."""
    import torch

    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids) :] = 1
    return input_ids.to(device), mask.to(device)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each prompt's first real token, as `generate` computes them."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


def cache_kwarg(model: Any) -> str:
    """The name the model's forward takes its KV cache under (`cache` in transformers 5, else `past_key_values`)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def prefill(model: Any, input_ids: torch.Tensor, mask: torch.Tensor) -> Any:
    """Run the prompts once and return the forward output holding the cache and the last position's logits."""
    extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    return model(input_ids=input_ids, attention_mask=mask, position_ids=positions(mask), use_cache=True, **extra)


def generate_k(
    model: Any, input_ids: torch.Tensor, mask: torch.Tensor, prefill_once: bool = True, **generate_kwargs: Any
) -> torch.Tensor:
    """`generate` with `num_return_sequences` k (and `num_beams` k for beam search): (B * k, T + new) tokens.

    With `prefill_once`, all but the last prompt token go through the model once per prompt and the KV
    cache is copied k ways; `generate` then only runs the last token for each copy. The decoding steps,
    logits processors and random draws are those of the plain path, so a fixed seed gives the same tokens.
    """
    import torch

    expand = max(generate_kwargs.get("num_beams", 1), generate_kwargs.get("num_return_sequences", 1))
    with torch.no_grad():
        if not prefill_once or input_ids.shape[1] < 2 or expand == 1:
            return model.generate(input_ids=input_ids, attention_mask=mask, **generate_kwargs)
        name = cache_kwarg(model)
        cache = prefill(model, input_ids[:, :-1], mask[:, :-1])[name]
        # Same row order as generate's own expansion (repeat_interleave): prompt 0's k copies, then prompt 1's.
        cache.batch_repeat_interleave(expand)
        return model.generate(input_ids=input_ids, attention_mask=mask, **{name: cache}, **generate_kwargs)


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a response: the generation config's (often several for chat models) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


class HfSampler:
    """k responses per prompt with transformers, on CUDA in bf16 when available, else on CPU in fp32."""

    def __init__(self, config: SampleConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_libraries()  # rrhf shows its own progress; a weight-loading bar is noise on stderr
        self.config = config
        wants_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
        if config.device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
        self.device = torch.device("cuda" if wants_cuda else "cpu")
        local = Path(config.model).expanduser()
        if config.model.startswith(("/", ".", "~")) and not local.exists():
            raise UsageError(f"--model {config.model}: no such folder")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(config.model)
            dtype = torch.bfloat16 if wants_cuda else torch.float32
            self.model = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype).to(self.device).eval()
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot load model '{config.model}': {first_line(err)}") from None
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id
        self.eos = eos_ids(self.model, self.tokenizer)

    def prompt_lengths(self, prompts: list[Prompt]) -> list[int]:
        """Token counts before any cut; also used to batch prompts of similar length together."""
        return [len(render_ids(self.tokenizer, p)) for p in prompts]

    def sample(self, requests: list[SampleRequest], batch_seed: int) -> list[SampleResult]:
        """k responses for each request, in one padded batch."""
        import torch

        ids = [cut_left(render_ids(self.tokenizer, r.prompt), self.config.max_prompt_tokens) for r in requests]
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
        return [SampleResult(texts=[self.decode(seq) for seq in per_prompt]) for per_prompt in sequences]

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

    def decode(self, tokens: list[int]) -> str:
        """Response text: up to the first end-of-response token, special tokens dropped, cut at a stop string."""
        return decode_response(self.tokenizer, tokens, self.eos, self.config.stop)

    def _diverse(self, input_ids: torch.Tensor, mask: torch.Tensor) -> list[list[list[int]]]:
        from stages.sample.diverse_beam import group_beam_search

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
