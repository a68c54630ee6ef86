"""What a sampling backend is: a Protocol, the requests it answers and the results it gives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stages.contract.schema import Prompt
from stages.runtime.runs import Failure
from stages.sample.config import SampleConfig
from stages.sample.decoding import Completion
from stages.sample.registry import SAMPLERS


@dataclass(frozen=True)
class SampleRequest:
    """One prompt to answer k times; `seed` is derived from the run's seed and the prompt id."""

    id: str
    prompt: Prompt
    seed: int


SampleResult = list[Completion] | Failure
"""What a backend made of one request: exactly k responses, or why the prompt failed."""


class Sampler(Protocol):
    """A backend: answers batches of prompts; built from the run's settings by its registered factory."""

    prompt_limit: int | None
    """The most prompt tokens a request keeps (a longer prompt loses its start), or None for no cut."""

    def prompt_lengths(self, prompts: list[Prompt]) -> list[int] | None:
        """Token counts of the rendered prompts (a prompt longer than `prompt_limit` may count as limit + 1: enough to
        know it is cut, without tokenising all of it), or None where no tokenizer is at hand."""
        ...

    def sample(self, requests: list[SampleRequest], batch_seed: int) -> list[SampleResult]:
        """One result per request, in order; `batch_seed` seeds backends that sample a whole batch at once."""
        ...

    def close(self) -> None:
        """Release the model or the connections."""
        ...


def create_sampler(config: SampleConfig) -> Sampler:
    """Import the chosen backend's module and build its sampler from the settings."""
    return SAMPLERS.create(config.engine, config)
