"""The sampling backends by name, with what each supports; a backend's code is imported only when picked."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.registry import Registry


@dataclass(frozen=True)
class SamplerSpec:
    """A registered backend: its factory (`module:attribute`, called with the SampleConfig) and its traits."""

    factory: str
    strategies: tuple[str, ...]
    batch_size: int  # prompts per batch when --batch-size is unset
    batch_seeded: bool = False  # draws depend on the whole batch (one RNG), not on per-prompt seeds


SAMPLERS: Registry[SamplerSpec] = Registry("engine")
SAMPLERS.register("hf", SamplerSpec("stages.sample.hf:HfSampler", ("sample", "beam", "diverse-beam"), 8, True))
SAMPLERS.register("vllm", SamplerSpec("stages.sample.vllm_backend:VllmSampler", ("sample", "beam"), 256))
SAMPLERS.register("openai", SamplerSpec("stages.sample.openai_backend:OpenAISampler", ("sample",), 64))
