"""Settings of `rrhf sample`: one pydantic model for the flags, the config file and the meta."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ValidationInfo, field_validator

from stages.engines.settings import ApiSettings, VllmSettings
from stages.runtime.config import comma_names, flag_of, setting
from stages.runtime.runs import FailurePolicy
from stages.sample.registry import SAMPLERS

Strategy = Literal["sample", "beam", "diverse-beam"]
_SHARD = re.compile(r"^(\d+)/(\d+)$")


class SampleConfig(VllmSettings, ApiSettings, FailurePolicy):
    """Settings of `rrhf sample`."""

    model: str = setting(
        description="A local folder or hub name (hf, vllm), or the model name the server knows (openai).",
        path="local",
    )
    k: int = setting(4, "Responses per prompt.", flags=("-k",), ge=1)
    engine: str = setting(
        "hf",
        "Where the model runs: hf (transformers, in-process), vllm (in-process), or openai (any OpenAI-compatible "
        "server).",
        metavar="|".join(SAMPLERS),
        deprecated=("backend",),
    )
    strategy: Strategy = setting(
        "sample", description="sample (temperature/top-p), beam (the k best beams), diverse-beam (k groups)."
    )
    # allow_inf_nan: an infinite temperature would pass `ge` and be written to the meta as null.
    temperature: float = setting(
        1.0, ge=0, allow_inf_nan=False, description="Sampling temperature; 0 decodes greedily."
    )
    top_p: float = setting(1.0, gt=0, le=1, description="Nucleus sampling: keep the smallest set with this mass.")
    max_new_tokens: int = setting(256, ge=1, description="Longest response, in tokens.")
    stop: list[str] = setting(
        description="Cut a response before this string (repeatable).", default_factory=list, metavar="STRING"
    )
    seed: int = setting(0, description="Seed; the same seed, input and settings give the same responses.")
    batch_size: int | None = setting(
        None, ge=1, description="Prompts per batch and per journal entry; unset: hf 8, vllm 256, openai 64."
    )
    max_prompt_tokens: int | None = setting(
        None, ge=1, description="Keep only the last N prompt tokens (hf, vllm); cut prompts are counted."
    )
    source: str | None = setting(None, description="The `source` of this run's responses (default: the model).")
    diversity_penalty: float = setting(
        1.0, ge=0, description="diverse-beam: subtracted per earlier group that chose the same token at a step."
    )
    beams_per_group: int = setting(1, ge=1, description="diverse-beam: beams in each of the k groups.")
    length_penalty: float = setting(1.0, description="beam, diverse-beam: score = log-prob / length ** this.")
    device: Literal["auto", "cpu", "cuda"] = setting("auto", description="hf: where to run (auto: CUDA if present).")
    max_model_len: int | None = setting(None, ge=1, description="vllm: context length (default: the model's).")
    endpoint: Literal["auto", "chat", "completions"] = setting(
        "auto", description="openai: auto uses completions for string prompts and chat for message prompts."
    )
    append: bool = setting(False, description="Add to the responses already in OUTPUT (matched by id).")
    include_field: list[str] = setting(
        description=(
            "Carry responses already in the input, e.g. chosen,rejected; the field name is the source (null where "
            "a prompt has none)."
        ),
        default_factory=list,
        metavar="FIELD[,FIELD]",
    )
    shard: str | None = setting(None, description="I/N: sample only every N-th prompt, starting at the I-th (0-based).")

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        return SAMPLERS.check(value)

    @field_validator("strategy")
    @classmethod
    def _strategy_fits(cls, value: str, info: ValidationInfo) -> str:
        engine = info.data.get("engine", "")
        spec = SAMPLERS[engine] if engine in SAMPLERS else None
        if spec is not None and value not in spec.strategies:
            raise ValueError(
                f"'{value}' is not available with {flag_of(cls, info, 'engine')} {engine} "
                f"(it supports: {', '.join(spec.strategies)})"
            )
        if value == "diverse-beam" and info.data.get("k", 2) < 2:
            raise ValueError(f"'diverse-beam' needs {flag_of(cls, info, 'k')} 2 or more (one group per response)")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_fits(cls, value: float, info: ValidationInfo) -> float:
        if value > 2 and info.data.get("engine") == "vllm":
            raise ValueError(f"vLLM samples at temperatures from 0 to 2, not {value}")
        return value

    @field_validator("max_prompt_tokens")
    @classmethod
    def _needs_tokenizer(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("engine") == "openai":
            engine = flag_of(cls, info, "engine")
            raise ValueError(f"needs a local tokenizer, so it works with {engine} hf or vllm only")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    # `--include-field chosen,rejected` and a YAML list mean the same.
    _split_fields = field_validator("include_field", mode="before")(comma_names)

    @field_validator("shard")
    @classmethod
    def _shard_form(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _SHARD.match(value.strip())
        if not match or int(match.group(2)) < 1 or int(match.group(1)) >= int(match.group(2)):
            raise ValueError(f"'{value}' is not I/N with 0 <= I < N, e.g. 0/4")
        return value.strip()

    @property
    def source_name(self) -> str:
        """The source recorded on this run's responses."""
        return self.source or self.model

    def shard_of(self) -> tuple[int, int]:
        """(index, count) of this run's shard; (0, 1) when not sharded."""
        if self.shard is None:
            return 0, 1
        index, count = self.shard.split("/")
        return int(index), int(count)
