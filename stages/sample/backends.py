"""What a sampling backend is (a Protocol) and the registry that names them, importing each only when used."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stages.sample.config import SampleConfig

Prompt = str | list[dict[str, Any]]
"""A verbatim string, or chat messages as plain `{role, content}` dicts."""


@dataclass(frozen=True)
class SampleRequest:
    """One prompt to answer k times; `seed` is derived from the run's seed and the prompt id."""

    id: str
    prompt: Prompt
    seed: int


@dataclass
class SampleResult:
    """Exactly k texts, or no texts and the reason the prompt failed."""

    texts: list[str]
    error: str | None = None


class Sampler(Protocol):
    """A backend: answers batches of prompts; built from the run's settings by its registered factory."""

    def prompt_lengths(self, prompts: list[Prompt]) -> list[int] | None:
        """Token counts of the rendered prompts before any cut, or None where no tokenizer is at hand."""
        ...

    def sample(self, requests: list[SampleRequest], batch_seed: int) -> list[SampleResult]:
        """One result per request, in order; `batch_seed` seeds backends that sample a whole batch at once."""
        ...

    def close(self) -> None:
        """Release the model or the connections."""
        ...


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: where its factory lives (`module:attribute`) and what it supports."""

    factory: str
    strategies: tuple[str, ...]
    batch_size: int
    batch_seeded: bool = False  # draws depend on the whole batch (one RNG), not on per-prompt seeds


BACKENDS: dict[str, BackendSpec] = {}


def register_backend(name: str, spec: BackendSpec) -> None:
    """Make `--backend NAME` available; the factory module is imported only when a run picks it."""
    BACKENDS[name] = spec


def create_sampler(config: SampleConfig) -> Sampler:
    """Import the chosen backend's module and build its sampler from the settings."""
    module_name, _, attribute = BACKENDS[config.backend].factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory(config)


register_backend("hf", BackendSpec("stages.sample.hf:HfSampler", ("sample", "beam", "diverse-beam"), 8, True))
register_backend("vllm", BackendSpec("stages.sample.vllm_backend:VllmSampler", ("sample", "beam"), 256))
register_backend("openai", BackendSpec("stages.sample.openai_backend:OpenAISampler", ("sample",), 64))
